"""Complaint cases: ``CaseStore`` (what the handlers need), ``MongoCaseStore``, ``InMemoryCaseStore``.

Every case write is guarded by the case ``version`` (optimistic concurrency) and carries the events
it causes in the same document write (``Outbox``), so a state change and its events are one atomic
write. Intake is idempotent through two unique keys: ``_id`` (the case id) and ``intake_key``
(source + external reference).

The Mongo queries are written for FerretDB 1.24 (the local engine) as much as for MongoDB: there,
an equality on ``_id`` is an index lookup, while any other query reads every case of the collection.
Hence every write goes by ``_id``, publishes its own events from memory (``Outbox``: waking the
relay's poll instead would cost a query over the whole collection per write), and the scans the
watcher and the crisis rule need are kept off the hot paths (see ``due_for_check`` and ``recent_ids``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from guanxi_shared.events import CloudEvent
from guanxi_shared.outbox import Outbox
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from ..domain import BadCursor, Case

CASES = "cases"
ALIASES = "case_aliases"


@dataclass(frozen=True)
class CaseFilter:
    customer_id: str | None = None
    status: str | None = None
    owner: str | None = None
    overdue: bool | None = None


@dataclass(frozen=True)
class CasePage:
    """Newest receipt first; ``next`` is the cursor of the following page (None on the last one)."""

    items: list[Case]
    next: str | None


def encode_cursor(case: Case) -> str:
    raw = f"{case.received_at.isoformat()}|{case.id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, case_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), case_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this service returned") from exc


def _page(found: list[Case], limit: int) -> CasePage:
    """``found`` holds up to ``limit + 1`` cases: one more than the page says whether another follows."""
    page = found[:limit]
    return CasePage(page, encode_cursor(page[-1]) if len(found) > limit else None)


class CaseStore(Protocol):
    async def insert_new(self, case: Case, events: Sequence[CloudEvent]) -> bool:
        """Open the case with its events; False (nothing written) when it exists already (same id or
        intake key). A new id for an intake key already registered becomes an alias of that case."""
        ...

    async def get(self, case_id: str) -> Case | None:
        """The case under this id or alias."""
        ...

    async def save(self, case: Case, expected_version: int, events: Sequence[CloudEvent]) -> bool:
        """Write the changed case and its events if nobody changed it meanwhile (then ``case.version``
        is the new version); False otherwise."""
        ...

    async def query(self, filters: CaseFilter, now: datetime, limit: int, cursor: str | None) -> CasePage:
        """A page of the cases matching ``filters``, newest receipt first, after ``cursor``."""
        ...

    async def due_for_check(self, now: datetime, limit: int = 200) -> list[Case]:
        """Cases whose ``next_check_at`` has come, earliest first."""
        ...

    async def of_customer(self, customer_id: str) -> list[Case]: ...

    async def received_between(self, start: datetime, end: datetime) -> list[Case]:
        """Cases received in [start, end), without their free text (description empty, no evidence)."""
        ...

    async def recent_ids(self, field: str, value: str, since: datetime, limit: int = 5) -> list[str]:
        """Ids of the latest cases opened since ``since`` with ``field`` equal to ``value``."""
        ...


class MongoCaseStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], outbox: Outbox,
                 read_db: AsyncDatabase[dict[str, Any]] | None = None) -> None:
        self._outbox = outbox
        self.cases: AsyncCollection[dict[str, Any]] = db[CASES]
        # Background scans (the deadline watcher) read through the read pool when there is one: on
        # FerretDB such a query reads every case, and on the one writing connection each intake waited
        # behind it. Writes, and reads that precede a guarded write, stay on ``db``.
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

    async def insert_new(self, case: Case, events: Sequence[CloudEvent]) -> bool:
        # Intake is the busiest writer and the acknowledgement email waits on its events: ``Outbox.insert``
        # publishes them from what it has just stored, with no read-back, and clears them once intake is
        # quiet. A read-back and an immediate clearing would be two more commands per complaint on the one
        # writing connection, the clearing among the costliest on FerretDB (an update there costs in
        # proportion to the collection).
        if await self._outbox.insert(self.cases, case.to_doc(), events):
            return True
        existing = await self.cases.find_one({"intake_key": case.intake_key}, {"_id": 1})
        if existing is not None and existing["_id"] != case.id:
            # The caller was told this id (the gateway's 202): let it find the case under it.
            await self.aliases.update_one({"_id": case.id}, {"$setOnInsert": {"case_id": existing["_id"]}}, upsert=True)
        return False

    async def get(self, case_id: str) -> Case | None:
        doc = await self.cases.find_one({"_id": case_id}, {"outbox": 0})
        if doc is None:
            alias = await self.aliases.find_one({"_id": case_id})
            if alias is not None:
                doc = await self.cases.find_one({"_id": alias["case_id"]}, {"outbox": 0})
        return Case.model_validate(doc) if doc else None

    async def save(self, case: Case, expected_version: int, events: Sequence[CloudEvent]) -> bool:
        doc = case.to_doc()
        doc.pop("_id")
        doc["version"] = expected_version + 1
        result = await self._outbox.update(self.cases, {"_id": case.id, "version": expected_version}, {"$set": doc}, events)
        if result.modified_count == 1:
            case.version = expected_version + 1
            return True
        return False

    async def query(self, filters: CaseFilter, now: datetime, limit: int, cursor: str | None) -> CasePage:
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
        found = self.cases.find(query, {"outbox": 0}).sort([("received_at", DESCENDING), ("_id", DESCENDING)])
        return _page([Case.model_validate(d) async for d in found.limit(limit + 1)], limit)

    async def due_for_check(self, now: datetime, limit: int = 200) -> list[Case]:
        # On FerretDB this query reads every case: it goes through the read pool (``scan_cases``), and the
        # watcher runs every few seconds, not continuously. A stale answer is harmless: each change is
        # saved under the case's version guard.
        found = self.scan_cases.find({"next_check_at": {"$lte": now}}, {"outbox": 0}).sort("next_check_at", ASCENDING)
        found = found.limit(limit)
        return [Case.model_validate(d) async for d in found]

    async def of_customer(self, customer_id: str) -> list[Case]:
        return [Case.model_validate(d) async for d in self.cases.find({"customer_id": customer_id}, {"outbox": 0})]

    async def received_between(self, start: datetime, end: datetime) -> list[Case]:
        found = self.cases.find({"received_at": {"$gte": start, "$lt": end}}, {"outbox": 0, "description": 0, "evidence": 0})
        return [Case.model_validate({"description": "", **d}) async for d in found]

    async def recent_ids(self, field: str, value: str, since: datetime, limit: int = 5) -> list[str]:
        # A scan of the cases on FerretDB: the crisis rule asks only for the alert it actually raises.
        found = self.cases.find({field: value, "opened_at": {"$gte": since}}, {"_id": 1})
        found = found.sort("opened_at", DESCENDING).limit(limit)
        return [str(d["_id"]) async for d in found]


class InMemoryCaseStore:
    """``CaseStore`` in a dict, for the fast tests; the events it was asked to save are in ``published``."""

    def __init__(self) -> None:
        self._cases: dict[str, Case] = {}
        self._by_intake_key: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self.published: list[CloudEvent] = []

    async def insert_new(self, case: Case, events: Sequence[CloudEvent]) -> bool:
        existing = self._by_intake_key.get(case.intake_key)
        if case.id in self._cases or existing is not None:
            if existing is not None and existing != case.id:
                self._aliases.setdefault(case.id, existing)
            return False
        self._cases[case.id] = case.model_copy(deep=True)
        self._by_intake_key[case.intake_key] = case.id
        self.published.extend(events)
        return True

    async def get(self, case_id: str) -> Case | None:
        found = self._cases.get(case_id) or self._cases.get(self._aliases.get(case_id, ""))
        return found.model_copy(deep=True) if found is not None else None

    async def save(self, case: Case, expected_version: int, events: Sequence[CloudEvent]) -> bool:
        stored = self._cases.get(case.id)
        if stored is None or stored.version != expected_version:
            return False
        case.version = expected_version + 1
        self._cases[case.id] = case.model_copy(deep=True)
        self.published.extend(events)
        return True

    async def query(self, filters: CaseFilter, now: datetime, limit: int, cursor: str | None) -> CasePage:
        after = decode_cursor(cursor) if cursor else None

        def matches(c: Case) -> bool:
            overdue = c.next_due_at is not None and c.next_due_at <= now
            return ((filters.customer_id is None or c.customer_id == filters.customer_id)
                    and (filters.status is None or c.status == filters.status)
                    and (filters.owner is None or c.owner == filters.owner)
                    and (filters.overdue is None or overdue == filters.overdue)
                    and (after is None or (c.received_at, c.id) < after))

        found = sorted((c for c in self._cases.values() if matches(c)), key=lambda c: (c.received_at, c.id), reverse=True)
        return _page([c.model_copy(deep=True) for c in found[:limit + 1]], limit)

    async def due_for_check(self, now: datetime, limit: int = 200) -> list[Case]:
        due = [c for c in self._cases.values() if c.next_check_at is not None and c.next_check_at <= now]
        return [c.model_copy(deep=True) for c in sorted(due, key=lambda c: c.next_check_at or now)[:limit]]

    async def of_customer(self, customer_id: str) -> list[Case]:
        return [c.model_copy(deep=True) for c in self._cases.values() if c.customer_id == customer_id]

    async def received_between(self, start: datetime, end: datetime) -> list[Case]:
        return [c.model_copy(deep=True, update={"description": "", "evidence": []}) for c in self._cases.values()
                if start <= c.received_at < end]

    async def recent_ids(self, field: str, value: str, since: datetime, limit: int = 5) -> list[str]:
        found = [c for c in self._cases.values() if getattr(c, field) == value and c.opened_at >= since]
        return [c.id for c in sorted(found, key=lambda c: c.opened_at, reverse=True)[:limit]]
