"""The audit store contract, run on the in-memory fake and on the real store (FerretDB): the hash chain
(appended once per event, never forked, a stale head caught up), checkpoints, queries, erasure,
retention and violation episodes."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest
from guanxi_audit import domain, handlers
from guanxi_audit.domain import Capture, RecordQuery
from guanxi_audit.handlers import Deps
from guanxi_audit.settings import DEFAULT_PERSONAL_FIELDS, AuditSettings
from guanxi_audit.store import AuditStore, InMemoryAuditStore, MongoAuditStore
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.testing import mongo_kit

Doc = dict[str, Any]
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
KEY = "test-checkpoint-key"
DepsFactory = Callable[..., Deps]


def capture(subject: str, i: int = 0, type_: str = "interaction.logged", at: datetime = T0,
            trace_id: str | None = None, **data: Any) -> Capture:
    body = data or {"summary": f"call {i}", "agent_id": "a-1"}
    return Capture.of(new_event(type_, subject, body, source="tests", time=at), trace_id, at)


async def add(deps: Deps, n: int, subject: str = "c-1") -> list[Doc]:
    return await deps.store.append([capture(subject, i, at=deps.clock.now()) for i in range(n)])


def pii(event_id: str, actor: str = "alice", customer: str = "c-1", at: datetime = T0, *, role: str = "agent",
        purpose: str = "service", status: domain.ReadStatus = domain.ReadStatus.counted,
        decide_by: datetime | None = None) -> domain.PiiRead:
    return domain.PiiRead(event_id, actor, role, customer, purpose, at, customer, None, status, decide_by)


def violation(name: str) -> CloudEvent:
    return new_event("audit.violation", "audit", {"violation_id": name}, source="tests")


class StoreContract:
    """What every ``AuditStore`` does; a subclass gives the store and reaches into it like an intruder would."""

    @pytest.fixture
    def store(self) -> AuditStore:
        raise NotImplementedError

    @pytest.fixture
    def settings_for(self) -> Callable[..., AuditSettings]:
        raise NotImplementedError

    @pytest.fixture
    def make_deps(self, store: AuditStore, settings_for: Callable[..., AuditSettings]) -> DepsFactory:
        def build(clock: ManualClock, **overrides: Any) -> Deps:
            return Deps(store=store, settings=settings_for(**overrides), clock=clock)

        return build

    async def all_records(self, store: Any) -> list[Doc]:
        raise NotImplementedError

    async def rewrite(self, store: Any, from_seq: int, records: list[Doc]) -> None:
        """Replace the records from ``from_seq`` on by ``records``."""
        raise NotImplementedError

    async def set_chain(self, store: Any, doc_id: str, **fields: Any) -> None:
        raise NotImplementedError

    async def archived(self, store: Any) -> list[Doc]:
        raise NotImplementedError

    async def episode(self, store: Any, key: str) -> Doc | None:
        raise NotImplementedError

    async def saved_violations(self, store: Any) -> list[str]:
        """Ids of the violations the store was given to publish with the episodes it opened."""
        raise NotImplementedError

    # --- the chain --------------------------------------------------------------------------

    async def test_an_event_is_appended_once_behind_the_one_before(self, store: AuditStore) -> None:
        assert await store.head_seq() == 0 and await store.anchor() is None
        caps = [capture("c-1", i) for i in range(3)]
        written = await store.append([*caps, caps[0]])  # a redelivery inside the batch
        assert [r["seq"] for r in written] == [1, 2, 3]
        assert await store.append(caps[1:]) == [] and await store.append([]) == []
        records = await self.all_records(store)
        assert [r["_id"] for r in records] == [c.event_id for c in caps]
        assert records[0]["prev_hash"] == domain.GENESIS_HASH
        assert all(r["prev_hash"] == before["hash"] for before, r in itertools.pairwise(records))
        assert all(r["hash"] == domain.record_hash(r) for r in records)
        assert await store.head_seq() == 3
        more = await store.append([capture("c-2", 9)])
        assert more[0]["seq"] == 4 and more[0]["prev_hash"] == records[-1]["hash"]

    async def test_concurrent_appends_never_fork_the_chain(self, store: AuditStore, make_deps: DepsFactory) -> None:
        caps = [capture(f"c-{i % 3}", i) for i in range(12)]
        one, two = await asyncio.gather(store.append(caps[:8]), store.append(list(reversed(caps[4:]))))
        assert len(one) + len(two) == 12  # each event written by exactly one of them
        records = await self.all_records(store)
        assert [r["seq"] for r in records] == list(range(1, 13))
        assert sorted(r["_id"] for r in records) == sorted(c.event_id for c in caps)
        assert (await handlers.verify(make_deps(ManualClock(T0))))["ok"] is True

    async def test_a_head_left_behind_by_a_crash_is_caught_up_by_the_next_writer(self, store: AuditStore,
                                                                                 make_deps: DepsFactory) -> None:
        deps = make_deps(ManualClock(T0))
        written = await add(deps, 3)
        # Crash after the insert but before the head hint moved: the hint still says seq 1.
        await self.set_chain(store, "head", seq=1, hash=written[0]["hash"])
        more = await add(deps, 2)
        assert [r["seq"] for r in more] == [4, 5] and more[0]["prev_hash"] == written[-1]["hash"]
        assert (await handlers.verify(deps))["ok"] is True
        assert await store.head_seq() == 5
        assert await store.append([]) == []

    async def test_the_chain_is_walked_in_pages_and_read_by_seq(self, store: AuditStore) -> None:
        await store.append([capture("c-1", i) for i in range(5)])
        assert [r["seq"] async for r in store.walk(0, 2)] == [1, 2, 3, 4, 5]
        assert [r["seq"] async for r in store.walk(3, 2)] == [4, 5]
        third = await store.record_at(3)
        assert third is not None and third["seq"] == 3 and set(third["salts"]) == {"summary", "agent_id"}
        assert await store.record_at(9) is None

    # --- checkpoints ------------------------------------------------------------------------

    async def test_a_seq_is_sealed_once(self, store: AuditStore) -> None:
        assert await store.last_checkpoint_seq() == 0
        assert await store.save_checkpoint(domain.make_checkpoint(KEY, 2, "h2", T0))
        assert await store.save_checkpoint(domain.make_checkpoint(KEY, 1, "h1", T0))
        assert not await store.save_checkpoint(domain.make_checkpoint(KEY, 2, "other", T0))
        assert await store.last_checkpoint_seq() == 2
        assert [(c["seq"], c["hash"]) for c in await store.all_checkpoints()] == [(1, "h1"), (2, "h2")]

    async def test_checkpoints_seal_the_tail_and_expose_a_rewritten_history(self, store: AuditStore,
                                                                            make_deps: DepsFactory) -> None:
        deps = make_deps(ManualClock(T0))
        await add(deps, 4)
        assert await handlers.seal_checkpoint(deps) == 4
        assert await handlers.seal_checkpoint(deps) is None  # nothing new to seal
        await add(deps, 2)
        assert await handlers.seal_checkpoint(deps) == 6
        verdict = await handlers.verify(deps)
        assert verdict["ok"] is True and verdict["checked"] == 6 and verdict["checkpoints_checked"] == 2

        # Someone with write access rewrites record 2 and re-hashes everything after it, consistently.
        records = await self.all_records(store)
        forged = domain.seal(Capture.of(new_event("interaction.logged", "c-1", {"summary": "nothing"}, source="x"),
                                        None, T0), 2, records[0]["hash"])
        forged["_id"] = records[1]["_id"]
        forged["hash"] = domain.record_hash(forged)
        rewritten, prev = [forged], forged["hash"]
        for r in records[2:]:
            r["prev_hash"] = prev
            r["hash"] = domain.record_hash(r)
            prev = r["hash"]
            rewritten.append(r)
        await self.rewrite(store, 2, rewritten)
        await self.set_chain(store, "head", hash=prev)
        verdict = await handlers.verify(deps)
        assert verdict["ok"] is False
        assert verdict["first_broken"]["seq"] == 4 and "checkpoint" in verdict["first_broken"]["reason"]
        episode = await self.episode(store, "chain_broken")
        assert episode is not None and episode["open"] is True
        assert len(await self.saved_violations(store)) == 1  # saved with the episode, for the relay to publish
        assert await handlers.seal_checkpoint(deps) is None  # a forged tail is never sealed

    # --- queries ----------------------------------------------------------------------------

    async def test_queries_filter_and_page_in_chain_order_without_salts(self, store: AuditStore) -> None:
        await store.append([
            capture("c-1", 0),
            capture("c-2", 1, "complaint.received", T0 + timedelta(hours=1), TRACE, description="late", category="x"),
            capture("c-1", 2, "customer.pii_accessed", T0 + timedelta(hours=2), actor="alice", fields=["phone"]),
        ])

        async def seqs(query: RecordQuery, after: int = 0, limit: int = 10) -> list[int]:
            rows = await store.query(query, after, limit)
            assert all("salts" not in r for r in rows)
            return [r["seq"] for r in rows]

        assert await seqs(RecordQuery()) == [1, 2, 3]
        assert await seqs(RecordQuery(customer_id="c-1")) == [1, 3]
        assert await seqs(RecordQuery(actor="alice")) == [3]
        assert await seqs(RecordQuery(actor="a-1", customer_id="c-1")) == [1]
        assert await seqs(RecordQuery(type="complaint.received")) == [2]
        assert await seqs(RecordQuery(trace_id=TRACE.upper())) == [2]
        assert await seqs(RecordQuery(since=T0 + timedelta(minutes=30), until=T0 + timedelta(hours=2))) == [2]
        assert await seqs(RecordQuery(since=T0.astimezone(timezone(timedelta(hours=8))))) == [1, 2, 3]
        assert await seqs(RecordQuery(until=(T0 + timedelta(hours=1)).astimezone(timezone(timedelta(hours=8))))) == [1]
        assert await seqs(RecordQuery(until=T0)) == []
        assert await seqs(RecordQuery(), after=1, limit=1) == [2]
        assert await seqs(RecordQuery(customer_id="c-1"), after=1) == [3]

    # --- erasure ----------------------------------------------------------------------------

    async def test_erasure_redacts_the_customers_records_in_the_chain_and_in_the_archive(self, store: AuditStore) -> None:
        first = await store.append([capture("c-9", 0, "complaint.received", description="call 13800138000",
                                            category="delivery")])
        anchor = domain.make_checkpoint(KEY, 1, first[0]["hash"], T0)
        await store.archive_prefix(first, {**anchor, "_id": "anchor"})
        await store.append([capture("c-9", 1, summary="told us her address", agent_id="a-1"),
                            capture("c-8", 2, "complaint.received", description="call 13900000000", category="x")])
        assert await store.erased_among(["c-9", "c-8"]) == set()
        await store.append([capture("c-9", 3, "customer.erased", customer_id="c-9", reason="asked")])
        assert await store.erased_among(["c-9", "c-8"]) == {"c-9"} and await store.erased_subjects() == {"c-9"}

        assert await store.redact_subject("c-9", DEFAULT_PERSONAL_FIELDS, "[erased]") == 2
        assert await store.redact_subject("c-9", DEFAULT_PERSONAL_FIELDS, "[erased]") == 0  # nothing left
        chain = {r["subject"] + ":" + r["type"]: r for r in await self.all_records(store)}
        talk = chain["c-9:interaction.logged"]
        assert talk["data"] == {"summary": "[erased]", "agent_id": "a-1"} and talk["redacted"] == ["summary"]
        assert set(talk["salts"]) == {"agent_id"} and set(talk["digests"]) == {"summary", "agent_id"}
        assert chain["c-8:complaint.received"]["data"]["description"] == "call 13900000000"
        assert chain["c-9:customer.erased"]["redacted"] == []
        [old] = await self.archived(store)
        assert old["data"] == {"description": "[erased]", "category": "delivery"} and old["redacted"] == ["description"]
        assert "description" not in old["salts"]

    # --- retention ----------------------------------------------------------------------------

    async def test_retention_archives_only_records_past_the_period_and_the_chain_still_verifies(
            self, store: AuditStore, make_deps: DepsFactory) -> None:
        clock = ManualClock(T0)
        deps = make_deps(clock, archive_after_days=200)
        old = await add(deps, 3)
        clock.advance(timedelta(days=100))
        await add(deps, 2)
        assert await handlers.archive_expired(deps) == 0  # nothing is 200 days old yet
        clock.advance(timedelta(days=150))  # the first three are 250 days old, the others 150
        assert await handlers.archive_expired(deps) == 3
        assert [r["seq"] for r in await self.archived(store)] == [1, 2, 3]
        assert [r["seq"] for r in await self.all_records(store)] == [4, 5]
        assert await handlers.archive_expired(deps) == 0  # the younger ones stay
        verdict = await handlers.verify(deps)
        assert verdict["ok"] is True and verdict["start_seq"] == 3 and verdict["checked"] == 2
        newest = await add(deps, 1)
        assert newest[0]["seq"] == 6 and (await handlers.verify(deps))["ok"] is True
        assert (await self.archived(store))[0]["hash"] == old[0]["hash"]

        await self.set_chain(store, "anchor", seq=4)  # hide one more record
        verdict = await handlers.verify(deps)
        assert verdict["ok"] is False and "anchor" in verdict["first_broken"]["reason"]

    async def test_archiving_is_off_by_default_and_never_shorter_than_the_minimum(self, store: AuditStore,
                                                                                  make_deps: DepsFactory) -> None:
        clock = ManualClock(T0)
        deps = make_deps(clock)
        await add(deps, 2)
        clock.advance(timedelta(days=3650))
        assert await handlers.archive_expired(deps) == 0
        assert len(await self.all_records(store)) == 2
        with pytest.raises(ValueError, match="ARCHIVE_AFTER_DAYS"):
            AuditSettings(archive_after_days=30)

    # --- violation rules --------------------------------------------------------------------

    async def test_pii_reads_count_distinct_customers_once_per_event(self, store: AuditStore) -> None:
        minutes = partial(timedelta, minutes=1)
        await store.remember_pii_read(pii("e1", "alice", "c-1", T0))
        await store.remember_pii_read(pii("e1", "alice", "c-2", T0))  # the same read redelivered: still c-1
        await store.remember_pii_read(pii("e2", "alice", "c-2", T0 + 10 * minutes()))
        await store.remember_pii_read(pii("e3", "alice", "c-2", T0 + 20 * minutes()))
        await store.remember_pii_read(pii("e4", "bob", "c-3", T0))
        await store.remember_pii_read(pii("e5", "alice", "c-3", T0 + 120 * minutes()))
        assert await store.distinct_customers_read("alice", T0, T0 + 60 * minutes()) == 2
        assert await store.distinct_customers_read("alice", T0 + 10 * minutes(), T0 + 120 * minutes()) == 2  # both ends in
        assert await store.distinct_customers_read("alice", T0 + 1 * minutes(), T0 + 9 * minutes()) == 0
        assert await store.distinct_customers_read("bob", T0, T0 + 120 * minutes()) == 1
        assert await store.distinct_customers_read("nobody", T0, T0 + 120 * minutes()) == 0

    async def test_a_send_justifies_the_service_reads_before_it_and_unjustified_ones_lapse_once(
        self, store: AuditStore
    ) -> None:
        """A pending service read is justified by a send of its customer and purpose (either may be stored
        first), or lapses once decided and then counts; staff reads always count."""
        minutes = partial(timedelta, minutes=1)
        window = 10 * minutes()
        waiting = partial(pii, actor="notifications", role="service", status=domain.ReadStatus.pending)
        await store.remember_pii_read(waiting("p1", customer="c-1", at=T0, decide_by=T0 + window))
        await store.remember_pii_read(waiting("p2", customer="c-1", at=T0, purpose="marketing", decide_by=T0 + window))
        await store.remember_pii_read(waiting("p3", customer="c-2", at=T0 + 5 * minutes(),
                                              decide_by=T0 + 15 * minutes()))
        await store.remember_pii_read(pii("s1", "notifications", "c-9", T0))  # counted at once
        assert await store.distinct_customers_read("notifications", T0 - window, T0 + window) == 1  # pending: not yet

        sent = domain.Send("n-1", "c-1", "service", T0 + 2 * minutes())
        await store.remember_send(sent)
        await store.remember_send(domain.Send("n-1", "c-1", "service", T0 + 9 * minutes()))  # redelivered: unchanged
        assert await store.find_send("c-1", "service", T0, T0 + window) == sent
        assert await store.find_send("c-1", "marketing", T0, T0 + window) is None  # another purpose
        assert await store.find_send("c-1", "service", T0 + 3 * minutes(), T0 + window) is None  # before the span
        assert await store.find_send("c-2", "service", T0, T0 + window) is None
        assert await store.justify_reads("c-1", "service", sent.at - window, sent.at, sent.event_id) == 1
        assert await store.justify_reads("c-1", "service", sent.at - window, sent.at, sent.event_id) == 0  # once
        await store.remember_pii_read(waiting("p1", customer="c-1", at=T0, decide_by=T0 + window))  # redelivered

        assert await store.due_pii_reads(T0 + 9 * minutes(), 10) == []  # nothing decided early
        assert [r.event_id for r in await store.due_pii_reads(T0 + window, 10)] == ["p2"]
        due = await store.due_pii_reads(T0 + 20 * minutes(), 10, actor="notifications")
        assert [(r.event_id, r.status, r.purpose, r.role) for r in due] == [
            ("p2", domain.ReadStatus.pending, "marketing", "service"), ("p3", domain.ReadStatus.pending, "service", "service")]
        assert due[0].decide_by == T0 + window and due[0].at == T0 and due[0].subject == "c-1"
        assert [r.event_id for r in await store.due_pii_reads(T0 + 20 * minutes(), 1)] == ["p2"]  # bounded, oldest first
        assert await store.due_pii_reads(T0 + 20 * minutes(), 10, actor="alice") == []

        assert await store.lapse_pii_read("p2") is True
        assert await store.lapse_pii_read("p2") is False  # once
        assert await store.lapse_pii_read("p1") is False  # justified: never lapses
        assert await store.justify_reads("c-1", "marketing", T0, T0 + window, "n-late") == 0  # decided: final
        assert await store.distinct_customers_read("notifications", T0 - window, T0 + window) == 2  # c-9, c-1 (p2)
        # Lapsed but not yet checked: still due, so a crash before the check is taken up again.
        assert [r.event_id for r in await store.due_pii_reads(T0 + 20 * minutes(), 10)] == ["p2", "p3"]
        await store.settle_pii_read("p2")
        assert [r.event_id for r in await store.due_pii_reads(T0 + 20 * minutes(), 10)] == ["p3"]
        assert await store.distinct_customers_read("notifications", T0 - window, T0 + window) == 2

    async def test_an_episode_opens_once_while_it_lasts(self, store: AuditStore) -> None:
        hours = partial(timedelta, hours=1)
        v1, v2, v3, v4, v5, v6 = (violation(f"v{i}") for i in range(1, 7))
        assert await store.open_episode("rule:alice", T0, T0 + hours(), v1) is True
        assert await store.open_episode("rule:alice", T0 + 0.5 * hours(), T0 + 1.5 * hours(), v2) is False  # extended
        assert await store.open_episode("rule:alice", T0 + 1.25 * hours(), T0 + 2 * hours(), v3) is False  # still open
        assert await store.open_episode("rule:alice", T0 + 3 * hours(), T0 + 4 * hours(), v4) is True  # lapsed: a new one
        await store.close_episode("rule:alice")
        episode = await self.episode(store, "rule:alice")
        assert episode is not None and episode["open"] is False
        assert await store.open_episode("rule:alice", T0 + 3.5 * hours(), T0 + 4 * hours(), v5) is True  # closed: new
        assert await store.open_episode("rule:bob", T0, T0 + hours(), v6) is True
        await store.close_episode("rule:nobody")
        assert sorted(await self.saved_violations(store)) == sorted(v.id for v in (v1, v4, v5, v6))


class TestInMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> InMemoryAuditStore:
        return InMemoryAuditStore()

    @pytest.fixture
    def settings_for(self) -> Callable[..., AuditSettings]:
        return AuditSettings

    async def all_records(self, store: InMemoryAuditStore) -> list[Doc]:
        return sorted((copy.deepcopy(r) for r in store.records.values()), key=lambda r: r["seq"])

    async def rewrite(self, store: InMemoryAuditStore, from_seq: int, records: list[Doc]) -> None:
        store.records = {k: r for k, r in store.records.items() if r["seq"] < from_seq}
        store.records.update({r["_id"]: copy.deepcopy(r) for r in records})

    async def set_chain(self, store: InMemoryAuditStore, doc_id: str, **fields: Any) -> None:
        store.chain[doc_id].update(fields)

    async def archived(self, store: InMemoryAuditStore) -> list[Doc]:
        return sorted((copy.deepcopy(r) for r in store.archive.values()), key=lambda r: r["seq"])

    async def episode(self, store: InMemoryAuditStore, key: str) -> Doc | None:
        return store.episodes.get(key)

    async def saved_violations(self, store: InMemoryAuditStore) -> list[str]:
        return [e.id for e in store.published]


class TestMongoStore(StoreContract):
    @pytest.fixture
    async def store(self, make_settings: Any) -> AsyncIterator[MongoAuditStore]:
        async with mongo_kit(make_settings(AuditSettings), ["episodes"]) as kit:
            store = MongoAuditStore(kit.db, kit.outbox)
            await store.ensure_indexes()
            yield store

    @pytest.fixture
    def settings_for(self, make_settings: Any) -> Callable[..., AuditSettings]:
        return partial(make_settings, AuditSettings)

    async def all_records(self, store: MongoAuditStore) -> list[Doc]:
        return [d async for d in store.records.find({}).sort("seq", 1)]

    async def rewrite(self, store: MongoAuditStore, from_seq: int, records: list[Doc]) -> None:
        await store.records.delete_many({"seq": {"$gte": from_seq}})
        await store.records.insert_many(records)

    async def set_chain(self, store: MongoAuditStore, doc_id: str, **fields: Any) -> None:
        await store.chain.update_one({"_id": doc_id}, {"$set": fields})

    async def archived(self, store: MongoAuditStore) -> list[Doc]:
        return [d async for d in store.archive.find({}).sort("seq", 1)]

    async def episode(self, store: MongoAuditStore, key: str) -> Doc | None:
        return await store.episodes.find_one({"_id": key})

    async def saved_violations(self, store: MongoAuditStore) -> list[str]:
        return [i async for d in store.episodes.find({}) for i in d.get("outbox", {})]
