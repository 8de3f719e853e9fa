"""Idempotency records on real FerretDB: a key left pending by a gateway that died is taken over
after its lease, a live claim is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from guanxi_gateway.store import MongoIdempotencyStore, StoredAnswer, record_id
from guanxi_shared.testing import Infra
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
async def keys(infra: Infra, isolation: str) -> AsyncIterator[AsyncCollection[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    yield client[f"test_gateway_keys_{isolation}"]["idempotency_keys"]
    await client.drop_database(f"test_gateway_keys_{isolation}")
    await client.close()


async def test_a_key_abandoned_by_a_dead_gateway_is_taken_over_after_its_lease(keys: Any) -> None:
    store = MongoIdempotencyStore(keys, timedelta(hours=24), LEASE)
    rid = record_id("alice", "register-1")
    assert (await store.claim(rid, "fp", T0)).outcome == "claimed"
    # Within the lease the first request may still be running: the duplicate waits.
    assert (await store.claim(rid, "fp", T0 + LEASE - timedelta(seconds=1))).outcome == "in_progress"
    # A different request under the same key is refused whatever the state of the first.
    assert (await store.claim(rid, "other", T0 + LEASE * 2)).outcome == "mismatch"
    # Past the lease nobody is answering it: one retry takes it over, with a fresh lease.
    later = T0 + LEASE + timedelta(seconds=1)
    assert (await store.claim(rid, "fp", later)).outcome == "claimed"
    assert (await store.claim(rid, "fp", later + timedelta(seconds=1))).outcome == "in_progress"
    await store.complete(rid, StoredAnswer(201, [("content-type", "application/json")], b'{"id":"c-1"}'), later)
    replay = await store.claim(rid, "fp", later + LEASE * 10)
    assert replay.outcome == "replay" and replay.answer is not None and replay.answer.body == b'{"id":"c-1"}'


async def test_a_pending_record_from_before_leases_counts_from_its_creation(keys: Any) -> None:
    store = MongoIdempotencyStore(keys, timedelta(hours=24), LEASE)
    rid = record_id("alice", "register-2")
    await keys.insert_one({"_id": rid, "state": "pending", "fingerprint": "fp", "created_at": T0,
                           "expires_at": T0 + timedelta(hours=24)})
    assert (await store.claim(rid, "fp", T0 + timedelta(seconds=5))).outcome == "in_progress"
    assert (await store.claim(rid, "fp", T0 + LEASE + timedelta(seconds=1))).outcome == "claimed"
