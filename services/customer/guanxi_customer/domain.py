"""Pure rules of the customer domain: validation, masking, classification, response clocks, care dates.

Nothing here does I/O; handlers call these functions and persist what they decide.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from guanxi_shared.contracts.customer import PURPOSES
from guanxi_shared.events import CloudEvent, new_event

from .settings import ResponseTargets, TierRule

SOURCE = "guanxi.customer"
# Personal fields: stored only encrypted, masked in responses, never in events/logs/spans.
PII_FIELDS: tuple[str, ...] = ("phone", "email", "address", "birthday", "id_number")
# Fields that are not personal data and are stored as they are.
PLAIN_FIELDS: tuple[str, ...] = (
    "name", "kind", "gender", "occupation", "company", "industry", "size", "preferences", "tags", "language", "timezone",
)
INDUSTRIES = ("manufacturing", "services", "government", "retail", "finance", "technology", "education", "healthcare", "other")
SIZES = ("large", "medium", "small", "individual_business", "person")
NAMESPACE = uuid.UUID("6f1b7c2e-2a4f-4d59-9b1f-3c7c1e0b9a11")


class InvalidInput(ValueError):
    """A value a person typed is wrong; the message says which and why (never echoing personal data)."""


class Tenure(StrEnum):
    new = "new"
    returning = "returning"
    loyal = "loyal"


def derived_id(*parts: str) -> str:
    """A stable id for a follow-up (event, job): a replay computes the same one."""
    return str(uuid.uuid5(NAMESPACE, ":".join(parts)))


# Validation and normalisation ----------------------------------------------------------------

def normalise_phone(raw: str) -> str:
    """E.164 (`+8613812345678`); the error never repeats the number."""
    try:
        parsed = phonenumbers.parse(raw.strip(), None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput("phone must be in E.164 form, e.g. +8613812345678") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput("phone is not a valid number for its country code")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput("email is not a valid address") from exc
    # Lower-cased whole so the blind index matches however the customer typed it.
    return info.normalized.lower()


def parse_birthday(raw: str, today: date) -> str:
    try:
        born = date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise InvalidInput("birthday must be a date YYYY-MM-DD") from exc
    if born > today or born.year < 1900:
        raise InvalidInput("birthday must be a past date after 1900")
    return born.isoformat()


def normalise_id_number(raw: str) -> str:
    value = raw.strip().upper()
    if not (4 <= len(value) <= 32) or not value.replace("-", "").isalnum():
        raise InvalidInput("id_number must be 4-32 letters or digits")
    return value


def normalise_pii(field: str, raw: str, today: date) -> str:
    if field == "phone":
        return normalise_phone(raw)
    if field == "email":
        return normalise_email(raw)
    if field == "birthday":
        return parse_birthday(raw, today)
    if field == "id_number":
        return normalise_id_number(raw)
    value = raw.strip()
    if not value or len(value) > 500:
        raise InvalidInput(f"{field} must be 1-500 characters")
    return value


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}") from exc
    return name


# Masking ------------------------------------------------------------------------------------

def mask_phone(e164: str) -> str:
    """`+8613812345678` → `+86 138****5678`: country code, first three and last four digits."""
    try:
        parsed = phonenumbers.parse(e164, None)
        cc, national = str(parsed.country_code), str(parsed.national_number)
    except phonenumbers.NumberParseException:
        cc, national = "", e164.lstrip("+")
    if len(national) >= 9:
        shown = national[:3] + "*" * (len(national) - 7) + national[-4:]
    elif len(national) >= 7:
        shown = "*" * (len(national) - 4) + national[-4:]
    else:
        shown = "*" * max(len(national) - 2, 1) + national[-2:]
    return f"+{cc} {shown}" if cc else shown


def mask_email(email: str) -> str:
    """`alice@example.com` → `a***@example.com`."""
    local, _, domain = email.rpartition("@")
    if not local:
        return "***"
    return f"{local[0]}***@{domain}"


def mask_value(field: str, value: str) -> str:
    if field == "phone":
        return mask_phone(value)
    if field == "email":
        return mask_email(value)
    if field == "birthday":
        return "****-**-**"
    if field == "id_number":
        return "*" * max(len(value) - 4, 4) + value[-4:] if len(value) > 8 else "*" * len(value)
    # Address: the first few characters (city) only.
    return value[:3] + "***" if len(value) > 6 else "***"


# Classification -------------------------------------------------------------------------------

def member_level(purchase_count: int, total: Decimal, rules: Sequence[TierRule], base_level: str) -> str:
    """The highest configured level whose thresholds are met (rules ordered lowest to highest)."""
    level = base_level
    for rule in rules:
        by_count = purchase_count >= rule.min_purchases
        by_amount = total >= rule.min_amount
        reached = (by_count and by_amount) if rule.match == "all" else (
            (rule.min_purchases > 0 and by_count) or (rule.min_amount > 0 and by_amount)
            or (rule.min_purchases == 0 and rule.min_amount == 0))
        if reached:
            level = rule.level
    return level


def tenure(purchase_count: int, returning_min: int, loyal_min: int) -> Tenure:
    if purchase_count >= loyal_min:
        return Tenure.loyal
    if purchase_count >= returning_min:
        return Tenure.returning
    return Tenure.new


def levels_in_order(rules: Sequence[TierRule], base_level: str) -> list[str]:
    return [base_level, *(r.level for r in rules)]


# Response clocks (CC-3) -------------------------------------------------------------------------

def response_minutes(channel: str, kind: str | None, urgent: bool | None, targets: ResponseTargets) -> int:
    """Deadline for answering an inbound contact: urgent 1 h, consultation 30 min, email 4 h, else 24 h."""
    if urgent:
        return targets.urgent
    if (kind or "").lower() == "consultation":
        return targets.consultation
    if channel.lower() == "email":
        return targets.email
    return targets.default


# Care dates (CR-2) ---------------------------------------------------------------------------------

def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def next_birthday(birthday: str, now: datetime, tz_name: str | None, hour: int) -> datetime:
    """The greeting moment of the birthday falling today or later, in the customer's time zone."""
    born = date.fromisoformat(birthday)
    tz = zone(tz_name)
    today = now.astimezone(tz).date()
    for year in (today.year, today.year + 1):
        day = born.replace(year=year) if not (born.month == 2 and born.day == 29) else _feb29(year)
        if day >= today:
            return datetime.combine(day, time(hour), tz).astimezone(UTC)
    raise AssertionError("unreachable: next year always qualifies")


