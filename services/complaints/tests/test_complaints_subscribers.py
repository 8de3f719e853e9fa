"""Subscriber wiring: a message on each subscribed topic reaches its handler (FastStream's test broker, then real Kafka)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from faststream.kafka import TestKafkaBroker
from guanxi_complaints import domain, handlers
from guanxi_complaints.app import make_deps
from guanxi_complaints.domain import Intake
from guanxi_complaints.settings import ComplaintsSettings
from guanxi_complaints.store import InMemoryCaseStore, InMemoryCrisisStore
from guanxi_complaints.subscribers import subscribe
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.testing import eventually
from guanxi_shared.topics import COMPLAINT_RECEIVED, CUSTOMER_ERASED, SURVEY_LOW_SCORE

CST = timezone(timedelta(hours=8))
RECEIVED = datetime(2026, 9, 30, 10, 0, tzinfo=CST)


async def check_wiring(settings: ComplaintsSettings, *, with_real: bool) -> None:
    runtime = ServiceRuntime(settings, tracing=False)
    cases, crisis_store = InMemoryCaseStore(), InMemoryCrisisStore()
    deps = make_deps(settings, ManualClock(RECEIVED + timedelta(minutes=1)), cases, crisis_store)
    subscribe(runtime, deps)
    # The erased customer's case exists before the erasure is sent: topics are not ordered among themselves.
    erased = await handlers.open_case(deps, Intake(source="web", customer_id="c-e", channel="web", category="service",
                                                   severity="low", description="call me", received_at=RECEIVED,
                                                   external_ref="E-1"))
    assert erased is not None
    complaint = {"customer_id": "c-1", "channel": "phone", "category": "billing", "severity": "normal",
                 "description": "charged twice", "received_at": RECEIVED.isoformat(), "external_ref": "REF-1"}
    low_score = {"survey_id": "s-1", "customer_id": "c-1", "kind": "post_resolution", "csat": 10, "reason": "csat below 60",
                 "at": RECEIVED.isoformat()}
    erasure = {"customer_id": "c-e", "erased_at": RECEIVED.isoformat(), "actor": "dpo"}
    events: list[CloudEvent] = [new_event(COMPLAINT_RECEIVED, "c-1", complaint, source="call-centre"),
                                new_event(SURVEY_LOW_SCORE, "c-1", low_score, source="guanxi.surveys"),
                                new_event(CUSTOMER_ERASED, "c-e", erasure, source="guanxi.customer")]
    opened_id = domain.case_id_for(Intake(source="call-centre", customer_id="c-1", channel="phone", category="billing",
                                          severity="normal", description="", received_at=RECEIVED, external_ref="REF-1"))

    async def reached() -> dict[str, Any]:
        case, gone = await cases.get(opened_id), await cases.get(erased.id)
        return {COMPLAINT_RECEIVED: case is not None,
                SURVEY_LOW_SCORE: bool(await crisis_store.counts_since("satisfaction", "low_score", RECEIVED - timedelta(1))),
                CUSTOMER_ERASED: gone is not None and gone.erased}

    try:
        async with TestKafkaBroker(runtime.broker, with_real=with_real) as broker:
            for event in events:
                await broker.publish(event.to_json(), topic=settings.topic(event.type), key=event.subject.encode())
            await eventually(reached, lambda r: all(r.values()), timeout=60, what="every topic handled")
    finally:
        await runtime.mongo.close()


async def test_each_subscribed_topic_reaches_its_handler() -> None:
    await check_wiring(ComplaintsSettings(), with_real=False)


async def test_each_subscribed_topic_reaches_its_handler_over_real_kafka(make_settings, topics) -> None:
    await check_wiring(make_settings(ComplaintsSettings), with_real=True)
