"""Mongo storage of the audit trail (PyMongo async; runs on MongoDB 7 and FerretDB 1.24).

Collections:
  records      one document per captured event, ``_id`` = event id (idempotency), unique ``seq``
  chain        ``head`` (a hint of the last seq/hash) and ``anchor`` (where the chain starts after archiving)
  checkpoints  HMAC-sealed (seq, hash) pairs, ``_id`` = seq
  archive      records moved out of the chain by the retention job
  pii_reads    one document per clear-PII read, for the bulk-read rule
  episodes     one document per open violation episode, with its ``audit.violation`` in an outbox

Appending never forks the chain: the unique index on ``seq`` is the compare-and-set. A writer reads
the tail, seals its records after it and inserts them in order; a concurrent writer that took the
same seq first makes the insert fail on the index, and the loser re-reads the tail and re-seals
what is left. There is no "claimed but not written" state to heal: a crash mid-insert leaves a
contiguous, valid prefix; a crash before the head hint is moved leaves the hint behind, and the
next writer walks forward from it to the real tail.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from guanxi_shared.events import CloudEvent
from guanxi_shared.outbox import outbox_set
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from . import domain

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
MAX_APPEND_ROUNDS = 100


class ChainContention(RuntimeError):
    """Other writers kept winning every seq for too long; the batch is retried later."""


class AuditStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.records = db["records"]
        self.chain = db["chain"]
        self.checkpoints = db["checkpoints"]
        self.archive = db["archive"]
        self.pii_reads = db["pii_reads"]
        self.episodes = db["episodes"]

    async def ensure_indexes(self) -> None:
        await self.records.create_index([("seq", ASCENDING)], unique=True, name="seq_unique")
        # Query paths of auditors: each filter with the seq order used for paging.
        for name in ("subject", "actor", "type", "trace_id"):
            await self.records.create_index([(name, ASCENDING), ("seq", ASCENDING)], name=f"{name}_seq")
        await self.records.create_index([("time", ASCENDING)], name="time")
        await self.pii_reads.create_index([("actor", ASCENDING), ("at", ASCENDING)], name="actor_at")

    # --- the chain ------------------------------------------------------------------------------

    async def start(self) -> tuple[int, str]:
        """Where the chain begins: the archive anchor when older records were archived."""
        anchor = await self.chain.find_one({"_id": "anchor"})
        if anchor is None:
            return 0, domain.GENESIS_HASH
        return int(anchor["seq"]), str(anchor["hash"])

    async def anchor(self) -> dict[str, Any] | None:
        return await self.chain.find_one({"_id": "anchor"})

    async def head_seq(self) -> int:
        head = await self.chain.find_one({"_id": "head"})
        return int(head["seq"]) if head else 0

    async def tail(self) -> tuple[int, str]:
        """The real last (seq, hash): the head hint, then any records written after it."""
        head = await self.chain.find_one({"_id": "head"})
        seq, hash_ = (int(head["seq"]), str(head["hash"])) if head else await self.start()
        last = await self.records.find_one({"seq": {"$gt": seq}}, {"seq": 1, "hash": 1}, sort=[("seq", DESCENDING)])
        if last is not None:
            seq, hash_ = int(last["seq"]), str(last["hash"])
        return seq, hash_

    async def _move_head(self, seq: int, hash_: str) -> None:
        # Only forward: a slow writer never moves the hint back. A lost race is a harmless duplicate.
        try:
            await self.chain.update_one({"_id": "head", "seq": {"$lt": seq}}, {"$set": {"seq": seq, "hash": hash_}},
                                        upsert=True)
        except DuplicateKeyError:
            pass

    async def stored_ids(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        return {d["_id"] async for d in self.records.find({"_id": {"$in": list(ids)}}, {"_id": 1})}

    async def append(self, captures: Sequence[domain.Capture]) -> list[dict[str, Any]]:
        """Append each capture once (by event id); returns the records this call wrote."""
        stored = await self.stored_ids([c.event_id for c in captures])
        pending = [c for c in captures if c.event_id not in stored]
        written: list[dict[str, Any]] = []
        for _ in range(MAX_APPEND_ROUNDS):
            if not pending:
                return written
            seq, hash_ = await self.tail()
            records = domain.seal_chain(pending, seq, hash_)
            inserted = len(records)
            try:
                await self.records.insert_many(records, ordered=True)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                inserted = int(exc.details.get("nInserted", 0))
            written += records[:inserted]
            if inserted:
                last = records[inserted - 1]
                await self._move_head(last["seq"], last["hash"])
            # What is left: neither written now nor (on an id collision) by another instance.
            done = await self.stored_ids([c.event_id for c in pending])
            pending = [c for c in pending if c.event_id not in done]
        raise ChainContention(f"{len(pending)} records not appended after {MAX_APPEND_ROUNDS} rounds")

    async def walk(self, after_seq: int, page: int) -> AsyncIterator[dict[str, Any]]:
        """Every record after ``after_seq`` in seq order, read in pages (bounded memory)."""
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

    async def erased_among(self, subjects: Sequence[str]) -> set[str]:
        query = {"type": "customer.erased", "subject": {"$in": list(subjects)}}
        return {d["subject"] async for d in self.records.find(query, {"subject": 1})}

    async def erased_subjects(self) -> set[str]:
        return {d["subject"] async for d in self.records.find({"type": "customer.erased"}, {"subject": 1})}

    # --- checkpoints ------------------------------------------------------------------------

    async def all_checkpoints(self) -> list[dict[str, Any]]:
        return [d async for d in self.checkpoints.find({}).sort("seq", ASCENDING)]

    async def last_checkpoint_seq(self) -> int:
        last = await self.checkpoints.find_one({}, {"seq": 1}, sort=[("seq", DESCENDING)])
        return int(last["seq"]) if last else 0

    async def record_at(self, seq: int) -> dict[str, Any] | None:
        return await self.records.find_one({"seq": seq})

    async def save_checkpoint(self, checkpoint: dict[str, Any]) -> bool:
        try:
            await self.checkpoints.insert_one(checkpoint)
        except DuplicateKeyError:
            return False  # another instance sealed the same seq
        return True

    # --- queries -----------------------------------------------------------------------------

    async def query(self, filters: dict[str, Any], after_seq: int, limit: int) -> list[dict[str, Any]]:
        criteria = {**filters, "seq": {"$gt": after_seq}}
        return [d async for d in self.records.find(criteria, {"salts": 0}).sort("seq", ASCENDING).limit(limit)]

    # --- erasure ----------------------------------------------------------------------------

    async def redact_subject(self, subject: str, personal_fields: Sequence[str], marker: str) -> int:
        """Redact the customer's records in the chain and in the archive; returns how many changed."""
        count = 0
        for collection in (self.records, self.archive):
            async for record in collection.find({"subject": subject}, {"data": 1, "redacted": 1}):
                update = domain.redaction(record, personal_fields, marker)
                if update is not None:
                    await collection.update_one({"_id": record["_id"]}, update)
                    count += 1
        return count

    # --- retention ----------------------------------------------------------------------------

    async def expired_prefix(self, after_seq: int, older_than: datetime, limit: int) -> list[dict[str, Any]]:
        """The oldest records, in chain order, up to the first one recorded at or after ``older_than``."""
        out: list[dict[str, Any]] = []
        async for doc in self.records.find({"seq": {"$gt": after_seq}}).sort("seq", ASCENDING).limit(limit):
            if doc["recorded_at"] >= older_than:
                break
            out.append(doc)
        return out

    async def archive_prefix(self, records: Sequence[dict[str, Any]], anchor: dict[str, Any]) -> None:
        """Copy to the archive, move the anchor, then remove: a crash at any point loses nothing."""
        for record in records:
            await self.archive.replace_one({"_id": record["_id"]}, record, upsert=True)
        await self.chain.replace_one({"_id": "anchor"}, anchor, upsert=True)
        await self.records.delete_many({"seq": {"$lte": anchor["seq"]}})

    # --- violation rules --------------------------------------------------------------------

    async def remember_pii_read(self, event_id: str, actor: str, customer_id: str, at: datetime) -> None:
        try:
            await self.pii_reads.insert_one({"_id": event_id, "actor": actor, "customer_id": customer_id, "at": at})
        except DuplicateKeyError:
            pass

    async def distinct_customers_read(self, actor: str, since: datetime, until: datetime) -> int:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"actor": actor, "at": {"$gte": since, "$lte": until}}},
            {"$group": {"_id": "$customer_id"}},
            {"$count": "n"},
        ]
        rows = [r async for r in await self.pii_reads.aggregate(pipeline)]
        return int(rows[0]["n"]) if rows else 0

    async def open_episode(self, key: str, at: datetime, until: datetime, violation: CloudEvent) -> bool:
        """Open an episode unless one is open at ``at``; True when this call opened it.

        An open episode is extended instead. The upsert either matches the closed episode or
        inserts a new one; a collision on ``_id`` means the episode is open: same episode.
        """
        extended = await self.episodes.find_one_and_update(
            {"_id": key, "open": True, "until": {"$gte": at}}, {"$max": {"until": until}},
            return_document=ReturnDocument.AFTER)
        if extended is not None:
            return False
        try:
            await self.episodes.update_one(
                {"_id": key, "$or": [{"open": False}, {"until": {"$lt": at}}]},
                {"$set": {"open": True, "started": at, "until": until, "violation_id": violation.id,
                          **outbox_set([violation])}},
                upsert=True)
        except DuplicateKeyError:
            return False
        return True

    async def close_episode(self, key: str) -> None:
        await self.episodes.update_one({"_id": key, "open": True}, {"$set": {"open": False}})
