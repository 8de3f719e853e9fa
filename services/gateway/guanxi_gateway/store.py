"""Idempotency records: ``IdempotencyStore`` (what the front door needs), ``MongoIdempotencyStore`` in
the gateway's own database and ``InMemoryIdempotencyStore``, the fake of the fast tests.

A POST with ``Idempotency-Key`` claims ``(caller, key)`` by inserting a pending record (the unique
``_id`` makes the claim atomic, so two concurrent duplicates cannot both run). The first answer is
stored and replayed to every retry. FerretDB has no TTL indexes, so a periodic sweep deletes
expired records.

A pending record holds a lease: a live gateway answers (or gives up on the service) well within it,
so a record still pending past its lease belongs to a gateway that died mid-request. A retry then
takes it over and runs the request again instead of meeting 409 until the record expires. The
request may already have had its effect before the gateway died; that is why the owning services
are idempotent on the key themselves (see the gateway README, "Idempotency-Key"): one effect per
key, even across a crash.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from bson import Binary
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from .domain import Claim, StoredAnswer

__all__ = ["Claim", "IdempotencyStore", "InMemoryIdempotencyStore", "MongoIdempotencyStore", "StoredAnswer"]

DEFAULT_LEASE = timedelta(seconds=30)


class IdempotencyStore(Protocol):
    async def claim(self, rid: str, fp: str, now: datetime) -> Claim:
        """Claim record ``rid`` for a request with fingerprint ``fp``, or say why not (a replay, a request
        still in progress, another request under the same key). An expired record, or a pending one past
        its lease, is taken over by exactly one caller."""
        ...

    async def complete(self, rid: str, answer: StoredAnswer, now: datetime) -> None: ...

    async def release(self, rid: str) -> None:
        """Forget a pending claim (no answer worth replaying): the next retry runs again."""
        ...

    async def sweep(self, now: datetime) -> int:
        """Delete the expired records; how many."""
        ...


class MongoIdempotencyStore:
    def __init__(self, collection: AsyncCollection[dict[str, Any]], ttl: timedelta, lease: timedelta = DEFAULT_LEASE) -> None:
        self._coll = collection
        self._ttl = ttl
        self._lease = lease

    async def ensure_indexes(self) -> None:
        await self._coll.create_index("expires_at")

    async def claim(self, rid: str, fp: str, now: datetime) -> Claim:
        try:
            await self._coll.insert_one({"_id": rid, "state": "pending", "fingerprint": fp, "created_at": now,
                                         "lease_until": now + self._lease, "expires_at": now + self._ttl})
            return Claim("claimed")
        except DuplicateKeyError:
            pass
        doc = await self._coll.find_one({"_id": rid})
        if doc is None:  # released between our insert and read: the caller may simply retry
            return Claim("in_progress")
        if doc["expires_at"] <= now:
            # An expired record is as good as none: take it over (only one caller wins the swap).
            taken = await self._coll.find_one_and_update(
                {"_id": rid, "expires_at": doc["expires_at"]},
                {"$set": {"state": "pending", "fingerprint": fp, "created_at": now, "lease_until": now + self._lease,
                          "expires_at": now + self._ttl},
                 "$unset": {"status": "", "headers": "", "body": ""}})
            return Claim("claimed") if taken is not None else Claim("in_progress")
        if doc.get("fingerprint") != fp:
            return Claim("mismatch")
        if doc.get("state") != "done":
            return await self._take_over_if_abandoned(doc, now)
        answer = StoredAnswer(int(doc["status"]), [(h["name"], h["value"]) for h in doc.get("headers", [])],
                              bytes(doc.get("body", b"")))
        return Claim("replay", answer)

    async def _take_over_if_abandoned(self, doc: dict[str, Any], now: datetime) -> Claim:
        if doc["lease_until"] > now:
            return Claim("in_progress")
        # Only the retry whose swap matches the lease it saw wins; the others keep getting 409.
        taken = await self._coll.find_one_and_update(
            {"_id": doc["_id"], "state": "pending", "lease_until": doc["lease_until"]},
            {"$set": {"lease_until": now + self._lease}})
        return Claim("claimed") if taken is not None else Claim("in_progress")

    async def complete(self, rid: str, answer: StoredAnswer, now: datetime) -> None:
        await self._coll.update_one({"_id": rid}, {"$set": {
            "state": "done", "status": answer.status,
            # FerretDB stores no nested arrays: headers as a list of {name, value}.
            "headers": [{"name": k, "value": v} for k, v in answer.headers],
            "body": Binary(answer.body), "completed_at": now}})

    async def release(self, rid: str) -> None:
        await self._coll.delete_one({"_id": rid, "state": "pending"})

    async def sweep(self, now: datetime) -> int:
        result = await self._coll.delete_many({"expires_at": {"$lt": now}})
        return int(result.deleted_count)


class InMemoryIdempotencyStore:
    """The records in a dict, with the Mongo store's claims, leases, replays and expiry."""

    def __init__(self, ttl: timedelta, lease: timedelta = DEFAULT_LEASE) -> None:
        self._ttl = ttl
        self._lease = lease
        self.records: dict[str, dict[str, Any]] = {}

    def _pending(self, fp: str, now: datetime) -> dict[str, Any]:
        return {"state": "pending", "fingerprint": fp, "created_at": now, "lease_until": now + self._lease,
                "expires_at": now + self._ttl}

    async def claim(self, rid: str, fp: str, now: datetime) -> Claim:
        record = self.records.get(rid)
        if record is None or record["expires_at"] <= now:
            self.records[rid] = self._pending(fp, now)
            return Claim("claimed")
        if record["fingerprint"] != fp:
            return Claim("mismatch")
        if record["state"] != "done":
            if record["lease_until"] > now:
                return Claim("in_progress")
            record["lease_until"] = now + self._lease
            return Claim("claimed")
        return Claim("replay", record["answer"])

    async def complete(self, rid: str, answer: StoredAnswer, now: datetime) -> None:
        record = self.records.get(rid)
        if record is not None:
            record.update(state="done", answer=StoredAnswer(answer.status, list(answer.headers), bytes(answer.body)),
                          completed_at=now)

    async def release(self, rid: str) -> None:
        if self.records.get(rid, {}).get("state") == "pending":
            del self.records[rid]

    async def sweep(self, now: datetime) -> int:
        expired = [rid for rid, record in self.records.items() if record["expires_at"] < now]
        for rid in expired:
            del self.records[rid]
        return len(expired)
