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
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from guanxi_shared.events import CloudEvent
from guanxi_shared.outbox import Outbox
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase

from ..domain import BadCursor, Case, Order

CASES = "cases"
ALIASES = "case_aliases"
# One counter document per year of receipt (``_id`` ``number:<year>``), the last case number given.
COUNTERS = "case_counters"


@dataclass(frozen=True)
class CaseFilter:
    """Every condition given must hold; a collection of values matches any of them."""

    customer_id: str | None = None
    status: str | Collection[str] | None = None
    owner: str | None = None
    unowned: bool = False  # only the cases nobody owns
    overdue: bool | None = None
    team: str | None = None
    severity: str | Collection[str] | None = None
    channel: str | Collection[str] | None = None
    category: str | Collection[str] | None = None
    number: str | None = None

    def choices(self) -> dict[str, list[str]]:
        """The fields matched against one value or several, each as a sorted list."""
        out: dict[str, list[str]] = {}
        for name in ("status", "severity", "channel", "category"):
            value = getattr(self, name)
            if value is not None:
                out[name] = [value] if isinstance(value, str) else sorted(value)
        return out

    def equalities(self) -> dict[str, Any]:
        """The fields matched against exactly one value (``owner`` None for ``unowned``)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in ("customer_id", "owner", "team", "number")
                               if getattr(self, name) is not None}
        if self.unowned:
            out["owner"] = None
        return out


@dataclass(frozen=True)
class CasePage:
    """A page in the order asked for; ``next`` is the cursor of the following page (None on the last one)."""

    items: list[Case]
    next: str | None


# Cursors: the sort key of the last case of the page. Newest receipt first: ``<received_at>|<id>``;
# nearest deadline first: ``d|<next_due_at or empty>|<received_at>|<id>`` (the empty due time is the
# tail of the cases without an open deadline, ordered newest receipt first).
DEADLINE_CURSOR = "d"


def encode_cursor(case: Case, order: Order = Order.received) -> str:
    if order == Order.deadline:
        due = case.next_due_at.isoformat() if case.next_due_at is not None else ""
        raw = f"{DEADLINE_CURSOR}|{due}|{case.received_at.isoformat()}|{case.id}"
    else:
        raw = f"{case.received_at.isoformat()}|{case.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, case_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), case_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this service returned") from exc


def decode_deadline_cursor(cursor: str) -> tuple[datetime | None, datetime, str]:
    """(next_due_at or None, received_at, id) of the last case of the previous page."""
    try:
        kind, due, at, case_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 3)
        if kind != DEADLINE_CURSOR:
            raise ValueError(kind)
        return (datetime.fromisoformat(due) if due else None), datetime.fromisoformat(at), case_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this service returned for this order") from exc


def _newest_after(at: datetime, case_id: str) -> dict[str, Any]:
    """Mongo: the cases after (``at``, ``case_id``) in newest-receipt-first order."""
    return {"$or": [{"received_at": {"$lt": at}}, {"received_at": at, "_id": {"$lt": case_id}}]}


def _page(found: list[Case], limit: int, order: Order = Order.received) -> CasePage:
    """``found`` holds up to ``limit + 1`` cases: one more than the page says whether another follows."""
    page = found[:limit]
    return CasePage(page, encode_cursor(page[-1], order) if len(found) > limit else None)


class CaseStore(Protocol):
    async def insert_new(self, case: Case, events: Sequence[CloudEvent]) -> bool:
        """Open the case with its events; False (nothing written) when it exists already (same id or
        intake key). A new id for an intake key already registered becomes an alias of that case."""
        ...

    async def get(self, case_id: str) -> Case | None:
        """The case under this id or alias."""
        ...

    async def by_number(self, number: str) -> Case | None:
        """The case with this case number."""
        ...

    async def next_number(self, year: int) -> int:
        """The next number of the year's sequence (1, 2, …), given once: atomically counted, never reused."""
        ...

    async def save(self, case: Case, expected_version: int, events: Sequence[CloudEvent]) -> bool:
        """Write the changed case and its events if nobody changed it meanwhile (then ``case.version``
        is the new version); False otherwise."""
        ...

    async def query(self, filters: CaseFilter, now: datetime, limit: int, cursor: str | None,
                    order: Order = Order.received) -> CasePage:
        """A page of the cases matching ``filters`` after ``cursor``: newest receipt first, or (``Order.deadline``)
        nearest ``next_due_at`` first, then the cases without an open deadline, newest receipt first."""
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
        self.counters: AsyncCollection[dict[str, Any]] = db[COUNTERS]

    async def ensure_indexes(self) -> None:
        await self.cases.create_index([("intake_key", ASCENDING)], unique=True)
        await self.cases.create_index([("customer_id", ASCENDING), ("received_at", DESCENDING)])
        await self.cases.create_index([("status", ASCENDING)])
        await self.cases.create_index([("owner", ASCENDING)])
        await self.cases.create_index([("next_check_at", ASCENDING)])
        await self.cases.create_index([("received_at", DESCENDING)])
        # Not unique: cases opened before numbers existed have none (and partial indexes are not portable);
        # the counter hands every number out once.
        await self.cases.create_index([("number", ASCENDING)])
        await self.cases.create_index([("team", ASCENDING)])
        await self.cases.create_index([("next_due_at", ASCENDING), ("_id", ASCENDING)])

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

    async def by_number(self, number: str) -> Case | None:
        # An equality on a top-level string field: filtered by SQLite on the local FerretDB.
        doc = await self.cases.find_one({"number": number}, {"outbox": 0})
        return Case.model_validate(doc) if doc else None

    async def next_number(self, year: int) -> int:
        # One atomic findAndModify by _id (no projection: FerretDB refuses one there). On the local FerretDB
        # the one writing connection per process serialises these (see ServiceSettings.mongodb_max_pool_size).
        doc = await self.counters.find_one_and_update({"_id": f"number:{year}"}, {"$inc": {"seq": 1}}, upsert=True,
                                                      return_document=ReturnDocument.AFTER)
        assert doc is not None  # upserted
        return int(doc["seq"])

    async def save(self, case: Case, expected_version: int, events: Sequence[CloudEvent]) -> bool:
        doc = case.to_doc()
        doc.pop("_id")
        doc["version"] = expected_version + 1
        result = await self._outbox.update(self.cases, {"_id": case.id, "version": expected_version}, {"$set": doc}, events)
        if result.modified_count == 1:
            case.version = expected_version + 1
            return True
        return False

    async def query(self, filters: CaseFilter, now: datetime, limit: int, cursor: str | None,
                    order: Order = Order.received) -> CasePage:
        # Equalities and $in on top-level fields stay at the top of the filter (the local FerretDB filters
        # those in SQLite); ranges and alternatives go in an $and beside them.
        match: dict[str, Any] = dict(filters.equalities())
        for name, values in filters.choices().items():
            match[name] = values[0] if len(values) == 1 else {"$in": values}
        clauses: list[dict[str, Any]] = []
        if filters.overdue is True:
            clauses.append({"next_due_at": {"$lte": now}})
        elif filters.overdue is False:
            clauses.append({"$or": [{"next_due_at": None}, {"next_due_at": {"$gt": now}}]})
        if order == Order.deadline:
            return await self._by_deadline(match, clauses, limit, cursor)
        if cursor:
            at, case_id = decode_cursor(cursor)
            clauses.append(_newest_after(at, case_id))
        found = self._find(match, clauses).sort([("received_at", DESCENDING), ("_id", DESCENDING)])
        return _page([Case.model_validate(d) async for d in found.limit(limit + 1)], limit)

    def _find(self, match: dict[str, Any], clauses: list[dict[str, Any]]) -> AsyncCursor[dict[str, Any]]:
        # Lists read through the read pool: on FerretDB such a query decodes every candidate case, and on
        # the one writing connection intake and commands would wait behind it.
        query = {**match, "$and": clauses} if clauses else match
        return self.scan_cases.find(query, {"outbox": 0})

    async def _by_deadline(self, match: dict[str, Any], clauses: list[dict[str, Any]], limit: int,
                           cursor: str | None) -> CasePage:
        # Two ranges read one after the other (MongoDB sorts nulls first, and FerretDB may differ):
        # the cases with an open deadline, nearest first; then those without one, newest receipt first.
        after = decode_deadline_cursor(cursor) if cursor else None
        found: list[Case] = []
        if after is None or after[0] is not None:
            dated = [*clauses, {"next_due_at": {"$ne": None}}]
            if after is not None:
                due, _, case_id = after
                dated.append({"$or": [{"next_due_at": {"$gt": due}}, {"next_due_at": due, "_id": {"$gt": case_id}}]})
            cur = self._find(match, dated).sort([("next_due_at", ASCENDING), ("_id", ASCENDING)]).limit(limit + 1)
            found = [Case.model_validate(d) async for d in cur]
        if len(found) <= limit:
            undated = [*clauses, {"next_due_at": None}]
            if after is not None and after[0] is None:
                undated.append(_newest_after(after[1], after[2]))
            cur = self._find(match, undated).sort([("received_at", DESCENDING), ("_id", DESCENDING)])
            found += [Case.model_validate(d) async for d in cur.limit(limit + 1 - len(found))]
        return _page(found, limit, Order.deadline)

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


