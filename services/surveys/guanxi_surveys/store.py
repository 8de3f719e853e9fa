"""MongoDB store of the surveys service (PyMongo AsyncMongoClient; runs on MongoDB 7 and FerretDB 1.24).

Collections:
* ``surveys``: one document per survey, ``_id`` = uuid5(kind:trigger id), so a trigger delivered
  twice is one survey. State, schedule, answers and report counters live together, and the events a
  change causes go into the same document's outbox in the same update.
* ``skips``: one document per trigger that got no survey, with its reason (same ``_id`` scheme).
* ``customers``: the local view learnt from customer events (consent, language, level, erased,
  last survey time for the cooldown). Never personal data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from guanxi_shared.events import CloudEvent
from guanxi_shared.outbox import outbox_set
from guanxi_shared.store import insert_new, update_each
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from .domain import CustomerView

SURVEYS = "surveys"
SKIPS = "skips"
CUSTOMERS = "customers"

PENDING_STATES = ["scheduled", "sent"]


class SurveyStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.surveys = db[SURVEYS]
        self.skips = db[SKIPS]
        self.customers = db[CUSTOMERS]

    async def ensure_indexes(self) -> None:
        await self.surveys.create_index([("status", ASCENDING), ("scheduled_for", ASCENDING)])
        await self.surveys.create_index([("status", ASCENDING), ("remind_at", ASCENDING)])
        await self.surveys.create_index([("status", ASCENDING), ("expires_at", ASCENDING)])
        await self.surveys.create_index([("customer_id", ASCENDING), ("_id", ASCENDING)])
        await self.surveys.create_index([("sent_at", ASCENDING)])
        await self.skips.create_index([("customer_id", ASCENDING), ("_id", ASCENDING)])

    # ------------------------------------------------------------ customer view

    async def views(self, customer_ids: Iterable[str]) -> dict[str, CustomerView]:
        ids = list(set(customer_ids))
        out: dict[str, CustomerView] = {}
        async for doc in self.customers.find({"_id": {"$in": ids}}):
            out[doc["_id"]] = CustomerView(
                customer_id=doc["_id"], survey_consent=doc.get("survey_consent"), erased=bool(doc.get("erased")),
                language=doc.get("language"), timezone=doc.get("timezone"), member_level=doc.get("member_level"),
                last_survey_at=doc.get("last_survey_at"),
            )
        return out

    async def learn_profile(self, customer_id: str, fields: dict[str, Any]) -> None:
        await self.customers.update_one({"_id": customer_id}, {"$set": fields}, upsert=True)

    async def learn_if_newer(self, customer_id: str, stamp_field: str, at: datetime, fields: dict[str, Any]) -> None:
        """Apply ``fields`` unless a newer fact of the same kind is already known (events of two topics may cross)."""
        await self.customers.update_one({"_id": customer_id}, {"$setOnInsert": {"created": True}}, upsert=True)
        await self.customers.update_one(
            {"_id": customer_id, "$or": [{stamp_field: {"$exists": False}}, {stamp_field: {"$lte": at}}]},
            {"$set": {**fields, stamp_field: at}},
        )

    async def level_stamps(self, customer_ids: list[str]) -> dict[str, datetime | None]:
        """When each known customer's member level was last learnt (None: never); one read."""
        return {d["_id"]: d.get("level_at") async for d in
                self.customers.find({"_id": {"$in": customer_ids}}, {"level_at": 1})}

    async def learn_levels(self, levels: dict[str, tuple[str, datetime]], known: set[str]) -> None:
        """Write member levels decided in code: views unknown so far are inserted, known ones updated by _id."""
        await insert_new(self.customers, [{"_id": c, "created": True, "member_level": level, "level_at": at}
                                          for c, (level, at) in levels.items() if c not in known])
        await update_each(self.customers, [UpdateOne({"_id": c}, {"$set": {"member_level": level, "level_at": at}})
                                           for c, (level, at) in levels.items() if c in known])

    async def last_survey_times(self, customer_ids: Iterable[str]) -> dict[str, datetime]:
        """When each customer's latest survey was scheduled (whatever became of it): the cooldown's anchor."""
        latest: dict[str, datetime] = {}
        async for doc in self.surveys.find({"customer_id": {"$in": list(customer_ids)}}, {"customer_id": 1, "scheduled_for": 1}):
            at = doc.get("scheduled_for")
            if at is not None:
                latest[doc["customer_id"]] = max(at, latest.get(doc["customer_id"], at))
        return latest

    # ------------------------------------------------------------ scheduling

    async def known_triggers(self, ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Surveys (with customer and scheduled time) and skips (with reason and time) already recorded for these ids."""
        surveys = {d["_id"]: d async for d in self.surveys.find({"_id": {"$in": list(ids)}},
                                                                 {"customer_id": 1, "scheduled_for": 1})}
        skips = {d["_id"]: d async for d in self.skips.find({"_id": {"$in": list(ids)}}, {"reason": 1, "at": 1})}
        return surveys, skips

    async def insert_new(self, collection: str, docs: list[dict[str, Any]]) -> set[Any]:
        """Insert; a document that already exists (a replay) is left as it is, and its id returned."""
        return await insert_new(self.db[collection], docs)

    # ------------------------------------------------------------ lifecycle

    async def due(self, field: str, now: datetime, limit: int, **match: Any) -> list[dict[str, Any]]:
        cursor = self.surveys.find({field: {"$lte": now}, **match}).sort(field, ASCENDING).limit(limit)
        return [d async for d in cursor]

    async def transition(self, survey_id: str, expect: dict[str, Any], changes: dict[str, Any],
                         events: Sequence[CloudEvent] = (), unset: Iterable[str] = ()) -> bool:
        """Conditional state change with its events in the same write; False when someone else got there first."""
        update: dict[str, Any] = {"$set": {**changes, **outbox_set(events)}}
        unset_fields = list(unset)
        if unset_fields:
            update["$unset"] = {f: "" for f in unset_fields}
        result = await self.surveys.update_one({"_id": survey_id, **expect}, update)
        return result.modified_count == 1

    async def expire(self, now: datetime) -> int:
        r = await self.surveys.update_many({"status": "sent", "expires_at": {"$lte": now}},
                                           {"$set": {"status": "expired", "expired_at": now}})
        return r.modified_count

    async def pending_of(self, customer_id: str) -> list[dict[str, Any]]:
        return [d async for d in self.surveys.find({"customer_id": customer_id, "status": {"$in": PENDING_STATES}})]

    async def anonymise(self, customer_id: str, free_text: Iterable[str], now: datetime) -> int:
        """Detach answers from the person: keep scores for the figures, drop what the customer typed."""
        unset = {f"answers.{q}": "" for q in free_text}
        unset["customer_id"] = ""
        r = await self.surveys.update_many({"customer_id": customer_id},
                                           {"$set": {"anonymised_at": now}, "$unset": unset})
        await self.skips.update_many({"customer_id": customer_id},
                                     {"$set": {"anonymised_at": now}, "$unset": {"customer_id": ""}})
        return r.modified_count

    # ------------------------------------------------------------ reads

    async def get(self, survey_id: str) -> dict[str, Any] | None:
        return await self.surveys.find_one({"_id": survey_id}, {"outbox": 0})

    async def page(self, collection: str, match: dict[str, Any], limit: int, cursor: str | None) -> list[dict[str, Any]]:
        query = dict(match)
        if cursor:
            query["_id"] = {"$gt": cursor}
        found = self.db[collection].find(query, {"outbox": 0}).sort("_id", ASCENDING).limit(limit + 1)
        return [d async for d in found]

    async def report_counts(self, since: datetime, until: datetime, key: str | None) -> list[dict[str, Any]]:
        """Counts of the surveys sent in [since, until) per (group, status, CSAT, NPS).

        One accumulator only (``$sum: 1``): see ``domain.Tally`` for why the arithmetic is not done here.
        """
        pipeline: list[dict[str, Any]] = [
            {"$match": {"sent_at": {"$gte": since, "$lt": until}}},
            {"$group": {"_id": {"k": f"${key}" if key else "all", "status": "$status", "csat": "$csat", "nps": "$nps"},
                        "n": {"$sum": 1}}},
        ]
        return [d async for d in await self.surveys.aggregate(pipeline)]
