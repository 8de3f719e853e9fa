"""The surveys store on MongoDB (PyMongo's asyncio API); runs on MongoDB 7 and on FerretDB 1.24, the local engine.

Collections:
* ``surveys``: one document per survey. State, schedule, answers and report fields live together;
  a step's events go into the same document's outbox in the same write (``Outbox``).
* ``skips``: one document per trigger that got no survey, with its reason.
* ``customers``: the local view learnt from customer events (consent, language, level, erased).
  Never personal data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from guanxi_shared.events import CloudEvent
from guanxi_shared.outbox import Outbox
from guanxi_shared.store import insert_new, update_each
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from ..domain import PENDING_STATES, CustomerView, Figures
from .protocol import Announcer, Change, Doc

SURVEYS = "surveys"
SKIPS = "skips"
CUSTOMERS = "customers"


class MongoSurveyStore:
    def __init__(self, db: AsyncDatabase[Doc], outbox: Outbox, announcer: Announcer) -> None:
        self.surveys = db[SURVEYS]
        self.skips = db[SKIPS]
        self.customers = db[CUSTOMERS]
        self._outbox = outbox
        self._announcer = announcer

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
        return {doc["_id"]: _view(doc) async for doc in self.customers.find({"_id": {"$in": ids}})}

    async def learn_profile(self, customer_id: str, language: str, timezone: str) -> None:
        await self.customers.update_one({"_id": customer_id}, {"$set": {"language": language, "timezone": timezone}},
                                        upsert=True)

    async def learn_consent(self, customer_id: str, granted: bool, at: datetime) -> None:
        await self._learn_if_newer(customer_id, "consent_at", at, {"survey_consent": granted})

    async def learn_level(self, customer_id: str, member_level: str, at: datetime) -> None:
        await self._learn_if_newer(customer_id, "level_at", at, {"member_level": member_level})

    async def _learn_if_newer(self, customer_id: str, stamp_field: str, at: datetime, fields: dict[str, Any]) -> None:
        # Two updates: the view may not exist yet, and an upsert guarded by the stamp would try to insert
        # the view again (a duplicate key) whenever a newer fact is known.
        await self.customers.update_one({"_id": customer_id}, {"$setOnInsert": {"created": True}}, upsert=True)
        await self.customers.update_one(
            {"_id": customer_id, "$or": [{stamp_field: {"$exists": False}}, {stamp_field: {"$lte": at}}]},
            {"$set": {**fields, stamp_field: at}},
        )

    async def level_stamps(self, customer_ids: list[str]) -> dict[str, datetime | None]:
        return {d["_id"]: d.get("level_at") async for d in
                self.customers.find({"_id": {"$in": customer_ids}}, {"level_at": 1})}

    async def learn_levels(self, levels: Mapping[str, tuple[str, datetime]], known: set[str]) -> None:
        # New views are inserted and known ones updated by _id: no upsert, no condition to evaluate.
        await insert_new(self.customers, [{"_id": c, "created": True, "member_level": level, "level_at": at}
                                          for c, (level, at) in levels.items() if c not in known])
        await update_each(self.customers, [UpdateOne({"_id": c}, {"$set": {"member_level": level, "level_at": at}})
                                           for c, (level, at) in levels.items() if c in known])

    async def forget_customer(self, customer_id: str, at: datetime) -> None:
        await self.customers.update_one(
            {"_id": customer_id},
            {"$set": {"erased": True, "erased_at": at, "survey_consent": False}, "$unset": {"language": "", "timezone": ""}},
            upsert=True)

    async def anonymise(self, customer_id: str, free_text: Iterable[str], at: datetime) -> int:
        unset = {f"answers.{q}": "" for q in free_text}
        unset["customer_id"] = ""
        r = await self.surveys.update_many({"customer_id": customer_id}, {"$set": {"anonymised_at": at}, "$unset": unset})
        await self.skips.update_many({"customer_id": customer_id},
                                     {"$set": {"anonymised_at": at}, "$unset": {"customer_id": ""}})
        return r.modified_count

    # ------------------------------------------------------------ triggers

    async def known_triggers(self, ids: Sequence[str]) -> tuple[dict[str, datetime], dict[str, tuple[str, datetime]]]:
        surveys = {d["_id"]: d["scheduled_for"] async for d in
                   self.surveys.find({"_id": {"$in": list(ids)}}, {"scheduled_for": 1})}
        skips = {d["_id"]: (d["reason"], d["at"]) async for d in
                 self.skips.find({"_id": {"$in": list(ids)}}, {"reason": 1, "at": 1})}
        return surveys, skips

    async def last_survey_times(self, customer_ids: Iterable[str]) -> dict[str, datetime]:
        # One read by customer_id for the whole batch, rather than a per-customer "last survey" field that
        # would cost a write per customer and batch.
        latest: dict[str, datetime] = {}
        async for doc in self.surveys.find({"customer_id": {"$in": list(customer_ids)}}, {"customer_id": 1, "scheduled_for": 1}):
            at = doc.get("scheduled_for")
            if at is not None:
                latest[doc["customer_id"]] = max(at, latest.get(doc["customer_id"], at))
        return latest

    async def record_decisions(self, surveys: Sequence[Doc], skips: Sequence[Doc],
                               announcements: Mapping[str, CloudEvent]) -> None:
        """Insert the new surveys and skips, then publish the announcements straight from memory.

        No outbox entry: the caller is a consumer's batch, which commits its triggers' offsets only
        after this returns (consume, store, produce, commit). If publishing fails or the process dies
        first, the triggers come again, find their decisions stored and announce those again under the
        same event ids (consumers deduplicate). An outbox entry would cost every survey and skip
        document a second write, to clear it."""
        pending = dict(announcements)
        for collection, docs in ((self.surveys, surveys), (self.skips, skips)):
            for existing in await insert_new(collection, list(docs)):
                pending.pop(existing, None)
        await self._announcer.publish_many(pending.values())

    # ------------------------------------------------------------ lifecycle

    async def due_to_send(self, now: datetime, limit: int) -> list[Doc]:
        return await self._due("scheduled_for", now, limit, status="scheduled")

    async def due_to_remind(self, now: datetime, limit: int) -> list[Doc]:
        return await self._due("remind_at", now, limit, status="sent", reminded=False)

    async def _due(self, field: str, now: datetime, limit: int, **match: Any) -> list[Doc]:
        cursor = self.surveys.find({field: {"$lte": now}, **match}).sort(field, ASCENDING).limit(limit)
        return [d async for d in cursor]

    async def change(self, change: Change) -> bool:
        result = await self._outbox.update(self.surveys, *_write(change))
        return result.modified_count == 1

    async def change_each(self, changes: Sequence[Change]) -> int:
        return await self._outbox.update_each(self.surveys, [_write(c) for c in changes])

    async def expire(self, now: datetime) -> int:
        r = await self.surveys.update_many({"status": "sent", "expires_at": {"$lte": now}},
                                           {"$set": {"status": "expired", "expired_at": now}})
        return r.modified_count

    async def pending_of(self, customer_id: str) -> list[Doc]:
        return [d async for d in self.surveys.find({"customer_id": customer_id, "status": {"$in": list(PENDING_STATES)}})]

    # ------------------------------------------------------------ reads

    async def get(self, survey_id: str) -> Doc | None:
        return await self.surveys.find_one({"_id": survey_id}, {"outbox": 0})

    async def page_surveys(self, match: Mapping[str, str], limit: int, cursor: str | None) -> list[Doc]:
        return await _page(self.surveys, match, limit, cursor)

    async def page_skips(self, match: Mapping[str, str], limit: int, cursor: str | None) -> list[Doc]:
        return await _page(self.skips, match, limit, cursor)

    async def report_figures(self, since: datetime, until: datetime, group_field: str | None) -> dict[str, Figures]:
        """One ``$group`` with a single accumulator, ``$sum: 1``, per (group, status, CSAT, NPS); the sums
        are made here. FerretDB 1.24 computes only the first accumulator of a ``$group`` correctly (the
        others come back 0) and sums a field as 0 when some documents lack it (unanswered surveys have no
        scores): counting rows of equal outcome avoids both, and costs no more on MongoDB."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"sent_at": {"$gte": since, "$lt": until}}},
            {"$group": {"_id": {"k": f"${group_field}" if group_field else "all", "status": "$status", "csat": "$csat",
                                "nps": "$nps"},
                        "n": {"$sum": 1}}},
        ]
        groups: dict[str, Figures] = {}
        async for row in await self.surveys.aggregate(pipeline):
            key = row["_id"]
            groups.setdefault(str(key.get("k") or "unknown"), Figures()).count(
                int(row["n"]), completed=key.get("status") == "completed", csat=key.get("csat"), nps=key.get("nps"))
        return groups


async def _page(collection: AsyncCollection[Doc], match: Mapping[str, str], limit: int, cursor: str | None) -> list[Doc]:
    query: dict[str, Any] = dict(match)
    if cursor:
        query["_id"] = {"$gt": cursor}
    return [d async for d in collection.find(query, {"outbox": 0}).sort("_id", ASCENDING).limit(limit + 1)]


def _write(change: Change) -> tuple[Doc, Doc, Sequence[CloudEvent]]:
    return {"_id": change.survey_id, **change.expect}, {"$set": dict(change.changes)}, change.events


def _view(doc: Doc) -> CustomerView:
    return CustomerView(customer_id=doc["_id"], survey_consent=doc.get("survey_consent"), erased=bool(doc.get("erased")),
                        language=doc.get("language"), timezone=doc.get("timezone"), member_level=doc.get("member_level"))
