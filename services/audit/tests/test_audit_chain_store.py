"""The chain in the real store (FerretDB) without Kafka: checkpoints, stale head, retention and archive."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from guanxi_audit import domain, handlers
from guanxi_audit.handlers import Audit
from guanxi_audit.settings import AuditSettings
from guanxi_audit.store import AuditStore
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import new_event
from guanxi_shared.messaging import EventPublisher
from guanxi_shared.outbox import OutboxRelay
from guanxi_shared.store import make_mongo_client

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
AuditFactory = Callable[..., Any]


@pytest.fixture
async def make_audit(make_settings) -> AsyncIterator[AuditFactory]:
    clients = []

    async def build(clock: ManualClock, **overrides: Any) -> Audit:
        settings = make_settings(AuditSettings, **overrides)
        client = make_mongo_client(settings)
        clients.append(client)
        store = AuditStore(client[settings.mongodb_database])
        await store.ensure_indexes()
        # The broker is never started: a violation stays in its outbox (what happens while Kafka is down).
        relay = OutboxRelay(EventPublisher(settings), [store.episodes])
        return Audit(store=store, settings=settings, clock=clock, relay=relay)

    yield build
    for client in clients:
        await client.close()


async def add(audit: Audit, n: int, subject: str = "c-1") -> list[dict[str, Any]]:
    captures = [domain.Capture.of(new_event("interaction.logged", subject, {"summary": f"call {i}", "agent_id": "a-1"},
                                            source="tests"), None, audit.clock.now()) for i in range(n)]
    return await audit.store.append(captures)


async def test_checkpoints_seal_the_tail_and_expose_a_rewritten_history(make_audit) -> None:
    audit = await make_audit(ManualClock(T0))
    await add(audit, 4)
    assert await handlers.seal_checkpoint(audit) == 4
    assert await handlers.seal_checkpoint(audit) is None  # nothing new to seal
    await add(audit, 2)
    assert await handlers.seal_checkpoint(audit) == 6
    verdict = await handlers.verify(audit)
    assert verdict["ok"] is True and verdict["checked"] == 6 and verdict["checkpoints_checked"] == 2

    # Someone with write access rewrites record 2 and re-hashes everything after it, consistently.
    records = [d async for d in audit.store.records.find({}).sort("seq", 1)]
    forged = domain.seal(domain.Capture.of(new_event("interaction.logged", "c-1", {"summary": "nothing"}, source="x"),
                                           None, T0), 2, records[0]["hash"])
    forged["_id"] = records[1]["_id"]
    forged["hash"] = domain.record_hash(forged)
    rewritten, prev = [forged], forged["hash"]
    for r in records[2:]:
        r["prev_hash"] = prev
        r["hash"] = domain.record_hash(r)
        prev = r["hash"]
        rewritten.append(r)
    await audit.store.records.delete_many({"seq": {"$gte": 2}})
    await audit.store.records.insert_many(rewritten)
    await audit.store.chain.update_one({"_id": "head"}, {"$set": {"hash": prev}})
    verdict = await handlers.verify(audit)
    assert verdict["ok"] is False
    assert verdict["first_broken"]["seq"] == 4 and "checkpoint" in verdict["first_broken"]["reason"]
    # Kafka is not connected here: the violation waits in the episode's outbox for the relay.
    episode = await audit.store.episodes.find_one({"_id": "chain_broken"})
    assert episode is not None and episode["open"] is True and len(episode["outbox"]) == 1
    assert await handlers.seal_checkpoint(audit) is None  # a forged tail is never sealed


async def test_a_head_left_behind_by_a_crash_is_caught_up_by_the_next_writer(make_audit) -> None:
    audit = await make_audit(ManualClock(T0))
    written = await add(audit, 3)
    # Crash after the insert but before the head hint moved: the hint still says seq 1.
    await audit.store.chain.update_one({"_id": "head"}, {"$set": {"seq": 1, "hash": written[0]["hash"]}})
    more = await add(audit, 2)
    assert [r["seq"] for r in more] == [4, 5] and more[0]["prev_hash"] == written[-1]["hash"]
    assert (await handlers.verify(audit))["ok"] is True
    assert await audit.store.head_seq() == 5
    assert await audit.store.append([]) == []


async def test_retention_archives_only_records_past_the_period_and_the_chain_still_verifies(make_audit) -> None:
    clock = ManualClock(T0)
    audit = await make_audit(clock, archive_after_days=200)
    old = await add(audit, 3)
    clock.advance(timedelta(days=100))
    await add(audit, 2)
    assert await handlers.archive_expired(audit) == 0  # nothing is 200 days old yet
    clock.advance(timedelta(days=150))  # the first three are 250 days old, the others 150
    assert await handlers.archive_expired(audit) == 3
    assert await audit.store.archive.count_documents({}) == 3
    assert sorted([d["seq"] async for d in audit.store.records.find({}, {"seq": 1})]) == [4, 5]
    assert await handlers.archive_expired(audit) == 0  # the younger ones stay
    verdict = await handlers.verify(audit)
    assert verdict["ok"] is True and verdict["start_seq"] == 3 and verdict["checked"] == 2
    newest = await add(audit, 1)
    assert newest[0]["seq"] == 6 and (await handlers.verify(audit))["ok"] is True
    assert (await audit.store.archive.find_one({"seq": 1}))["hash"] == old[0]["hash"]

    await audit.store.chain.update_one({"_id": "anchor"}, {"$set": {"seq": 4}})  # hide one more record
    verdict = await handlers.verify(audit)
    assert verdict["ok"] is False and "anchor" in verdict["first_broken"]["reason"]


async def test_archiving_is_off_by_default_and_never_shorter_than_the_minimum(make_audit) -> None:
    clock = ManualClock(T0)
    audit = await make_audit(clock)
    await add(audit, 2)
    clock.advance(timedelta(days=3650))
    assert await handlers.archive_expired(audit) == 0
    assert await audit.store.records.count_documents({}) == 2
    with pytest.raises(ValueError, match="ARCHIVE_AFTER_DAYS"):
        AuditSettings(archive_after_days=30)
