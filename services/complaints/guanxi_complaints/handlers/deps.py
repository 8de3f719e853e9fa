"""What every use case of the complaints service gets (``Deps``), and how its events are made."""

from __future__ import annotations

from dataclasses import dataclass

from guanxi_shared.clock import Clock
from guanxi_shared.contracts.complaints import ComplaintEscalated, ComplaintResolved, ComplaintStep, CrisisAlert, DeadlineEvent
from guanxi_shared.contracts.inbound import Contract
from guanxi_shared.events import CloudEvent, new_event

from ..domain import Case, Emitted, Policy, event_id
from ..domain.crisis import CrisisRule
from ..store import CaseStore, CrisisStore

SOURCE = "guanxi.complaints"
# Payload contracts of what this service publishes: every outgoing event is validated first.
CONTRACTS: dict[str, type[Contract]] = {
    "complaint.resolved": ComplaintResolved,
    "complaint.deadline_approaching": DeadlineEvent,
    "complaint.deadline_breached": DeadlineEvent,
    "complaint.escalated": ComplaintEscalated,
    "crisis.alert": CrisisAlert,
}
# Version-guarded writes retried this often when another writer changed the case in between.
SAVE_ATTEMPTS = 5


@dataclass
class Deps:
    cases: CaseStore
    crisis_store: CrisisStore
    policy: Policy
    clock: Clock
    crisis_rule: CrisisRule
    low_score_rule: CrisisRule
    low_score_opens_case: bool = False
    max_page_size: int = 200
    first_contact_hours: float = 24.0  # first-contact resolution window (COMPLAINTS_FIRST_CONTACT_HOURS)


def to_cloud_events(case: Case, emitted: list[Emitted], causation_id: str | None = None) -> list[CloudEvent]:
    out = []
    for e in emitted:
        contract = CONTRACTS.get(e.type, ComplaintStep)
        data = contract.model_validate(e.data).model_dump(mode="json", exclude_none=True)
        out.append(new_event(e.type, case.customer_id, data, source=SOURCE, id=event_id(case.id, e.key),
                             time=e.data.get("at"), correlationid=case.correlation_id, causationid=causation_id))
    return out
