"""Event type → handler (thin): intake, low survey scores, erasure."""

from __future__ import annotations

from functools import partial

from guanxi_shared.messaging import EventConsumer
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.topics import COMPLAINT_RECEIVED, CUSTOMER_ERASED, SURVEY_LOW_SCORE

from . import handlers


def subscribe(runtime: ServiceRuntime, deps: handlers.Deps) -> EventConsumer:
    return runtime.consume({
        COMPLAINT_RECEIVED: partial(handlers.on_complaint_received, deps),
        SURVEY_LOW_SCORE: partial(handlers.on_survey_low_score, deps),
        CUSTOMER_ERASED: partial(handlers.on_customer_erased, deps),
    })
