"""Thin: every topic of the catalogue → the capture use case, in the audit service's own group."""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from guanxi_shared.messaging import BatchHandler, Delivery, EventConsumer, EventPublisher
from guanxi_shared.topics import ALL_TOPICS

from . import handlers
from .handlers import Audit
from .settings import AuditSettings


def subscribe(broker: KafkaBroker, settings: AuditSettings, publisher: EventPublisher, audit: Audit) -> EventConsumer:
    async def on_batch(deliveries: list[Delivery]) -> list[tuple[Delivery, BaseException]]:
        return await handlers.capture(audit, deliveries)

    # Batch handlers: one chain append per batch and per type, with the Kafka headers (trace id) at hand.
    batch: dict[str, BatchHandler] = {topic: on_batch for topic in ALL_TOPICS}
    return EventConsumer(broker, settings, publisher, {}, batch_handlers=batch, group_id=settings.consumer_group)
