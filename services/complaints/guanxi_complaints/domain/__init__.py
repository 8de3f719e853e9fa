"""The rules of the complaints service (pure, no I/O): cases and their lifecycle (``case``), the
working-day calendar (``workdays``), the crisis early warning (``crisis``) and the KPIs (``kpis``)."""

from . import crisis, kpis, workdays
from .case import (
    CASE_NAMESPACE,
    DEADLINE_ORDER,
    ERASED_TEXT,
    OPEN_STATUSES,
    SYSTEM_ACTOR,
    Actor,
    Case,
    Deadline,
    DeadlineState,
    Emitted,
    Escalation,
    Intake,
    Outcome,
    Policy,
    Status,
    Step,
    acknowledge,
    anonymise,
    assign,
    await_customer,
    case_id_for,
    close,
    customer_responded,
    ensure_may_act,
    ensure_may_assign,
    event_id,
    give_preliminary_opinion,
    intake_key_for,
    open_case,
    reopen,
    resolve,
    start_investigation,
    tick,
)
from .errors import BadCursor, CaseNotFound, ConcurrentChange, IllegalTransition, InvalidPeriod, NotPermitted
from .workdays import WorkingCalendar

__all__ = [
    "CASE_NAMESPACE", "DEADLINE_ORDER", "ERASED_TEXT", "OPEN_STATUSES", "SYSTEM_ACTOR", "Actor", "BadCursor", "Case",
    "CaseNotFound", "ConcurrentChange", "Deadline", "DeadlineState", "Emitted", "Escalation", "IllegalTransition", "Intake",
    "InvalidPeriod", "NotPermitted", "Outcome", "Policy", "Status", "Step", "WorkingCalendar", "acknowledge", "anonymise",
    "assign", "await_customer", "case_id_for", "close", "crisis", "customer_responded", "ensure_may_act",
    "ensure_may_assign", "event_id", "give_preliminary_opinion", "intake_key_for", "kpis", "open_case", "reopen",
    "resolve", "start_investigation", "tick", "workdays",
]
