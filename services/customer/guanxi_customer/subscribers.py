"""Event type → handler: the thin Kafka side of the customer service."""

from __future__ import annotations

from functools import partial

from guanxi_shared.messaging import EventHandler
from guanxi_shared.topics import (
    COMPLAINT_ACKNOWLEDGED,
    COMPLAINT_CLOSED,
    COMPLAINT_REGISTERED,
    COMPLAINT_REOPENED,
    COMPLAINT_RESOLVED,
    INTERACTION_LOGGED,
    PURCHASE_COMPLETED,
    SURVEY_COMPLETED,
)

from . import handlers
from .handlers import Context

COMPLAINT_STEPS = (COMPLAINT_REGISTERED, COMPLAINT_ACKNOWLEDGED, COMPLAINT_RESOLVED, COMPLAINT_CLOSED, COMPLAINT_REOPENED)


def subscriptions(ctx: Context) -> dict[str, EventHandler]:
    table: dict[str, EventHandler] = {
        PURCHASE_COMPLETED: partial(handlers.on_purchase, ctx),
        INTERACTION_LOGGED: partial(handlers.on_interaction, ctx),
        SURVEY_COMPLETED: partial(handlers.on_survey_completed, ctx),
    }
    for step in COMPLAINT_STEPS:
        table[step] = partial(handlers.on_complaint_step, ctx)
    return table
