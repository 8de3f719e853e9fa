"""A customer's profile: which fields are personal, how typed values are checked and normalised,
how clear values are masked for display, and consent per purpose."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from guanxi_shared.contracts.customer import PURPOSES

from .errors import InvalidInput

Doc = dict[str, Any]

REGISTERED, UNREGISTERED, ERASED = "registered", "unregistered", "erased"
# What free text kept about an erased customer is replaced with.
REDACTED = "[erased]"
# Personal fields: stored only encrypted, masked in responses, never in events/logs/spans.
PII_FIELDS: tuple[str, ...] = ("phone", "email", "address", "birthday", "id_number")
# Fields that are not personal data and are stored as they are.
PLAIN_FIELDS: tuple[str, ...] = (
    "name", "kind", "gender", "occupation", "company", "industry", "size", "preferences", "tags", "language", "timezone",
)
# What erasure deletes from the customer's document; deleting the wrapped data key (``vault``) is the
# crypto-shredding: any copy of the ciphertext (backups included) can never be opened again.
ERASED_FIELDS: tuple[str, ...] = ("pii", "vault", "lookup", "name", "gender", "occupation", "company", "preferences",
                                  "tags", "consents")
INDUSTRIES = ("manufacturing", "services", "government", "retail", "finance", "technology", "education", "healthcare", "other")
SIZES = ("large", "medium", "small", "individual_business", "person")


# Validation and normalisation ----------------------------------------------------------------

def normalise_phone(raw: str) -> str:
    """E.164 (`+8613812345678`); the error never repeats the number."""
    try:
        parsed = phonenumbers.parse(raw.strip(), None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput("phone must be in E.164 form, e.g. +8613812345678", field="phone", code="phone_format") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput("phone is not a valid number for its country code", field="phone", code="phone_invalid")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput("email is not a valid address", field="email", code="email_invalid") from exc
    # Lower-cased whole so the blind index matches however the customer typed it.
    return info.normalized.lower()


def parse_birthday(raw: str, today: date) -> str:
    try:
        born = date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise InvalidInput("birthday must be a date YYYY-MM-DD", field="birthday", code="birthday_format") from exc
    if born > today or born.year < 1900:
        raise InvalidInput("birthday must be a past date after 1900", field="birthday", code="birthday_range")
    return born.isoformat()


def normalise_id_number(raw: str) -> str:
    value = raw.strip().upper()
    if not (4 <= len(value) <= 32) or not value.replace("-", "").isalnum():
        raise InvalidInput("id_number must be 4-32 letters or digits", field="id_number", code="id_number_format")
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
        raise InvalidInput(f"{field} must be 1-500 characters", field=field, code="invalid")
    return value


def normalise_pii_fields(fields: dict[str, Any], today: date) -> dict[str, str | None]:
    """The personal fields among ``fields``, normalised; None (a removal) stays None."""
    return {f: None if fields[f] is None else normalise_pii(f, fields[f], today) for f in PII_FIELDS if f in fields}


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}", field="timezone", code="timezone_unknown") from exc
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


# Documents ---------------------------------------------------------------------------------------------

def stub(customer_id: str, now: datetime, base_level: str) -> Doc:
    """An unregistered customer learned from a purchase or contact: counters, no personal data."""
    return {"_id": customer_id, "status": UNREGISTERED, "created_at": now, "updated_at": now,
            "member_level": base_level, "tenure": "new", "purchase_count": 0, "total_amount": "0", "churn_risk": False,
            "consents": {}, "channels_opted_out": [], "history": [], "applied_events": [], "outbox": {}}


def nested(flat: dict[str, Any]) -> Doc:
    """Dotted field paths (`pii.phone`) as nested documents, for a new document."""
    out: Doc = {}
    for key, value in flat.items():
        parts = key.split(".")
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = value
    return out
