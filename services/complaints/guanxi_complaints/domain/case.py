"""Complaint cases: the lifecycle state machine, deadlines, escalation and erasure (pure, no I/O).

Every command takes a case and returns the changed case plus the events it causes; the caller
writes both in one document update (the outbox). Lifecycle (CP-3):

    received → acknowledged → preliminary_opinion → (investigating) → resolved → closed
                    └──────────── resolve at first contact ───────────┘      ↑        │
                                              reopened ←─────────────────────┴────────┘

Deadlines (CP-2): acknowledge = clock hours after receipt (tighter per severity); preliminary
opinion and formal answer = working days after receipt; investigation = working days after its
start. A deadline is "pending" until met; the watcher marks it approaching and breached, each
exactly once, because the flags live on the case and every write is guarded by the case version.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import IllegalTransition, NotPermitted
from .links import StatusLinks
from .workdays import WorkingCalendar

SYSTEM_ACTOR = "system"
CASE_NAMESPACE = uuid.UUID("6a3c0f0e-8f5e-4d7b-9a53-3c0c2b6f1d11")
ERASED_TEXT = "[erased]"
DEFAULT_TEAM = "general"
# The human case number: ``TS-<year of receipt>-<sequence of that year, at least 6 digits>``.
CASE_NUMBER = re.compile(r"^TS-(\d{4})-(\d{6,})$")


def case_number(year: int, sequence: int) -> str:
    """``TS-2026-000123``: the year of receipt (local day) and the case's place in that year's sequence."""
    return f"TS-{year:04d}-{sequence:06d}"


def is_case_number(text: str) -> bool:
    return CASE_NUMBER.match(text) is not None


class Status(StrEnum):
    received = "received"
    acknowledged = "acknowledged"
    preliminary_opinion = "preliminary_opinion"
    investigating = "investigating"
    resolved = "resolved"
    closed = "closed"
    reopened = "reopened"


class Deadline(StrEnum):
    acknowledge = "acknowledge"
    preliminary_opinion = "preliminary_opinion"
    investigation = "investigation"
    formal_answer = "formal_answer"


DEADLINE_ORDER: tuple[Deadline, ...] = tuple(Deadline)
OPEN_STATUSES = frozenset({Status.received, Status.acknowledged, Status.preliminary_opinion,
                           Status.investigating, Status.reopened})


@dataclass(frozen=True)
class Actor:
    """Who gives a command: a supervisor acts on any case, an agent on their own or unowned ones."""

    subject: str
    supervisor: bool = False
    team: str | None = None


@dataclass(frozen=True)
class Policy:
    """Deadline and escalation rules, taken from settings by the composition root."""

    calendar: WorkingCalendar
    acknowledge_hours: float = 24.0
    acknowledge_minutes_by_severity: dict[str, int] = field(default_factory=dict)
    preliminary_opinion_working_days: int = 3
    investigation_working_days: int = 5
    formal_answer_working_days: int = 15
    auto_acknowledge: bool = True
    lead_time: timedelta = timedelta(hours=4)
    unowned_grace: timedelta = timedelta(hours=2)
    follow_up_window: timedelta = timedelta(days=7)
    pause_while_waiting: bool = False
    # Routing at intake: the team of a case by its category, else the default team.
    team_by_category: Mapping[str, str] = field(default_factory=dict)
    default_team: str = DEFAULT_TEAM
    # The customer's status link, put in the acknowledgement (None: no link).
    status_links: StatusLinks | None = None

    def team_for(self, category: str) -> str:
        return self.team_by_category.get(category) or self.default_team

    def number_year(self, received_at: datetime) -> int:
        """The year a case number counts in: the year of the local day of receipt."""
        return self.calendar.local(received_at).year


class DeadlineState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    due_at: datetime
    approach_at: datetime
    met_at: datetime | None = None
    approached: bool = False
    breached: bool = False
    breached_at: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.met_at is None

    def outcome(self, now: datetime) -> str:
        """met | breached | pending (for SLA compliance)."""
        if self.met_at is not None:
            return "met" if self.met_at <= self.due_at and not self.breached else "breached"
        return "breached" if self.breached or now > self.due_at else "pending"


class Step(BaseModel):
    model_config = ConfigDict(extra="ignore")

    step: str
    actor: str
    at: datetime
    note: str | None = None


class Escalation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reason: str
    at: datetime
    owner: str | None = None


class Case(BaseModel):
    """The case document (its Mongo ``_id`` is ``id``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(alias="_id")
    version: int = 0
    number: str | None = None  # TS-<year>-<sequence>; None on cases opened before numbers existed
    intake_key: str
    source: str
    external_ref: str | None = None
    correlation_id: str | None = None
    customer_id: str
    channel: str
    category: str
    severity: str
    product: str | None = None
    description: str
    evidence: list[str] = Field(default_factory=list)
    received_at: datetime
    opened_at: datetime
    status: Status = Status.received
    owner: str | None = None
    team: str | None = None
    deadlines: dict[str, DeadlineState] = Field(default_factory=dict)
    previous_deadlines: list[dict[str, Any]] = Field(default_factory=list)
    history: list[Step] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    unowned_escalated: bool = False
    acknowledged_at: datetime | None = None
    preliminary_opinion: str | None = None
    preliminary_opinion_at: datetime | None = None
    investigation_reason: str | None = None
    investigation_started_at: datetime | None = None
    resolution: str | None = None
    compensation: str | None = None
    apology: bool = False
    root_cause: str | None = None
    resolved_at: datetime | None = None
    first_resolved_at: datetime | None = None
    first_contact_resolution: bool | None = None
    closed_at: datetime | None = None
    confirmed_by_customer: bool | None = None
    reopen_count: int = 0
    waiting_since: datetime | None = None
    erased: bool = False
    # Derived fields kept for queries: the watcher's next look, and the earliest pending due time.
    next_check_at: datetime | None = None
    next_due_at: datetime | None = None

    def to_doc(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="python")

    def paused(self, policy: Policy) -> bool:
        return policy.pause_while_waiting and self.waiting_since is not None

    def is_overdue(self, now: datetime) -> bool:
        return self.next_due_at is not None and self.next_due_at <= now

    def next_deadline(self) -> str | None:
        """The name of the nearest open deadline (the one ``next_due_at`` is the due time of)."""
        if self.next_due_at is None:
            return None
        return next((name for name in DEADLINE_ORDER if (state := self.deadlines.get(name)) is not None
                     and state.pending and state.due_at == self.next_due_at), None)


@dataclass(frozen=True)
class Emitted:
    """An event the domain causes: its type, payload, and a key making its id deterministic."""

    type: str
    data: dict[str, Any]
    key: str


@dataclass
class Outcome:
    case: Case
    events: list[Emitted]


# ---------------------------------------------------------------- intake


@dataclass(frozen=True)
class Intake:
    """What a complaint.received event (or an internal follow-up) brings to open a case."""

    source: str
    customer_id: str
    channel: str
    category: str
    severity: str
    description: str
    received_at: datetime
    complaint_id: str | None = None
    external_ref: str | None = None
    product: str | None = None
    evidence: tuple[str, ...] = ()
    event_id: str | None = None


def case_id_for(intake: Intake) -> str:
    """complaint_id when given; else stable from (source, external_ref); else from the event id."""
    if intake.complaint_id:
        return intake.complaint_id
    if intake.external_ref:
        return str(uuid.uuid5(CASE_NAMESPACE, f"ref:{intake.source}:{intake.external_ref}"))
    return str(uuid.uuid5(CASE_NAMESPACE, f"event:{intake.event_id}"))


def intake_key_for(intake: Intake, case_id: str) -> str:
    """The business key a unique index holds: (source, external_ref), else the case id."""
    if intake.external_ref:
        return f"ref\x1f{intake.source}\x1f{intake.external_ref}"
    return f"id\x1f{case_id}"


def open_case(intake: Intake, policy: Policy, now: datetime, number: str | None = None) -> Outcome:
    """The new case (in its routed team, under ``number`` when given) and the events of its opening."""
    case_id = case_id_for(intake)
    received = intake.received_at
    cal = policy.calendar
    ack_minutes = policy.acknowledge_minutes_by_severity.get(intake.severity)
    ack_due = received + (timedelta(minutes=ack_minutes) if ack_minutes else timedelta(hours=policy.acknowledge_hours))
    case = Case(
        _id=case_id,
        number=number,
        intake_key=intake_key_for(intake, case_id),
        source=intake.source,
        external_ref=intake.external_ref,
        correlation_id=intake.event_id,
        customer_id=intake.customer_id,
        channel=intake.channel,
        category=intake.category,
        severity=intake.severity,
        product=intake.product,
        description=intake.description,
        evidence=list(intake.evidence),
        received_at=received,
        opened_at=now,
        team=policy.team_for(intake.category),
        deadlines={
            Deadline.acknowledge: _deadline(received, ack_due, policy),
            Deadline.preliminary_opinion: _deadline(received, cal.deadline(received, policy.preliminary_opinion_working_days),
                                                    policy),
            Deadline.formal_answer: _deadline(received, cal.deadline(received, policy.formal_answer_working_days), policy),
        },
        history=[Step(step="received", actor=intake.source, at=now)],
    )
    events = [Emitted("complaint.registered", {**_step_data(case, intake.source, now),
                                               "deadlines": _due_map(case)}, "registered")]
    if policy.auto_acknowledge:
        out = acknowledge(case, SYSTEM_ACTOR, now, policy)
        case, events = out.case, events + out.events
    return Outcome(_refresh(case, policy), events)


def _deadline(start: datetime, due: datetime, policy: Policy) -> DeadlineState:
    # The warning comes the lead time before the due time, but never before the clock started:
    # a span shorter than twice the lead time (the 1-hour urgent target) is warned at its half.
    lead = min(policy.lead_time, (due - start) / 2)
    return DeadlineState(due_at=due, approach_at=due - lead)


# ---------------------------------------------------------------- commands


def ensure_may_act(case: Case, actor: str, *, privileged: bool) -> None:
    """Object-level rule: supervisors act on any case, agents on their own or unowned ones."""
    if privileged or case.owner is None or case.owner == actor:
        return
    raise NotPermitted(f"case {case.id} belongs to {case.owner}; only its owner or a supervisor may act on it")


def ensure_may_assign(actor: Actor, owner: str) -> None:
    """Agents take a case themselves; only a supervisor assigns one to someone else."""
    if not actor.supervisor and owner != actor.subject:
        raise NotPermitted("agents may only take a case themselves; a supervisor assigns to others")


def ensure_may_move(actor: Actor, case: Case, team: str | None) -> None:
    """A case stays in its team when someone takes it; only a supervisor moves it to another team."""
    if team and team != case.team and not actor.supervisor:
        raise NotPermitted(f"case {case.id} belongs to team {case.team}; only a supervisor moves it to another team")


def _require(case: Case, command: str, allowed: set[Status]) -> None:
    if case.status not in allowed:
        names = ", ".join(sorted(allowed))
        raise IllegalTransition(f"cannot {command} a complaint that is {case.status}; allowed from: {names}")


def _record(case: Case, step: str, actor: str, now: datetime, note: str | None = None) -> None:
    case.history.append(Step(step=step, actor=actor, at=now, note=note))


def _meet(case: Case, name: Deadline, now: datetime) -> None:
    state = case.deadlines.get(name)
    if state is not None and state.met_at is None:
        state.met_at = now


def acknowledge(case: Case, actor: str, now: datetime, policy: Policy) -> Outcome:
    _require(case, "acknowledge", {Status.received})
    case = case.model_copy(deep=True)
    case.status = Status.acknowledged
    case.acknowledged_at = now
    _meet(case, Deadline.acknowledge, now)
    _record(case, "acknowledged", actor, now)
    data = {**_step_data(case, actor, now), "deadlines": _due_map(case)}
    if policy.status_links is not None:
        data["status_link"] = policy.status_links.url(case.id, now)
    return Outcome(_refresh(case, policy), [Emitted("complaint.acknowledged", data, "acknowledged")])


def assign(case: Case, owner: str, actor: str, now: datetime, policy: Policy, team: str | None = None) -> Outcome:
    """Name the owner; the case keeps its team unless ``team`` moves it (see ``ensure_may_move``)."""
    _require(case, "assign", set(OPEN_STATUSES) | {Status.resolved})
    if not owner.strip():
        raise IllegalTransition("owner must be a named handler")
    case = case.model_copy(deep=True)
    previous, previous_team = case.owner, case.team
    case.owner = owner
    case.team = team or case.team
    notes = [f"from {previous}"] if previous else []
    if previous_team and case.team != previous_team:
        notes.append(f"team {previous_team} → {case.team}")
    _record(case, "assigned", actor, now, note="; ".join(notes) or None)
    data = {**_step_data(case, actor, now), "previous_owner": previous}
    return Outcome(_refresh(case, policy), [Emitted("complaint.assigned", data, f"assigned:{len(case.history)}")])


def give_preliminary_opinion(case: Case, opinion: str, actor: str, now: datetime, policy: Policy) -> Outcome:
    _require(case, "give a preliminary opinion on", {Status.acknowledged})
    case = case.model_copy(deep=True)
    case.status = Status.preliminary_opinion
    case.preliminary_opinion = opinion
    case.preliminary_opinion_at = now
    _meet(case, Deadline.preliminary_opinion, now)
    _record(case, "preliminary_opinion", actor, now)
    return Outcome(_refresh(case, policy), [Emitted("complaint.preliminary_opinion_given",
                                                    _step_data(case, actor, now), "preliminary_opinion")])


def start_investigation(case: Case, reason: str, actor: str, now: datetime, policy: Policy) -> Outcome:
    _require(case, "start an investigation of", {Status.preliminary_opinion, Status.reopened})
    case = case.model_copy(deep=True)
    case.status = Status.investigating
    case.investigation_reason = reason
    case.investigation_started_at = now
    if Deadline.investigation in case.deadlines:
        case.previous_deadlines.append({"name": Deadline.investigation.value,
                                        **case.deadlines[Deadline.investigation].model_dump()})
    due = policy.calendar.deadline(now, policy.investigation_working_days)
    case.deadlines[Deadline.investigation] = _deadline(now, due, policy)
    _record(case, "investigation_started", actor, now)
    data = {**_step_data(case, actor, now), "deadlines": _due_map(case)}
    return Outcome(_refresh(case, policy), [Emitted("complaint.investigation_started", data,
                                                    f"investigation:{case.reopen_count}")])


def resolve(case: Case, resolution: str, actor: str, now: datetime, policy: Policy, *, compensation: str | None = None,
            apology: bool = False, root_cause: str | None = None) -> Outcome:
    _require(case, "resolve", {Status.acknowledged, Status.preliminary_opinion, Status.investigating, Status.reopened})
    case = case.model_copy(deep=True)
    # Resolved straight after acknowledgement, never reopened: solved at the first contact (KP-1).
    first_contact = case.status == Status.acknowledged and case.reopen_count == 0
    case.status = Status.resolved
    case.resolution = resolution
    case.compensation = compensation
    case.apology = apology
    case.root_cause = root_cause
    case.resolved_at = now
    case.first_resolved_at = case.first_resolved_at or now
    case.first_contact_resolution = first_contact
    case.waiting_since = None
    # A formal answer also settles the earlier steps it makes moot.
    for name in (Deadline.preliminary_opinion, Deadline.investigation, Deadline.formal_answer):
        _meet(case, name, now)
    _record(case, "resolved", actor, now)
    data = {**_step_data(case, actor, now), "resolution": resolution, "compensation": compensation, "apology": apology,
            "root_cause": root_cause, "first_contact_resolution": first_contact}
    return Outcome(_refresh(case, policy), [Emitted("complaint.resolved", data, f"resolved:{case.reopen_count}")])


def close(case: Case, actor: str, now: datetime, policy: Policy, *, confirmed_by_customer: bool = False) -> Outcome:
    _require(case, "close", {Status.resolved})
    case = case.model_copy(deep=True)
    case.status = Status.closed
    case.closed_at = now
    case.confirmed_by_customer = confirmed_by_customer
    note = "confirmed by customer" if confirmed_by_customer else ("follow-up window passed" if actor == SYSTEM_ACTOR else None)
    _record(case, "closed", actor, now, note=note)
    data = {**_step_data(case, actor, now), "note": note, "confirmed_by_customer": confirmed_by_customer}
    return Outcome(_refresh(case, policy), [Emitted("complaint.closed", data, f"closed:{case.reopen_count}")])


def reopen(case: Case, reason: str, actor: str, now: datetime, policy: Policy) -> Outcome:
    _require(case, "reopen", {Status.resolved, Status.closed})
    case = case.model_copy(deep=True)
    case.status = Status.reopened
    case.reopen_count += 1
    case.first_contact_resolution = False
    case.resolved_at = None
    case.closed_at = None
    case.confirmed_by_customer = None
    # The previous round's SLA outcome stays countable; a new formal answer is due.
    case.previous_deadlines.append({"name": Deadline.formal_answer.value,
                                    **case.deadlines[Deadline.formal_answer].model_dump()})
    due = policy.calendar.deadline(now, policy.formal_answer_working_days)
    case.deadlines[Deadline.formal_answer] = _deadline(now, due, policy)
    _record(case, "reopened", actor, now, note=reason)
    data = {**_step_data(case, actor, now), "deadlines": _due_map(case)}
    return Outcome(_refresh(case, policy), [Emitted("complaint.reopened", data, f"reopened:{case.reopen_count}")])


def await_customer(case: Case, reason: str, actor: str, now: datetime, policy: Policy) -> Outcome:
    """The handler waits for information from the customer; deadlines pause if the policy says so."""
    _require(case, "wait on the customer for", set(OPEN_STATUSES))
    if case.waiting_since is not None:
        raise IllegalTransition("the complaint is already waiting on the customer")
    case = case.model_copy(deep=True)
    case.waiting_since = now
    _record(case, "waiting_on_customer", actor, now, note=reason)
    return Outcome(_refresh(case, policy), [])


def customer_responded(case: Case, actor: str, now: datetime, policy: Policy) -> Outcome:
    """The customer answered: pending deadlines move on by the time spent waiting (when pausing)."""
    since = case.waiting_since
    if since is None:
        raise IllegalTransition("the complaint is not waiting on the customer")
    case = case.model_copy(deep=True)
    case.waiting_since = None
    if policy.pause_while_waiting:
        cal = policy.calendar
        paused_days = cal.working_days_between(cal.local(since).date(), cal.local(now).date())
        for name, state in case.deadlines.items():
            if not state.pending or state.breached:
                continue
            if name == Deadline.acknowledge:
                new_due = state.due_at + (now - since)  # a clock-hour deadline pauses by clock time
            elif paused_days:
                new_due = cal.end_of_business(cal.add_working_days(cal.local(state.due_at).date(), paused_days))
            else:
                continue
            lead = state.due_at - state.approach_at
            state.due_at, state.approach_at = new_due, new_due - lead
            state.approached = state.approached and state.approach_at <= now
    _record(case, "customer_responded", actor, now)
    return Outcome(_refresh(case, policy), [])


# ---------------------------------------------------------------- watching deadlines


def tick(case: Case, now: datetime, policy: Policy) -> Outcome:
    """What the watcher does at ``now``: approaching/breached once per deadline, escalations, auto-close."""
    case = case.model_copy(deep=True)
    events: list[Emitted] = []
    round_key = str(case.reopen_count)
    for name in DEADLINE_ORDER:
        state = case.deadlines.get(name)
        if state is None or not state.pending or case.status not in OPEN_STATUSES or case.paused(policy):
            continue
        key = f"{name}:{round_key}:{state.due_at.isoformat()}"
        if not state.breached and now >= state.due_at:
            state.breached = True
            state.breached_at = now
            state.approached = True
            base = {"complaint_id": case.id, "customer_id": case.customer_id, "owner": case.owner, "at": now,
                    "number": case.number}
            events.append(Emitted("complaint.deadline_breached", {**base, "deadline": name.value, "due_at": state.due_at},
                                  f"breached:{key}"))
            reason = f"breach:{name.value}"
            case.escalations.append(Escalation(reason=reason, at=now, owner=case.owner))
            events.append(Emitted("complaint.escalated", {"complaint_id": case.id, "customer_id": case.customer_id,
                                                          "reason": reason, "escalated_to": "supervisor", "at": now,
                                                          "owner": case.owner, "number": case.number},
                                  f"escalated:{key}"))
        elif not state.approached and now >= state.approach_at:
            state.approached = True
            events.append(Emitted("complaint.deadline_approaching",
                                  {"complaint_id": case.id, "customer_id": case.customer_id, "deadline": name.value,
                                   "due_at": state.due_at, "owner": case.owner, "at": now, "number": case.number},
                                  f"approaching:{key}"))
    if (case.owner is None and not case.unowned_escalated and case.status in OPEN_STATUSES
            and now >= case.opened_at + policy.unowned_grace):
        case.unowned_escalated = True
        case.escalations.append(Escalation(reason="unowned", at=now))
        events.append(Emitted("complaint.escalated", {"complaint_id": case.id, "customer_id": case.customer_id,
                                                      "reason": "unowned", "escalated_to": "supervisor", "at": now,
                                                      "number": case.number}, "escalated:unowned"))
    if case.status == Status.resolved and case.resolved_at is not None and now >= case.resolved_at + policy.follow_up_window:
        out = close(case, SYSTEM_ACTOR, now, policy)
        case, events = out.case, events + out.events
    return Outcome(_refresh(case, policy), events)


def _refresh(case: Case, policy: Policy) -> Case:
    """Recompute the derived query fields after any change."""
    checks: list[datetime] = []
    dues: list[datetime] = []
    active = case.status in OPEN_STATUSES
    for state in case.deadlines.values():
        if not state.pending or not active or case.paused(policy):
            continue
        dues.append(state.due_at)
        if not state.approached:
            checks.append(state.approach_at)
        elif not state.breached:
            checks.append(state.due_at)
    if active and case.owner is None and not case.unowned_escalated:
        checks.append(case.opened_at + policy.unowned_grace)
    if case.status == Status.resolved and case.resolved_at is not None:
        checks.append(case.resolved_at + policy.follow_up_window)
    case.next_check_at = min(checks) if checks else None
    case.next_due_at = min(dues) if dues else None
    return case


# ---------------------------------------------------------------- erasure


def anonymise(case: Case) -> Case:
    """Remove the customer's free text (it may hold personal data); keep the facts KPIs need."""
    case = case.model_copy(deep=True)
    case.description = ERASED_TEXT
    case.evidence = []
    for attr in ("preliminary_opinion", "investigation_reason", "resolution", "compensation"):
        if getattr(case, attr) is not None:
            setattr(case, attr, ERASED_TEXT)
    for step in case.history:
        if step.note is not None:
            step.note = ERASED_TEXT
    case.erased = True
    return case


# ---------------------------------------------------------------- event payloads


def _step_data(case: Case, actor: str, now: datetime) -> dict[str, Any]:
    return {"complaint_id": case.id, "number": case.number, "customer_id": case.customer_id, "status": case.status.value,
            "actor": actor, "at": now, "channel": case.channel, "category": case.category, "severity": case.severity,
            "owner": case.owner, "team": case.team, "product": case.product}


def _due_map(case: Case) -> dict[str, datetime]:
    return {name: state.due_at for name, state in case.deadlines.items()}


def event_id(case_id: str, key: str) -> str:
    """Deterministic event ids: a replayed write republishes the same id, consumers deduplicate."""
    return str(uuid.uuid5(CASE_NAMESPACE, f"{case_id}:{key}"))
