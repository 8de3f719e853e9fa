"""The customer's own view of a complaint (the page behind the emailed status link), pure: the words a
customer reads for each status, the steps so far and the dates we committed to. It shows only what
``GET /api/v1/complaints/status/{token}`` answers; nothing about staff (owners, notes) is expected there."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .labels import N_, parse_time

CUSTOMER_STATUS = {
    "received": N_("We have received your complaint."),
    "acknowledged": N_("Your complaint has been accepted and is being handled."),
    "preliminary_opinion": N_("We have given you a first answer and are working on the final one."),
    "investigating": N_("We are investigating your complaint."),
    "resolved": N_("We have given you our answer."),
    "closed": N_("Your complaint is closed."),
    "reopened": N_("Your complaint has been reopened at your request."),
}
CUSTOMER_STEPS = {
    "received": N_("Complaint received"), "acknowledged": N_("Complaint accepted"),
    "preliminary_opinion": N_("First answer given"), "investigation_started": N_("Investigation started"),
    "resolved": N_("Answer given"), "closed": N_("Closed"), "reopened": N_("Reopened"),
}
# What we promise the customer, in the order they meet it (the formal answer last).
PROMISES = (("acknowledge", N_("Acceptance of your complaint by")), ("preliminary_opinion", N_("First answer by")),
            ("investigation", N_("Investigation finished by")), ("formal_answer", N_("Final answer by")))


@dataclass
class CustomerStatus:
    number: str
    status: str
    message: str  # msgid
    received_at: datetime | None
    language: str | None
    steps: list[tuple[str, datetime | None]] = field(default_factory=list)  # (msgid, when)
    promises: list[tuple[str, datetime, bool]] = field(default_factory=list)  # (msgid, due, done)
    answer: str | None = None
    category: str | None = None
    late: bool = False  # a commitment was missed


# When the answer carries no history: the steps its own times name.
STEP_TIMES = (("received", "received_at"), ("acknowledged", "acknowledged_at"), ("resolved", "resolved_at"),
              ("closed", "closed_at"))
LATE = N_("We are late on this step and are working to catch up. We apologise.")


def customer_status(data: Mapping[str, Any]) -> CustomerStatus:
    """From ``GET /complaints/status/{token}``: ``number``, ``status``, ``received_at``,
    ``acknowledged_at``, ``resolved_at``, ``closed_at``, ``next_deadline``, ``next_due_at``, ``breached``
    (and, if ever given, ``deadlines``/``sla``/``history``)."""
    status = str(data.get("status") or "")
    deadlines: Mapping[str, Any] = data["deadlines"] if isinstance(data.get("deadlines"), Mapping) else {}
    sla: Mapping[str, Any] = data["sla"] if isinstance(data.get("sla"), Mapping) else {}
    promises: list[tuple[str, datetime, bool]] = []
    for name, msgid in PROMISES:
        entry: Mapping[str, Any] = sla[name] if isinstance(sla.get(name), Mapping) else {}
        due = parse_time(entry.get("due_at") or deadlines.get(name))
        if due is not None:
            promises.append((msgid, due, bool(entry.get("met_at"))))
    nearest, next_due = data.get("next_deadline"), parse_time(data.get("next_due_at"))
    if not promises and next_due is not None:
        promises.append((dict(PROMISES).get(str(nearest), N_("Next step by")), next_due, False))
    steps: list[tuple[str, datetime | None]] = []
    for step in data.get("history") or []:
        if isinstance(step, Mapping) and step.get("step") in CUSTOMER_STEPS:
            steps.append((CUSTOMER_STEPS[str(step["step"])], parse_time(step.get("at"))))
    if not steps:
        steps = [(CUSTOMER_STEPS[step], parse_time(data.get(key))) for step, key in STEP_TIMES if data.get(key)]
    language = data.get("language")
    return CustomerStatus(
        number=str(data.get("number") or ""), status=status,
        message=CUSTOMER_STATUS.get(status, N_("Your complaint is being handled.")),
        received_at=parse_time(data.get("received_at")), language=str(language) if language else None,
        steps=steps, promises=promises,
        answer=str(data["resolution"]) if data.get("resolution") and status in ("resolved", "closed") else None,
        category=str(data["category"]) if data.get("category") else None, late=bool(data.get("breached")))
