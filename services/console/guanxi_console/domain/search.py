"""The search box, pure: what a typed query can be (case number, phone, email, an id, a name) and so
which lookups answer it. Phone and email are exact (the customer API's blind index); a name is
"contains"; an id is tried as a customer and as a complaint."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .complaints import CASE_NUMBER
from .customers import normalise_phone

Kind = Literal["case_number", "phone", "email", "id", "name", "empty"]
_ID = re.compile(r"^[A-Za-z0-9._:-]{4,128}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_PHONE_LIKE = re.compile(r"^[+0-9][0-9\s\-().]{5,24}$")
MAX_QUERY = 200


@dataclass(frozen=True)
class SearchQuery:
    text: str
    kind: Kind
    value: str  # what is sent: the normalised phone, the lower-cased email, the upper-cased case number…
    also_name: bool = False  # an id-like word may also be part of a name

    @property
    def lookups(self) -> tuple[str, ...]:
        """The lookups to run, by name (the handlers run them side by side)."""
        return {
            "case_number": ("complaint_number",),
            "phone": ("customer_phone",),
            "email": ("customer_email",),
            "id": ("customer_id", "complaint_id", *(("customer_name",) if self.also_name else ())),
            "name": ("customer_name",),
            "empty": (),
        }[self.kind]


def classify(raw: str | None) -> SearchQuery:
    text = " ".join((raw or "").split())[:MAX_QUERY]
    if not text:
        return SearchQuery("", "empty", "")
    if CASE_NUMBER.match(text.upper()):
        return SearchQuery(text, "case_number", text.upper())
    if "@" in text and _EMAIL.match(text):
        return SearchQuery(text, "email", text.lower())
    if _PHONE_LIKE.match(text) and sum(c.isdigit() for c in text) >= 7:
        phone = normalise_phone(text)
        if phone:
            return SearchQuery(text, "phone", phone)
    if _ID.match(text) and any(c.isdigit() for c in text):
        return SearchQuery(text, "id", text, also_name=not any(c in text for c in "-:") and not text.isdigit())
    return SearchQuery(text, "name", text)
