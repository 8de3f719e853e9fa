"""Event type → handler: the thin Kafka side of the customer service."""

from __future__ import annotations

from functools import partial

from guanxi_shared.messaging import Delivery, EventConsumer, EventHandler, is_transient
from guanxi_shared.runtime import ServiceRuntime
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
from opentelemetry import trace

from . import handlers
from .handlers import Deps

tracer = trace.get_tracer("guanxi.customer")

COMPLAINT_STEPS = (COMPLAINT_REGISTERED, COMPLAINT_ACKNOWLEDGED, COMPLAINT_RESOLVED, COMPLAINT_CLOSED, COMPLAINT_REOPENED)


def subscriptions(deps: Deps) -> dict[str, EventHandler]:
    table: dict[str, EventHandler] = {
        # Also settles what the batch path hands back.
        PURCHASE_COMPLETED: partial(handlers.on_purchase, deps),
        INTERACTION_LOGGED: partial(handlers.on_interaction, deps),
        SURVEY_COMPLETED: partial(handlers.on_survey_completed, deps),
    }
    for step in COMPLAINT_STEPS:
        table[step] = partial(handlers.on_complaint_step, deps)
    return table


def subscribe(runtime: ServiceRuntime, deps: Deps) -> EventConsumer:
    """Purchases, the bulk of the traffic, take the batch path; everything else goes one by one."""
    consumer: EventConsumer

    async def purchases(batch: list[Delivery]) -> list[tuple[Delivery, BaseException]]:
        links = [trace.Link(s) for d in batch if (s := trace.get_current_span(d.trace_context).get_span_context()).is_valid]
        with tracer.start_as_current_span(f"{PURCHASE_COMPLETED} process batch", kind=trace.SpanKind.CONSUMER,
                                          links=links, attributes={"messaging.batch.message_count": len(batch)}):
            try:
                leftovers = {e.id for e in await handlers.on_purchases(deps, [(d.event, d.trace_context) for d in batch])}
            except Exception as exc:
                if is_transient(exc):  # the whole batch comes again once the store is back
                    return [(d, exc) for d in batch]
                leftovers = {d.event.id for d in batch}  # the one-by-one path finds and reports the culprit
        return await consumer.handle_per_customer([d for d in batch if d.event.id in leftovers])

    consumer = runtime.consume(subscriptions(deps), batch_handlers={PURCHASE_COMPLETED: purchases})
    return consumer