def _nearest(case: Case) -> tuple[datetime, str]:
    """The deadline order's key of a case with an open deadline."""
    assert case.next_due_at is not None
    return case.next_due_at, case.id


class InMemoryCaseStore:
    """``CaseStore`` in a dict, for the fast tests; the events it was asked to save are in ``published``."""

    def __init__(self) -> None:
        self._cases: dict[str, Case] = {}
        self._by_intake_key: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self._counters: dict[int, int] = {}
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

    async def by_number(self, number: str) -> Case | None:
        found = next((c for c in self._cases.values() if c.number == number), None)
        return found.model_copy(deep=True) if found is not None else None

    async def next_number(self, year: int) -> int:
        self._counters[year] = self._counters.get(year, 0) + 1
        return self._counters[year]

    async def save(self, case: Case, expected_version: int, events: Sequence[CloudEvent]) -> bool:
        stored = self._cases.get(case.id)
        if stored is None or stored.version != expected_version:
            return False
        case.version = expected_version + 1
        self._cases[case.id] = case.model_copy(deep=True)
        self.published.extend(events)
        return True

    async def query(self, filters: CaseFilter, now: datetime, limit: int, cursor: str | None,
                    order: Order = Order.received) -> CasePage:
        equalities, choices = filters.equalities(), filters.choices()

        def matches(c: Case) -> bool:
            overdue = c.next_due_at is not None and c.next_due_at <= now
            doc = c.to_doc()
            return (all(doc.get(k) == v for k, v in equalities.items())
                    and all(doc.get(k) in values for k, values in choices.items())
                    and (filters.overdue is None or overdue == filters.overdue))

        def newest(c: Case) -> tuple[datetime, str]:
            return c.received_at, c.id

        chosen = [c for c in self._cases.values() if matches(c)]
        if order == Order.deadline:
            dated = sorted((c for c in chosen if c.next_due_at is not None), key=_nearest)
            undated = sorted((c for c in chosen if c.next_due_at is None), key=newest, reverse=True)
            if cursor:
                due, at, case_id = decode_deadline_cursor(cursor)
                if due is None:
                    dated, undated = [], [c for c in undated if newest(c) < (at, case_id)]
                else:
                    dated = [c for c in dated if _nearest(c) > (due, case_id)]
            found = dated + undated
        else:
            found = sorted(chosen, key=newest, reverse=True)
            if cursor:
                after = decode_cursor(cursor)
                found = [c for c in found if newest(c) < after]
        return _page([c.model_copy(deep=True) for c in found[:limit + 1]], limit, order)

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
