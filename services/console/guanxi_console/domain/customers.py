"""Customers as the console shows and changes them, pure: the profile form (new and correction) and
its checks, what the customer API's refusals mean field by field, the purpose of a clear read, the
contact form, the erasure confirmation, and the 360 page's sections in order."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .forms import REQUIRED, Field_, FormProblems, check_fields
from .labels import (
    CONTACT_CHANNELS,
    GENDER_LABELS,
    INDUSTRY_LABELS,
    KIND_LABELS,
    LANGUAGE_LABELS,
    N_,
    PURPOSE_LABELS,
    SIZE_LABELS,
    parse_time,
)

# Personal fields: the API keeps them sealed and shows them masked unless a clear read is asked for.
PERSONAL = ("phone", "email", "address", "birthday", "id_number")

PHONE_FORMAT = N_("Enter the number with its country code, e.g. +86 138 1234 5678.")
PHONE_INVALID = N_("This is not a valid phone number for its country code.")
EMAIL_INVALID = N_("Enter an email address such as name@example.com.")
BIRTHDAY_FORMAT = N_("Enter the date as YYYY-MM-DD.")
BIRTHDAY_RANGE = N_("The birthday must be a past date after 1900.")
ID_NUMBER_FORMAT = N_("Use 4 to 32 letters or digits.")
TIMEZONE_UNKNOWN = N_("This time zone is not known.")
NOT_ACCEPTED = N_("This value was not accepted.")
CANNOT_REMOVE = N_("This field cannot be left empty.")

# The customer API's error codes (422 ``errors[].code``) → what the person reads beside the field.
ERROR_CODES = {"phone_format": PHONE_FORMAT, "phone_invalid": PHONE_INVALID, "email_invalid": EMAIL_INVALID,
               "birthday_format": BIRTHDAY_FORMAT, "birthday_range": BIRTHDAY_RANGE,
               "id_number_format": ID_NUMBER_FORMAT, "timezone_unknown": TIMEZONE_UNKNOWN,
               "required": REQUIRED, "cannot_remove": CANNOT_REMOVE, "missing": REQUIRED}


def _options(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(labels.items())


PROFILE_FIELDS: tuple[Field_, ...] = (
    Field_("name", "text", N_("Name"), required=True, max_length=200, autocomplete="name"),
    Field_("phone", "tel", N_("Mobile phone"), required=True, max_length=32, hint=N_("With the country code, e.g. +86…"),
           autocomplete="tel"),
    Field_("email", "email", N_("Email"), required=True, max_length=254, autocomplete="email"),
    Field_("kind", "select", N_("Kind of customer"), options=_options(KIND_LABELS)),
    Field_("birthday", "date", N_("Birthday"), max_length=10, hint=N_("YYYY-MM-DD")),
    Field_("gender", "select", N_("Gender"), options=_options(GENDER_LABELS)),
    Field_("address", "text", N_("Address"), max_length=500, autocomplete="street-address"),
    Field_("id_number", "text", N_("ID number"), max_length=32),
    Field_("occupation", "text", N_("Occupation"), max_length=200),
    Field_("company", "text", N_("Company"), max_length=200, autocomplete="organization"),
    Field_("industry", "select", N_("Industry"), options=_options(INDUSTRY_LABELS)),
    Field_("size", "select", N_("Size"), options=_options(SIZE_LABELS)),
    Field_("language", "select", N_("Language"), options=_options(LANGUAGE_LABELS)),
)
CONSENT_FIELD = Field_("consents", "checkboxes", N_("Consents"),
                       options=tuple((p, m) for p, m in PURPOSE_LABELS.items() if p != "service"),
                       hint=N_("Service messages need no consent while the customer relationship lasts."))
NEW_FIELDS = (*PROFILE_FIELDS, CONSENT_FIELD)
KEEP_HINT = N_("Leave empty to keep the stored value (shown masked).")
# The correction form: personal fields are never filled in (their values are not shown), so they are
# optional there; an empty one keeps what is stored.
CORRECTION_FIELDS: tuple[Field_, ...] = tuple(
    Field_(f.name, f.kind, f.label, required=False, max_length=f.max_length, options=f.options, hint=KEEP_HINT,
           autocomplete="off") if f.name in PERSONAL else f for f in PROFILE_FIELDS)
# What a correction may leave empty to remove (the API refuses removing name, phone, email, kind).
REMOVABLE = frozenset({"birthday", "gender", "address", "id_number", "occupation", "company", "industry", "size"})

_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_phone(raw: str) -> str | None:
    """A phone number as typed (spaces, dashes, brackets) in E.164, or None when it cannot be one.
    An 11-digit number starting with 1 is a mainland China mobile number (+86)."""
    digits = re.sub(r"[\s\-().]", "", raw or "")
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if re.fullmatch(r"1\d{10}", digits):
        digits = "+86" + digits
    return digits if _PHONE.match(digits) else None


def _check_personal(values: dict[str, Any], today: date) -> dict[str, str]:
    problems: dict[str, str] = {}
    if values.get("phone"):
        phone = normalise_phone(values["phone"])
        if phone is None:
            problems["phone"] = PHONE_FORMAT
        else:
            values["phone"] = phone
    if values.get("email") and not _EMAIL.match(values["email"]):
        problems["email"] = EMAIL_INVALID
    if values.get("birthday"):
        try:
            born = date.fromisoformat(values["birthday"])
        except ValueError:
            problems["birthday"] = BIRTHDAY_FORMAT
        else:
            if born > today or born.year < 1900:
                problems["birthday"] = BIRTHDAY_RANGE
    if values.get("id_number"):
        value = values["id_number"].replace("-", "")
        if not (4 <= len(values["id_number"]) <= 32) or not value.isalnum():
            problems["id_number"] = ID_NUMBER_FORMAT
    return problems


def new_customer_body(form: Mapping[str, Any], today: date) -> dict[str, Any]:
    """``POST /api/v1/customers`` from the new-customer form; ``FormProblems`` (field → msgid) first."""
    problems: dict[str, str] = {}
    try:
        body = check_fields(NEW_FIELDS, form)
    except FormProblems as exc:
        problems = dict(exc.problems)
        body = {k: str(form.get(k) or "").strip() for k in PERSONAL if k not in problems and form.get(k)}
    for name, problem in _check_personal(body, today).items():
        problems.setdefault(name, problem)
    if problems:
        raise FormProblems(problems)
    return body


def correction_body(form: Mapping[str, Any], current: Mapping[str, Any], today: date) -> dict[str, Any]:
    """``PATCH /api/v1/customers/{id}`` from the correction form: only what changed. A personal field
    left empty stays as it is (the form shows it masked, never its value); an optional plain field
    emptied is removed (null)."""
    problems: dict[str, str] = {}
    try:
        values = check_fields(CORRECTION_FIELDS, form, keep_empty=True)
    except FormProblems as exc:
        problems = dict(exc.problems)
        values = {k: str(form.get(k) or "").strip() for k in PERSONAL if k not in problems and form.get(k)}
    for name, problem in _check_personal(values, today).items():
        problems.setdefault(name, problem)
    if problems:
        raise FormProblems(problems)
    body: dict[str, Any] = {}
    for name, value in values.items():
        if name in PERSONAL:
            if value:
                body[name] = value
        elif value == "":
            if name in REMOVABLE and current.get(name) is not None:
                body[name] = None
        elif value != current.get(name):
            body[name] = value
    return body


def api_problems(errors: Iterable[Any], known: Iterable[str]) -> dict[str, str]:
    """The customer API's 422 ``errors`` ({location: "body.phone", message, code?}) as field → msgid;
    what names no known field lands under "" (shown above the form)."""
    names = set(known)
    problems: dict[str, str] = {}
    for error in errors:
        if not isinstance(error, Mapping):
            continue
        location = str(error.get("location") or "")
        name = location.split(".")[1] if location.startswith("body.") and location.count(".") >= 1 else ""
        name = name if name in names else ""
        problems.setdefault(name, ERROR_CODES.get(str(error.get("code") or ""), NOT_ACCEPTED))
    return problems


# ------------------------------------------------------------------------------------------ clear values

PURPOSE_REQUIRED = N_("Say why you need the clear value (at least 3 characters).")


def reveal_purpose(raw: str | None, roles: Iterable[str]) -> str | None:
    """The purpose sent with a clear read. Agents must state one (the API refuses them otherwise);
    supervisors and administrators may (the API then records "supervision")."""
    purpose = " ".join((raw or "").split())[:200]
    if len(purpose) >= 3:
        return purpose
    if {"supervisor", "admin"} & set(roles) and not purpose:
        return None
    raise FormProblems({"purpose": PURPOSE_REQUIRED})


def may_export_or_erase(roles: Iterable[str]) -> bool:
    """Export and erasure are for supervisors and administrators (the customer API's ``Senior``)."""
    return bool({"supervisor", "admin"} & set(roles))


ERASE_CONFIRM = N_("Type ERASE to confirm.")


def erase_reason(form: Mapping[str, Any]) -> str:
    problems: dict[str, str] = {}
    reason = " ".join(str(form.get("reason") or "").split())
    if len(reason) < 3:
        problems["reason"] = N_("Give the reason for the erasure (at least 3 characters).")
    elif len(reason) > 200:
        problems["reason"] = N_("Use at most 200 characters.")
    if str(form.get("confirm") or "").strip().upper() != "ERASE":
        problems["confirm"] = ERASE_CONFIRM
    if problems:
        raise FormProblems(problems)
    return reason


# ------------------------------------------------------------------------------------------ contacts

CONTACT_FIELDS: tuple[Field_, ...] = (
    Field_("channel", "select", N_("Channel"), required=True, options=tuple((c, c) for c in CONTACT_CHANNELS)),
    Field_("direction", "select", N_("Direction"), required=True,
           options=(("inbound", N_("Inbound")), ("outbound", N_("Outbound")))),
    Field_("summary", "textarea", N_("Summary"), required=True, max_length=5_000),
    Field_("outcome", "text", N_("Outcome"), max_length=200),
    Field_("urgent", "checkbox", N_("Urgent")),
)
CONTACT_DEFAULTS = {"channel": "phone", "direction": "inbound"}


def contact_body(customer_id: str, form: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/interactions`` from the "log a contact" form."""
    body = check_fields(CONTACT_FIELDS, form)
    if not body.get("urgent"):
        body.pop("urgent", None)
    return {"customer_id": customer_id, **body}


# ------------------------------------------------------------------------------------------ the 360 page


@dataclass
class Section:
    """One part of the 360 page: its rows, or why it could not be read (``refused`` / ``unavailable``)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None  # msgid
    more: bool = False


NOT_ALLOWED = N_("Your role may not see this.")
UNAVAILABLE = N_("Cannot be shown right now (the service did not answer).")


def timeline_items(items: Iterable[Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The timeline's entries of one ``type``, with their time parsed, newest first."""
    out = [{**i, "at_time": parse_time(i.get("at"))} for i in items if i.get("type") == kind]
    out.sort(key=lambda i: i["at_time"].timestamp() if i["at_time"] else 0.0, reverse=True)
    return out


def with_times(items: Iterable[Mapping[str, Any]], *names: str) -> list[dict[str, Any]]:
    """Items with ``<name>_time`` parsed for each time field named."""
    return [{**i, **{f"{n}_time": parse_time(i.get(n)) for n in names}} for i in items]


def consent_rows(consents: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Purpose → granted (with when and how), in the catalogue's order."""
    entries = consents.get("consents") if isinstance(consents.get("consents"), Mapping) else consents
    rows = []
    for purpose in PURPOSE_LABELS:
        entry = entries.get(purpose) if isinstance(entries, Mapping) else None
        granted = purpose == "service" or bool((entry or {}).get("granted"))
        rows.append({"purpose": purpose, "granted": granted, "at_time": parse_time((entry or {}).get("at")),
                     "source": (entry or {}).get("source")})
    return rows
