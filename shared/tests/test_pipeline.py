"""Foundation: an external producer's CloudEvent flows through a FastStream consumer into the store
and out again as a follow-up event, under one trace; poison goes to the DLQ; duplicates have one effect."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from guanxi_shared.contracts.inbound import PurchaseCompleted
from guanxi_shared.events import CloudEvent, new_event, parse_data
from guanxi_shared.outbox import OutboxRelay, outbox_set
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.settings import ServiceSettings
from guanxi_shared.testing import eventually
from guanxi_shared.topics import PURCHASE_COMPLETED
from opentelemetry import propagate, trace
from pymongo.errors import DuplicateKeyError

pytestmark = pytest.mark.integration


class DemoSettings(ServiceSettings):
    service_name = "demo"


def purchase(order_id: str, customer: str, amount: str = "10.00") -> dict[str, Any]:
    return {
        "order_id": order_id, "customer_id": customer, "amount": amount, "currency": "CNY",
        "items": [{"sku": "S1", "name": "Tea", "quantity": 1, "unit_price": amount}],
        "channel": "web", "purchased_at": datetime.now(UTC).isoformat(),
    }


def build_demo(settings: DemoSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(settings)
    customers = runtime.db["customers"]
    outbox = runtime.outbox_for("customers")

    async def on_purchase(event: CloudEvent) -> None:
        data = parse_data(event, PurchaseCompleted)
        follow = event.follow_up("customer.tier_changed", {"customer_id": data.customer_id, "order_id": data.order_id},
                                 source="demo", id=str(uuid.uuid5(uuid.NAMESPACE_URL, event.id)))
        with contextlib.suppress(DuplicateKeyError):  # applied before: the upsert collides on _id
            await outbox.update(customers, {"_id": data.customer_id, "applied_events": {"$ne": event.id}},
                                {"$inc": {"purchases": 1}, "$addToSet": {"applied_events": event.id}}, [follow], upsert=True)

    runtime.consume({PURCHASE_COMPLETED: on_purchase})
    return runtime


async def test_event_flows_through_consumer_store_and_follow_up_under_one_trace(
    make_settings, topics, tap, producer, span_exporter
) -> None:
    settings = make_settings(DemoSettings)
    runtime = build_demo(settings)
    follow_ups = await tap("customer.tier_changed")
    await runtime.start()
    try:
        tracer = trace.get_tracer("external-order-system")
        with tracer.start_as_current_span("order system publishes") as span:
            trace_id = span.get_span_context().trace_id
            headers: dict[str, str] = {}
            propagate.inject(headers)
            event = new_event(PURCHASE_COMPLETED, "cust-1", purchase("o-1", "cust-1"), source="orders")
            await producer.send_and_wait(topics + PURCHASE_COMPLETED, event.to_json(), key=b"cust-1",
                                         headers=[(k, v.encode()) for k, v in headers.items()])
        await follow_ups.wait_for(lambda t: len(t.records) >= 1, what="follow-up event")
        record = follow_ups.records[0]
        body = json.loads(record.value)
        assert body["type"] == "customer.tier_changed" and body["causationid"] == event.id
        assert body["subject"] == "cust-1" and record.key == b"cust-1"
        # The follow-up carries the same trace id in its W3C traceparent header.
        traceparent = dict(record.headers)["traceparent"].decode()
        assert traceparent.split("-")[1] == format(trace_id, "032x")
        # The entry is cleared after Kafka confirmed it, so possibly just after we read the record.
        doc = await eventually(lambda: runtime.db["customers"].find_one({"_id": "cust-1"}),
                               lambda d: d is not None and d["outbox"] == {}, what="the outbox entry cleared")
        assert doc["purchases"] == 1
        # Spans of both hops, including async PyMongo command spans, share the trace.
        spans = [s for s in span_exporter.get_finished_spans() if s.context.trace_id == trace_id]
        names = {s.name for s in spans}
        assert f"{PURCHASE_COMPLETED} process" in names
        assert any(s.attributes and s.attributes.get("db.system") == "mongodb" for s in spans), names
        assert any("tier_changed" in n and "publish" in n for n in names), names
    finally:
        await runtime.stop()


async def test_poison_message_goes_to_dlq_with_reason_and_stream_keeps_flowing(make_settings, topics, tap, producer) -> None:
    settings = make_settings(DemoSettings)
    runtime = build_demo(settings)
    dlq = await tap(PURCHASE_COMPLETED + ".dlq")
    follow_ups = await tap("customer.tier_changed")
    await runtime.start()
    try:
        topic = topics + PURCHASE_COMPLETED
        await producer.send_and_wait(topic, b"{not json", key=b"c-p", headers=[("origin", b"pos-17")])
        bad = new_event(PURCHASE_COMPLETED, "c-p", {**purchase("o-bad", "c-p"), "amount": "lots"}, source="orders")
        await producer.send_and_wait(topic, bad.to_json(), key=b"c-p")
        good = new_event(PURCHASE_COMPLETED, "c-p", purchase("o-good", "c-p"), source="orders")
        await producer.send_and_wait(topic, good.to_json(), key=b"c-p")

        await dlq.wait_for(lambda t: len(t.records) >= 2, what="two dead letters")
        await follow_ups.wait_for(lambda t: len(t.records) >= 1, what="the good event's follow-up")
        reasons = [dict(r.headers)["dlq-reason"].decode() for r in dlq.records]
        assert "not JSON" in reasons[0]
        assert "amount" in reasons[1]
        assert dict(dlq.records[0].headers)["origin"] == b"pos-17"  # original headers kept
        assert dlq.records[0].value == b"{not json"
        assert json.loads(follow_ups.records[0].value)["data"]["order_id"] == "o-good"
    finally:
        await runtime.stop()


async def test_same_event_delivered_twice_has_one_effect(make_settings, topics, tap, producer) -> None:
    settings = make_settings(DemoSettings)
    runtime = build_demo(settings)
    follow_ups = await tap("customer.tier_changed")
    await runtime.start()
    try:
        event = new_event(PURCHASE_COMPLETED, "c-d", purchase("o-d", "c-d"), source="orders")
        for _ in range(2):
            await producer.send_and_wait(topics + PURCHASE_COMPLETED, event.to_json(), key=b"c-d")
        second = new_event(PURCHASE_COMPLETED, "c-d", purchase("o-d2", "c-d"), source="orders")
        await producer.send_and_wait(topics + PURCHASE_COMPLETED, second.to_json(), key=b"c-d")
        doc = await eventually(lambda: runtime.db["customers"].find_one({"_id": "c-d"}),
                               lambda d: d is not None and d["purchases"] >= 2, what="two purchases counted")
        await follow_ups.wait_for(lambda t: len(t.records) >= 2, what="two follow-ups")
        await follow_ups.settle(1.0)
        doc = await runtime.db["customers"].find_one({"_id": "c-d"})
        assert doc is not None and doc["purchases"] == 2
        ids = [json.loads(r.value)["id"] for r in follow_ups.records]
        assert len(set(ids)) == 2
    finally:
        await runtime.stop()


@contextlib.asynccontextmanager
async def relaying(settings: DemoSettings) -> AsyncIterator[ServiceRuntime]:
    """A started runtime whose relay watches ``customers``."""
    runtime = ServiceRuntime(settings)
    runtime.outbox_for("customers")
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def test_flush_racing_the_polling_relay_publishes_each_entry_once(make_settings, topics, tap) -> None:
    settings = make_settings(DemoSettings, outbox_poll_seconds=0.01)
    follow_ups = await tap("customer.tier_changed")
    async with relaying(settings) as runtime:
        customers = runtime.db["customers"]
        events = [new_event("customer.tier_changed", f"c-{i}", {"n": i}, source="demo") for i in range(30)]
        for i, event in enumerate(events):
            await customers.update_one({"_id": f"c-{i}"}, {"$set": outbox_set([event])}, upsert=True)
            runtime.relay.kick()
            await runtime.relay.flush(customers, [f"c-{i}"])  # races the loop woken just above
        await follow_ups.wait_for(lambda t: len(t.records) >= 30, what="30 follow-ups")
        await follow_ups.settle(1.0)
        ids = [json.loads(r.value)["id"] for r in follow_ups.records]
        assert sorted(ids) == sorted(e.id for e in events)  # each exactly once


async def test_stored_entries_go_out_byte_for_byte_and_are_cleared(make_settings, topics, tap) -> None:
    # The relay sends an entry's stored bytes as they are (topic and key from the type and subject kept
    # beside them): each reaches its topic keyed by subject, with the event id header.
    settings = make_settings(DemoSettings)
    follow_ups = await tap("customer.tier_changed")
    async with relaying(settings) as runtime:
        customers = runtime.db["customers"]
        events = [new_event("customer.tier_changed", f"c-{n}", {"n": n}, source="demo") for n in range(2)]
        for event in events:
            await customers.insert_one({"_id": event.subject, **outbox_map([event])})
        await runtime.relay.flush(customers, [e.subject for e in events])
        await follow_ups.wait_for(lambda t: len(t.records) >= 2, what="both entries published")
        sent = {r.key: r for r in follow_ups.records}
        for event in events:
            record = sent[event.subject.encode()]
            assert record.value == event.to_json()
            assert dict(record.headers)["ce_id"] == event.id.encode()
        assert await customers.count_documents({"outbox": {"$ne": {}}}) == 0


async def test_events_published_together_share_one_producer_span_and_keep_their_order(
        make_settings, topics, tap, span_exporter) -> None:
    # publish_many sends a batch under one PRODUCER span (a span per event cost the surveys service 13 % of
    # its CPU); every message carries that span's context, so each consumer continues the same trace.
    from opentelemetry.trace import SpanKind

    settings = make_settings(DemoSettings)
    runtime = ServiceRuntime(settings)
    sink = await tap("customer.tier_changed")
    await runtime.start()
    try:
        events = [new_event("customer.tier_changed", "c-1", {"n": i}, source="demo") for i in range(5)]
        with trace.get_tracer("tests").start_as_current_span("batch") as parent:
            await runtime.publisher.publish_many(events)
        await sink.wait_for(lambda t: len(t.records) >= 5, what="five events")
        assert [json.loads(r.value)["id"] for r in sink.records] == [e.id for e in events]  # one key: in order
        producers = [x for x in span_exporter.get_finished_spans()
                     if x.kind == SpanKind.PRODUCER and x.context.trace_id == parent.get_span_context().trace_id]
        assert len(producers) == 1 and producers[0].attributes["messaging.batch.message_count"] == 5
        span_id = format(producers[0].context.span_id, "016x")
        for record in sink.records:
            headers = {k: v.decode() for k, v in record.headers}
            assert headers["traceparent"].split("-")[2] == span_id
            assert headers["ce_id"] == json.loads(record.value)["id"]
    finally:
        await runtime.stop()


async def test_the_relay_keeps_off_the_store_while_a_batch_is_at_work(make_settings, topics, tap) -> None:
    # A consumer's batch holds the relay (EventConsumer(relay=...)): no polling pass and
    # no deferred clearing meanwhile, both once it is done. Nothing is lost by waiting.
    settings = make_settings(DemoSettings)
    runtime = ServiceRuntime(settings)
    follow_ups = await tap("customer.tier_changed")
    await runtime.start()
    relay = OutboxRelay(runtime.publisher, [runtime.db["customers"]], poll_seconds=0.01, clear_idle_seconds=0.05)
    loop = asyncio.create_task(relay.run())
    try:
        customers = runtime.db["customers"]
        written = [new_event("customer.tier_changed", f"c-{i}", {"n": i}, source="demo") for i in range(5)]
        stray = new_event("customer.tier_changed", "c-stray", {"n": 99}, source="demo")
        await asyncio.sleep(0.3)  # past the relay's first pass, which looks for leftovers even while held
        async with relay.holding():
            for i, event in enumerate(written):
                await customers.insert_one({"_id": f"c-{i}", **outbox_map([event])})
            await relay.written(customers, {f"c-{i}": outbox_map([e])["outbox"] for i, e in enumerate(written)})
            # Written by someone else (no ``written``): only the polling pass would publish it.
            await customers.insert_one({"_id": "c-stray", **outbox_map([stray])})
            await asyncio.sleep(0.5)  # fifty poll intervals
            assert relay.deferred_count() == 5
            assert await customers.count_documents({"outbox": {"$ne": {}}}) == 6  # nothing cleared
            await follow_ups.wait_for(lambda t: len(t.records) >= 5, what="the batch's own entries published")
            await follow_ups.settle(0.3)
            assert sorted(json.loads(r.value)["id"] for r in follow_ups.records) == sorted(e.id for e in written)
        await follow_ups.wait_for(lambda t: len(t.records) >= 6, what="the stray entry published after the batch")
        await eventually(lambda: customers.count_documents({"outbox": {"$ne": {}}}), lambda n: n == 0,
                         what="every entry cleared after the batch")
        assert relay.deferred_count() == 0
        assert sorted(json.loads(r.value)["id"] for r in follow_ups.records) == sorted(e.id for e in [*written, stray])
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await runtime.stop()


def outbox_map(events: list[CloudEvent]) -> dict[str, Any]:
    """The ``outbox`` field of a new document holding ``events`` (``outbox_set`` gives dotted keys)."""
    return {"outbox": {k.removeprefix("outbox."): v for k, v in outbox_set(events).items()}}
