"""A complaint case as the console shows it: its deadlines and their state, the actions its status allows,
the body of each command, and the form of a complaint taken by phone. Pure: the handlers give this
module what the gateway answered."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .forms import Field_, check_fields
from .labels import CATEGORIES, DEADLINES, INTAKE_CHANNELS, N_, OPEN_STATUSES, SEVERITIES, parse_time

DeadlineState = Literal["pending", "breached", "met", "met_late", "not_started"]


@dataclass(frozen=True)
class DeadlineView:
    name: str
    due_at: datetime | None
    met_at: datetime | None
    state: DeadlineState
    seconds_left: float | None  # None once met or when not started; negative once breached

    @property
    def live(self) -> bool:
        """A countdown is shown: the deadline is running (pending or already breached, not met)."""
        return self.due_at is not None and self.met_at is None


def deadline_views(case: Mapping[str, Any], now: datetime) -> list[DeadlineView]:
    """The four deadlines of a case, in their fixed order, with their state at ``now``."""
    sla = case.get("sla") or {}
    due = case.get("deadlines") or {}
    out = []
    for name in DEADLINES:
        entry = sla.get(name) or {}
        due_at = parse_time(entry.get("due_at") or due.get(name))
        met_at = parse_time(entry.get("met_at"))
        if due_at is None:
            out.append(DeadlineView(name, None, None, "not_started", None))
            continue
        if met_at is not None:
            late = met_at > due_at or bool(entry.get("breached"))
            out.append(DeadlineView(name, due_at, met_at, "met_late" if late else "met", None))
            continue
        left = (due_at - now).total_seconds()
        breached = left < 0 or bool(entry.get("breached"))
        out.append(DeadlineView(name, due_at, None, "breached" if breached else "pending", left))
    return out


def next_deadline(case: Mapping[str, Any], now: datetime) -> DeadlineView | None:
    """The running deadline due first (breached ones included: they are the most urgent)."""
    live = [d for d in deadline_views(case, now) if d.live]
    return min(live, key=lambda d: d.due_at or now) if live else None


def countdown_parts(seconds: float) -> tuple[bool, int, int, int]:
    """(breached, days, hours, minutes) of a time left; what countdown.js shows, in Python for the first paint."""
    breached = seconds < 0
    total = int(abs(seconds)) // 60
    days, rest = divmod(total, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return breached, days, hours, minutes


# ------------------------------------------------------------------------------------------ actions


ROOT_CAUSES: tuple[tuple[str, str], ...] = (
    ("product_quality", N_("Product quality")),
    ("delivery", N_("Delivery")),
    ("billing", N_("Billing")),
    ("service_attitude", N_("Service attitude")),
    ("process", N_("Process or policy")),
    ("communication", N_("Communication")),
    ("other", N_("Other")),
)


@dataclass(frozen=True)
class Action:
    name: str
    path: str  # below /api/v1/complaints/{id}/
    label: str  # msgid of the button
    fields: tuple[Field_, ...] = ()
    primary: bool = False


ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("take", "assign", N_("Take this case")),
    Action("acknowledge", "acknowledge", N_("Acknowledge receipt"), primary=True),
    Action("preliminary_opinion", "preliminary-opinion", N_("Give preliminary opinion"),
           (Field_("opinion", "textarea", N_("Preliminary opinion"), required=True),), primary=True),
    Action("investigation", "investigation", N_("Start investigation"),
           (Field_("reason", "textarea", N_("Why an investigation is needed"), required=True),)),
    Action("await_customer", "await-customer", N_("Wait for the customer"),
           (Field_("reason", "textarea", N_("What we are waiting for"), required=True, max_length=2_000),)),
    Action("customer_responded", "customer-responded", N_("The customer responded")),
    Action("resolve", "resolve", N_("Resolve (formal answer)"), (
        Field_("resolution", "textarea", N_("Outcome (the formal answer)"), required=True),
        Field_("compensation", "text", N_("Compensation"), max_length=2_000),
        Field_("apology", "checkbox", N_("An apology was given")),
        Field_("root_cause", "select", N_("Root cause"), options=ROOT_CAUSES),
    ), primary=True),
    Action("close", "close", N_("Close"),
           (Field_("confirmed_by_customer", "checkbox", N_("The customer confirmed the answer")),)),
    Action("reopen", "reopen", N_("Reopen"),
           (Field_("reason", "textarea", N_("Why the customer asked to reopen"), required=True),)),
)}

_BY_STATUS: dict[str, tuple[str, ...]] = {
    "received": ("acknowledge",),
    "acknowledged": ("preliminary_opinion", "resolve"),
    "preliminary_opinion": ("investigation", "resolve"),
    "investigating": ("resolve",),
    "reopened": ("investigation", "resolve"),
    "resolved": ("close", "reopen"),
    "closed": ("reopen",),
}


def allowed_actions(case: Mapping[str, Any], viewer: str) -> list[Action]:
    """The commands the case's status allows (services/complaints README, "Lifecycle"), in the order
    an agent meets them. Whether this viewer may act (owner or supervisor) is the API's to decide:
    its refusal is shown, never second-guessed here."""
    status = str(case.get("status", ""))
    names = list(_BY_STATUS.get(status, ()))
    if status in OPEN_STATUSES:
        names.append("customer_responded" if case.get("waiting_on_customer_since") else "await_customer")
    if not case.get("owner") and status != "closed" and viewer:
        names.insert(0, "take")
    return [ACTIONS[n] for n in names]


def action_body(action: Action, form: Mapping[str, Any], viewer: str) -> dict[str, Any]:
    """The JSON body of the API command from the submitted form; ``FormProblems`` when it cannot be sent."""
    if action.name == "take":
        return {"owner": viewer}
    return check_fields(action.fields, form)


# ------------------------------------------------------------------------------------------ numbers

CASE_NUMBER = re.compile(r"^TS-\d{4}-\d{6}$")


def case_label(case: Mapping[str, Any]) -> str:
    """How people name a case: its number (TS-2026-000123) once the complaints service gives one, else
    the first characters of its id."""
    number = case.get("number")
    return str(number) if number else str(case.get("id", ""))[:8]


# ------------------------------------------------------------------------------------------ intake

CATEGORY_OPTIONS = tuple((c, c) for c in CATEGORIES)
INTAKE_FIELDS: tuple[Field_, ...] = (
    Field_("channel", "select", N_("Channel"), required=True, options=tuple((c, c) for c in INTAKE_CHANNELS)),
    Field_("category", "select", N_("Category"), required=True, options=CATEGORY_OPTIONS),
    Field_("severity", "select", N_("Severity"), required=True, options=tuple((s, s) for s in SEVERITIES)),
    Field_("product", "text", N_("Product or service concerned"), max_length=200),
    Field_("description", "textarea", N_("What the customer says"), required=True, max_length=20_000),
)
INTAKE_DEFAULTS = {"channel": "phone", "severity": "normal"}


def intake_body(customer_id: str, form: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/complaints`` from the "log a complaint" form (the channel preset to phone);
    ``FormProblems`` when something must be fixed before it is sent."""
    body = check_fields(INTAKE_FIELDS, form)
    return {"customer_id": customer_id, **body}
