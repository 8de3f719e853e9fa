"""Subscriber wiring: a message on each subscribed topic reaches its use case. On FastStream's in-memory
test broker (fast tier), and the same test on real Kafka (``with_real=True``, integration)."""

from __future__ import annotations

from typing import Any

from faststream.kafka import TestKafkaBroker
from guanxi_notifications.settings import NotificationsSettings
from guanxi_notifications.subscribers import subscribe
from guanxi_shared import topics as t
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.testing import eventually
from nx_fakes import DAYTIME, World, complaint_step, event, make_world, survey_requested

EVENTS = [
    event(t.COMPLAINT_ACKNOWLEDGED, "c1", complaint_step("c1", "CMP-1")),
    event(t.COMPLAINT_PRELIMINARY_OPINION_GIVEN, "c1", complaint_step("c1", "CMP-1", "preliminary_opinion_given")),
    event(t.COMPLAINT_RESOLVED, "c1", complaint_step("c1", "CMP-1", "resolved", resolution="refund")),
    event(t.COMPLAINT_REOPENED, "c1", complaint_step("c1", "CMP-1", "reopened")),
    event(t.SURVEY_REQUESTED, "c1", survey_requested("c1", "S-1")),
    event(t.CUSTOMER_CARE_DUE, "c1", {"customer_id": "c1", "occasion_id": "birthday:c1:2026", "occasion": "birthday",
                                      "due_at": DAYTIME.isoformat()}),
    event(t.NOTIFICATION_REQUESTED, "c1", {"customer_id": "c1", "template": "care_revisit", "category": "care"}),
    event(t.CUSTOMER_REGISTERED, "c2", {"customer_id": "c2", "language": "en", "registered_at": DAYTIME.isoformat()}),
    event(t.CUSTOMER_CONSENT_CHANGED, "c3", {"customer_id": "c3", "purpose": "survey", "granted": False,
                                             "consents": {"survey": False}, "changed_at": DAYTIME.isoformat()}),
    event(t.CUSTOMER_ERASED, "c4", {"customer_id": "c4", "erased_at": DAYTIME.isoformat(), "actor": "dpo"}),
]
TEMPLATES = {"complaint_acknowledged", "complaint_preliminary_opinion", "complaint_resolved", "complaint_reopened",
             "survey_invitation", "care_birthday", "care_revisit"}


def every_event_handled(world: World) -> bool:
    recipients = world.store.recipients
    return ({d["template"] for d in world.store.notifications.values()} == TEMPLATES
            and recipients.get("c2", {}).get("language") == "en"
            and recipients.get("c3", {}).get("consents") == {"survey": False}
            and recipients.get("c4", {}).get("erased") is True)


async def wire_and_publish(settings: NotificationsSettings, *, with_real: bool) -> World:
    world = await make_world()
    world.customer("c1", email="c1@example.com")
    runtime = ServiceRuntime(settings, tracing=False)
    consumer = subscribe(runtime, world.deps)
    assert set(consumer.handlers) == {e.type for e in EVENTS}  # one event on every subscribed topic
    try:
        async with TestKafkaBroker(runtime.broker, with_real=with_real) as broker:
            for e in EVENTS:
                await broker.publish(e.to_json(), topic=settings.topic(e.type), key=e.subject.encode())
            await eventually(lambda: _probe(world), timeout=60, what="every event handled")
        await world.settle()
    finally:
        await runtime.mongo.close()
        if runtime.read_mongo is not runtime.mongo:
            await runtime.read_mongo.close()
    return world


async def _probe(world: World) -> bool:
    return every_event_handled(world)


async def test_each_subscribed_topic_reaches_its_use_case() -> None:
    world = await wire_and_publish(NotificationsSettings(), with_real=False)
    assert len(world.email.sent) == len(TEMPLATES)  # the triggers' messages went out too


async def test_each_subscribed_topic_reaches_its_use_case_on_real_kafka(make_settings: Any, topics: str) -> None:
    world = await wire_and_publish(make_settings(NotificationsSettings), with_real=True)
    assert every_event_handled(world)
