"""``CustomerStore`` on MongoDB (PyMongo's asyncio API); the same queries run on the local FerretDB.

Writes that carry events go through ``Outbox``. Single-document and by-id reads of customers go
through the read pool (``ServiceRuntime.read_db``) when there is one: a read cannot lose an update,
so it need not queue on the one writing connection FerretDB is given locally.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from guanxi_shared.events import CloudEvent
from guanxi_shared.outbox import Outbox
from guanxi_shared.scheduling import DueJobs
from guanxi_shared.store import insert_new
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..domain import ERASED, ERASED_FIELDS, REDACTED, REGISTERED, UNREGISTERED, Doc, Fold
from .base import JOBS, Recent

# Where each kind of timeline record keeps its time.
_RECENT_TIME = {"interactions": "occurred_at", "purchases": "purchased_at", "activity": "at", "visits": "planned_for"}
# What is read back of customers whose batch write missed, to tell whose purchases to decide again.
_FOLD_CHECK = {"status": 1, "purchase_count": 1, "applied_events": 1}


class MongoCustomerStore:
    def __init__(self, db: AsyncDatabase[Doc], outbox: Outbox, jobs: DueJobs, read_db: AsyncDatabase[Doc] | None = None) -> None:
        self.db = db
        self._read_db = read_db if read_db is not None else db
        self._outbox = outbox
        self._jobs = jobs

    @property
    def customers(self) -> AsyncCollection[Doc]:
        return self.db["customers"]

    @property
    def purchases(self) -> AsyncCollection[Doc]:
        return self.db["purchases"]

    @property
    def interactions(self) -> AsyncCollection[Doc]:
        return self.db["interactions"]

    @property
    def activity(self) -> AsyncCollection[Doc]:
        return self.db["activity"]

    @property
    def visits(self) -> AsyncCollection[Doc]:
        return self.db["visits"]

    @property
    def jobs(self) -> AsyncCollection[Doc]:
        return self.db[JOBS]

    async def ensure_indexes(self) -> None:
        await self.customers.create_index([("lookup.phone", ASCENDING)])
        await self.customers.create_index([("lookup.email", ASCENDING)])
        await self.customers.create_index([("status", ASCENDING), ("_id", ASCENDING)])
        await self.customers.create_index([("member_level", ASCENDING)])
        await self.purchases.create_index([("customer_id", ASCENDING), ("purchased_at", DESCENDING)])
        await self.interactions.create_index([("customer_id", ASCENDING), ("occurred_at", DESCENDING)])
        await self.interactions.create_index([("customer_id", ASCENDING), ("state", ASCENDING)])
        await self.activity.create_index([("customer_id", ASCENDING), ("at", DESCENDING)])
        await self.visits.create_index([("customer_id", ASCENDING), ("planned_for", DESCENDING)])
        await self._jobs.ensure_indexes()

    # Customers -----------------------------------------------------------------------------------------

    async def customer(self, customer_id: str) -> Doc | None:
        return await self._read_db["customers"].find_one({"_id": customer_id})

    async def customers_by_id(self, customer_ids: list[str]) -> dict[str, Doc]:
        # Through the read pool: beside a write on the writing connection.
        return {d["_id"]: d async for d in self._read_db["customers"].find({"_id": {"$in": customer_ids}})}

    async def insert_customer(self, doc: Doc, events: Sequence[CloudEvent] = ()) -> bool:
        return await self._outbox.insert(self.customers, doc, events)

    async def add_stubs(self, stubs: list[Doc]) -> dict[str, Doc]:
        existed = await insert_new(self.customers, [dict(s) for s in stubs])
        # A stub inserted here is known as written; only one that existed already (created meanwhile by
        # another writer) is read.
        docs = {s["_id"]: s for s in stubs if s["_id"] not in existed}
        if existed:
            docs.update({d["_id"]: d async for d in self.customers.find({"_id": {"$in": sorted(existed)}})})
        return docs

    async def merge_stub(self, customer_id: str, sets: Doc, history: Doc, events: Sequence[CloudEvent]) -> bool:
        result = await self._outbox.update(self.customers, {"_id": customer_id, "status": UNREGISTERED},
                                           {"$set": sets, "$push": {"history": history}}, events)
        return result.modified_count == 1

    async def change_registered(self, customer_id: str, sets: Doc, unsets: Sequence[str], history: Doc,
                                events: Sequence[CloudEvent]) -> bool:
        update: Doc = {"$set": sets, "$push": {"history": history}}
        if unsets:
            update["$unset"] = dict.fromkeys(unsets, "")
        result = await self._outbox.update(self.customers, {"_id": customer_id, "status": REGISTERED}, update, events)
        return result.matched_count > 0

    async def record_access(self, customer_id: str, audit: CloudEvent) -> None:
        await self._outbox.update(self.customers, {"_id": customer_id}, {}, [audit])

    async def erase_customer(self, customer_id: str, sets: Doc, history: Doc, erased: CloudEvent) -> None:
        await self._outbox.update(self.customers, {"_id": customer_id, "status": {"$ne": ERASED}}, {
            "$unset": dict.fromkeys(ERASED_FIELDS, ""), "$set": sets, "$push": {"history": history}}, [erased])

    async def redact_free_text(self, customer_id: str) -> None:
        await self.interactions.update_many({"customer_id": customer_id},
                                            {"$set": {"summary": REDACTED, "outcome": None, "redacted": True}})
        await self.visits.update_many({"customer_id": customer_id},
                                      {"$set": {"purpose": REDACTED, "redacted": True}, "$unset": {"report": ""}})

    async def page_customers(self, status: str, name_contains: str | None, tag: str | None, equal: Doc, limit: int,
                             cursor: str | None) -> tuple[list[Doc], str | None]:
        match: Doc = {"status": status}
        if name_contains:
            match["name"] = {"$regex": re.escape(name_contains), "$options": "i"}
        if tag:
            match["tags"] = tag
        match.update(equal)
        return await self._page(self.customers, match, limit, cursor)

    async def find_by_index(self, field: str, digest: str) -> list[Doc]:
        return [d async for d in self.customers.find({f"lookup.{field}": digest, "status": REGISTERED}).limit(20)]

    async def keys_not_under(self, kek_id: str) -> list[tuple[str, dict[str, str]]]:
        found = self.customers.find({"vault": {"$exists": True}, "vault.kek_id": {"$ne": kek_id}}, {"vault": 1})
        return [(d["_id"], d["vault"]) async for d in found]

    async def replace_key(self, customer_id: str, old_wrapped: str, new: dict[str, str]) -> bool:
        result = await self.customers.update_one({"_id": customer_id, "vault.wrapped": old_wrapped}, {"$set": {"vault": new}})
        return result.modified_count == 1

    async def registered_customers(self) -> AsyncIterator[Doc]:
        async for doc in self.customers.find({"status": REGISTERED}):
            yield doc

    async def flag_churn(self, customer_id: str, at: datetime) -> None:
        await self.customers.update_one({"_id": customer_id, "status": REGISTERED},
                                        {"$set": {"churn_risk": True, "churn_flagged_at": at}})

    async def note_contact(self, customer_id: str, at: datetime) -> None:
        await self.customers.update_one({"_id": customer_id, "status": {"$ne": ERASED}},
                                        {"$max": {"last_contact_at": at}, "$set": {"churn_risk": False}})

    # Purchases --------------------------------------------------------------------------------------------

    async def record_purchases(self, records: list[Doc]) -> set[str]:
        return await insert_new(self.purchases, records)

    async def purchase_owner(self, order_id: str) -> str | None:
        found = await self.purchases.find_one({"_id": order_id}, {"customer_id": 1})
        return None if found is None else str(found["customer_id"])

    async def purchase_owners(self, order_ids: list[str]) -> dict[str, str]:
        return {d["_id"]: d["customer_id"] async for d in self.purchases.find({"_id": {"$in": order_ids}}, {"customer_id": 1})}

    async def apply_purchase(self, customer_id: str, seen_count: int, order_key: str, state: Doc,
                             events: Sequence[CloudEvent]) -> bool:
        result = await self._outbox.update(
            self.customers,
            {"_id": customer_id, "purchase_count": seen_count, "applied_events": {"$ne": order_key}, "status": {"$ne": ERASED}},
            {"$set": state, "$addToSet": {"applied_events": order_key}}, events)
        return result.modified_count == 1

    async def apply_folds(self, folds: dict[str, Fold]) -> set[str]:
        # One guarded write per customer, a few commands for the batch: by _id (the index on every store,
        # and the only condition FerretDB as published answers without reading the whole collection) and
        # by the purchase count that was read, so a write that came in between (an erasure, a consumer
        # that lost the partition without knowing) makes ours miss instead of overwriting it.
        writes = [(_fold_guard(cid, fold), {"$set": fold.state, "$addToSet": {"applied_events": {"$each": fold.keys}}},
                   fold.caused) for cid, fold in folds.items()]
        modified = await self._outbox.update_each(self.customers, writes)
        if modified == len(folds):
            return set()  # every guard held: nothing to read back
        after = {d["_id"]: d async for d in self.customers.find({"_id": {"$in": list(folds)}}, _FOLD_CHECK)}
        return {cid for cid, fold in folds.items() if cid not in after or not fold.landed(after[cid])}

    # Contact records --------------------------------------------------------------------------------------

    async def add_interaction(self, doc: Doc) -> Doc:
        try:
            await self.interactions.insert_one(doc)
        except DuplicateKeyError:
            return await self.interactions.find_one({"_id": doc["_id"]}) or doc
        return doc

    async def interaction(self, interaction_id: str) -> Doc | None:
        return await self.interactions.find_one({"_id": interaction_id})

    async def earliest_answer(self, customer_id: str, since: datetime) -> Doc | None:
        return await self.interactions.find_one(
            {"customer_id": customer_id, "direction": "outbound", "occurred_at": {"$gte": since}},
            sort=[("occurred_at", ASCENDING)])

    async def open_inbound(self, customer_id: str, until: datetime) -> list[Doc]:
        return [d async for d in self.interactions.find({"customer_id": customer_id, "direction": "inbound",
                                                         "state": {"$in": ["open", "overdue"]},
                                                         "occurred_at": {"$lte": until}})]

    async def answer_inbound(self, interaction_id: str, seen_state: str, answer: Doc) -> None:
        await self.interactions.update_one({"_id": interaction_id, "state": seen_state}, {"$set": answer})

    async def mark_overdue(self, interaction_id: str, at: datetime) -> bool:
        result = await self.interactions.update_one({"_id": interaction_id, "state": "open"},
                                                    {"$set": {"state": "overdue", "overdue_at": at}})
        return result.modified_count == 1

    async def page_interactions(self, customer_id: str, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
        return await self._page(self.interactions, {"customer_id": customer_id}, limit, cursor)

    async def inbound_due_between(self, start: datetime, end: datetime) -> list[Doc]:
        found = self.interactions.find({"direction": "inbound", "due_at": {"$gte": start, "$lt": end}},
                                       {"state": 1, "on_time": 1, "answered_by": 1, "agent_id": 1, "due_at": 1})
        return [d async for d in found]

    # Complaint and survey summaries ----------------------------------------------------------------------

    async def activity_status_at(self, key: str) -> datetime | None:
        seen = await self.activity.find_one({"_id": key}, {"status_at": 1})
        return seen.get("status_at") if seen else None

    async def upsert_activity(self, key: str, sets: Doc, earliest: datetime | None = None) -> None:
        # By _id alone: FerretDB 1.24 reads the whole collection for any other filter.
        update: Doc = {"$set": sets}
        if earliest is not None:
            update["$min"] = {"at": earliest}
        await self.activity.update_one({"_id": key}, update, upsert=True)

    # Visits --------------------------------------------------------------------------------------------------

    async def add_visit(self, doc: Doc) -> None:
        await self.visits.insert_one(doc)

    async def visit(self, visit_id: str) -> Doc | None:
        return await self.visits.find_one({"_id": visit_id})

    async def file_visit_report(self, visit_id: str, sets: Doc) -> bool:
        result = await self.visits.update_one({"_id": visit_id, "status": "planned"}, {"$set": sets})
        return result.modified_count == 1

    async def fulfil_commitment(self, visit_id: str, commitment_id: str, at: datetime, actor: str) -> None:
        path = f"report.commitments.{commitment_id}"
        await self.visits.update_one({"_id": visit_id}, {"$set": {
            f"{path}.status": "fulfilled", f"{path}.fulfilled_at": at, f"{path}.fulfilled_by": actor}})

    async def page_visits(self, equal: Doc, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
        return await self._page(self.visits, equal, limit, cursor)

    # Reading across records ------------------------------------------------------------------------------

    async def recent(self, kind: Recent, customer_id: str, limit: int, before: datetime | None) -> list[Doc]:
        at = _RECENT_TIME[kind]
        match = {"customer_id": customer_id, **({at: {"$lt": before}} if before else {})}
        return [d async for d in self.db[kind].find(match).sort(at, DESCENDING).limit(limit)]

    async def held_about(self, customer_id: str) -> dict[str, list[Doc]]:
        by_customer = {"customer_id": customer_id}
        return {
            "purchases": [d async for d in self.purchases.find(by_customer).sort("purchased_at", ASCENDING)],
            "interactions": [d async for d in self.interactions.find(by_customer).sort("occurred_at", ASCENDING)],
            "complaints": [d async for d in self.activity.find({**by_customer, "kind": "complaint"})],
            "surveys": [d async for d in self.activity.find({**by_customer, "kind": "survey"})],
            "visits": [d async for d in self.visits.find(by_customer)],
        }

    async def counts(self, start: datetime, end: datetime) -> dict[str, int]:
        in_period = {"$gte": start, "$lt": end}
        return {
            "active": await self.customers.count_documents({"status": REGISTERED}),
            "at_risk": await self.customers.count_documents({"status": REGISTERED, "churn_risk": True}),
            "registered": await self.customers.count_documents({"registered_at": in_period}),
            "erased": await self.customers.count_documents({"erased_at": in_period}),
            "purchases": await self.purchases.count_documents({"purchased_at": in_period}),
            "contacts": await self.interactions.count_documents({"occurred_at": in_period}),
            "visits": await self.visits.count_documents({"planned_for": in_period}),
        }

    # Due jobs -------------------------------------------------------------------------------------------------

    async def schedule(self, key: str, due_at: datetime, kind: str, data: Doc) -> bool:
        return await self._jobs.schedule(key, due_at, kind, data)

    async def cancel_job(self, key: str, reason: str) -> bool:
        return await self._jobs.cancel(key, reason)

    async def cancel_jobs(self, customer_id: str, reason: str, occasion: str | None = None) -> int:
        match = {"data.customer_id": customer_id, **({"data.occasion": occasion} if occasion else {})}
        return await self._jobs.cancel_where(match, reason)

    async def jobs_of(self, customer_id: str, kinds: Sequence[str], limit: int) -> list[Doc]:
        query = {"data.customer_id": customer_id, "kind": {"$in": list(kinds)}}
        return [d async for d in self._read_db[JOBS].find(query).sort("due_at", ASCENDING).limit(limit)]

    @staticmethod
    async def _page(collection: AsyncCollection[Doc], match: Doc, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
        """Keyset paging on ``_id`` (ids are opaque strings): stable and index-friendly."""
        query = dict(match)
        if cursor:
            query["_id"] = {"$gt": cursor}
        docs = [d async for d in collection.find(query).sort("_id", ASCENDING).limit(limit + 1)]
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (str(docs[-1]["_id"]) if more and docs else None)


def _fold_guard(customer_id: str, fold: Fold) -> Doc:
    """The customer as the fold read it (same purchase count), not erased since."""
    count = fold.seen.get("purchase_count")
    return {"_id": customer_id, "purchase_count": count if count is not None else {"$exists": False}, "status": {"$ne": ERASED}}

