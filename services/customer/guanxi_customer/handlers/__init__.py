"""Use cases of the customer service: plain async functions over ``Deps``, one module per capability.

Each loads through the store, decides with the domain, and saves through the store: a state change
and the events it causes are one store call, which sees that the events reach Kafka.
"""

from __future__ import annotations

from .activity import on_complaint_step, on_survey_completed, timeline
from .care import care_schedule, due_events, plan_care
from .consent import contact_details, get_consents, set_consent, set_opt_outs
from .contacts import list_interactions, log_interaction, on_interaction
from .deps import Deps
from .erasure import erase, export
from .kpis import kpis
from .profiles import get_profile, history, list_customers, lookup, register, rewrap_keys, update_profile
from .purchases import on_purchase, on_purchases
from .visits import file_report, fulfil_commitment, get_visit, list_visits, plan_visit

__all__ = [
    "Deps", "care_schedule", "contact_details", "due_events", "erase", "export", "file_report", "fulfil_commitment",
    "get_consents",
    "get_profile", "get_visit", "history", "kpis", "list_customers", "list_interactions", "list_visits", "log_interaction",
    "lookup", "on_complaint_step", "on_interaction", "on_purchase", "on_purchases", "on_survey_completed", "plan_care",
    "plan_visit", "register", "rewrap_keys", "set_consent", "set_opt_outs",
    "timeline", "update_profile",
]
