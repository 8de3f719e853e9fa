"""Crisis counters and alert episodes: ``CrisisStore``, ``MongoCrisisStore``, ``InMemoryCrisisStore``.

Arrivals are counted per (dimension, value, time bucket), one document per bucket updated by ``_id``.
Each (dimension, value) has one episode document; starting an episode and its ``crisis.alert`` are
one guarded write, so an episode raises one alert however many instances see the spike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from guanxi_shared.events import CloudEvent
from guanxi_shared.outbox import Outbox
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

CRISIS = "crisis"
CRISIS_COUNTS = "crisis_counts"


@dataclass(frozen=True)
class Episode:
    dimension: str
    value: str
    active: bool
    number: int


def episode_id(dimension: str, value: str) -> str:
    return f"{dimension}|{value}"


def _bucket_id(dimension: str, value: str, bucket: datetime) -> str:
    return f"{dimension}|{value}|{bucket.isoformat()}"


class CrisisStore(Protocol):
    async def bump(self, dimension: str, value: str, bucket: datetime) -> None:
        """Count one arrival in its bucket."""
        ...

    async def bump_once(self, dimension: str, value: str, bucket: datetime, item_id: str) -> bool:
        """Count ``item_id`` once in its bucket (redelivery-safe); False when it was already counted."""
        ...

    async def counts_since(self, dimension: str, value: str, since: datetime) -> list[tuple[datetime, int]]:
        """(bucket start, count) of the buckets starting at or after ``since``."""
        ...

    async def episode(self, dimension: str, value: str) -> Episode:
        """The latest episode of (dimension, value); number 0 when there was none."""
        ...

    async def start_episode(self, current: Episode, at: datetime, events: Sequence[CloudEvent]) -> bool:
        """Start the episode after ``current`` with its alert, once: False when another writer won."""
        ...

    async def end_episode(self, current: Episode, at: datetime) -> None: ...

    async def active_episodes(self) -> list[Episode]: ...


class MongoCrisisStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], outbox: Outbox) -> None:
        self._outbox = outbox
        self.counts: AsyncCollection[dict[str, Any]] = db[CRISIS_COUNTS]
        self.episodes: AsyncCollection[dict[str, Any]] = db[CRISIS]

    async def ensure_indexes(self) -> None:
        await self.counts.create_index([("dimension", ASCENDING), ("value", ASCENDING), ("bucket", ASCENDING)])
        await self.episodes.create_index([("active", ASCENDING)])

    async def bump(self, dimension: str, value: str, bucket: datetime) -> None:
        await self.counts.update_one({"_id": _bucket_id(dimension, value, bucket)},
                                     {"$inc": {"count": 1},
                                      "$setOnInsert": {"dimension": dimension, "value": value, "bucket": bucket}},
                                     upsert=True)

    async def bump_once(self, dimension: str, value: str, bucket: datetime, item_id: str) -> bool:
        # The bucket holding the item already fails the filter, and the upsert then collides on _id.
        try:
            await self.counts.update_one(
                {"_id": _bucket_id(dimension, value, bucket), "items": {"$ne": item_id}},
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

    async def start_episode(self, current: Episode, at: datetime, events: Sequence[CloudEvent]) -> bool:
        key = episode_id(current.dimension, current.value)
        fields = {"dimension": current.dimension, "value": current.value, "active": True, "number": current.number + 1,
                  "started_at": at}
        if current.number == 0 and not current.active:
            return await self._outbox.insert(self.episodes, {"_id": key, **fields}, events)
        result = await self._outbox.update(self.episodes, {"_id": key, "number": current.number, "active": False},
                                           {"$set": fields}, events)
        return result.modified_count == 1

    async def end_episode(self, current: Episode, at: datetime) -> None:
        await self.episodes.update_one({"_id": episode_id(current.dimension, current.value), "number": current.number,
                                        "active": True}, {"$set": {"active": False, "ended_at": at}})

    async def active_episodes(self) -> list[Episode]:
        found = self.episodes.find({"active": True}, {"outbox": 0})
        return [Episode(d["dimension"], d["value"], True, int(d["number"])) async for d in found]


@dataclass
class _Bucket:
    dimension: str
    value: str
    bucket: datetime
    count: int = 0
    items: set[str] | None = None


class InMemoryCrisisStore:
    """``CrisisStore`` in dicts, for the fast tests; the alerts it was asked to save are in ``published``."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._episodes: dict[str, Episode] = {}
        self.published: list[CloudEvent] = []

    async def bump(self, dimension: str, value: str, bucket: datetime) -> None:
        key = _bucket_id(dimension, value, bucket)
        self._buckets.setdefault(key, _Bucket(dimension, value, bucket)).count += 1

    async def bump_once(self, dimension: str, value: str, bucket: datetime, item_id: str) -> bool:
        found = self._buckets.setdefault(_bucket_id(dimension, value, bucket), _Bucket(dimension, value, bucket))
        items = found.items if found.items is not None else set()
        if item_id in items:
            return False
        found.items = items | {item_id}
        found.count += 1
        return True

    async def counts_since(self, dimension: str, value: str, since: datetime) -> list[tuple[datetime, int]]:
        return [(b.bucket, b.count) for b in self._buckets.values()
                if b.dimension == dimension and b.value == value and b.bucket >= since]

    async def episode(self, dimension: str, value: str) -> Episode:
        return self._episodes.get(episode_id(dimension, value), Episode(dimension, value, False, 0))

    async def start_episode(self, current: Episode, at: datetime, events: Sequence[CloudEvent]) -> bool:
        key = episode_id(current.dimension, current.value)
        stored = self._episodes.get(key)
        if current.number == 0 and not current.active:
            if stored is not None:
                return False
        elif stored is None or stored.number != current.number or stored.active:
            return False
        self._episodes[key] = replace(current, active=True, number=current.number + 1)
        self.published.extend(events)
        return True

    async def end_episode(self, current: Episode, at: datetime) -> None:
        key = episode_id(current.dimension, current.value)
        stored = self._episodes.get(key)
        if stored is not None and stored.number == current.number and stored.active:
            self._episodes[key] = replace(stored, active=False)

    async def active_episodes(self) -> list[Episode]:
        return [e for e in self._episodes.values() if e.active]
