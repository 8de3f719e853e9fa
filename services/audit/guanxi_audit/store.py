"""Storage of the audit trail: ``AuditStore`` (what the handlers need), ``MongoAuditStore`` on PyMongo's
asyncio API (MongoDB 7 and FerretDB 1.24) and ``InMemoryAuditStore``, the fake of the fast tests.

Collections (one dict each in the fake):
  records      one document per captured event, ``_id`` = event id (idempotency), unique ``seq``
  chain        ``head`` (a hint of the last seq/hash) and ``anchor`` (where the chain starts after archiving)
  checkpoints  HMAC-sealed (seq, hash) pairs, ``_id`` = seq
  archive      records moved out of the chain by the retention job
  pii_reads    one document per clear-PII read, for the bulk-read rule, with its status (``domain.ReadStatus``)
  sends        one document per message that went out, which justifies a service's read before it
  episodes     one document per open violation episode, with its ``audit.violation`` in an outbox

Appending never forks the chain: the unique index on ``seq`` is the compare-and-set. A writer reads
the tail, seals its records after it and inserts them in order; a concurrent writer that took the
same seq first makes the insert fail on the index, and the loser re-reads the tail and re-seals
what is left. There is no "claimed but not written" state to heal: a crash mid-insert leaves a
contiguous, valid prefix; a crash before the head hint is moved leaves the hint behind, and the
next writer walks forward from it to the real tail. Both stores run this one algorithm
(``_ChainAppend``) over their own four primitives.
"""

from __future__ import annotations

import asyncio
import copy
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from guanxi_shared.events import CloudEvent
from guanxi_shared.outbox import Outbox
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from . import domain

Doc = dict[str, Any]

DUPLICATE_KEY = 11000
MAX_APPEND_ROUNDS = 100
ERASED = "customer.erased"


class ChainContention(RuntimeError):
    """Other writers kept winning every seq for too long; the batch is retried later."""


class AuditStore(Protocol):
    async def ensure_indexes(self) -> None: ...

    # The chain.
    async def append(self, captures: Sequence[domain.Capture]) -> list[Doc]:
        """Append each capture once (by event id), sealed after the real tail; the records this call wrote."""
        ...

    async def anchor(self) -> Doc | None: ...
    async def head_seq(self) -> int: ...
    def walk(self, after_seq: int, page: int) -> AsyncIterator[Doc]:
        """Every record after ``after_seq`` in seq order, read ``page`` at a time."""
        ...

    async def record_at(self, seq: int) -> Doc | None: ...
    async def erased_among(self, subjects: Sequence[str]) -> set[str]: ...
    async def erased_subjects(self) -> set[str]: ...

    # Checkpoints.
    async def all_checkpoints(self) -> list[Doc]: ...
    async def last_checkpoint_seq(self) -> int: ...
    async def save_checkpoint(self, checkpoint: Doc) -> bool:
        """False when that seq is sealed already (another instance)."""
        ...

    # Queries (records without their salts).
    async def query(self, query: domain.RecordQuery, after_seq: int, limit: int) -> list[Doc]: ...

    # Erasure and retention.
    async def redact_subject(self, subject: str, personal_fields: Sequence[str], marker: str) -> int:
        """Redact the customer's records in the chain and in the archive; how many changed."""
        ...

    async def expired_prefix(self, after_seq: int, older_than: datetime, limit: int) -> list[Doc]: ...
    async def archive_prefix(self, records: Sequence[Doc], anchor: Doc) -> None: ...

    # Violation rules.
    async def remember_pii_read(self, read: domain.PiiRead) -> None:
        """Keep the read once (by event id): a redelivery changes nothing, whatever its status is now."""
        ...

    async def distinct_customers_read(self, actor: str, since: datetime, until: datetime) -> int:
        """Distinct customers of the actor's reads at ``[since, until]`` that count (not pending, not justified)."""
        ...

    async def remember_send(self, send: domain.Send) -> None: ...
    async def find_send(self, customer_id: str, category: str, since: datetime, until: datetime) -> domain.Send | None:
        """A send of that customer and category at ``[since, until]``, if one is recorded."""
        ...

    async def justify_reads(self, customer_id: str, purpose: str, since: datetime, until: datetime, by: str) -> int:
        """Mark the pending reads of that customer and purpose at ``[since, until]`` justified by ``by``."""
        ...

    async def due_pii_reads(self, now: datetime, limit: int, actor: str | None = None) -> list[domain.PiiRead]:
        """Pending reads decided by ``now`` and lapsed reads not yet checked, oldest read first."""
        ...

    async def lapse_pii_read(self, event_id: str) -> bool:
        """pending → lapsed; False when it is no longer pending (a send justified it meanwhile)."""
        ...

    async def settle_pii_read(self, event_id: str) -> None:
        """lapsed → counted, once the rule was checked at its time."""
        ...

    async def open_episode(self, key: str, at: datetime, until: datetime, violation: CloudEvent) -> bool:
        """Open the episode with its ``violation`` to publish, unless one is open at ``at`` (then it is
        extended to ``until``); True when this call opened it."""
        ...

    async def close_episode(self, key: str) -> None: ...


