"""The real customer service as the subject: purchase.completed → purchase records and counters.

SIGKILL right after a batch was stored and before its offsets were committed, then a restart:
each accepted order is recorded once and counted once in its customer's ``purchase_count``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from fault_harness import CRASH_CODE, NumberedStream, ServiceProcess, assert_committed_were_applied
from guanxi_shared.testing import eventually
from guanxi_shared.topics import PURCHASE_COMPLETED
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CUSTOMER = ("guanxi_customer.app:build", "guanxi_customer.settings:CustomerSettings")


class CustomerEffects:
    """Reads the customer service's store the way the ledger checker does (order keys instead of event ids)."""

    def __init__(self, mongodb_url: str, database: str) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
        self.db = self.client[database]

    async def docs(self) -> dict[str, dict[str, Any]]:
        # assert_committed_were_applied looks for event ids in applied_events: map order keys back to them.
        orders = {d["_id"]: d["event_id"] async for d in self.db["purchases"].find({}, {"event_id": 1})}
        out = {}
        async for d in self.db["customers"].find({}, {"purchase_count": 1, "applied_events": 1}):
            keys = [k.split(":", 1)[1] for k in d.get("applied_events", []) if k.startswith("order:")]
            out[d["_id"]] = {**d, "applied_events": [orders[k] for k in keys if k in orders]}
        return out

    async def purchase_counts(self) -> dict[str, int]:
        return {d["_id"]: int(d.get("purchase_count", 0)) async for d in self.db["customers"].find({}, {"purchase_count": 1})}


async def group_members(bootstrap: str, group: str) -> int:
    """Members of ``group`` that hold partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        groups = [g for r in await admin.describe_consumer_groups([group]) for g in r.to_object()["groups"]]
    finally:
        await admin.close()
    return sum(1 for g in groups if g["state"] == "Stable" for m in g["members"] if m["member_assignment"])


@pytest.fixture
async def effects(infra, isolation) -> AsyncIterator[CustomerEffects]:
    eff = CustomerEffects(infra.mongodb_url, f"fault_customer_{isolation}")
    yield eff
    await eff.client.close()


async def test_customer_service_sigkill_before_commit_counts_every_order_once(infra, topics, isolation, effects, logs) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka, "MONGODB_URL": infra.mongodb_url, "GUANXI_TOPIC_PREFIX": topics,
           "CUSTOMER_MONGODB_DATABASE": f"fault_customer_{isolation}", "CUSTOMER_CONSUMER_GROUP": f"fault-customer-{isolation}",
           "CUSTOMER_OUTBOX_POLL_SECONDS": "0.2", "MONGODB_MAX_POOL_SIZE": "1",
           "CUSTOMER_BATCH_MAX_RECORDS": "20"}  # several batches: die after the 2nd
    stream = NumberedStream(infra.kafka, topics + PURCHASE_COMPLETED, customers=10)
    await stream.run(120)
    service = ServiceProcess(env, target=CUSTOMER, prefix="CUSTOMER_", log_path=logs / "customer.log")
    service.start(FAULT_EXIT_AFTER_BATCHES="2")
    try:
        assert await service.wait_exit(timeout=90) == CRASH_CODE
        await assert_committed_were_applied(infra.kafka, env["CUSTOMER_CONSUMER_GROUP"], topics + PURCHASE_COMPLETED,
                                            effects)  # type: ignore[arg-type]
        service.start()
        await service.ready(timeout=90)
        await stream.run(40, start=120)
        expected = {c: len(v) for c, v in stream.accepted.items()}
        counts = await eventually(effects.purchase_counts, lambda c: sum(c.values()) >= stream.total, timeout=120,
                                  interval=0.3, what="every order counted")
        assert counts == expected, {c: (counts.get(c), n) for c, n in expected.items() if counts.get(c) != n}
        orders = await effects.db["purchases"].count_documents({})
        assert orders == stream.total
    finally:
        service.stop()


async def test_customer_service_second_instance_joins_under_load_counts_every_order_once(
    infra, topics, isolation, effects, logs
) -> None:
    """The batch path relies on the partition's owner being the only writer of purchase state (its writes are
    guarded by the purchase count it read, as a backstop). A second instance joining mid-stream moves
    partitions while batches are being written: a rebalance waits for the batch in hand, so every order is
    still counted exactly once and the counters agree with the recorded orders. Each batch holds its read
    for a while before writing, so a rebalance lands in that window: the log shows it waited, and no guard
    ever missed."""
    group = f"fault-customer-{isolation}"
    env = {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka, "MONGODB_URL": infra.mongodb_url, "GUANXI_TOPIC_PREFIX": topics,
           "CUSTOMER_MONGODB_DATABASE": f"fault_customer_{isolation}", "CUSTOMER_CONSUMER_GROUP": group,
           "CUSTOMER_OUTBOX_POLL_SECONDS": "0.2", "MONGODB_MAX_POOL_SIZE": "1", "CUSTOMER_BATCH_MAX_RECORDS": "100"}
    stream = NumberedStream(infra.kafka, topics + PURCHASE_COMPLETED, customers=12)
    first = ServiceProcess(env, target=CUSTOMER, prefix="CUSTOMER_", log_path=logs / "first.log")
    second = ServiceProcess(env, target=CUSTOMER, prefix="CUSTOMER_", log_path=logs / "second.log")
    try:
        first.start(FAULT_PURCHASE_READ_DELAY="2")
        await first.ready(timeout=90)
        enough = asyncio.Event()

        async def keep_sending() -> None:  # until the rebalance has happened and some time after it
            while not enough.is_set():
                await stream.run(30, rate=60, start=stream.total)

        sending = asyncio.create_task(keep_sending())
        await eventually(effects.purchase_counts, lambda c: sum(c.values()) >= 60, timeout=60, interval=0.3,
                         what="the first instance under way")
        second.start(FAULT_PURCHASE_READ_DELAY="2")  # the same group: partitions move while purchases keep coming
        await second.ready(timeout=90)
        members = await eventually(lambda: group_members(infra.kafka, group), lambda n: n == 2, timeout=60, interval=0.5,
                                   what="both instances in the group")
        assert members == 2 and not sending.done(), "the rebalance must happen while purchases are still coming"
        await asyncio.sleep(3)
        enough.set()
        await sending
        expected = {c: len(v) for c, v in stream.accepted.items()}
        counts = await eventually(effects.purchase_counts, lambda c: sum(c.values()) >= stream.total, timeout=120,
                                  interval=0.3, what="every order counted")
        assert counts == expected, {c: (counts.get(c), n) for c, n in expected.items() if counts.get(c) != n}
        assert await effects.db["purchases"].count_documents({}) == stream.total
        docs = await effects.docs()
        assert all(len(d["applied_events"]) == expected[c] for c, d in docs.items())
        assert await assert_committed_were_applied(infra.kafka, group, topics + PURCHASE_COMPLETED,
                                                   effects) > 0  # type: ignore[arg-type]
        text = (logs / "first.log").read_text() + (logs / "second.log").read_text()
        assert "waiting for the batch in hand" in text, "no rebalance met a batch in hand: the test proved nothing"
        assert "changed between the batch's read and its write" not in text, "two instances wrote the same customer at once"
    finally:
        first.stop()
        second.stop()
