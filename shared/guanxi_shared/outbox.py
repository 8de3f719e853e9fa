"""Transactional outbox inside the aggregate document (docs/storage.md).

MongoDB-wire stores give atomicity per document only, so a state change and the events it causes
are written in the same update: the events go into an ``outbox`` map (event id → entry) of that
document.

A store writes through ``Outbox`` (``insert``, ``update``, ``update_each``): the change and its
events in one write, after which the events reach Kafka without the caller choosing how. Below that
line, ``OutboxRelay`` publishes: from memory right after a write, handed over without waiting when
the write belongs to a consumer's batch, and by polling for anything a crash left behind.

Published entries are then ``$unset``: one update of up to ``CLEAR_CHUNK`` documents by ``_id $in``
that unsets every published entry of the chunk (an entry id belongs to one document; unsetting an
absent path changes nothing). A crash between publish and clearing republishes the entry with the
same event id, and consumers deduplicate on it.

The map (rather than an array) is deliberate: FerretDB ignores ``$pull`` with a condition, while
``$unset`` of ``outbox.<id>`` works the same on MongoDB and FerretDB.

The trace context current at write time is stored with each entry and restored when publishing,
so the trace continues across the asynchronous hop (as eShop does with its integration events).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from pymongo.operations import UpdateOne
from pymongo.results import UpdateResult

from .events import CloudEvent
from .messaging import EventPublisher
from .store import UPDATES_PER_COMMAND

Doc = dict[str, Any]
Caused = Iterable[CloudEvent | tuple[CloudEvent, otel_context.Context]]

log = logging.getLogger(__name__)

RECENT_IDS = 50_000
# Up to this many documents are read one by one by _id (cheap on every store); more through one
# ``$in`` query (an index lookup on MongoDB and on the local FerretDB build; a scan on FerretDB as published).
BY_ID_LIMIT = 16
PENDING = {"outbox": {"$exists": True, "$ne": {}}}
# Publications ``hand_over`` runs at once before the writer has to wait.
MAX_HANDED_OVER = 4
# Pause between two deferred clearings (see ``clear_deferred``).
CLEAR_YIELD_SECONDS = 0.005
# Documents cleared by one update: one update per document costs a commit each, one for a chunk shares
# it; each document gets every unset path of its chunk, so the chunk stays small.
CLEAR_CHUNK = 100
# Set while a consumer's batch is at work (``OutboxRelay.holding``): its writes hand their events over
# instead of waiting for Kafka, so the batch can commit and take the next one.
_IN_BATCH: contextvars.ContextVar[bool] = contextvars.ContextVar("guanxi_outbox_in_batch", default=False)


def outbox_set(events: Caused) -> dict[str, Any]:
    """The ``$set`` fields that put ``events`` in the outbox of the document being updated.

    Each entry carries the current trace context, or the one paired with its event: a batch handler
    runs in the batch's context, and pairs each follow-up with the context of the message that caused
    it, so every customer's trace still continues across the hop."""
    current: dict[str, str] = {}
    propagate.inject(current)
    base = time.time_ns()
    fields: dict[str, Any] = {}
    for i, item in enumerate(events):
        carrier: dict[str, str]
        if isinstance(item, tuple):
            event, carrier = item[0], {}
            propagate.inject(carrier, context=item[1])
        else:
            event, carrier = item, current
        # Type and subject beside the JSON: the relay sends the stored bytes as they are (topic and key
        # from these) instead of parsing and validating every event it wrote itself, then encoding it again.
        fields[f"outbox.{event.id}"] = {"seq": base + i, "value": event.to_json().decode(), "trace": carrier,
                                        "type": event.type, "subject": event.subject}
    return fields


