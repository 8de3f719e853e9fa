"""One contract for the complaints stores, run against the in-memory fakes and the Mongo stores (real FerretDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from guanxi_complaints import domain
from guanxi_complaints.domain import BadCursor, Case, Intake, Order, Policy, Status, WorkingCalendar
from guanxi_complaints.settings import ComplaintsSettings
from guanxi_complaints.store import (
    CASES,
    CRISIS,
    CaseFilter,
    CaseStore,
    CrisisStore,
    Episode,
    InMemoryCaseStore,
    InMemoryCrisisStore,
    MongoCaseStore,
    MongoCrisisStore,
)
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.testing import mongo_kit

CST = timezone(timedelta(hours=8))
RECEIVED = datetime(2026, 9, 30, 10, 0, tzinfo=CST)
POLICY = Policy(calendar=WorkingCalendar())


@dataclass
class Stores:
    cases: CaseStore
    crisis: CrisisStore
    # Ids of the events the stores hold for publishing (written with their changes).
    event_ids: Callable[[], Awaitable[list[str]]]


def case(ref: str, minutes: int = 0, policy: Policy = POLICY, **kw: Any) -> Case:
    values: dict[str, Any] = {"source": "call-centre", "customer_id": "c-1", "channel": "phone", "category": "billing",
                              "severity": "normal", "description": "charged twice", "evidence": ("photo-1",),
                              "received_at": RECEIVED + timedelta(minutes=minutes), "external_ref": ref}
    at = values["received_at"] + timedelta(minutes=1)
    return domain.open_case(Intake(**{**values, **kw}), policy, at).case


def event(key: str, subject: str = "c-1") -> CloudEvent:
    return new_event("complaint.assigned", subject, {"key": key}, source="test", id=f"ev-{key}")


class StoreContract:
    # ---------------------------------------------------------------- cases

    async def test_a_new_case_is_stored_with_its_events_once(self, store: Stores) -> None:
        new = case("REF-1")
        assert await store.cases.insert_new(new, [event("a"), event("b")])
        found = await store.cases.get(new.id)
        assert found is not None and found.to_doc() == new.to_doc()
        assert not await store.cases.insert_new(new, [event("c")])
        assert sorted(await store.event_ids()) == ["ev-a", "ev-b"]
        assert await store.cases.get("nope") is None

    async def test_an_intake_key_registered_under_another_id_makes_that_id_an_alias(self, store: Stores) -> None:
        first = case("REF-1")
        assert await store.cases.insert_new(first, [event("a")])
        again = case("REF-1", complaint_id="gw-1")
        assert again.intake_key == first.intake_key and again.id != first.id
        assert not await store.cases.insert_new(again, [event("b")])
        alias = await store.cases.get("gw-1")
        assert alias is not None and alias.id == first.id
        # The same id under another intake key is a duplicate too, and no alias.
        assert not await store.cases.insert_new(case("REF-2", complaint_id=first.id), [event("c")])
        assert (await store.cases.get(first.id)).external_ref == "REF-1"  # type: ignore[union-attr]
        assert await store.event_ids() == ["ev-a"]

    async def test_save_is_guarded_by_the_version(self, store: Stores) -> None:
        new = case("REF-1")
        await store.cases.insert_new(new, [])
        changed = domain.assign(new, "alice", "alice", RECEIVED + timedelta(hours=1), POLICY).case
        assert await store.cases.save(changed, 0, [event("assigned")]) and changed.version == 1
        stale = domain.assign(new, "bob", "bob", RECEIVED + timedelta(hours=1), POLICY).case
        assert not await store.cases.save(stale, 0, [event("lost")]) and stale.version == 0
        found = await store.cases.get(new.id)
        assert found is not None and found.owner == "alice" and found.version == 1
        assert await store.event_ids() == ["ev-assigned"]
        assert not await store.cases.save(case("REF-9"), 0, [event("nowhere")])

    async def test_queries_filter_and_page_newest_receipt_first(self, store: Stores) -> None:
        cases = [case(f"Q-{i}", minutes=i) for i in range(4)]
        cases.append(case("Q-same", minutes=3, complaint_id="zz-last"))  # received with Q-3: ordered by id
        for c in cases:
            await store.cases.insert_new(c, [])
        owned = domain.assign(cases[1], "alice", "alice", RECEIVED, POLICY).case
        await store.cases.save(owned, 0, [])
        other = case("Q-other", customer_id="c-2", minutes=-20 * 24 * 60)  # its preliminary opinion is overdue
        await store.cases.insert_new(other, [])
        now = RECEIVED + timedelta(hours=1)

        async def ids(limit: int = 10, cursor: str | None = None, **filters: Any) -> tuple[list[str], str | None]:
            page = await store.cases.query(CaseFilter(**filters), now, limit, cursor)
            return [c.id for c in page.items], page.next

        newest_first = [cases[4].id, cases[3].id, cases[2].id, cases[1].id, cases[0].id]
        assert cases[4].id > cases[3].id
        assert await ids(customer_id="c-1") == (newest_first, None)
        first, cursor = await ids(limit=2, customer_id="c-1")
        assert first == newest_first[:2] and cursor is not None
        second, cursor = await ids(limit=2, cursor=cursor, customer_id="c-1")
        assert second == newest_first[2:4] and cursor is not None
        assert await ids(limit=2, cursor=cursor, customer_id="c-1") == (newest_first[4:], None)
        assert await ids(owner="alice") == ([cases[1].id], None)
        assert await ids(status=Status.acknowledged.value, customer_id="c-2") == ([other.id], None)
        assert await ids(status=Status.resolved.value) == ([], None)
        assert await ids(overdue=True) == ([other.id], None)
        assert await ids(overdue=False) == (newest_first, None)
        assert await ids(overdue=True, customer_id="c-1") == ([], None)
        with pytest.raises(BadCursor):
            await store.cases.query(CaseFilter(), now, 10, "zz")

    async def test_case_numbers_count_per_year_and_find_their_case(self, store: Stores) -> None:
        assert [await store.cases.next_number(2026) for _ in range(3)] == [1, 2, 3]
        assert await store.cases.next_number(2027) == 1
        assert await store.cases.next_number(2026) == 4
        numbered = case("N-1").model_copy(update={"number": "TS-2026-000004"})
        await store.cases.insert_new(numbered, [])
        await store.cases.insert_new(case("N-2"), [])  # a case from before numbers: none
        found = await store.cases.by_number("TS-2026-000004")
        assert found is not None and found.id == numbered.id and found.number == "TS-2026-000004"
        assert await store.cases.by_number("TS-2026-000005") is None
        page = await store.cases.query(CaseFilter(number="TS-2026-000004"), RECEIVED, 10, None)
        assert [c.id for c in page.items] == [numbered.id]

    async def test_queues_filter_on_several_values_owner_and_team_and_order_by_deadline(self, store: Stores) -> None:
        # Not acknowledged at intake: each open case's nearest deadline is its acknowledgement (24 h, urgent 1 h).
        policy = Policy(calendar=POLICY.calendar, auto_acknowledge=False, acknowledge_minutes_by_severity={"urgent": 60},
                        team_by_category={"delivery": "logistics"})
        urgent = case("O-1", policy=policy, severity="urgent")  # due at +1 h
        late = case("O-2", -600, policy=policy, category="delivery", channel="web")  # due at +14 h
        low = case("O-3", 5, policy=policy, severity="low")  # due at +24 h 5 min
        done = []
        for n in (10, 20):
            opened = case(f"O-{n}", n, policy=policy)
            at = RECEIVED + timedelta(minutes=n + 2)
            done.append(domain.resolve(domain.acknowledge(opened, "sue", at, policy).case, "ok", "sue", at, policy).case)
        late = domain.assign(late, "alice", "alice", RECEIVED, policy).case
        for c in (urgent, late, low, *done):
            assert await store.cases.insert_new(c, [])
        assert [c.next_due_at is None for c in done] == [True, True]
        now = RECEIVED + timedelta(hours=2)

        async def ids(order: Order = Order.received, limit: int = 10, cursor: str | None = None,
                      **filters: Any) -> tuple[list[str], str | None]:
            page = await store.cases.query(CaseFilter(**filters), now, limit, cursor, order)
            return [c.id for c in page.items], page.next

        newest_first = [done[1].id, done[0].id, low.id, urgent.id, late.id]
        assert await ids(status=("received", "resolved")) == (newest_first, None)
        assert await ids(status=frozenset({"resolved"})) == ([done[1].id, done[0].id], None)
        assert await ids(severity=["urgent", "low"]) == ([low.id, urgent.id], None)
        assert await ids(channel="web") == ([late.id], None)
        assert await ids(category=["delivery", "other"]) == ([late.id], None)
        assert await ids(team="logistics") == ([late.id], None)
        assert await ids(team="general", status="received") == ([low.id, urgent.id], None)
        assert await ids(unowned=True) == ([done[1].id, done[0].id, low.id, urgent.id], None)
        assert await ids(owner="alice") == ([late.id], None)

        nearest_first = [urgent.id, late.id, low.id, done[1].id, done[0].id]
        assert await ids(Order.deadline) == (nearest_first, None)
        pages, cursor = [], None
        while True:
            found, cursor = await ids(Order.deadline, limit=2, cursor=cursor)
            pages.append(found)
            if cursor is None:
                break
        assert pages == [nearest_first[:2], nearest_first[2:4], nearest_first[4:]]
        first, cursor = await ids(Order.deadline, limit=1, unowned=True)
        assert first == [urgent.id] and cursor is not None
        assert await ids(Order.deadline, limit=10, cursor=cursor, unowned=True) == ([low.id, done[1].id, done[0].id], None)
        assert await ids(Order.deadline, overdue=True) == ([urgent.id], None)
        assert await ids(Order.deadline, overdue=False, status="received") == ([late.id, low.id], None)
        received_cursor = (await store.cases.query(CaseFilter(), now, 1, None)).next
        assert received_cursor is not None
        with pytest.raises(BadCursor):
            await store.cases.query(CaseFilter(), now, 1, received_cursor, Order.deadline)

    async def test_due_for_check_gives_the_earliest_first_up_to_the_limit(self, store: Stores) -> None:
        early, late = case("D-1"), case("D-2", minutes=90)
        for c in (late, early):
            await store.cases.insert_new(c, [])
        assert early.next_check_at is not None and late.next_check_at is not None
        assert await store.cases.due_for_check(early.next_check_at - timedelta(seconds=1)) == []
        assert [c.id for c in await store.cases.due_for_check(late.next_check_at)] == [early.id, late.id]
        assert [c.id for c in await store.cases.due_for_check(late.next_check_at, limit=1)] == [early.id]

    async def test_cases_by_customer_by_period_without_free_text_and_recent_ids(self, store: Stores) -> None:
        a, b, c = case("P-1"), case("P-2", minutes=60, category="delivery"), case("P-3", customer_id="c-2", minutes=120)
        for x in (a, b, c):
            await store.cases.insert_new(x, [])
        assert sorted(x.id for x in await store.cases.of_customer("c-1")) == sorted([a.id, b.id])
        period = await store.cases.received_between(RECEIVED, RECEIVED + timedelta(minutes=120))
        assert sorted(x.id for x in period) == sorted([a.id, b.id])
        assert {(x.description, tuple(x.evidence)) for x in period} == {("", ())}
        assert await store.cases.recent_ids("category", "billing", RECEIVED) == [c.id, a.id]
        assert await store.cases.recent_ids("category", "billing", RECEIVED, limit=1) == [c.id]
        assert await store.cases.recent_ids("category", "billing", RECEIVED + timedelta(minutes=100)) == [c.id]

    # ---------------------------------------------------------------- crisis

    async def test_counts_per_bucket_and_once_per_item(self, store: Stores) -> None:
        t0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
        t1 = t0 + timedelta(minutes=5)
        await store.crisis.bump("category", "billing", t0)
        await store.crisis.bump("category", "billing", t0)
        await store.crisis.bump("category", "billing", t1)
        await store.crisis.bump("category", "delivery", t1)
        assert sorted(await store.crisis.counts_since("category", "billing", t0)) == [(t0, 2), (t1, 1)]
        assert await store.crisis.counts_since("category", "billing", t1) == [(t1, 1)]
        assert await store.crisis.bump_once("satisfaction", "low_score", t0, "s-1")
        assert not await store.crisis.bump_once("satisfaction", "low_score", t0, "s-1")
        assert await store.crisis.bump_once("satisfaction", "low_score", t0, "s-2")
        assert await store.crisis.bump_once("satisfaction", "low_score", t1, "s-1")
        assert sorted(await store.crisis.counts_since("satisfaction", "low_score", t0)) == [(t0, 2), (t1, 1)]

    async def test_an_episode_starts_once_with_its_alert_and_ends(self, store: Stores) -> None:
        at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
        none = await store.crisis.episode("category", "billing")
        assert none == Episode("category", "billing", False, 0)
        assert await store.crisis.start_episode(none, at, [event("alert-1")])
        assert not await store.crisis.start_episode(none, at, [event("alert-1b")])  # another writer was first
        first = await store.crisis.episode("category", "billing")
        assert first == Episode("category", "billing", True, 1)
        assert await store.crisis.active_episodes() == [first]
        await store.crisis.end_episode(first, at + timedelta(hours=1))
        ended = await store.crisis.episode("category", "billing")
        assert ended == Episode("category", "billing", False, 1) and await store.crisis.active_episodes() == []
        assert await store.crisis.start_episode(ended, at, [event("alert-2")])
        assert not await store.crisis.start_episode(ended, at, [event("alert-2b")])
        assert await store.crisis.episode("category", "billing") == Episode("category", "billing", True, 2)
        assert sorted(await store.event_ids()) == ["ev-alert-1", "ev-alert-2"]


class TestInMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Stores:
        cases, crisis = InMemoryCaseStore(), InMemoryCrisisStore()

        async def event_ids() -> list[str]:
            return [e.id for e in cases.published + crisis.published]

        return Stores(cases, crisis, event_ids)


class TestMongoStore(StoreContract):
    @pytest.fixture
    async def store(self, make_settings: Callable[..., Any]) -> AsyncIterator[Stores]:
        # The relay's loop never runs: the events stay in the documents' outboxes, where the contract reads them.
        async with mongo_kit(make_settings(ComplaintsSettings), [CASES, CRISIS]) as kit:
            db = kit.db
            cases, crisis = MongoCaseStore(db, kit.outbox), MongoCrisisStore(db, kit.outbox)
            await cases.ensure_indexes()
            await crisis.ensure_indexes()

            async def event_ids() -> list[str]:
                return [i for name in (CASES, CRISIS) async for d in db[name].find({}, {"outbox": 1})
                        for i in d.get("outbox") or {}]

            yield Stores(cases, crisis, event_ids)
