"""Subscriber wiring: a message on each subscribed topic reaches its use case. On FastStream's in-memory
test broker (fast), and the same test through real Kafka (``with_real``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka import TestKafkaBroker
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import new_event
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.testing import eventually
from guanxi_shared.topics import (
    COMPLAINT_RESOLVED,
    CUSTOMER_CONSENT_CHANGED,
    CUSTOMER_ERASED,
    CUSTOMER_REGISTERED,
    CUSTOMER_TIER_CHANGED,
    PURCHASE_COMPLETED,
)
from guanxi_surveys import domain
from guanxi_surveys.handlers import Deps
from guanxi_surveys.settings import SurveysSettings
from guanxi_surveys.store import InMemorySurveyStore
from guanxi_surveys.subscribers import subscribe

T0 = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)

# Each topic the service subscribes to, with an event on it.
MESSAGES: list[tuple[str, str, dict[str, Any]]] = [
    (CUSTOMER_REGISTERED, "c-1", {"customer_id": "c-1", "consents": {"survey": True}, "member_level": "standard",
                                  "language": "en", "timezone": "Asia/Shanghai",
                                  "registered_at": (T0 - timedelta(days=1)).isoformat()}),
    (PURCHASE_COMPLETED, "c-1", {"order_id": "o-1", "customer_id": "c-1", "amount": "199.00", "currency": "CNY",
                                 "items": [{"sku": "TEA-1", "name": "Oolong", "quantity": 1, "unit_price": "199.00"}],
                                 "channel": "web", "purchased_at": T0.isoformat()}),
    (COMPLAINT_RESOLVED, "c-2", {"complaint_id": "k-1", "customer_id": "c-2", "status": "resolved", "actor": "bob",
                                 "at": T0.isoformat(), "channel": "phone", "resolution": "refunded"}),
    (CUSTOMER_TIER_CHANGED, "c-1", {"customer_id": "c-1", "member_level": "gold", "previous_level": "standard",
                                    "tenure": "returning", "previous_tenure": "new", "purchase_count": 3,
                                    "total_amount": "300.00", "changed_at": T0.isoformat()}),
    (CUSTOMER_CONSENT_CHANGED, "c-1", {"customer_id": "c-1", "purpose": "survey", "granted": False,
                                       "consents": {"service": True, "survey": False}, "changed_at": T0.isoformat()}),
    (CUSTOMER_ERASED, "c-2", {"customer_id": "c-2", "erased_at": T0.isoformat(), "actor": "dpo"}),
]


def effects(store: InMemorySurveyStore) -> list[Callable[[], bool]]:
    """What each message of ``MESSAGES`` leaves in the store, in the same order."""
    purchase, complaint = domain.survey_id("post_purchase", "o-1"), domain.survey_id("post_resolution", "k-1")
    return [
        lambda: store.customers.get("c-1", {}).get("survey_consent") is True,
        lambda: purchase in store.surveys,
        lambda: complaint in store.surveys,
        lambda: store.customers["c-1"].get("member_level") == "gold",
        lambda: store.surveys[purchase].get("cancel_reason") == "consent_withdrawn",
        lambda: store.surveys[complaint].get("cancel_reason") == "customer_erased",
    ]


async def deliver_each_topic(settings: SurveysSettings, *, with_real: bool) -> None:
    runtime = ServiceRuntime(settings, tracing=False)
    store = InMemorySurveyStore()
    subscribe(runtime, Deps.create(store, settings, ManualClock(T0)))
    checks = effects(store)
    try:
        async with TestKafkaBroker(runtime.broker, with_real=with_real) as broker:
            for (topic, customer, data), check in zip(MESSAGES, checks, strict=True):
                event = new_event(topic, customer, data, source="tests")
                await broker.publish(event.to_json(), topic=settings.topic(topic), key=customer.encode())

                async def done(check: Callable[[], bool] = check) -> bool:
                    return check()

                await eventually(done, timeout=30.0, what=f"the {topic} event handled")
    finally:
        await runtime.mongo.close()


async def test_a_message_on_each_subscribed_topic_reaches_its_handler() -> None:
    await deliver_each_topic(SurveysSettings(), with_real=False)


async def test_a_message_on_each_subscribed_topic_reaches_its_handler_through_kafka(
        make_settings: Callable[..., Any], topics: str) -> None:
    await deliver_each_topic(make_settings(SurveysSettings), with_real=True)
