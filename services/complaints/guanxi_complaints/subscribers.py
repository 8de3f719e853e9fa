"""Event type → handler (thin): intake, low survey scores, erasure."""

from __future__ import annotations

from functools import partial

from faststream.kafka import KafkaBroker
from guanxi_shared.messaging import EventConsumer, EventPublisher
from guanxi_shared.topics import COMPLAINT_RECEIVED, CUSTOMER_ERASED, SURVEY_LOW_SCORE

from . import handlers
from .settings import ComplaintsSettings


def subscribe(broker: KafkaBroker, settings: ComplaintsSettings, publisher: EventPublisher,
              deps: handlers.Deps) -> EventConsumer:
    return EventConsumer(broker, settings, publisher, {
        COMPLAINT_RECEIVED: partial(handlers.on_complaint_received, deps),
        SURVEY_LOW_SCORE: partial(handlers.on_survey_low_score, deps),
        CUSTOMER_ERASED: partial(handlers.on_customer_erased, deps),
    })
