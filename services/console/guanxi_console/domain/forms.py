"""Forms, pure: a field's description (what the template draws), the checking of what was submitted
against it, and ``FormProblems`` (field → msgid of what to fix, shown beside the field in the
viewer's language)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .labels import N_

REQUIRED = N_("This field is required.")
TOO_LONG = N_("This text is too long.")
CHOOSE = N_("Choose one of the options.")


class FormProblems(Exception):
    """What is wrong with a submitted form: field name (or "") → msgid."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


@dataclass(frozen=True)
class Field_:
    name: str
    kind: Literal["text", "textarea", "checkbox", "select", "date", "email", "tel", "checkboxes", "hidden"]
    label: str  # msgid
    required: bool = False
    max_length: int = 10_000
    options: tuple[tuple[str, str], ...] = ()  # (value, msgid)
    hint: str = ""  # msgid shown under the field
    autocomplete: str = "off"


def is_checked(raw: Any) -> bool:
    return raw in ("on", "true", "1", "yes")


def check_fields(fields: Iterable[Field_], form: Mapping[str, Any], *, keep_empty: bool = False) -> dict[str, Any]:
    """The values of ``fields`` from ``form``, trimmed and checked (required, length, choices); empty
    optional ones left out (or kept as "" with ``keep_empty``). ``FormProblems`` when something must be fixed.
    ``form`` values are strings, or lists of strings for ``checkboxes``."""
    body: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for f in fields:
        raw = form.get(f.name)
        if f.kind == "checkbox":
            body[f.name] = is_checked(raw)
            continue
        if f.kind == "checkboxes":
            chosen = [str(v) for v in (raw if isinstance(raw, list | tuple) else [raw] if raw else [])]
            allowed = {v for v, _ in f.options}
            if any(v not in allowed for v in chosen):
                problems[f.name] = CHOOSE
                continue
            body[f.name] = [v for v, _ in f.options if v in chosen]
            continue
        value = str(raw or "").strip()
        if not value:
            if f.required:
                problems[f.name] = REQUIRED
            elif keep_empty:
                body[f.name] = ""
            continue
        if len(value) > f.max_length:
            problems[f.name] = TOO_LONG
            continue
        if f.kind == "select" and value not in {v for v, _ in f.options}:
            problems[f.name] = CHOOSE
            continue
        body[f.name] = value
    if problems:
        raise FormProblems(problems)
    return body