class _ChainAppend(ABC):
    """The append algorithm both stores share, over their primitives."""

    async def append(self, captures: Sequence[domain.Capture]) -> list[Doc]:
        stored = await self._stored_ids([c.event_id for c in captures])
        pending = [c for c in captures if c.event_id not in stored]
        written: list[Doc] = []
        for _ in range(MAX_APPEND_ROUNDS):
            if not pending:
                return written
            seq, hash_ = await self.tail()
            records = domain.seal_chain(pending, seq, hash_)
            inserted = await self._insert_in_order(records)
            written += records[:inserted]
            if inserted:
                last = records[inserted - 1]
                await self._move_head(last["seq"], last["hash"])
            # What is left: neither written now nor (on an id collision) by another instance.
            done = await self._stored_ids([c.event_id for c in pending])
            pending = [c for c in pending if c.event_id not in done]
        raise ChainContention(f"{len(pending)} records not appended after {MAX_APPEND_ROUNDS} rounds")

    @abstractmethod
    async def tail(self) -> tuple[int, str]:
        """The real last (seq, hash): the head hint, then any records written after it."""

    @abstractmethod
    async def _stored_ids(self, ids: Sequence[str]) -> set[str]: ...

    @abstractmethod
    async def _insert_in_order(self, records: list[Doc]) -> int:
        """Insert in order up to the first record whose ``_id`` or ``seq`` is taken; how many went in."""

    @abstractmethod
    async def _move_head(self, seq: int, hash_: str) -> None:
        """Move the head hint forward only: a slow writer never moves it back."""


