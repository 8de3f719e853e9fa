"""Storage of cases and crisis counters (PyMongo async; portable to MongoDB 7 and FerretDB 1.24).

Every case write is guarded by the case ``version`` (optimistic concurrency) and carries the
events it causes in the same update (``outbox_set``), so a state change and its events are one
atomic document write. Intake is idempotent through two unique keys: ``_id`` (the case id) and
``intake_key`` (source + external reference).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from guanxi_shared.events import CloudEvent
from guanxi_shared.outbox import outbox_set
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .domain import Case

CASES = "cases"
CRISIS = "crisis"
CRISIS_COUNTS = "crisis_counts"
ALIASES = "case_aliases"


class CursorError(ValueError):
    """A list cursor that this service did not hand out."""


@dataclass(frozen=True)
class CaseFilter:
    customer_id: str | None = None
    status: str | None = None
    owner: str | None = None
    overdue: bool | None = None


def encode_cursor(case: Case) -> str:
    raw = f"{case.received_at.isoformat()}|{case.id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, case_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), case_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise CursorError("cursor is not one this service returned") from exc


class CaseStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], read_db: AsyncDatabase[dict[str, Any]] | None = None) -> None:
        self.cases: AsyncCollection[dict[str, Any]] = db[CASES]
        # Background scans (the deadline watcher) read through the read pool when there is one: on
        # FerretDB such a query reads every case (~0.3 s at a few hundred), and on the one writing
        # connection each intake waited behind it. Writes, and reads that precede a guarded write, stay on ``db``.
        self.scan_cases: AsyncCollection[dict[str, Any]] = (read_db if read_db is not None else db)[CASES]
        # Another complaint_id given for a complaint already registered under its (source, external_ref).
        self.aliases: AsyncCollection[dict[str, Any]] = db[ALIASES]

    async def ensure_indexes(self) -> None:
        await self.cases.create_index([("intake_key", ASCENDING)], unique=True)
        await self.cases.create_index([("customer_id", ASCENDING), ("received_at", DESCENDING)])
        await self.cases.create_index([("status", ASCENDING)])
        await self.cases.create_index([("owner", ASCENDING)])
        await self.cases.create_index([("next_check_at", ASCENDING)])
        await self.cases.create_index([("received_at", DESCENDING)])

    async def insert_new(self, case: Case, outbox: Mapping[str, Any]) -> bool:
        """Open the case with its events (``outbox_set`` fields); False when it already exists (same id
        or intake key)."""
        try:
            await self.cases.insert_one({**case.to_doc(), "outbox": _nested(outbox)})
        except DuplicateKeyError:
            existing = await self.cases.find_one({"intake_key": case.intake_key}, {"_id": 1})
            if existing is not None and existing["_id"] != case.id:
                # The caller was told this id (the gateway's 202): let it find the case under it.
                await self.aliases.update_one({"_id": case.id}, {"$setOnInsert": {"case_id": existing["_id"]}}, upsert=True)
            return False
        return True

    async def get(self, case_id: str) -> Case | None:
        doc = await self.cases.find_one({"_id": case_id}, {"outbox": 0})
        if doc is None:
            alias = await self.aliases.find_one({"_id": case_id})
            if alias is not None:
                doc = await self.cases.find_one({"_id": alias["case_id"]}, {"outbox": 0})
        return Case.model_validate(doc) if doc else None

    async def save(self, case: Case, expected_version: int, events: Iterable[CloudEvent]) -> bool:
        """Write the changed case and its events if nobody changed it meanwhile."""
        doc = case.to_doc()
        doc.pop("_id")
        doc["version"] = expected_version + 1
        result = await self.cases.update_one({"_id": case.id, "version": expected_version},
                                             {"$set": {**doc, **outbox_set(events)}})
        if result.modified_count == 1:
            case.version = expected_version + 1
            return True
        return False

    async def query(self, filters: CaseFilter, now: datetime, limit: int, cursor: str | None) -> list[Case]:
        query: dict[str, Any] = {}
        if filters.customer_id is not None:
            query["customer_id"] = filters.customer_id
        if filters.status is not None:
            query["status"] = filters.status
        if filters.owner is not None:
            query["owner"] = filters.owner
        clauses: list[dict[str, Any]] = []
        if filters.overdue is True:
            query["next_due_at"] = {"$lte": now}
        elif filters.overdue is False:
            clauses.append({"$or": [{"next_due_at": None}, {"next_due_at": {"$gt": now}}]})
        if cursor:
            at, case_id = decode_cursor(cursor)
            clauses.append({"$or": [{"received_at": {"$lt": at}}, {"received_at": at, "_id": {"$lt": case_id}}]})
        if clauses:
            query["$and"] = clauses
        found = self.cases.find(query, {"outbox": 0}).sort([("received_at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [Case.model_validate(d) async for d in found]

    async def due_for_check(self, now: datetime, limit: int = 200) -> list[Case]:
        # A stale answer is harmless: each change is saved under the case's version guard.
        found = self.scan_cases.find({"next_check_at": {"$lte": now}}, {"outbox": 0}).sort("next_check_at", ASCENDING)
        found = found.limit(limit)
        return [Case.model_validate(d) async for d in found]

    async def of_customer(self, customer_id: str) -> list[Case]:
        return [Case.model_validate(d) async for d in self.cases.find({"customer_id": customer_id}, {"outbox": 0})]

    async def received_between(self, start: datetime, end: datetime) -> list[Case]:
        found = self.cases.find({"received_at": {"$gte": start, "$lt": end}}, {"outbox": 0, "description": 0, "evidence": 0})
        return [Case.model_validate({"description": "", **d}) async for d in found]

    async def recent_ids(self, field: str, value: str, since: datetime, limit: int = 5) -> list[str]:
        found = self.cases.find({field: value, "opened_at": {"$gte": since}}, {"_id": 1})
        found = found.sort("opened_at", DESCENDING).limit(limit)
        return [str(d["_id"]) async for d in found]


def _nested(outbox: Mapping[str, Any]) -> dict[str, Any]:
    # outbox_set gives dotted paths for $set; an insert needs the nested map.
    return {path.split(".", 1)[1]: entry for path, entry in outbox.items()}


def _outbox_doc(events: Iterable[CloudEvent]) -> dict[str, Any]:
    return {"outbox": _nested(outbox_set(events))}


@dataclass(frozen=True)
class Episode:
    dimension: str
    value: str
    active: bool
    number: int


class CrisisStore:
    """Counts per (dimension, value, time bucket) and the alert episode of each (dimension, value)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.counts: AsyncCollection[dict[str, Any]] = db[CRISIS_COUNTS]
        self.episodes: AsyncCollection[dict[str, Any]] = db[CRISIS]

    async def ensure_indexes(self) -> None:
        await self.counts.create_index([("dimension", ASCENDING), ("value", ASCENDING), ("bucket", ASCENDING)])
        await self.episodes.create_index([("active", ASCENDING)])

    async def bump(self, dimension: str, value: str, bucket: datetime) -> None:
        key = f"{dimension}|{value}|{bucket.isoformat()}"
        await self.counts.update_one({"_id": key}, {"$inc": {"count": 1},
                                                    "$setOnInsert": {"dimension": dimension, "value": value, "bucket": bucket}},
                                     upsert=True)

    async def bump_once(self, dimension: str, value: str, bucket: datetime, item_id: str) -> bool:
        """Count ``item_id`` once in its bucket (redelivery-safe); False when it was already counted."""
        key = f"{dimension}|{value}|{bucket.isoformat()}"
        try:
            await self.counts.update_one(
                {"_id": key, "items": {"$ne": item_id}},
                {"$inc": {"count": 1}, "$addToSet": {"items": item_id},
                 "$setOnInsert": {"dimension": dimension, "value": value, "bucket": bucket}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    async def counts_since(self, dimension: str, value: str, since: datetime) -> list[tuple[datetime, int]]:
        found = self.counts.find({"dimension": dimension, "value": value, "bucket": {"$gte": since}})
        return [(d["bucket"], int(d["count"])) async for d in found]

    async def episode(self, dimension: str, value: str) -> Episode:
        doc = await self.episodes.find_one({"_id": episode_id(dimension, value)}, {"outbox": 0})
        if doc is None:
            return Episode(dimension, value, False, 0)
        return Episode(dimension, value, bool(doc.get("active")), int(doc.get("number", 0)))

    async def start_episode(self, current: Episode, at: datetime, events: Iterable[CloudEvent]) -> bool:
        """Mark the episode started with its alert, once: False when another writer won."""
        key = episode_id(current.dimension, current.value)
        fields = {"dimension": current.dimension, "value": current.value, "active": True, "number": current.number + 1,
                  "started_at": at}
        if current.number == 0 and not current.active:
            try:
                await self.episodes.insert_one({"_id": key, **fields, **_outbox_doc(events)})
            except DuplicateKeyError:
                return False
            return True
        result = await self.episodes.update_one({"_id": key, "number": current.number, "active": False},
                                                {"$set": {**fields, **outbox_set(events)}})
        return result.modified_count == 1

    async def end_episode(self, current: Episode, at: datetime) -> None:
        await self.episodes.update_one({"_id": episode_id(current.dimension, current.value), "number": current.number,
                                        "active": True}, {"$set": {"active": False, "ended_at": at}})

    async def active_episodes(self) -> list[Episode]:
        found = self.episodes.find({"active": True}, {"outbox": 0})
        return [Episode(d["dimension"], d["value"], True, int(d["number"])) async for d in found]


def episode_id(dimension: str, value: str) -> str:
    return f"{dimension}|{value}"
