"""Idempotency records in the gateway's own Mongo database.

A POST with ``Idempotency-Key`` claims ``(caller, key)`` by inserting a pending record (the unique
``_id`` makes the claim atomic, so two concurrent duplicates cannot both run). The first answer is
stored and replayed to every retry. FerretDB has no TTL indexes, so a background sweep deletes
expired records.

A pending record holds a lease: a live gateway answers (or gives up on the service) well within it,
so a record still pending past its lease belongs to a gateway that died mid-request. A retry then
takes it over and runs the request again instead of meeting 409 until the record expires. The
request may already have had its effect before the gateway died; that is why the owning services
are idempotent on the key themselves (see the gateway README, "Idempotency-Key"): one effect per
key, even across a crash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from bson import Binary
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Claim:
    outcome: Literal["claimed", "replay", "in_progress", "mismatch"]
    answer: StoredAnswer | None = None


def record_id(caller: str, key: str) -> str:
    # Hashed: keys are caller-chosen strings and must not become an injection or size problem.
    return hashlib.sha256(f"{caller}\x00{key}".encode()).hexdigest()


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


class IdempotencyStore(Protocol):
    async def claim(self, rid: str, fp: str, now: datetime) -> Claim: ...
    async def complete(self, rid: str, answer: StoredAnswer, now: datetime) -> None: ...
    async def release(self, rid: str) -> None: ...
    async def sweep(self, now: datetime) -> int: ...


class MongoIdempotencyStore:
    def __init__(self, collection: AsyncCollection[dict[str, Any]], ttl: timedelta,
                 lease: timedelta = timedelta(seconds=30)) -> None:
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
        if doc.get("expires_at") and doc["expires_at"] <= now:
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
        # Records written before leases existed count from their creation.
        lease_until = doc.get("lease_until") or doc["created_at"] + self._lease
        if lease_until > now:
            return Claim("in_progress")
        # Only the retry whose swap matches the lease it saw wins; the others keep getting 409.
        taken = await self._coll.find_one_and_update(
            {"_id": doc["_id"], "state": "pending", "lease_until": doc.get("lease_until")},
            {"$set": {"lease_until": now + self._lease}})
        return Claim("claimed") if taken is not None else Claim("in_progress")

    async def complete(self, rid: str, answer: StoredAnswer, now: datetime) -> None:
        await self._coll.update_one({"_id": rid}, {"$set": {
            "state": "done", "status": answer.status, # FerretDB stores no nested arrays: headers as a list of {name, value}.
            "headers": [{"name": k, "value": v} for k, v in answer.headers],
            "body": Binary(answer.body), "completed_at": now}})

    async def release(self, rid: str) -> None:
        await self._coll.delete_one({"_id": rid, "state": "pending"})

    async def sweep(self, now: datetime) -> int:
        result = await self._coll.delete_many({"expires_at": {"$lt": now}})
        return int(result.deleted_count)
