"""Subscriber wiring: an event on every topic of the catalogue reaches the capture use case, on FastStream's
in-memory broker and (``with_real=True``) through real Kafka."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from faststream.kafka import TestKafkaBroker
from guanxi_audit.handlers import Deps
from guanxi_audit.settings import AuditSettings
from guanxi_audit.store import InMemoryAuditStore
from guanxi_audit.subscribers import subscribe
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import new_event
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.testing import eventually
from guanxi_shared.topics import ALL_TOPICS

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def publish_one_per_topic(settings: AuditSettings, with_real: bool) -> InMemoryAuditStore:
    runtime = ServiceRuntime(settings, tracing=False)
    store = InMemoryAuditStore()
    subscribe(runtime, Deps(store=store, settings=settings, clock=ManualClock(T0)))
    async with TestKafkaBroker(runtime.broker, with_real=with_real) as broker:
        for topic in ALL_TOPICS:
            event = new_event(topic, "c-1", {"probe": topic}, source="tests")
            await broker.publish(event.to_json(), topic=settings.topic(topic), key=b"c-1")

        async def captured() -> set[str]:
            return {r["type"] for r in store.records.values()}

        await eventually(captured, lambda types: types == set(ALL_TOPICS), timeout=60, what="one record per topic")
    await runtime.mongo.close()
    return store


async def test_every_catalogue_topic_reaches_capture() -> None:
    """Every event of the platform reaches the audit trail (CF-2)."""
    store = await publish_one_per_topic(AuditSettings(), with_real=False)
    assert len(store.records) == len(ALL_TOPICS)


async def test_every_catalogue_topic_reaches_capture_through_kafka(make_settings: Any, topics: str) -> None:
    store = await publish_one_per_topic(make_settings(AuditSettings), with_real=True)
    assert len(store.records) == len(ALL_TOPICS)
