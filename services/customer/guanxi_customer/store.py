"""The customer service's MongoDB store (its own database; nobody else reads it).

Collections and why they are separate:
- ``customers``: one document per customer, the aggregate. Non-personal fields in clear, personal
  fields sealed under ``pii``, the wrapped data key under ``vault``, blind indexes under ``lookup``,
  consents, counters, change ``history`` (field names only) and the ``outbox``.
- ``purchases`` (``_id`` = order id: the same order twice is one purchase), ``interactions``
  (contact records and their response clocks), ``activity`` (complaint and survey summaries learned
  from events), ``visits`` (plans, reports, commitments), ``jobs`` (DueJobs: care occasions,
  response and commitment deadlines).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guanxi_shared.store import insert_new
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

Doc = dict[str, Any]
OUTBOX_COLLECTIONS = ("customers", "interactions", "visits", "jobs")


@dataclass
class CustomerStore:
    db: AsyncDatabase[Doc]
    # Where single-document reads go (ServiceRuntime.read_db): a read cannot lose an update, so it need
    # not queue on the one writing connection. Updates always go through ``db``.
    read_db: AsyncDatabase[Doc] | None = None

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
        return self.db["jobs"]

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

    async def customer(self, customer_id: str) -> Doc | None:
        return await (self.read_db if self.read_db is not None else self.db)["customers"].find_one({"_id": customer_id})

    async def customers_by_id(self, customer_ids: list[str]) -> dict[str, Doc]:
        """Several customers in one read, through the read pool (beside a write on the writing connection)."""
        source = (self.read_db if self.read_db is not None else self.db)["customers"]
        return {d["_id"]: d async for d in source.find({"_id": {"$in": customer_ids}})}

    @staticmethod
    async def insert_new(collection: AsyncCollection[Doc], docs: list[Doc]) -> set[Any]:
        return await insert_new(collection, docs)

    async def page(self, collection: AsyncCollection[Doc], match: dict[str, Any], limit: int, cursor: str | None,
                   sort_field: str = "_id") -> tuple[list[Doc], str | None]:
        """Keyset paging on ``_id`` (ids are opaque strings): stable and index-friendly."""
        query = dict(match)
        if cursor:
            query["_id"] = {"$gt": cursor}
        docs = [d async for d in collection.find(query).sort(sort_field, ASCENDING).limit(limit + 1)]
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (str(docs[-1]["_id"]) if more and docs else None)
