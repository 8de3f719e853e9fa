"""The inbound event types and the use case each one runs.

Payloads that do not match their contract raise ``InvalidEvent`` in the use case (dead-lettered by
the consumer); events that ask for nothing the customer should hear are a no-op there.
"""

from __future__ import annotations

from functools import partial

from guanxi_shared import topics as t
from guanxi_shared.messaging import EventConsumer, EventHandler
from guanxi_shared.runtime import ServiceRuntime

from .domain import COMPLAINT_TEMPLATES
from .handlers import Deps, customers, sending


def subscribe(runtime: ServiceRuntime, deps: Deps) -> EventConsumer:
    routes: dict[str, EventHandler] = {name: partial(sending.on_complaint_step, deps) for name in COMPLAINT_TEMPLATES}
    routes.update({
        t.SURVEY_REQUESTED: partial(sending.on_survey_requested, deps),
        t.CUSTOMER_CARE_DUE: partial(sending.on_care_due, deps),
        t.NOTIFICATION_REQUESTED: partial(sending.on_notification_requested, deps),
        t.CUSTOMER_REGISTERED: partial(customers.on_customer_registered, deps),
        t.CUSTOMER_CONSENT_CHANGED: partial(customers.on_consent_changed, deps),
        t.CUSTOMER_ERASED: partial(customers.on_customer_erased, deps),
    })
    return runtime.consume(routes)
