"""One contract for ``CustomerStore``, run against the in-memory fake and against MongoDB (the real FerretDB),
so the fake the fast tests use is never the only proof of a behaviour."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from guanxi_customer import domain
from guanxi_customer.settings import CustomerSettings
from guanxi_customer.store import JOBS, OUTBOX_COLLECTIONS, CustomerStore, InMemoryCustomerStore, MongoCustomerStore
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import CloudEvent
from guanxi_shared.scheduling import DueJobs
from guanxi_shared.testing import mongo_kit

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def updated(customer_id: str, n: int = 0) -> CloudEvent:
    return domain.event("customer.updated", customer_id, {"customer_id": customer_id, "fields": [f"f{n}"], "actor": "a",
                                                          "updated_at": at(n)}, at=at(n))


def registered_doc(customer_id: str, **fields: Any) -> dict[str, Any]:
    return {"_id": customer_id, "status": "registered", "name": "Wang", "purchase_count": 0, "total_amount": "0",
            "member_level": "standard", "applied_events": [], "history": [], "created_at": T0, **fields}


def purchase_record(order_id: str, customer_id: str, minute: int) -> dict[str, Any]:
    return {"_id": order_id, "customer_id": customer_id, "amount": "1.00", "currency": "CNY", "channel": "web",
            "purchased_at": at(minute), "items": []}


def contact(iid: str, customer_id: str, direction: str, minute: int, **fields: Any) -> dict[str, Any]:
    return {"_id": iid, "customer_id": customer_id, "channel": "chat", "direction": direction, "occurred_at": at(minute),
            "summary": "hello", **fields}


class StoreContract:
    """Each test uses ``store`` (a fresh, empty ``CustomerStore``)."""

    async def saved(self, store: Any, customer_id: str) -> list[str]:
        """Ids of the events saved with the customer's document (whatever their way to Kafka)."""
        raise NotImplementedError

    async def test_customers_are_inserted_once_with_their_events(self, store: CustomerStore) -> None:
        event = updated("c-1")
        assert await store.insert_customer(registered_doc("c-1", outbox={}), [event])
        assert not await store.insert_customer(registered_doc("c-1", name="Other"), [updated("c-1", 1)])
        doc = await store.customer("c-1")
        assert doc is not None and doc["name"] == "Wang"
        assert await self.saved(store, "c-1") == [event.id]
        assert await store.customer("c-2") is None
        assert set(await store.customers_by_id(["c-1", "c-2"])) == {"c-1"}

    async def test_stubs_are_added_for_new_ids_only(self, store: CustomerStore) -> None:
        await store.insert_customer(registered_doc("c-1"))
        docs = await store.add_stubs([domain.stub(c, T0, "standard") for c in ("c-1", "s-1")])
        assert docs["c-1"]["status"] == "registered" and docs["s-1"]["status"] == "unregistered"
        stored = await store.customer("s-1")
        assert stored is not None and stored["purchase_count"] == 0

    async def test_a_stub_is_merged_once(self, store: CustomerStore) -> None:
        await store.add_stubs([domain.stub("s-1", T0, "silver")])
        event = updated("s-1")
        assert await store.merge_stub("s-1", {"status": "registered", "pii.phone": "sealed"}, {"action": "registered"}, [event])
        assert not await store.merge_stub("s-1", {"status": "registered"}, {"action": "registered"}, [updated("s-1", 1)])
        doc = await store.customer("s-1")
        assert doc is not None and doc["pii"] == {"phone": "sealed"} and doc["member_level"] == "silver"
        assert [h["action"] for h in doc["history"]] == ["registered"]
        assert await self.saved(store, "s-1") == [event.id]

    async def test_changes_set_and_remove_paths_of_registered_customers_only(self, store: CustomerStore) -> None:
        await store.insert_customer(registered_doc("c-1", pii={"phone": "p", "email": "e"}, company="Acme"))
        await store.add_stubs([domain.stub("s-1", T0, "standard")])
        event = updated("c-1")
        assert await store.change_registered("c-1", {"pii.phone": "p2", "consents.care": {"granted": True}},
                                             ["pii.email", "company"], {"action": "updated"}, [event])
        doc = await store.customer("c-1")
        assert doc is not None and doc["pii"] == {"phone": "p2"} and "company" not in doc
        assert doc["consents"] == {"care": {"granted": True}} and doc["history"] == [{"action": "updated"}]
        assert not await store.change_registered("s-1", {"name": "x"}, [], {"action": "updated"}, [updated("s-1")])
        assert not await store.change_registered("c-9", {"name": "x"}, [], {"action": "updated"}, [])
        assert await self.saved(store, "c-1") == [event.id] and await self.saved(store, "s-1") == []

    async def test_a_clear_read_is_recorded_only_for_a_customer_that_exists(self, store: CustomerStore) -> None:
        await store.insert_customer(registered_doc("c-1"))
        event = updated("c-1")
        await store.record_access("c-1", event)
        await store.record_access("c-9", updated("c-9"))
        assert await self.saved(store, "c-1") == [event.id]
        assert await store.customer("c-9") is None

    async def test_erasure_leaves_a_tombstone_once_and_redacts_free_text(self, store: CustomerStore) -> None:
        await store.insert_customer(registered_doc("c-1", pii={"phone": "p"}, vault={"kek_id": "k", "wrapped": "w"},
                                                   lookup={"phone": "h"}, tags=["vip"], consents={}))
        await store.add_interaction(contact("i-1", "c-1", "inbound", 0, outcome="callback"))
        await store.add_visit({"_id": "v-1", "customer_id": "c-1", "purpose": "deliver", "report": {"summary": "x"}})
        event = updated("c-1")
        await store.erase_customer("c-1", {"status": "erased", "erased_at": T0}, {"action": "erased"}, event)
        await store.erase_customer("c-1", {"status": "erased", "erased_at": at(1)}, {"action": "erased"}, updated("c-1", 1))
        await store.redact_free_text("c-1")
        doc = await store.customer("c-1")
        assert doc is not None and doc["status"] == "erased" and doc["erased_at"] == T0
        assert not set(domain.ERASED_FIELDS) & set(doc) and doc["purchase_count"] == 0
        assert await self.saved(store, "c-1") == [event.id]
        interaction = await store.interaction("i-1")
        assert interaction is not None and (interaction["summary"], interaction["outcome"]) == (domain.REDACTED, None)
        visit = await store.visit("v-1")
        assert visit is not None and visit["purpose"] == domain.REDACTED and "report" not in visit

    async def test_customers_are_paged_and_filtered(self, store: CustomerStore) -> None:
        for n, name in enumerate(["Wang Li", "Li Lei", "Zhang Wei"]):
            await store.insert_customer(registered_doc(f"c-{n}", name=name, tags=["vip"] if n else [], churn_risk=n == 2))
        await store.add_stubs([domain.stub("s-1", T0, "standard")])
        first, cursor = await store.page_customers("registered", "li", None, {}, 1, None)
        second, end = await store.page_customers("registered", "li", None, {}, 1, cursor)
        assert [d["_id"] for d in first + second] == ["c-0", "c-1"] and cursor and end is None
        tagged, _ = await store.page_customers("registered", None, "vip", {"churn_risk": True}, 10, None)
        assert [d["_id"] for d in tagged] == ["c-2"]
        stubs, _ = await store.page_customers("unregistered", None, None, {}, 10, None)
        assert [d["_id"] for d in stubs] == ["s-1"]

    async def test_blind_index_lookup_finds_registered_customers(self, store: CustomerStore) -> None:
        await store.insert_customer(registered_doc("c-1", lookup={"phone": "h1", "email": "h2"}))
        await store.insert_customer(registered_doc("c-2", lookup={"phone": "h1"}, status="erased"))
        assert [d["_id"] for d in await store.find_by_index("phone", "h1")] == ["c-1"]
        assert [d["_id"] for d in await store.find_by_index("email", "h2")] == ["c-1"]
        assert await store.find_by_index("email", "h1") == []

    async def test_data_keys_are_rewrapped_only_from_what_was_read(self, store: CustomerStore) -> None:
        await store.insert_customer(registered_doc("c-1", vault={"kek_id": "k1", "wrapped": "w1"}))
        await store.insert_customer(registered_doc("c-2", vault={"kek_id": "k2", "wrapped": "w2"}))
        await store.insert_customer(registered_doc("c-3"))
        assert await store.keys_not_under("k2") == [("c-1", {"kek_id": "k1", "wrapped": "w1"})]
        assert not await store.replace_key("c-1", "stale", {"kek_id": "k2", "wrapped": "x"})
        assert await store.replace_key("c-1", "w1", {"kek_id": "k2", "wrapped": "w3"})
        assert await store.keys_not_under("k2") == []

    async def test_contact_and_churn_flags(self, store: CustomerStore) -> None:
        await store.insert_customer(registered_doc("c-1", churn_risk=True))
        await store.insert_customer(registered_doc("c-2", status="erased"))
        await store.note_contact("c-1", at(5))
        await store.note_contact("c-1", at(1))
        await store.note_contact("c-2", at(5))
        doc = await store.customer("c-1")
        assert doc is not None and doc["last_contact_at"] == at(5) and doc["churn_risk"] is False
        erased = await store.customer("c-2")
        assert erased is not None and "last_contact_at" not in erased
        await store.flag_churn("c-1", at(9))
        await store.flag_churn("c-2", at(9))
        doc = await store.customer("c-1")
        assert doc is not None and doc["churn_risk"] is True and doc["churn_flagged_at"] == at(9)
        assert [d["_id"] async for d in store.registered_customers()] == ["c-1"]

    async def test_purchases_are_recorded_once_per_order(self, store: CustomerStore) -> None:
        assert await store.record_purchases([purchase_record("o-1", "c-1", 0), purchase_record("o-2", "c-1", 1)]) == set()
        assert await store.record_purchases([purchase_record("o-2", "c-2", 2), purchase_record("o-3", "c-2", 3)]) == {"o-2"}
        assert await store.purchase_owner("o-2") == "c-1" and await store.purchase_owner("o-9") is None
        assert await store.purchase_owners(["o-1", "o-3", "o-9"]) == {"o-1": "c-1", "o-3": "c-2"}

    async def test_one_purchase_is_applied_under_its_guard(self, store: CustomerStore) -> None:
        await store.insert_customer(registered_doc("c-1"))
        event = updated("c-1")
        state = {"purchase_count": 1, "total_amount": "5.00", "member_level": "silver"}
        assert await store.apply_purchase("c-1", 0, "order:o-1", state, [event])
        assert not await store.apply_purchase("c-1", 0, "order:o-2", {"purchase_count": 1}, [])  # the count moved on
        assert not await store.apply_purchase("c-1", 1, "order:o-1", {"purchase_count": 2}, [])  # applied already
        doc = await store.customer("c-1")
        assert doc is not None and (doc["purchase_count"], doc["total_amount"]) == (1, "5.00")
        assert doc["applied_events"] == ["order:o-1"] and await self.saved(store, "c-1") == [event.id]
        await store.insert_customer(registered_doc("c-2", status="erased"))
        assert not await store.apply_purchase("c-2", 0, "order:o-3", {"purchase_count": 1}, [])

    async def test_folds_land_where_their_guard_holds(self, store: CustomerStore) -> None:
        for cid in ("c-1", "c-2", "c-3"):
            await store.insert_customer(registered_doc(cid, applied_events=["order:o-0"], purchase_count=1))
        seen = {cid: await store.customer(cid) for cid in ("c-1", "c-2", "c-3")}
        await store.apply_purchase("c-2", 1, "order:z-1", {"purchase_count": 2}, [])  # a write in between
        await store.erase_customer("c-3", {"status": "erased"}, {"action": "erased"}, updated("c-3"))
        events = {cid: updated(cid, 1) for cid in seen}
        folds = {cid: domain.Fold(doc or {}, ["order:o-1", "order:o-2"], {"purchase_count": 3, "total_amount": "9.00"},
                                  [(events[cid], None)]) for cid, doc in seen.items()}
        assert await store.apply_folds(folds) == {"c-2", "c-3"}
        landed = await store.customer("c-1")
        assert landed is not None and landed["purchase_count"] == 3
        assert sorted(landed["applied_events"]) == ["order:o-0", "order:o-1", "order:o-2"]
        assert await self.saved(store, "c-1") == [events["c-1"].id]
        missed = await store.customer("c-2")
        assert missed is not None and missed["purchase_count"] == 2 and await self.saved(store, "c-2") == []
        assert events["c-3"].id not in await self.saved(store, "c-3")

    async def test_contacts_and_their_answers(self, store: CustomerStore) -> None:
        stored = await store.add_interaction(contact("i-1", "c-1", "inbound", 0, state="open", due_at=at(30)))
        again = await store.add_interaction(contact("i-1", "c-1", "inbound", 0, summary="changed"))
        assert stored["summary"] == again["summary"] == "hello"
        await store.add_interaction(contact("i-2", "c-1", "inbound", 10, state="overdue", due_at=at(40)))
        await store.add_interaction(contact("i-3", "c-1", "inbound", 50, state="open", due_at=at(80)))
        await store.add_interaction(contact("o-1", "c-1", "outbound", 20))
        await store.add_interaction(contact("o-2", "c-1", "outbound", 5))
        answer = await store.earliest_answer("c-1", at(1))
        assert answer is not None and answer["_id"] == "o-2"
        assert await store.earliest_answer("c-1", at(21)) is None
        assert sorted(d["_id"] for d in await store.open_inbound("c-1", at(20))) == ["i-1", "i-2"]
        await store.answer_inbound("i-1", "overdue", {"state": "answered"})  # not in that state: nothing
        await store.answer_inbound("i-2", "overdue", {"state": "answered", "answered_by": "amy"})
        assert [d["_id"] for d in await store.open_inbound("c-1", at(60))] == ["i-1", "i-3"]
        assert await store.mark_overdue("i-1", at(31)) and not await store.mark_overdue("i-2", at(41))
        flagged = await store.interaction("i-1")
        assert flagged is not None and (flagged["state"], flagged["overdue_at"]) == ("overdue", at(31))
        due = await store.inbound_due_between(at(30), at(80))
        assert sorted(d["_id"] for d in due) == ["i-1", "i-2"]
        page, cursor = await store.page_interactions("c-1", 3, None)
        assert [d["_id"] for d in page] == ["i-1", "i-2", "i-3"] and cursor == "i-3"

    async def test_summaries_keep_the_latest_status_time_and_the_earliest_moment(self, store: CustomerStore) -> None:
        assert await store.activity_status_at("complaint:c") is None
        await store.upsert_activity("complaint:c", {"customer_id": "c-1", "kind": "complaint", "steps.resolved": at(5),
                                                    "status": "resolved", "status_at": at(5)}, earliest=at(5))
        await store.upsert_activity("complaint:c", {"customer_id": "c-1", "kind": "complaint", "steps.received": at(0)},
                                    earliest=at(0))
        await store.upsert_activity("survey:s", {"customer_id": "c-1", "kind": "survey", "at": at(3), "csat": 90})
        assert await store.activity_status_at("complaint:c") == at(5)
        held = await store.held_about("c-1")
        [complaint] = held["complaints"]
        assert complaint["at"] == at(0) and complaint["steps"] == {"resolved": at(5), "received": at(0)}
        assert [s["csat"] for s in held["surveys"]] == [90]

    async def test_visits_reports_and_commitments(self, store: CustomerStore) -> None:
        await store.add_visit({"_id": "v-1", "customer_id": "c-1", "owner": "amy", "status": "planned", "planned_for": T0})
        await store.add_visit({"_id": "v-2", "customer_id": "c-2", "owner": "amy", "status": "planned", "planned_for": T0})
        report = {"status": "reported", "report": {"commitments": {"1": {"status": "open"}}}}
        assert await store.file_visit_report("v-1", report) and not await store.file_visit_report("v-1", report)
        await store.fulfil_commitment("v-1", "1", at(3), "amy")
        visit = await store.visit("v-1")
        assert visit is not None and visit["report"]["commitments"]["1"] == {
            "status": "fulfilled", "fulfilled_at": at(3), "fulfilled_by": "amy"}
        assert await store.visit("v-9") is None
        mine, _ = await store.page_visits({"owner": "amy"}, 10, None)
        theirs, _ = await store.page_visits({"customer_id": "c-2", "owner": "amy"}, 10, None)
        assert [v["_id"] for v in mine] == ["v-1", "v-2"] and [v["_id"] for v in theirs] == ["v-2"]

    async def test_recent_records_newest_first_and_everything_held(self, store: CustomerStore) -> None:
        await store.record_purchases([purchase_record(f"o-{n}", "c-1", n) for n in (2, 0, 1)])
        await store.record_purchases([purchase_record("o-9", "c-2", 9)])
        assert [d["_id"] for d in await store.recent("purchases", "c-1", 2, None)] == ["o-2", "o-1"]
        assert [d["_id"] for d in await store.recent("purchases", "c-1", 5, at(2))] == ["o-1", "o-0"]
        await store.add_interaction(contact("i-1", "c-1", "inbound", 4))
        await store.add_interaction(contact("i-0", "c-1", "inbound", 3))
        held = await store.held_about("c-1")
        assert [d["_id"] for d in held["purchases"]] == ["o-0", "o-1", "o-2"]
        assert [d["_id"] for d in held["interactions"]] == ["i-0", "i-1"]
        assert held["visits"] == held["complaints"] == held["surveys"] == []

    async def test_counts_of_a_period(self, store: CustomerStore) -> None:
        await store.insert_customer(registered_doc("c-1", registered_at=at(1), churn_risk=True))
        await store.insert_customer(registered_doc("c-2", registered_at=at(100)))
        await store.insert_customer(registered_doc("c-3", status="erased", erased_at=at(2)))
        await store.record_purchases([purchase_record("o-1", "c-1", 3)])
        await store.add_interaction(contact("i-1", "c-1", "inbound", 4))
        await store.add_visit({"_id": "v-1", "customer_id": "c-1", "planned_for": at(5)})
        assert await store.counts(T0, at(60)) == {"active": 2, "at_risk": 1, "registered": 1, "erased": 1, "purchases": 1,
                                                  "contacts": 1, "visits": 1}

    async def test_jobs_are_scheduled_once_and_cancelled_while_pending(self, store: CustomerStore) -> None:
        assert await store.schedule("birthday:c-1:2026", at(10), "care", {"customer_id": "c-1", "occasion": "birthday"})
        assert not await store.schedule("birthday:c-1:2026", at(20), "care", {"customer_id": "c-1", "occasion": "birthday"})
        await store.schedule("revisit:c-1:x", at(10), "care", {"customer_id": "c-1", "occasion": "revisit"})
        await store.schedule("revisit:c-2:x", at(10), "care", {"customer_id": "c-2", "occasion": "revisit"})
        await store.schedule("response:i-1", at(10), "response", {"customer_id": "c-1", "interaction_id": "i-1"})
        assert await store.cancel_job("response:i-1", "answered") and not await store.cancel_job("response:i-1", "again")
        assert await store.cancel_jobs("c-1", "consent withdrawn", occasion="birthday") == 1
        assert await store.cancel_jobs("c-1", "erased") == 1
        assert await store.cancel_jobs("c-2", "erased") == 1

    async def test_a_customers_jobs_are_listed_by_kind_soonest_first(self, store: CustomerStore) -> None:
        await store.schedule("revisit:c-1:x", at(20), "care", {"customer_id": "c-1", "occasion": "revisit"})
        await store.schedule("churn:c-1:x", at(10), "churn", {"customer_id": "c-1"})
        await store.schedule("response:i-1", at(5), "response", {"customer_id": "c-1", "interaction_id": "i-1"})
        await store.schedule("revisit:c-2:x", at(1), "care", {"customer_id": "c-2", "occasion": "revisit"})
        await store.cancel_job("revisit:c-1:x", "contact since")
        jobs = await store.jobs_of("c-1", ["care", "churn", "commitment"], 10)
        assert [(j["_id"], j["state"]) for j in jobs] == [("churn:c-1:x", "pending"), ("revisit:c-1:x", "cancelled")]
        assert jobs[1]["cancel_reason"] == "contact since" and jobs[0]["due_at"] == at(10)
        assert [j["_id"] for j in await store.jobs_of("c-1", ["care", "churn"], 1)] == ["churn:c-1:x"]
        assert await store.jobs_of("c-9", ["care"], 10) == []


class TestInMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> InMemoryCustomerStore:
        return InMemoryCustomerStore()

    async def saved(self, store: Any, customer_id: str) -> list[str]:
        return [e.id for e in store.published if e.subject == customer_id]


class TestMongoStore(StoreContract):
    @pytest.fixture
    async def store(self, make_settings: Any) -> AsyncIterator[MongoCustomerStore]:
        async with mongo_kit(make_settings(CustomerSettings), OUTBOX_COLLECTIONS) as kit:
            self.publisher = kit.publisher
            store = MongoCustomerStore(kit.db, kit.outbox, DueJobs(kit.db[JOBS], ManualClock(T0), kit.outbox))
            await store.ensure_indexes()
            yield store

    async def saved(self, store: Any, customer_id: str) -> list[str]:
        return [e.id for e in self.publisher.events if e.subject == customer_id]
