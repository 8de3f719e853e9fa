"""Durable one-shot jobs: "at time T, emit these events", fired exactly once, surviving restarts.

A job is a document keyed by its occasion (e.g. ``birthday:<customer>:2026``), so scheduling the
same occasion twice is one job. Firing is a conditional update ``pending → fired`` that writes the
events into the job's outbox in the same update: two instances racing, or a restart mid-way,
cannot fire a job twice, and the outbox relay makes sure the events reach Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from .clock import Clock
from .events import CloudEvent
from .outbox import OutboxRelay, outbox_set

log = logging.getLogger(__name__)

BuildEvents = Callable[[dict[str, Any], datetime], Awaitable[list[CloudEvent]]]


class DueJobs:
    def __init__(self, collection: AsyncCollection[Any], clock: Clock) -> None:
        self.collection = collection
        self.clock = clock

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("state", ASCENDING), ("due_at", ASCENDING)])

    async def schedule(self, key: str, due_at: datetime, kind: str, data: dict[str, Any]) -> bool:
        """Create the job unless it exists; returns True when it was new."""
        result = await self.collection.update_one(
            {"_id": key},
            {"$setOnInsert": {"due_at": due_at, "kind": kind, "data": data, "state": "pending",
                              "created_at": self.clock.now()}},
            upsert=True,
        )
        return result.upserted_id is not None

    async def reschedule(self, key: str, due_at: datetime) -> None:
        await self.collection.update_one({"_id": key, "state": "pending"}, {"$set": {"due_at": due_at}})

    async def cancel(self, key: str, reason: str) -> bool:
        r = await self.collection.update_one(
            {"_id": key, "state": "pending"},
            {"$set": {"state": "cancelled", "cancel_reason": reason, "cancelled_at": self.clock.now()}},
        )
        return r.modified_count == 1

    async def cancel_where(self, match: dict[str, Any], reason: str) -> int:
        r = await self.collection.update_many(
            {**match, "state": "pending"},
            {"$set": {"state": "cancelled", "cancel_reason": reason, "cancelled_at": self.clock.now()}},
        )
        return r.modified_count

    async def fire_due(self, build: BuildEvents, limit: int = 200) -> int:
        """Fire every job due now; returns how many this call fired."""
        now = self.clock.now()
        fired = 0
        cursor = self.collection.find({"state": "pending", "due_at": {"$lte": now}}).sort("due_at", ASCENDING).limit(limit)
        async for job in cursor:
            events = await build(job, now)
            update: dict[str, Any] = {"state": "fired", "fired_at": now}
            if events:
                update.update(outbox_set(events))
            result = await self.collection.update_one({"_id": job["_id"], "state": "pending"}, {"$set": update})
            fired += result.modified_count
        return fired

    async def run(self, build: BuildEvents, relay: OutboxRelay | None, interval: float = 1.0) -> None:
        while True:
            try:
                if await self.fire_due(build) and relay is not None:
                    relay.kick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler pass failed; retrying")
            await asyncio.sleep(interval)
