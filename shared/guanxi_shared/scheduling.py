"""Durable one-shot jobs: "at time T, emit these events", fired exactly once, surviving restarts.

A job is a document keyed by its occasion (e.g. ``birthday:<customer>:2026``), so scheduling the
same occasion twice is one job. Firing is a conditional update ``pending → fired`` that writes the
events into the job's outbox in the same update: two instances racing, or a restart mid-way,
cannot fire a job twice, and the outbox relay makes sure the events reach Kafka.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from .clock import Clock
from .events import CloudEvent
from .outbox import Outbox

log = logging.getLogger(__name__)

BuildEvents = Callable[[dict[str, Any], datetime], Awaitable[list[CloudEvent]]]


class DueWatch:
    """Whether a scheduler's next query for due work can find any, so an idle scheduler does not ask.

    A query is worth running: on the first pass; right after a pass that found work (there may be
    more); once a due time this process has written (``note``) has come; and at least every ``rescan``
    (what another instance or an earlier process wrote). Between those, nothing this process knows of
    is due. A scheduler asking every second costs little on MongoDB (an index range), but on FerretDB
    every such query reads and decodes the whole collection, beside the writes of the service.

    At most ``keep`` due times are remembered (the earliest ones); later ones are found by a rescan."""

    def __init__(self, rescan: timedelta, keep: int = 10_000) -> None:
        self._rescan = rescan
        self._keep = keep
        self._due: list[tuple[datetime, int]] = []  # (due time, note number), sorted
        self._last_pass: datetime | None = None
        self._again = True
        self._notes = 0

    def note(self, due_at: datetime) -> None:
        """Something written here becomes due at ``due_at``."""
        self._notes += 1
        bisect.insort(self._due, (due_at, self._notes))
        if len(self._due) > self._keep:
            self._due.pop()

    def wanted(self, now: datetime) -> bool:
        return (self._again or self._last_pass is None or now - self._last_pass >= self._rescan
                or (bool(self._due) and self._due[0][0] <= now))

    def begin(self, now: datetime) -> tuple[datetime, int]:
        """Before the queries of a pass: what ``done`` needs to know what the pass has seen."""
        return now, self._notes

    def done(self, started: tuple[datetime, int], found: bool) -> None:
        """After the pass begun at ``started``; ``found``: it did some work (look again next time)."""
        at, notes = started
        self._again = found
        self._last_pass = at
        # Due times noted while the pass ran may have been written after its queries: they stay.
        self._due = [d for d in self._due if d[0] > at or d[1] > notes]

    async def pass_if_due(self, now: datetime, run: Callable[[], Awaitable[int]]) -> int:
        """``run`` the scheduler's pass (returning how much it did) when ``wanted``; -1 when it was not."""
        if not self.wanted(now):
            return -1
        started, did = self.begin(now), -1
        try:
            did = await run()
        finally:
            self.done(started, did != 0)  # a failed pass looks again next time
        return did


class DueJobs:
    """Durable one-shot jobs in ``collection``; firing writes the job's events through ``outbox``."""

    def __init__(self, collection: AsyncCollection[Any], clock: Clock, outbox: Outbox,
                 rescan: timedelta = timedelta(seconds=60)) -> None:
        self.collection = collection
        self.clock = clock
        self.outbox = outbox
        self.watch = DueWatch(rescan)

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("state", ASCENDING), ("due_at", ASCENDING)])

    async def schedule(self, key: str, due_at: datetime, kind: str, data: dict[str, Any]) -> bool:
        """Create the job unless it exists; returns True when it was new."""
        self.watch.note(due_at)
        result = await self.collection.update_one(
            {"_id": key},
            {"$setOnInsert": {"due_at": due_at, "kind": kind, "data": data, "state": "pending",
                              "created_at": self.clock.now()}},
            upsert=True,
        )
        return result.upserted_id is not None

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
        # Read first, then write: with one store connection an update issued while the cursor still
        # holds it would wait for it for ever.
        for job in [j async for j in cursor]:
            events = await build(job, now)
            result = await self.outbox.update(self.collection, {"_id": job["_id"], "state": "pending"},
                                              {"$set": {"state": "fired", "fired_at": now}}, events)
            fired += result.modified_count
        return fired

    async def pass_if_due(self, build: BuildEvents) -> int:
        """One scheduler pass (for ``ServiceRuntime.every``): fire what is due, when anything can be."""
        return await self.watch.pass_if_due(self.clock.now(), partial(self.fire_due, build))