def _feb29(year: int) -> date:
    try:
        return date(year, 2, 29)
    except ValueError:
        return date(year, 2, 28)


def last_activity(doc: dict[str, Any]) -> datetime:
    """Latest purchase or contact, or registration: the churn clock restarts from it (CR-4)."""
    moments = [m for m in (doc.get("last_purchase_at"), doc.get("last_contact_at"), doc.get("created_at")) if m]
    return max(_aware(m) for m in moments)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Consent ---------------------------------------------------------------------------------------------

def consent_flags(consents: dict[str, Any]) -> dict[str, bool]:
    """Purpose → granted; `service` is implied while the relationship exists."""
    flags = {p: bool((consents.get(p) or {}).get("granted")) for p in PURPOSES}
    flags["service"] = True
    return flags


def consent_entries(purposes: Iterable[str], at: datetime, source: str, actor: str) -> dict[str, dict[str, Any]]:
    granted = set(purposes)
    unknown = granted - set(PURPOSES)
    if unknown:
        raise InvalidInput(f"unknown consent purpose(s): {', '.join(sorted(unknown))}; known: {', '.join(PURPOSES)}")
    granted.add("service")
    return {p: {"granted": p in granted, "at": at, "source": source, "actor": actor} for p in PURPOSES}


# Events -------------------------------------------------------------------------------------------------

def event(type_: str, customer_id: str, data: dict[str, Any], *, at: datetime, cause: CloudEvent | None = None,
          id: str | None = None) -> CloudEvent:
    """A customer event; with a cause it continues that event's correlation."""
    payload = _jsonable(data)
    if cause is not None:
        return cause.follow_up(type_, payload, source=SOURCE, subject=customer_id, id=id or derived_id(cause.id, type_),
                               time=at)
    return new_event(type_, customer_id, payload, source=SOURCE, id=id, time=at)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _aware(value).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def add_minutes(moment: datetime, minutes: int) -> datetime:
    return moment + timedelta(minutes=minutes)
