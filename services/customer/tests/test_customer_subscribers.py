"""Subscriber wiring: a message on each topic the customer service subscribes to reaches its use case.

On FastStream's in-memory ``TestKafkaBroker`` (fast), and the same through real Kafka (``with_real=True``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from customer_testkit import fake_deps, fake_store, purchase
from faststream.kafka import TestKafkaBroker
from guanxi_customer.handlers import Deps
from guanxi_customer.settings import CustomerSettings
from guanxi_customer.subscribers import COMPLAINT_STEPS, subscribe
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.testing import eventually
from guanxi_shared.topics import INTERACTION_LOGGED, PURCHASE_COMPLETED, SURVEY_COMPLETED

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def one_of_each() -> list[CloudEvent]:
    at = NOW.isoformat()
    events = [
        new_event(PURCHASE_COMPLETED, "c-1", purchase("o-1", "c-1", "10.00", NOW), source="pos"),
        new_event(INTERACTION_LOGGED, "c-1", {"interaction_id": "i-1", "customer_id": "c-1", "channel": "chat",
                                              "direction": "inbound", "occurred_at": at, "summary": "hi"}, source="cc"),
        new_event(SURVEY_COMPLETED, "c-1", {"survey_id": "s-1", "customer_id": "c-1", "kind": "post_purchase", "csat": 80,
                                            "completed_at": at}, source="guanxi.surveys"),
    ]
    events += [new_event(step, "c-1", {"complaint_id": f"k-{n}", "customer_id": "c-1", "status": step.split(".")[1],
                                       "actor": "amy", "at": at}, source="guanxi.complaints")
               for n, step in enumerate(COMPLAINT_STEPS)]
    return events


async def reached(deps: Deps) -> set[str]:
    """The kinds of record the use cases wrote."""
    store = fake_store(deps)
    kinds = set()
    if (store.customers.get("c-1") or {}).get("purchase_count") == 1:
        kinds.add(PURCHASE_COMPLETED)
    if "i-1" in store.collections["interactions"]:
        kinds.add(INTERACTION_LOGGED)
    if "survey:s-1" in store.collections["activity"]:
        kinds.add(SURVEY_COMPLETED)
    kinds.update(step for n, step in enumerate(COMPLAINT_STEPS) if f"complaint:k-{n}" in store.collections["activity"])
    return kinds


async def deliver_each(settings: CustomerSettings, *, with_real: bool) -> None:
    runtime = ServiceRuntime(settings, tracing=False)
    deps = fake_deps(ManualClock(NOW))
    subscribe(runtime, deps)
    events = one_of_each()
    async with TestKafkaBroker(runtime.broker, with_real=with_real) as broker:
        for event in events:
            await broker.publish(event.to_json(), topic=settings.topic(event.type), key=event.subject.encode())
        await eventually(lambda: reached(deps), lambda kinds: kinds == {e.type for e in events}, timeout=60,
                         what="every subscribed topic handled")
    await runtime.mongo.close()
    await runtime.read_mongo.close()


async def test_each_subscribed_topic_reaches_its_handler() -> None:
    await deliver_each(CustomerSettings(), with_real=False)


async def test_each_subscribed_topic_reaches_its_handler_through_real_kafka(make_settings: Any, topics: str) -> None:
    await deliver_each(make_settings(CustomerSettings), with_real=True)
