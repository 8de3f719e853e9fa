"""The idempotency store contract, run on the in-memory fake and on the real store (FerretDB): one claim
per key, replays of the first answer, a key abandoned by a dead gateway taken over after its lease,
expiry and the sweep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from guanxi_gateway.domain import StoredAnswer, record_id
from guanxi_gateway.settings import GatewaySettings
from guanxi_gateway.store import IdempotencyStore, InMemoryIdempotencyStore, MongoIdempotencyStore
from guanxi_shared.store import make_mongo_client

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TTL = timedelta(hours=24)
LEASE = timedelta(seconds=30)
CREATED = StoredAnswer(201, [("content-type", "application/json"), ("location", "/api/v1/customers/c-1")],
                       b'{"id":"c-1"}')


class StoreContract:
    @pytest.fixture
    def store(self) -> IdempotencyStore:
        raise NotImplementedError

    async def test_a_key_abandoned_by_a_dead_gateway_is_taken_over_after_its_lease(self, store: IdempotencyStore) -> None:
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

    async def test_the_first_answer_is_replayed_as_it_was(self, store: IdempotencyStore) -> None:
        rid = record_id("alice", "register-2")
        assert (await store.claim(rid, "fp", T0)).outcome == "claimed"
        await store.complete(rid, CREATED, T0)
        for _ in range(2):
            replay = await store.claim(rid, "fp", T0 + timedelta(hours=1))
            assert replay.outcome == "replay" and replay.answer == CREATED
        assert (await store.claim(rid, "other", T0 + timedelta(hours=1))).outcome == "mismatch"
        assert (await store.claim(record_id("bob", "register-2"), "fp", T0)).outcome == "claimed"  # keys are per caller

    async def test_concurrent_duplicates_are_claimed_once(self, store: IdempotencyStore) -> None:
        rid = record_id("alice", "register-3")
        claims = await asyncio.gather(*(store.claim(rid, "fp", T0) for _ in range(4)))
        assert sorted(c.outcome for c in claims) == ["claimed", "in_progress", "in_progress", "in_progress"]

    async def test_a_released_claim_runs_again_and_an_answer_is_never_released(self, store: IdempotencyStore) -> None:
        rid = record_id("alice", "register-4")
        assert (await store.claim(rid, "fp", T0)).outcome == "claimed"
        await store.release(rid)
        assert (await store.claim(rid, "fp", T0)).outcome == "claimed"
        await store.complete(rid, CREATED, T0)
        await store.release(rid)
        assert (await store.claim(rid, "fp", T0)).outcome == "replay"

    async def test_an_expired_record_is_as_good_as_none_and_the_sweep_removes_it(self, store: IdempotencyStore) -> None:
        old, young = record_id("alice", "old"), record_id("alice", "young")
        assert (await store.claim(old, "fp", T0)).outcome == "claimed"
        await store.complete(old, CREATED, T0)
        assert (await store.claim(young, "fp", T0 + timedelta(hours=12))).outcome == "claimed"
        # Expired: another request may use the key, and the old answer is gone.
        fresh = await store.claim(old, "other", T0 + TTL)
        assert fresh.outcome == "claimed" and fresh.answer is None
        assert (await store.claim(old, "other", T0 + TTL + timedelta(seconds=1))).outcome == "in_progress"
        assert await store.sweep(T0 + TTL + timedelta(hours=1)) == 0  # both now live
        assert await store.sweep(T0 + TTL + timedelta(hours=13)) == 1  # the young one expired
        assert (await store.claim(young, "fp", T0 + TTL + timedelta(hours=13))).outcome == "claimed"
        assert await store.sweep(T0 + 3 * TTL) == 2


class TestInMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> InMemoryIdempotencyStore:
        return InMemoryIdempotencyStore(TTL, LEASE)


class TestMongoStore(StoreContract):
    @pytest.fixture
    async def store(self, make_settings: Any) -> AsyncIterator[MongoIdempotencyStore]:
        settings = make_settings(GatewaySettings)
        client = make_mongo_client(settings)
        store = MongoIdempotencyStore(client[settings.mongodb_database]["idempotency_keys"], TTL, LEASE)
        await store.ensure_indexes()
        yield store
        await client.close()
