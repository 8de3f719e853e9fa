"""Payloads the complaints service publishes."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from .inbound import Contract


class ComplaintStep(Contract):
    """Common shape of every lifecycle event (complaint.registered/acknowledged/assigned/...)."""

    complaint_id: str
    customer_id: str
    status: str
    actor: str
    at: datetime
    channel: str | None = None
    category: str | None = None
    severity: str | None = None
    owner: str | None = None
    note: str | None = None
    # Optional additions (dataversion 1 stays compatible).
    team: str | None = None
    product: str | None = None
    previous_owner: str | None = None  # complaint.assigned
    confirmed_by_customer: bool | None = None  # complaint.closed
    # registered / acknowledged / investigation_started / reopened: due times of the deadlines so far
    # (acknowledge, preliminary_opinion, investigation, formal_answer), RFC 3339 with offset.
    deadlines: dict[str, datetime] | None = None
    # The human case number given at intake (``TS-<year>-<6 digits>``); absent on cases older than numbers.
    number: str | None = None
    # complaint.acknowledged: the customer's signed, expiring link to the case's status page.
    status_link: str | None = None


class ComplaintResolved(ComplaintStep):
    resolution: str
    compensation: str | None = None
    apology: bool = False
    root_cause: str | None = None
    first_contact_resolution: bool | None = None


class DeadlineEvent(Contract):
    """complaint.deadline_approaching / complaint.deadline_breached (once per deadline)."""

    complaint_id: str
    customer_id: str
    deadline: str  # acknowledge | preliminary_opinion | investigation | formal_answer
    due_at: datetime
    owner: str | None = None
    at: datetime
    number: str | None = None  # the case number, when the case has one


class ComplaintEscalated(Contract):
    complaint_id: str
    customer_id: str
    reason: str  # breach:<deadline> | unowned
    escalated_to: str = "supervisor"
    at: datetime
    owner: str | None = None
    number: str | None = None  # the case number, when the case has one


class CrisisAlert(Contract):
    alert_id: str
    dimension: str  # category | product | channel | satisfaction
    value: str
    count: int
    window_minutes: int
    baseline: float
    threshold: float
    at: datetime
    sample_complaint_ids: list[str] = Field(default_factory=list)