class MongoAuditStore(_ChainAppend):
    def __init__(self, db: AsyncDatabase[Doc], outbox: Outbox) -> None:
        self._outbox = outbox
        self.records = db["records"]
        self.chain = db["chain"]
        self.checkpoints = db["checkpoints"]
        self.archive = db["archive"]
        self.pii_reads = db["pii_reads"]
        self.sends = db["sends"]
        self.episodes = db["episodes"]

    async def ensure_indexes(self) -> None:
        await self.records.create_index([("seq", ASCENDING)], unique=True, name="seq_unique")
        # Query paths of auditors: each filter with the seq order used for paging.
        for name in ("subject", "actor", "type", "trace_id"):
            await self.records.create_index([(name, ASCENDING), ("seq", ASCENDING)], name=f"{name}_seq")
        await self.records.create_index([("time", ASCENDING)], name="time")
        await self.pii_reads.create_index([("actor", ASCENDING), ("at", ASCENDING)], name="actor_at")
        await self.pii_reads.create_index([("customer_id", ASCENDING), ("at", ASCENDING)], name="customer_at")
        await self.pii_reads.create_index([("status", ASCENDING), ("decide_by", ASCENDING)], name="status_decide_by")
        await self.sends.create_index([("customer_id", ASCENDING), ("category", ASCENDING), ("at", ASCENDING)],
                                      name="customer_category_at")

    # --- the chain ------------------------------------------------------------------------------

    async def anchor(self) -> Doc | None:
        return await self.chain.find_one({"_id": "anchor"})

    async def head_seq(self) -> int:
        head = await self.chain.find_one({"_id": "head"})
        return int(head["seq"]) if head else 0

    async def tail(self) -> tuple[int, str]:
        head = await self.chain.find_one({"_id": "head"})
        if head is not None:
            seq, hash_ = int(head["seq"]), str(head["hash"])
        else:
            anchor = await self.anchor()
            seq, hash_ = (int(anchor["seq"]), str(anchor["hash"])) if anchor else (0, domain.GENESIS_HASH)
        last = await self.records.find_one({"seq": {"$gt": seq}}, {"seq": 1, "hash": 1}, sort=[("seq", DESCENDING)])
        if last is not None:
            seq, hash_ = int(last["seq"]), str(last["hash"])
        return seq, hash_

    async def _move_head(self, seq: int, hash_: str) -> None:
        # A lost race is a harmless duplicate: the upsert meets the head another writer moved further.
        try:
            await self.chain.update_one({"_id": "head", "seq": {"$lt": seq}}, {"$set": {"seq": seq, "hash": hash_}},
                                        upsert=True)
        except DuplicateKeyError:
            pass

    async def _stored_ids(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        return {d["_id"] async for d in self.records.find({"_id": {"$in": list(ids)}}, {"_id": 1})}

    async def _insert_in_order(self, records: list[Doc]) -> int:
        try:
            await self.records.insert_many(records, ordered=True)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return int(exc.details.get("nInserted", 0))
        return len(records)

    async def walk(self, after_seq: int, page: int) -> AsyncIterator[Doc]:
        cursor_seq = after_seq
        while True:
            batch = [d async for d in self.records.find({"seq": {"$gt": cursor_seq}}).sort("seq", ASCENDING).limit(page)]
            for doc in batch:
                yield doc
            if len(batch) < page:
                return
            last = batch[-1].get("seq")
            if not isinstance(last, int):
                return
            cursor_seq = last

    async def record_at(self, seq: int) -> Doc | None:
        return await self.records.find_one({"seq": seq})

    async def erased_among(self, subjects: Sequence[str]) -> set[str]:
        query = {"type": ERASED, "subject": {"$in": list(subjects)}}
        return {d["subject"] async for d in self.records.find(query, {"subject": 1})}

    async def erased_subjects(self) -> set[str]:
        return {d["subject"] async for d in self.records.find({"type": ERASED}, {"subject": 1})}

    # --- checkpoints ------------------------------------------------------------------------

    async def all_checkpoints(self) -> list[Doc]:
        return [d async for d in self.checkpoints.find({}).sort("seq", ASCENDING)]

    async def last_checkpoint_seq(self) -> int:
        last = await self.checkpoints.find_one({}, {"seq": 1}, sort=[("seq", DESCENDING)])
        return int(last["seq"]) if last else 0

    async def save_checkpoint(self, checkpoint: Doc) -> bool:
        try:
            await self.checkpoints.insert_one(checkpoint)
        except DuplicateKeyError:
            return False
        return True

    # --- queries -----------------------------------------------------------------------------

    async def query(self, query: domain.RecordQuery, after_seq: int, limit: int) -> list[Doc]:
        criteria: Doc = {**query.equalities()}
        span: Doc = {}
        if query.since is not None:
            span["$gte"] = query.since
        if query.until is not None:
            span["$lt"] = query.until
        if span:
            criteria["time"] = span
        criteria["seq"] = {"$gt": after_seq}
        return [d async for d in self.records.find(criteria, {"salts": 0}).sort("seq", ASCENDING).limit(limit)]

    # --- erasure ----------------------------------------------------------------------------

    async def redact_subject(self, subject: str, personal_fields: Sequence[str], marker: str) -> int:
        count = 0
        for collection in (self.records, self.archive):
            async for record in collection.find({"subject": subject}, {"data": 1, "redacted": 1}):
                redaction = domain.redaction(record, personal_fields, marker)
                if redaction is not None:
                    await collection.update_one({"_id": record["_id"]}, _redaction_update(redaction))
                    count += 1
        return count

    # --- retention ----------------------------------------------------------------------------

    async def expired_prefix(self, after_seq: int, older_than: datetime, limit: int) -> list[Doc]:
        """The oldest records, in chain order, up to the first one recorded at or after ``older_than``."""
        out: list[Doc] = []
        async for doc in self.records.find({"seq": {"$gt": after_seq}}).sort("seq", ASCENDING).limit(limit):
            if doc["recorded_at"] >= older_than:
                break
            out.append(doc)
        return out

    async def archive_prefix(self, records: Sequence[Doc], anchor: Doc) -> None:
        """Copy to the archive, move the anchor, then remove: a crash at any point loses nothing."""
        for record in records:
            await self.archive.replace_one({"_id": record["_id"]}, record, upsert=True)
        await self.chain.replace_one({"_id": "anchor"}, anchor, upsert=True)
        await self.records.delete_many({"seq": {"$lte": anchor["seq"]}})

    # --- violation rules --------------------------------------------------------------------

    async def remember_pii_read(self, read: domain.PiiRead) -> None:
        try:
            await self.pii_reads.insert_one(_read_doc(read))
        except DuplicateKeyError:
            pass

    async def distinct_customers_read(self, actor: str, since: datetime, until: datetime) -> int:
        pipeline: list[Doc] = [
            {"$match": {"actor": actor, "at": {"$gte": since, "$lte": until},
                        "status": {"$nin": [str(s) for s in domain.NOT_COUNTED]}}},
            {"$group": {"_id": "$customer_id"}},
            {"$count": "n"},
        ]
        rows = [r async for r in await self.pii_reads.aggregate(pipeline)]
        return int(rows[0]["n"]) if rows else 0

    async def remember_send(self, send: domain.Send) -> None:
        try:
            await self.sends.insert_one({"_id": send.event_id, "customer_id": send.customer_id,
                                         "category": send.category, "at": send.at})
        except DuplicateKeyError:
            pass

    async def find_send(self, customer_id: str, category: str, since: datetime, until: datetime) -> domain.Send | None:
        doc = await self.sends.find_one({"customer_id": customer_id, "category": category,
                                         "at": {"$gte": since, "$lte": until}}, sort=[("at", ASCENDING)])
        return None if doc is None else domain.Send(doc["_id"], doc["customer_id"], doc["category"], doc["at"])

    async def justify_reads(self, customer_id: str, purpose: str, since: datetime, until: datetime, by: str) -> int:
        result = await self.pii_reads.update_many(
            {"customer_id": customer_id, "purpose": purpose, "status": str(domain.ReadStatus.pending),
             "at": {"$gte": since, "$lte": until}},
            {"$set": {"status": str(domain.ReadStatus.justified), "justified_by": by}})
        return result.modified_count

    async def due_pii_reads(self, now: datetime, limit: int, actor: str | None = None) -> list[domain.PiiRead]:
        due: Doc = {"$or": [{"status": str(domain.ReadStatus.pending), "decide_by": {"$lte": now}},
                            {"status": str(domain.ReadStatus.lapsed)}]}
        if actor is not None:
            due["actor"] = actor
        return [_read_of(d) async for d in self.pii_reads.find(due).sort([("at", ASCENDING), ("_id", ASCENDING)])
                .limit(limit)]

    async def lapse_pii_read(self, event_id: str) -> bool:
        result = await self.pii_reads.update_one({"_id": event_id, "status": str(domain.ReadStatus.pending)},
                                                 {"$set": {"status": str(domain.ReadStatus.lapsed)}})
        return result.modified_count == 1

    async def settle_pii_read(self, event_id: str) -> None:
        await self.pii_reads.update_one({"_id": event_id, "status": str(domain.ReadStatus.lapsed)},
                                        {"$set": {"status": str(domain.ReadStatus.counted)}})

    async def open_episode(self, key: str, at: datetime, until: datetime, violation: CloudEvent) -> bool:
        # The upsert either matches the closed (or lapsed) episode or inserts a new one; a collision on
        # ``_id`` means another writer holds it open: the same episode.
        extended = await self.episodes.find_one_and_update(
            {"_id": key, "open": True, "until": {"$gte": at}}, {"$max": {"until": until}},
            return_document=ReturnDocument.AFTER)
        if extended is not None:
            return False
        try:
            await self._outbox.update(
                self.episodes, {"_id": key, "$or": [{"open": False}, {"until": {"$lt": at}}]},
                {"$set": {"open": True, "started": at, "until": until, "violation_id": violation.id}}, [violation],
                upsert=True)
        except DuplicateKeyError:
            return False
        return True

    async def close_episode(self, key: str) -> None:
        await self.episodes.update_one({"_id": key, "open": True}, {"$set": {"open": False}})


def _read_doc(read: domain.PiiRead) -> Doc:
    return {"_id": read.event_id, "actor": read.actor, "role": read.role, "customer_id": read.customer_id,
            "purpose": read.purpose, "at": read.at, "subject": read.subject, "correlationid": read.correlationid,
            "status": str(read.status), "decide_by": read.decide_by}


def _read_of(doc: Doc) -> domain.PiiRead:
    return domain.PiiRead(
        event_id=doc["_id"], actor=doc["actor"], role=doc.get("role", ""), customer_id=doc["customer_id"],
        purpose=doc.get("purpose", ""), at=doc["at"], subject=doc.get("subject") or doc["customer_id"],
        correlationid=doc.get("correlationid"), status=domain.ReadStatus(doc.get("status", domain.ReadStatus.counted)),
        decide_by=doc.get("decide_by"))


def _redaction_update(redaction: domain.Redaction) -> Doc:
    return {"$set": {**{f"data.{n}": redaction.marker for n in redaction.fields}, "redacted": list(redaction.redacted)},
            "$unset": {f"salts.{n}": "" for n in redaction.fields}}


class InMemoryAuditStore(_ChainAppend):
    """The store in dicts, one per collection, documents copied in and out as a database would.

    Every primitive the chain append uses yields to the event loop first, where the Mongo store awaits
    a round-trip, so concurrent appends interleave (and collide on a seq) as they do on the database.
    Events of the episodes it opens are recorded in ``published``."""

    def __init__(self) -> None:
        self.records: dict[str, Doc] = {}
        self.chain: dict[str, Doc] = {}
        self.checkpoints: dict[int, Doc] = {}
        self.archive: dict[str, Doc] = {}
        self.pii_reads: dict[str, Doc] = {}
        self.sends: dict[str, Doc] = {}
        self.episodes: dict[str, Doc] = {}
        self.published: list[CloudEvent] = []

    async def ensure_indexes(self) -> None:
        return None

    def _in_order(self, after_seq: int = 0) -> list[Doc]:
        return sorted((r for r in self.records.values() if r["seq"] > after_seq), key=lambda r: r["seq"])

    # --- the chain ------------------------------------------------------------------------------

    async def anchor(self) -> Doc | None:
        return copy.deepcopy(self.chain.get("anchor"))

    async def head_seq(self) -> int:
        head = self.chain.get("head")
        return int(head["seq"]) if head else 0

    async def tail(self) -> tuple[int, str]:
        await asyncio.sleep(0)
        head = self.chain.get("head") or self.chain.get("anchor")
        seq, hash_ = (int(head["seq"]), str(head["hash"])) if head else (0, domain.GENESIS_HASH)
        later = self._in_order(seq)
        return (int(later[-1]["seq"]), str(later[-1]["hash"])) if later else (seq, hash_)

    async def _move_head(self, seq: int, hash_: str) -> None:
        await asyncio.sleep(0)
        head = self.chain.get("head")
        if head is None or head["seq"] < seq:
            self.chain["head"] = {"_id": "head", "seq": seq, "hash": hash_}

    async def _stored_ids(self, ids: Sequence[str]) -> set[str]:
        await asyncio.sleep(0)
        return {i for i in ids if i in self.records}

    async def _insert_in_order(self, records: list[Doc]) -> int:
        await asyncio.sleep(0)
        taken = {r["seq"] for r in self.records.values()}
        for inserted, record in enumerate(records):
            if record["_id"] in self.records or record["seq"] in taken:
                return inserted
            self.records[record["_id"]] = copy.deepcopy(record)
            taken.add(record["seq"])
        return len(records)

    async def walk(self, after_seq: int, page: int) -> AsyncIterator[Doc]:
        for record in self._in_order(after_seq):
            yield copy.deepcopy(record)

    async def record_at(self, seq: int) -> Doc | None:
        return next((copy.deepcopy(r) for r in self.records.values() if r["seq"] == seq), None)

    async def erased_among(self, subjects: Sequence[str]) -> set[str]:
        return set(subjects) & await self.erased_subjects()

    async def erased_subjects(self) -> set[str]:
        return {r["subject"] for r in self.records.values() if r["type"] == ERASED}

    # --- checkpoints ------------------------------------------------------------------------

    async def all_checkpoints(self) -> list[Doc]:
        return [copy.deepcopy(self.checkpoints[seq]) for seq in sorted(self.checkpoints)]

    async def last_checkpoint_seq(self) -> int:
        return max(self.checkpoints, default=0)

    async def save_checkpoint(self, checkpoint: Doc) -> bool:
        if checkpoint["_id"] in self.checkpoints:
            return False
        self.checkpoints[checkpoint["_id"]] = copy.deepcopy(checkpoint)
        return True

    # --- queries -----------------------------------------------------------------------------

    async def query(self, query: domain.RecordQuery, after_seq: int, limit: int) -> list[Doc]:
        wanted = query.equalities()
        # As stored: a time in the query counts to the millisecond, in UTC.
        since = domain.as_utc_ms(query.since) if query.since is not None else None
        until = domain.as_utc_ms(query.until) if query.until is not None else None
        found = [r for r in self._in_order(after_seq)
                 if all(r.get(k) == v for k, v in wanted.items())
                 and (since is None or r["time"] >= since) and (until is None or r["time"] < until)]
        return [{k: copy.deepcopy(v) for k, v in r.items() if k != "salts"} for r in found[:limit]]

    # --- erasure ----------------------------------------------------------------------------

    async def redact_subject(self, subject: str, personal_fields: Sequence[str], marker: str) -> int:
        count = 0
        for collection in (self.records, self.archive):
            for record_id, record in list(collection.items()):
                redaction = domain.redaction(record, personal_fields, marker) if record["subject"] == subject else None
                if redaction is not None:
                    collection[record_id] = redaction.apply(record)
                    count += 1
        return count

    # --- retention ----------------------------------------------------------------------------

    async def expired_prefix(self, after_seq: int, older_than: datetime, limit: int) -> list[Doc]:
        out: list[Doc] = []
        for record in self._in_order(after_seq)[:limit]:
            if record["recorded_at"] >= older_than:
                break
            out.append(copy.deepcopy(record))
        return out

    async def archive_prefix(self, records: Sequence[Doc], anchor: Doc) -> None:
        for record in records:
            self.archive[record["_id"]] = copy.deepcopy(record)
        self.chain["anchor"] = copy.deepcopy(anchor)
        self.records = {k: r for k, r in self.records.items() if r["seq"] > anchor["seq"]}

    # --- violation rules --------------------------------------------------------------------

    async def remember_pii_read(self, read: domain.PiiRead) -> None:
        doc = _read_doc(read)
        doc["at"] = domain.as_utc_ms(read.at)
        self.pii_reads.setdefault(read.event_id, doc)

    async def distinct_customers_read(self, actor: str, since: datetime, until: datetime) -> int:
        not_counted = {str(s) for s in domain.NOT_COUNTED}
        return len({r["customer_id"] for r in self.pii_reads.values()
                    if r["actor"] == actor and since <= r["at"] <= until and r.get("status") not in not_counted})

    async def remember_send(self, send: domain.Send) -> None:
        self.sends.setdefault(send.event_id, {"_id": send.event_id, "customer_id": send.customer_id,
                                              "category": send.category, "at": domain.as_utc_ms(send.at)})

    async def find_send(self, customer_id: str, category: str, since: datetime, until: datetime) -> domain.Send | None:
        found = sorted((d for d in self.sends.values() if d["customer_id"] == customer_id and d["category"] == category
                        and since <= d["at"] <= until), key=lambda d: d["at"])
        return domain.Send(found[0]["_id"], customer_id, category, found[0]["at"]) if found else None

    async def justify_reads(self, customer_id: str, purpose: str, since: datetime, until: datetime, by: str) -> int:
        count = 0
        for r in self.pii_reads.values():
            if (r["customer_id"] == customer_id and r.get("purpose") == purpose
                    and r.get("status") == domain.ReadStatus.pending and since <= r["at"] <= until):
                r.update(status=str(domain.ReadStatus.justified), justified_by=by)
                count += 1
        return count

    async def due_pii_reads(self, now: datetime, limit: int, actor: str | None = None) -> list[domain.PiiRead]:
        due = [r for r in self.pii_reads.values() if (actor is None or r["actor"] == actor) and (
            r.get("status") == domain.ReadStatus.lapsed
            or (r.get("status") == domain.ReadStatus.pending and r["decide_by"] <= now))]
        return [_read_of(r) for r in sorted(due, key=lambda r: (r["at"], r["_id"]))[:limit]]

    async def lapse_pii_read(self, event_id: str) -> bool:
        read = self.pii_reads.get(event_id)
        if read is None or read.get("status") != domain.ReadStatus.pending:
            return False
        read["status"] = str(domain.ReadStatus.lapsed)
        return True

    async def settle_pii_read(self, event_id: str) -> None:
        read = self.pii_reads.get(event_id)
        if read is not None and read.get("status") == domain.ReadStatus.lapsed:
            read["status"] = str(domain.ReadStatus.counted)

    async def open_episode(self, key: str, at: datetime, until: datetime, violation: CloudEvent) -> bool:
        episode = self.episodes.get(key)
        if episode is not None and episode["open"] and episode["until"] >= at:
            episode["until"] = max(episode["until"], until)
            return False
        self.episodes[key] = {**(episode or {}), "_id": key, "open": True, "started": at, "until": until,
                              "violation_id": violation.id}
        self.published.append(violation)
        return True

    async def close_episode(self, key: str) -> None:
        if key in self.episodes:
            self.episodes[key]["open"] = False
