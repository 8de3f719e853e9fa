"""Outbox relay that never publishes one entry twice from the same process, and clears in bulk.

The shared relay publishes from two paths: ``flush`` right after a write, and the polling loop.
Both can read the same pending entry before either clears it, and then both publish it (harmless,
consumers deduplicate on the event id, but wasteful under a backlog and confusing downstream).
Here an entry being published, or published moments ago, is left to the path that has it.
Published entries are cleared with one bulk write per pass instead of one update per event,
which matters when a backlog of purchases turns into thousands of ``survey.scheduled`` events.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from guanxi_shared.events import decode_event
from guanxi_shared.messaging import EventPublisher
from guanxi_shared.outbox import OutboxRelay
from opentelemetry import context as otel_context
from opentelemetry import propagate
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

RECENT = 50_000  # event ids remembered after publishing (enough to cover a poll pass)


class SingleFlightRelay(OutboxRelay):
    def __init__(self, publisher: EventPublisher, collections: Sequence[AsyncCollection[Any]], poll_seconds: float = 0.5) -> None:
        super().__init__(publisher, collections, poll_seconds)
        self._in_flight: set[str] = set()
        self._recent: OrderedDict[str, None] = OrderedDict()

    async def _publish_docs(self, collection: AsyncCollection[Any], docs: list[dict[str, Any]]) -> int:
        if not docs:
            return 0
        done: dict[Any, list[str]] = {}
        # Documents in parallel (the producer batches them); one document's entries in order.
        results = await asyncio.gather(*(self._publish_entries(d, done) for d in docs), return_exceptions=True)
        if done:
            await collection.bulk_write(
                [UpdateOne({"_id": doc_id}, {"$unset": {f"outbox.{e}": "" for e in ids}}) for doc_id, ids in done.items()],
                ordered=False,
            )
        for result in results:
            if isinstance(result, BaseException):
                raise result  # the polling loop logs it and retries what is left
        return sum(r for r in results if isinstance(r, int))

    async def _publish_entries(self, doc: dict[str, Any], done: dict[Any, list[str]]) -> int:
        entries = sorted((doc.get("outbox") or {}).items(), key=lambda kv: kv[1].get("seq", 0))
        count = 0
        for event_id, entry in entries:
            if event_id in self._in_flight:
                break  # the other path is publishing this document, in order
            if event_id not in self._recent:
                self._in_flight.add(event_id)
                try:
                    token = otel_context.attach(propagate.extract(entry.get("trace") or {}))
                    try:
                        await self._publisher.publish(decode_event(entry["value"]))
                    finally:
                        otel_context.detach(token)
                finally:
                    self._in_flight.discard(event_id)
                self._recent[event_id] = None
                if len(self._recent) > RECENT:
                    self._recent.popitem(last=False)
                self.published += 1
                count += 1
            done.setdefault(doc["_id"], []).append(event_id)
        return count
