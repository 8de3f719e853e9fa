"""The console's rules, pure: no I/O here (no httpx, no fastapi, no pymongo): the handlers give these
modules what the gateway answered, the pages show what they decide. Messages are English msgids
(``N_``); the pages translate them in the viewer's language.

``labels`` (the words for the platform's codes), ``forms`` (fields and their checks), ``complaints``
(deadlines, actions, the phone intake form), ``queue`` (filters, the lists, saved views),
``customers`` (profile forms, clear reads, contacts, erasure, the 360's sections), ``search`` (what a
query is), ``status`` (the customer's own view of a complaint), ``surveys`` (the survey form),
``sessions`` (sessions and the development roster), ``oidc`` (signing in through the organisation's
OpenID Connect provider: PKCE, state and nonce, the person from the claims, what a failure says)."""

from __future__ import annotations

from . import customers, labels, oidc, search, status
from .complaints import (
    ACTIONS,
    CASE_NUMBER,
    INTAKE_DEFAULTS,
    INTAKE_FIELDS,
    ROOT_CAUSES,
    Action,
    DeadlineState,
    DeadlineView,
    action_body,
    allowed_actions,
    case_label,
    countdown_parts,
    deadline_views,
    intake_body,
    next_deadline,
)
from .forms import Field_, FormProblems, check_fields
from .labels import (
    CARE_LABELS,
    CARE_STATE_LABELS,
    CATEGORIES,
    CATEGORY_LABELS,
    CHANNEL_LABELS,
    CHANNELS,
    CONTACT_CHANNELS,
    DEADLINE_LABELS,
    DEADLINES,
    DIRECTION_LABELS,
    FIELD_LABELS,
    GENDER_LABELS,
    INDUSTRY_LABELS,
    INTAKE_CHANNELS,
    KIND_LABELS,
    LANGUAGE_LABELS,
    LEVEL_LABELS,
    MESSAGE_STATUS_LABELS,
    N_,
    OPEN_STATUSES,
    PURPOSE_LABELS,
    RESPONSE_STATE_LABELS,
    ROLE_LABELS,
    SEVERITIES,
    SEVERITY_LABELS,
    SIZE_LABELS,
    STATE_LABELS,
    STATUS_LABELS,
    STATUSES,
    STEP_LABELS,
    SURVEY_KIND_LABELS,
    SURVEY_STATUS_LABELS,
    TENURE_LABELS,
    VISIT_STATUS_LABELS,
    label,
    parse_time,
)
from .queue import MAX_VIEWS, Queue, QueueFilter, QueuePlan, QueueRow, SavedView, build_queue, check_view_name, plan_queue
from .sessions import ROSTER, Session, SessionState, StaffMember, needs_touch, roster_member, session_key, session_state
from .surveys import survey_answers

__all__ = [
    "ACTIONS", "CARE_LABELS", "CARE_STATE_LABELS",
    "CASE_NUMBER", "CATEGORIES", "CATEGORY_LABELS", "CHANNELS", "CHANNEL_LABELS", "CONTACT_CHANNELS",
    "DEADLINES", "DEADLINE_LABELS", "DIRECTION_LABELS", "FIELD_LABELS", "GENDER_LABELS", "INDUSTRY_LABELS",
    "INTAKE_CHANNELS", "INTAKE_DEFAULTS", "INTAKE_FIELDS", "KIND_LABELS", "LANGUAGE_LABELS", "LEVEL_LABELS",
    "MAX_VIEWS", "MESSAGE_STATUS_LABELS", "N_", "OPEN_STATUSES", "PURPOSE_LABELS", "RESPONSE_STATE_LABELS",
    "ROLE_LABELS", "ROOT_CAUSES", "ROSTER", "SEVERITIES", "SEVERITY_LABELS", "SIZE_LABELS", "STATE_LABELS", "STATUSES",
    "STATUS_LABELS", "STEP_LABELS", "SURVEY_KIND_LABELS", "SURVEY_STATUS_LABELS", "TENURE_LABELS",
    "VISIT_STATUS_LABELS", "Action", "DeadlineState", "DeadlineView", "Field_", "FormProblems", "Queue",
    "QueueFilter", "QueuePlan", "QueueRow", "SavedView", "Session", "SessionState", "StaffMember", "action_body",
    "allowed_actions", "build_queue", "case_label", "check_fields", "check_view_name", "countdown_parts",
    "customers", "deadline_views", "intake_body", "label", "labels", "needs_touch", "next_deadline",
    "oidc", "parse_time", "plan_queue", "roster_member", "search", "session_key", "session_state", "status",
    "survey_answers",
]
