"""The rules of the complaints service (pure, no I/O): cases and their lifecycle (``case``), the
working-day calendar (``workdays``), the crisis early warning (``crisis``), the KPIs (``kpis``), the
queues' parameters (``queue``) and the customer's status link (``links``)."""

from . import crisis, kpis, queue, workdays
from .case import (
    CASE_NAMESPACE,
    CASE_NUMBER,
    DEADLINE_ORDER,
    DEFAULT_TEAM,
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
    case_number,
    close,
    customer_responded,
    ensure_may_act,
    ensure_may_assign,
    ensure_may_move,
    event_id,
    give_preliminary_opinion,
    intake_key_for,
    is_case_number,
    open_case,
    reopen,
    resolve,
    start_investigation,
    tick,
)
from .errors import BadCursor, CaseNotFound, ConcurrentChange, IllegalTransition, InvalidPeriod, NotPermitted
from .links import StatusLinkExpired, StatusLinkInvalid, StatusLinks
from .queue import InvalidQuery, Order
from .workdays import WorkingCalendar

__all__ = [
    "CASE_NAMESPACE", "CASE_NUMBER", "DEADLINE_ORDER", "DEFAULT_TEAM", "ERASED_TEXT", "OPEN_STATUSES", "SYSTEM_ACTOR",
    "Actor", "BadCursor", "Case", "CaseNotFound", "ConcurrentChange", "Deadline", "DeadlineState", "Emitted", "Escalation",
    "IllegalTransition", "Intake", "InvalidPeriod", "InvalidQuery", "NotPermitted", "Order", "Outcome", "Policy", "Status",
    "StatusLinkExpired", "StatusLinkInvalid", "StatusLinks", "Step", "WorkingCalendar", "acknowledge", "anonymise",
    "assign", "await_customer", "case_id_for", "case_number", "close", "crisis", "customer_responded", "ensure_may_act",
    "ensure_may_assign", "ensure_may_move", "event_id", "give_preliminary_opinion", "intake_key_for", "is_case_number",
    "kpis", "open_case", "queue", "reopen", "resolve", "start_investigation", "tick", "workdays",
]
