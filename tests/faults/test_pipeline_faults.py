"""Outbox relay crash, poison among good events, and a consumer joining the group under load."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from fault_harness import CRASH_CODE, NumberedStream, ServiceProcess, assert_exactly_once, purchase_event
from guanxi_shared.events import new_event
from guanxi_shared.testing import eventually
from guanxi_shared.topics import CUSTOMER_TIER_CHANGED, PURCHASE_COMPLETED

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def test_relay_killed_between_publish_and_clearing_republishes_once_deduplicated(
    infra, topics, fault_env, ledger, tap, logs
) -> None:
    follow_ups = await tap(CUSTOMER_TIER_CHANGED)
    stream = NumberedStream(infra.kafka, topics + PURCHASE_COMPLETED, customers=8)
    await stream.run(80)
    service = ServiceProcess(fault_env, log_path=logs / "ledger.log")
    service.start(FAULT_EXIT_AFTER_PUBLISHES="20")  # dies with the 20th follow-up on Kafka, still in its outbox
    try:
        assert await service.wait_exit() == CRASH_CODE
        service.start()
        await service.ready()
        await ledger.wait_applied(stream.total)
        await assert_exactly_once(stream, ledger)
        # Every follow-up reached Kafka; the one caught mid-relay (at least) went twice, with one id.
        await follow_ups.wait_for(lambda t: len({e["id"] for e in t.events()}) >= stream.total, timeout=60,
                                  what="every follow-up")
        published = Counter(e["id"] for e in follow_ups.events())
        assert len(published) == stream.total
        assert max(published.values()) >= 2, "the crash between publish and clearing must republish"
        # Downstream applied each follow-up exactly once although it received some twice.
        # (the subject counts a delivery before applying it: wait until both steps are done for all)
        docs = await eventually(ledger.followups, lambda d: len(d) == stream.total and
                                sum(x.get("deliveries", 0) for x in d) >= sum(published.values()) and
                                all("applied" in x for x in d),
                                timeout=60, what="downstream received and applied every copy")
        assert all(d.get("applied") == 1 for d in docs), [d for d in docs if d.get("applied") != 1][:5]
        assert any(d["deliveries"] >= 2 for d in docs)
        # Published entries are cleared once the relay has been quiet for a moment: all of them, in the end.
        await eventually(lambda: ledger.db["ledger"].count_documents({"outbox": {"$ne": {}}}), lambda n: n == 0,
                         timeout=30, what="every published outbox entry cleared")
    finally:
        service.stop()


async def test_poison_messages_among_good_ones_go_to_dlq_and_the_stream_flows(
    infra, topics, fault_env, ledger, tap, producer, logs
) -> None:
    dlq = await tap(PURCHASE_COMPLETED + ".dlq")
    topic = topics + PURCHASE_COMPLETED
    stream = NumberedStream(infra.kafka, topic, customers=6)
    service = ServiceProcess(fault_env, log_path=logs / "ledger.log").start()
    try:
        await service.ready()
        poison = 0
        for block in range(6):
            await stream.run(20, start=block * 20, producer=producer)
            customer = stream.customer(block)
            await producer.send_and_wait(topic, b"{not json", key=customer.encode(), headers=[("origin", b"pos-17")])
            wrong = purchase_event(customer, 10_000 + block).model_copy(update={"data": {"order_id": "x"}})
            await producer.send_and_wait(topic, wrong.to_json(), key=customer.encode(), headers=[("origin", b"pos-17")])
            alien = new_event("complaint.received", customer, {"customer_id": customer}, source="misrouted")
            await producer.send_and_wait(topic, alien.to_json(), key=customer.encode(), headers=[("origin", b"pos-17")])
            poison += 3
        await ledger.wait_applied(stream.total)
        await dlq.wait_for(lambda t: len(t.records) >= poison, timeout=60, what="every poison message dead-lettered")
        await dlq.settle(0.5)
        assert len(dlq.records) == poison
        for record in dlq.records:
            headers = dict(record.headers)
            assert headers["dlq-reason"], "a reason is required"
            assert headers["dlq-original-topic"].decode() == topic
            assert headers["origin"] == b"pos-17", "the original headers travel with the dead letter"
        reasons = [dict(r.headers)["dlq-reason"].decode() for r in dlq.records]
        assert sum("JSON" in r for r in reasons) == 6
        assert sum("complaint.received" in r for r in reasons) == 6
        await assert_exactly_once(stream, ledger)
    finally:
        service.stop()


async def test_consumer_added_to_the_group_under_load_keeps_order_and_loses_nothing(
    infra, topics, fault_env, ledger, tap, logs
) -> None:
    follow_ups = await tap(CUSTOMER_TIER_CHANGED)
    stream = NumberedStream(infra.kafka, topics + PURCHASE_COMPLETED, customers=12)
    first = ServiceProcess(fault_env, log_path=logs / "first.log").start()
    second = ServiceProcess(fault_env, log_path=logs / "second.log")
    try:
        await first.ready()
        sending = asyncio.create_task(stream.run(240, rate=60))
        await ledger.wait_applied(40)
        second.start()  # joins the same group: partitions move while events keep coming
        await second.ready()
        await sending
        await ledger.wait_applied(stream.total, timeout=120)
        await assert_exactly_once(stream, ledger)  # includes: each customer's events in the order sent
        # The follow-ups, keyed by customer, also keep each customer's order on Kafka.
        await follow_ups.wait_for(lambda t: len({e["id"] for e in t.events()}) >= stream.total, timeout=60,
                                  what="every follow-up")
        seen: dict[str, list[int]] = {}
        for event in follow_ups.events():
            n = int(event["data"]["order_id"].rsplit(":", 1)[1])
            order = seen.setdefault(event["subject"], [])
            if n not in order:
                order.append(n)
        assert all(v == sorted(v) for v in seen.values()), seen
        assert "ledger started" in (logs / "second.log").read_text()
    finally:
        first.stop()
        second.stop()
