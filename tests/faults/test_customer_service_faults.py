"""The real customer service as the subject: purchase.completed → purchase records and counters.

SIGKILL right after a batch was stored and before its offsets were committed, then a restart:
each accepted order is recorded once and counted once in its customer's ``purchase_count``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
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