class OutboxRelay:
    """Publishes outbox entries of ``collections``: right after a write (``flush``) and by polling."""

    def __init__(self, publisher: EventPublisher, collections: Sequence[AsyncCollection[Any]], poll_seconds: float = 0.5,
                 idle_poll_seconds: float = 2.0, clear_idle_seconds: float = 1.0, busy_scan_seconds: float = 30.0,
                 max_deferred: int = 20_000, scan_collections: Sequence[AsyncCollection[Any]] | None = None) -> None:
        self._publisher = publisher
        self._collections = list(collections)
        # Where the polling pass looks for pending entries: the same collections reached through a
        # read pool (``ServiceRuntime.read_db``), when the service has one. The pass is a query on
        # ``outbox``, which FerretDB answers by reading the whole collection; on the single writing
        # connection every write of the service would queue behind it. Only the reading moves:
        # clearing stays an update by _id on ``collections``.
        self._scan_collections = list(scan_collections) if scan_collections is not None else self._collections
        if len(self._scan_collections) != len(self._collections):
            raise ValueError("scan_collections must name the same collections as collections")
        self._poll_seconds = poll_seconds
        self._idle_poll_seconds = max(idle_poll_seconds, poll_seconds)
        self._clear_idle_seconds = clear_idle_seconds
        self._busy_scan_seconds = busy_scan_seconds
        self._max_deferred = max_deferred
        self._wake = asyncio.Event()
        # One publisher per document at a time in this process: ``flush`` after a write and the
        # polling loop often reach the same document together, and would both publish its entries.
        # Each lock counts the publishers holding or waiting for it, and is forgotten when none is left.
        self._doc_locks: dict[tuple[str, Any], tuple[asyncio.Lock, int]] = {}
        # Ids Kafka confirmed lately: an entry whose clearing was interrupted (e.g. cancelled at
        # shutdown) is then only cleared by the next pass, not published again by this process.
        self._recent: OrderedDict[str, None] = OrderedDict()
        # Entries published by ``written`` whose clearing waits for a quiet moment (see there).
        self._deferred: dict[tuple[str, Any], tuple[AsyncCollection[Any], set[str]]] = {}
        self._busy_until = 0.0
        self._batches_at_work = 0
        self._handed_over: set[asyncio.Task[int]] = set()
        self._last_scan = 0.0
        self._kicked = False
        self.published = 0

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """Around a consumer's batch: the polling pass and the deferred clearing wait until it is done
        (and ``clear_idle_seconds`` after). Both go through the store the batch is writing to; the pass
        also publishes, document by document, entries the batch is about to publish from memory, and
        then takes the same documents' locks: either would hold up the next batch's first write."""
        self._batches_at_work += 1
        token = _IN_BATCH.set(True)
        try:
            yield
        finally:
            _IN_BATCH.reset(token)
            self._batches_at_work -= 1
            self._busy_until = max(self._busy_until, time.monotonic() + self._clear_idle_seconds)

    def _busy(self) -> bool:
        return self._batches_at_work > 0 or time.monotonic() < self._busy_until

    def kick(self) -> None:
        """Ask the polling loop to run now (after a write that added outbox entries)."""
        self._kicked = True
        self._wake.set()

    async def written(self, collection: AsyncCollection[Any], entries: Mapping[Any, Mapping[str, Any]]) -> int:
        """Publish the outbox entries this process has just written (document id → the ``outbox_set``
        fields or the ``outbox`` map it stored), without reading them back, and clear them later.

        For high-volume writers (a consumer storing a batch): on FerretDB every update costs a read
        of the collection, so clearing entries one document at a time would cost more than the write
        itself. The entries are cleared once the relay has been quiet for ``clear_idle_seconds`` (or
        when too many are waiting); until then this process remembers they went out. After a crash
        they are published again by the next process (same event ids: consumers deduplicate).
        A publish that fails is left to the polling loop: the entries are stored, nothing is lost."""
        docs = [{"_id": doc_id, "outbox": {k.removeprefix("outbox."): v for k, v in fields.items()}}
                for doc_id, fields in entries.items() if fields]
        if not docs:
            return 0
        self._busy_until = time.monotonic() + self._clear_idle_seconds
        results = await asyncio.gather(*(self._publish_doc(collection, d) for d in docs))
        for doc_id, ids, _ in results:
            if ids:
                self._defer(collection, doc_id, ids)
        failure = next((exc for _, _, exc in results if exc is not None), None)
        if failure is not None:
            log.warning("publishing just-written outbox entries failed (%r); the relay loop retries", failure)
            self.kick()
        if self.deferred_count() > self._max_deferred:
            self._wake.set()
        return sum(len(ids) for _, ids, _ in results)

    async def hand_over(self, collection: AsyncCollection[Any], entries: Mapping[Any, Mapping[str, Any]]) -> None:
        """``written`` without waiting for Kafka: for a consumer's batch, whose entries are stored, so it
        can commit and take the next batch while they go out (each batch waited ~0.1-0.2 s for the acks
        of its follow-ups). Safe because the entries are in the store: one that fails to go out is left
        to the polling loop, and after a crash the next process publishes it. One document's entries
        still go out in order (``_publish_doc`` takes the document's lock in arrival order). At most
        ``MAX_HANDED_OVER`` publications run at once: beyond that the writer waits (backpressure)."""
        if not any(entries.values()):
            return
        while len(self._handed_over) >= MAX_HANDED_OVER:
            await asyncio.wait(self._handed_over, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(self.written(collection, dict(entries)), name="outbox-hand-over")
        self._handed_over.add(task)
        task.add_done_callback(self._handed_over_done)

    def _handed_over_done(self, task: asyncio.Task[int]) -> None:
        self._handed_over.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("publishing handed-over outbox entries failed (%r); the relay loop retries", task.exception())
            self.kick()

    async def settle(self) -> None:
        """Wait for what ``hand_over`` started (at shutdown, before the producer stops)."""
        if self._handed_over:
            await asyncio.gather(*self._handed_over, return_exceptions=True)

    def take_published(self, collection: AsyncCollection[Any], doc_ids: Iterable[Any]) -> dict[Any, set[str]]:
        """Entries of these documents that went out and wait for clearing, handed to a writer that is
        about to update the documents anyway: it clears them in the same write (``$unset``), which
        saves a write per document. If that write fails, give them back with ``give_back``."""
        taken: dict[Any, set[str]] = {}
        for doc_id in doc_ids:
            entry = self._deferred.pop((collection.full_name, doc_id), None)
            if entry is not None:
                taken[doc_id] = entry[1]
        return taken

    def give_back(self, collection: AsyncCollection[Any], taken: Mapping[Any, set[str]]) -> None:
        for doc_id, ids in taken.items():
            self._defer(collection, doc_id, ids)

    def _defer(self, collection: AsyncCollection[Any], doc_id: Any, ids: Iterable[str]) -> None:
        """Remember entries of a document that went out and wait for clearing."""
        self._deferred.setdefault((collection.full_name, doc_id), (collection, set()))[1].update(ids)

    def deferred_count(self) -> int:
        return sum(len(ids) for _, ids in self._deferred.values())

    async def clear_deferred(self, *, until_busy: bool = False) -> int:
        """Clear the entries ``written`` published, a chunk at a time; with ``until_busy``, stop when
        writes resume."""
        cleared = 0
        while self._deferred:
            if until_busy and self._busy() and self.deferred_count() <= self._max_deferred:
                break
            name = next(iter(self._deferred))[0]
            keys = list(itertools.islice((k for k in self._deferred if k[0] == name), CLEAR_CHUNK))
            taken = {k[1]: self._deferred.pop(k) for k in keys}
            collection = next(iter(taken.values()))[0]
            try:
                await self._clear_chunk(collection, {doc_id: ids for doc_id, (_, ids) in taken.items()})
            except BaseException:
                for doc_id, (_, ids) in taken.items():
                    self._defer(collection, doc_id, ids)
                raise
            cleared += sum(len(ids) for _, ids in taken.values())
            if until_busy:
                # Give the connection up for a moment: the driver hands a freed connection to whoever
                # asks first, and this loop asks again at once, so a write waiting for the one store
                # connection (local mode) would otherwise wait for the whole backlog, and ``written``,
                # which marks the relay busy, only runs after that write (seen: intake stalled ~9 s
                # behind the clearing of ~190 cases).
                await asyncio.sleep(CLEAR_YIELD_SECONDS)
        return cleared

    async def flush(self, collection: AsyncCollection[Any], doc_ids: Iterable[Any]) -> None:
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return
        if len(ids) <= BY_ID_LIMIT:
            # Equality on _id is the lookup every store answers from its index (FerretDB 1.24 as
            # published scans for ``$in``); this is the path
            # of every write's own flush, so it must not grow with the collection.
            found = [await collection.find_one({"_id": i}, {"outbox": 1}) for i in ids]
            docs = [d for d in found if d is not None and d.get("outbox")]
        else:
            docs = [d async for d in collection.find({"_id": {"$in": ids}, **PENDING}, {"outbox": 1})]
        await self._publish_docs(collection, docs)

    async def flush_all(self, limit: int = 1000) -> int:
        count = 0
        for collection, scanned in zip(self._collections, self._scan_collections, strict=True):
            # A document read here may already have been cleared on the writing connection: its ids are
            # then in ``_recent`` (not published again), and clearing an absent entry changes nothing.
            docs = [d async for d in scanned.find(PENDING, {"outbox": 1}).limit(limit)
                    if not self._all_deferred(collection, d)]
            count += await self._publish_docs(collection, docs)
        return count

    def _all_deferred(self, collection: AsyncCollection[Any], doc: dict[str, Any]) -> bool:
        """Every entry of ``doc`` went out through ``written`` and waits for the deferred clearing.

        The pass leaves such documents alone: clearing them here would clear each twice, and would
        clear a whole burst of them in one go, not yielding to new writes as ``clear_deferred`` does, and
        hold the writing connection while new writes wait."""
        deferred = self._deferred.get((collection.full_name, doc["_id"]))
        return deferred is not None and set(doc.get("outbox") or {}) <= deferred[1]

    async def _publish_docs(self, collection: AsyncCollection[Any], docs: list[dict[str, Any]]) -> int:
        if not docs:
            return 0
        # Documents in parallel (the producer batches them); one document's entries in order.
        results = await asyncio.gather(*(self._publish_doc(collection, d) for d in docs))
        published = {doc_id: ids for doc_id, ids, _ in results if ids}
        try:
            await self._clear(collection, published)
        finally:
            # Entries after a failed one stay for the next pass, in order; the failure is reported.
            failure = next((exc for _, _, exc in results if exc is not None), None)
            if failure is not None:
                raise failure
        return sum(len(ids) for ids in published.values())

    async def _clear(self, collection: AsyncCollection[Any], published: Mapping[Any, Iterable[str]]) -> None:
        items = list(published.items())
        for start in range(0, len(items), CLEAR_CHUNK):
            await self._clear_chunk(collection, dict(items[start:start + CLEAR_CHUNK]))

    @staticmethod
    async def _clear_chunk(collection: AsyncCollection[Any], published: Mapping[Any, Iterable[str]]) -> None:
        """One update for the chunk, filtered on _id alone (the index on every store): each document
        loses its own published entries; the other paths of the chunk are absent from it."""
        unset = {f"outbox.{e}": "" for ids in published.values() for e in ids}
        if not unset:
            return
        if len(published) == 1:
            await collection.update_one({"_id": next(iter(published))}, {"$unset": unset})
        else:
            await collection.update_many({"_id": {"$in": list(published)}}, {"$unset": unset})

    async def _publish_doc(self, collection: AsyncCollection[Any],
                           doc: dict[str, Any]) -> tuple[Any, list[str], BaseException | None]:
        key = (collection.full_name, doc["_id"])
        lock, users = self._doc_locks.get(key) or (asyncio.Lock(), 0)
        self._doc_locks[key] = (lock, users + 1)
        contended = lock.locked()
        try:
            async with lock:
                if contended:
                    # Another pass published while we waited: what we read may be gone already.
                    fresh = await collection.find_one({"_id": doc["_id"]}, {"outbox": 1})
                    doc = fresh or {"_id": doc["_id"]}
                published, failure = await self._publish_entries(doc)
                return doc["_id"], published, failure
        finally:
            self._release_lock(key)

    def _release_lock(self, key: tuple[str, Any]) -> None:
        lock, users = self._doc_locks[key]
        if users <= 1:
            del self._doc_locks[key]
        else:
            self._doc_locks[key] = (lock, users - 1)

    async def _publish_entries(self, doc: dict[str, Any]) -> tuple[list[str], BaseException | None]:
        """Publishes the document's entries in order; stops at the first failure. Ids Kafka confirmed
        (now or by an earlier pass whose clearing did not happen yet) are returned for clearing."""
        entries = sorted((doc.get("outbox") or {}).items(), key=lambda kv: kv[1].get("seq", 0))
        published: list[str] = []
        for event_id, entry in entries:
            if event_id not in self._recent:
                try:
                    token = otel_context.attach(propagate.extract(entry.get("trace") or {}))
                    try:
                        await self._publisher.publish_encoded(entry["value"].encode(), event_id, entry["type"],
                                                              entry["subject"])
                    finally:
                        otel_context.detach(token)
                except Exception as exc:
                    return published, exc
                self._remember(event_id)
                self.published += 1
            published.append(event_id)
        return published, None

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    async def run(self) -> None:
        """Poll until cancelled; failures are logged and retried (nothing is dropped).

        Writes in this process wake the loop at once (``kick``); the poll only catches entries left
        by a crash or by another instance, so it backs off while idle (up to ``idle_poll_seconds``)
        instead of scanning every collection twice a second next to the requests being served. While
        ``written`` is publishing a stream of writes, the scan (a read of every collection) waits for
        a quiet moment, as does the clearing of what ``written`` published."""
        wait = self._poll_seconds
        while True:
            found = 0
            try:
                busy = self._busy()
                if self._kicked or not busy or time.monotonic() - self._last_scan > self._busy_scan_seconds:
                    self._kicked = False
                    self._last_scan = time.monotonic()
                    found = await self.flush_all()
                if self._deferred and (not busy or self.deferred_count() > self._max_deferred):
                    await self.clear_deferred(until_busy=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
            wait = self._poll_seconds if found or self._deferred else min(wait * 2, self._idle_poll_seconds)
            # ``asyncio.timeout``, not ``wait_for``: on Python 3.11, ``wait_for`` can return the inner result
            # when a wake-up and a cancellation land together, swallowing the cancellation; the relay then
            # went on looping and ``ServiceRuntime.stop`` waited for it forever (a test hung ~1 run in 15).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()


def _nested(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``outbox_set``'s dotted paths as the ``outbox`` map of a document being inserted."""
    return {path.split(".", 1)[1]: entry for path, entry in fields.items()}


def _with_events(update: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(update)
    if fields:
        out["$set"] = {**(update.get("$set") or {}), **fields}
    return out


class Outbox:
    """The one way a store writes a change together with the events it causes.

    Each method writes the change and its events in one document write, then sees that the events
    reach Kafka: a write inside a consumer's batch hands them to the relay without waiting (the batch
    commits while they go out; a partition is only given away once they are out), any other write
    publishes them before returning. Either way they are stored first, so nothing is lost: what fails
    to go out is published by the relay's polling pass, under the same event ids."""

    def __init__(self, relay: OutboxRelay) -> None:
        self._relay = relay

    @property
    def relay(self) -> OutboxRelay:
        return self._relay

    async def insert(self, collection: AsyncCollection[Doc], doc: Doc, events: Caused = ()) -> bool:
        """Insert ``doc`` with ``events``; False (and nothing written) when its ``_id`` or another unique
        key exists already: a replay of the same business key."""
        fields = outbox_set(events)
        try:
            await collection.insert_one({**doc, "outbox": {**(doc.get("outbox") or {}), **_nested(fields)}})
        except DuplicateKeyError:
            return False
        await self._dispatch(collection, {doc["_id"]: fields})
        return True

    async def update(self, collection: AsyncCollection[Doc], match: Doc, update: Doc, events: Caused = (), *,
                     upsert: bool = False) -> UpdateResult:
        """One document's update (``match`` names its ``_id``) with ``events`` in the same write; the events
        go out only when the update changed (or created) the document."""
        fields = outbox_set(events)
        if fields and "_id" not in match:
            raise ValueError("an update that carries events must name its document by _id")
        result = await collection.update_one(match, _with_events(update, fields), upsert=upsert)
        if fields and (result.modified_count or result.upserted_id is not None):
            await self._dispatch(collection, {match["_id"]: fields})
        return result

    async def update_each(self, collection: AsyncCollection[Doc], writes: Sequence[tuple[Doc, Doc, Caused]]) -> int:
        """Many documents' updates (``(match, update, events)``, each ``match`` by ``_id``), in as few commands
        as the store takes; the number of documents modified.

        Entries of these documents that went out earlier and wait for clearing are cleared by the same
        writes (a write per document less). When a guard misses, only what was actually stored goes out:
        the documents are read back for it."""
        if not writes:
            return 0
        ids = [match["_id"] for match, _, _ in writes]
        published = self._relay.take_published(collection, ids)
        staged: dict[Any, dict[str, Any]] = {}
        ops = []
        for match, update, events in writes:
            fields = outbox_set(events)
            staged[match["_id"]] = fields
            full = _with_events(update, fields)
            if gone := {f"outbox.{i}" for i in published.get(match["_id"], ())} - fields.keys():
                full["$unset"] = {**(full.get("$unset") or {}), **dict.fromkeys(sorted(gone), "")}
            ops.append(UpdateOne(match, full))
        modified = 0
        try:
            for start in range(0, len(ops), UPDATES_PER_COMMAND):
                result = await collection.bulk_write(ops[start:start + UPDATES_PER_COMMAND], ordered=False)
                modified += result.modified_count
        except BaseException:
            self._relay.give_back(collection, published)
            raise
        if modified == len(ops):
            await self._dispatch(collection, {i: f for i, f in staged.items() if f})
        else:
            # Some guards missed: clearing again what was already cleared changes nothing, and only the
            # entries that are stored go out.
            self._relay.give_back(collection, published)
            await self._relay.flush(collection, [i for i, f in staged.items() if f])
        return modified

    async def _dispatch(self, collection: AsyncCollection[Doc], entries: Mapping[Any, Mapping[str, Any]]) -> None:
        if not any(entries.values()):
            return
        if _IN_BATCH.get():
            await self._relay.hand_over(collection, entries)
        else:
            await self._relay.written(collection, entries)
