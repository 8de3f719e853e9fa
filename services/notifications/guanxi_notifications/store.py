"""Persistence of the notifications service: ``NotificationStore`` (what the handlers need),
``MongoNotificationStore`` (PyMongo's asyncio API; MongoDB 7 and FerretDB 1.24) and
``InMemoryNotificationStore`` (the fake of the fast tests, same behaviour).

Collections:
* ``notifications`` – the delivery log and the durable state machine of every message
  (pending → held/sending → sent | failed | suppressed), with its outbox of outcome events;
  ``_id`` is derived from the triggering event id, which is what makes redelivery harmless.
* ``templates`` – one document per template version (``<key>:<language>:<version>``).
* ``recipients`` – what we learned from customer events: consents, language, time zone, channel
  preferences and opt-outs, erasure. Never a clear address.
* ``inbox`` – in-app messages, keyed by notification id.

An outcome and its event are one write of the message's document (``Outbox.update``).
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from guanxi_shared.events import CloudEvent
from guanxi_shared.outbox import Outbox
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .domain import OPEN_STATUSES, InvalidCursor, Status
from .domain.delivery import OutboundMessage

Doc = dict[str, Any]


def encode_cursor(created_at: datetime, doc_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), doc_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, doc_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(at), str(doc_id)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("cursor is not one this service issued") from exc



class NotificationStore(Protocol):
    """What the handlers read and write; every method is one use of the store."""

    # ---- templates
    async def seed_template(self, doc: Doc) -> bool: ...
    async def latest_template(self, key: str, language: str) -> Doc | None: ...
    async def template_version(self, key: str, language: str, version: int) -> Doc | None: ...
    async def template_versions(self, key: str, language: str) -> list[Doc]: ...
    async def list_templates(self) -> list[Doc]: ...
    async def insert_template_version(self, doc: Doc) -> bool: ...
    async def archive_template(self, key: str, language: str, at: datetime) -> int: ...

    # ---- recipients
    async def recipient(self, customer_id: str) -> Doc | None: ...
    async def learn_profile(self, customer_id: str, language: str | None, timezone: str | None,
                            member_level: str | None) -> None: ...
    async def learn_consents(self, customer_id: str, consents: dict[str, bool], at: datetime,
                             channels_opted_out: list[str] | None = None) -> bool: ...
    async def set_preferences(self, customer_id: str, fields: Doc) -> Doc: ...
    async def mark_erased(self, customer_id: str, at: datetime) -> None: ...

    # ---- notifications
    async def insert_claimed(self, doc: Doc, now: datetime, lease: timedelta) -> Doc | None: ...
    async def notification(self, notification_id: str) -> Doc | None: ...
    async def claim(self, notification_id: str, now: datetime, lease: timedelta) -> Doc | None: ...
    async def due_ids(self, now: datetime, limit: int = 100) -> list[str]: ...
    async def finish(self, notification_id: str, claim: str, fields: Doc, events: Sequence[CloudEvent],
                     history: Doc, inc_attempts: bool, *, lease_running: bool = False) -> bool: ...
    async def counted_sends(self, customer_id: str, category: str, since: datetime, exclude_id: str) -> list[datetime]: ...
    async def list_for_customer(self, customer_id: str, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]: ...
    async def outcome_counts(self, since: datetime, until: datetime) -> list[Doc]: ...
    async def cancel_open(self, customer_id: str, reason: str, at: datetime) -> int: ...
    async def anonymise(self, customer_id: str, pseudonym: str, at: datetime) -> int: ...

    # ---- in-app inbox
    async def put_inbox(self, message: OutboundMessage, at: datetime) -> None: ...
    async def list_inbox(self, customer_id: str, limit: int, unread_only: bool) -> list[Doc]: ...
    async def mark_read(self, customer_id: str, message_id: str, at: datetime) -> Doc | None: ...


def _claimable(now: datetime) -> Doc:
    """Due open messages, and ``sending`` ones whose sender's lease ran out (it crashed)."""
    return {"$or": [
        {"status": {"$in": [s.value for s in OPEN_STATUSES]}, "due_at": {"$lte": now}},
        {"status": Status.sending.value, "lease_until": {"$lte": now}},
    ]}


def _claimed(doc: Doc, now: datetime, lease: timedelta) -> Doc:
    return {**doc, "status": Status.sending.value, "claim": uuid.uuid4().hex, "lease_until": now + lease}


def _finish_update(fields: Doc, history: Doc, inc_attempts: bool) -> Doc:
    update: Doc = {"$set": fields, "$unset": {"claim": "", "lease_until": ""}, "$push": {"history": history}}
    if inc_attempts:
        update["$inc"] = {"attempts": 1}
    return update


def _cap_time(doc: Doc) -> datetime | None:
    """When a message counted against the cap went out (or, still sending, was claimed)."""
    return doc.get("sent_at") if doc["status"] == Status.sent.value else doc.get("updated_at")


class MongoNotificationStore:
    def __init__(self, db: AsyncDatabase[Doc], outbox: Outbox, read_db: AsyncDatabase[Doc] | None = None) -> None:
        self._outbox = outbox
        self.notifications = db["notifications"]
        # The dispatcher's search for due messages reads through the read pool when there is one: on
        # FerretDB it reads every stored message, and on the one writing connection each new message's
        # insert and outcome waited behind it. Claiming stays on ``db``.
        self.scan_notifications = (read_db if read_db is not None else db)["notifications"]
        self.templates = db["templates"]
        self.recipients = db["recipients"]
        self.inbox = db["inbox"]

    async def ensure_indexes(self) -> None:
        await self.notifications.create_index([("customer_id", ASCENDING), ("created_at", DESCENDING)])
        await self.notifications.create_index([("status", ASCENDING), ("due_at", ASCENDING)])
        await self.notifications.create_index([("customer_id", ASCENDING), ("category", ASCENDING), ("sent_at", ASCENDING)])
        await self.notifications.create_index([("created_at", ASCENDING)])
        await self.templates.create_index([("key", ASCENDING), ("language", ASCENDING), ("version", DESCENDING)])
        await self.inbox.create_index([("customer_id", ASCENDING), ("created_at", DESCENDING)])

    # ---- templates -------------------------------------------------------------------------

    async def seed_template(self, doc: Doc) -> bool:
        """Insert version 1 unless any version of this key and language exists."""
        if await self.templates.find_one({"key": doc["key"], "language": doc["language"]}, {"_id": 1}):
            return False
        try:
            await self.templates.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def latest_template(self, key: str, language: str) -> Doc | None:
        cursor = self.templates.find({"key": key, "language": language}).sort("version", DESCENDING).limit(1)
        async for doc in cursor:
            return None if doc.get("archived") else doc
        return None

    async def template_version(self, key: str, language: str, version: int) -> Doc | None:
        return await self.templates.find_one({"_id": f"{key}:{language}:{version}"})

    async def template_versions(self, key: str, language: str) -> list[Doc]:
        return [d async for d in self.templates.find({"key": key, "language": language}).sort("version", ASCENDING)]

    async def list_templates(self) -> list[Doc]:
        latest: dict[tuple[str, str], Doc] = {}
        async for doc in self.templates.find({}).sort([("key", ASCENDING), ("language", ASCENDING), ("version", ASCENDING)]):
            latest[(doc["key"], doc["language"])] = doc
        return [d for d in latest.values() if not d.get("archived")]

    async def insert_template_version(self, doc: Doc) -> bool:
        """False when that version number was taken concurrently (the caller retries or reports 409)."""
        try:
            await self.templates.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def archive_template(self, key: str, language: str, at: datetime) -> int:
        r = await self.templates.update_many({"key": key, "language": language}, {"$set": {"archived": True, "archived_at": at}})
        return r.modified_count

    # ---- recipients ------------------------------------------------------------------------

    async def recipient(self, customer_id: str) -> Doc | None:
        return await self.recipients.find_one({"_id": customer_id})

    async def learn_profile(self, customer_id: str, language: str | None, timezone: str | None,
                            member_level: str | None) -> None:
        fields = {k: v for k, v in {"language": language, "timezone": timezone, "member_level": member_level}.items() if v}
        await self.recipients.update_one({"_id": customer_id}, {"$set": fields}, upsert=True)

    async def learn_consents(self, customer_id: str, consents: dict[str, bool], at: datetime,
                             channels_opted_out: list[str] | None = None) -> bool:
        """Apply unless a newer consent picture is already stored (topics are not ordered together)."""
        await self.recipients.update_one({"_id": customer_id}, {"$setOnInsert": {"created": True}}, upsert=True)
        update: Doc = {"consents": consents, "consents_at": at}
        if channels_opted_out is not None:
            # Kept apart from opt-outs recorded here over HTTP: neither source may undo the other.
            update["opted_out_upstream"] = sorted(set(channels_opted_out))
        r = await self.recipients.update_one(
            {"_id": customer_id, "$or": [{"consents_at": {"$exists": False}}, {"consents_at": {"$lte": at}}]},
            {"$set": update},
        )
        return r.modified_count == 1

    async def set_preferences(self, customer_id: str, fields: Doc) -> Doc:
        await self.recipients.update_one({"_id": customer_id}, {"$set": fields}, upsert=True)
        return await self.recipient(customer_id) or {"_id": customer_id}

    async def mark_erased(self, customer_id: str, at: datetime) -> None:
        await self.recipients.update_one(
            {"_id": customer_id},
            {"$set": {"erased": True, "erased_at": at}, "$unset": {"language": "", "timezone": "", "member_level": ""}},
            upsert=True,
        )

    # ---- notifications ---------------------------------------------------------------------

    async def insert_claimed(self, doc: Doc, now: datetime, lease: timedelta) -> Doc | None:
        """Record a new message already claimed by this sender (``sending``, with a lease), as ``claim``
        would leave it; None when the id exists (a redelivered trigger: the caller claims it the usual way).

        An insert is cheap on every store, while on FerretDB 1.24 each modification of a document costs
        time in proportion to the whole collection: claiming a message we have just written would be one
        such modification per message, for nothing."""
        claimed = _claimed(doc, now, lease)
        try:
            await self.notifications.insert_one(claimed)
        except DuplicateKeyError:
            return None
        return claimed

    async def notification(self, notification_id: str) -> Doc | None:
        return await self.notifications.find_one({"_id": notification_id}, {"outbox": 0})

    async def claim(self, notification_id: str, now: datetime, lease: timedelta) -> Doc | None:
        """Atomically take a due message (or one whose sender died); None when not ours to send."""
        token = uuid.uuid4().hex
        return await self.notifications.find_one_and_update(
            {"_id": notification_id, **_claimable(now)},
            {"$set": {"status": Status.sending.value, "claim": token, "lease_until": now + lease, "updated_at": now}},
            return_document=ReturnDocument.AFTER,  # no projection: FerretDB 1.24 rejects it on findAndModify
        )

    async def due_ids(self, now: datetime, limit: int = 100) -> list[str]:
        # A stale answer is harmless: ``claim`` checks the message again on the writing connection.
        cursor = self.scan_notifications.find(_claimable(now), {"_id": 1}).sort("due_at", ASCENDING).limit(limit)
        return [d["_id"] async for d in cursor]

    async def finish(self, notification_id: str, claim: str, fields: Doc, events: Sequence[CloudEvent],
                     history: Doc, inc_attempts: bool, *, lease_running: bool = False) -> bool:
        """Record the outcome of a claimed attempt and its events in one write; False when the message is
        no longer ours (another sender claimed it after our lease ran out).

        ``lease_running``: the caller's lease is known to run on (see ``handlers.sending.LEASE_MARGIN``).
        No one else writes a message's state while its lease runs (``claim`` only takes an expired
        ``sending``), so the write goes by _id alone: on FerretDB 1.24 the claim in the filter made this
        the costliest command of the path (a read of every stored message). Past the lease the claim is
        the guard."""
        guard: Doc = {"_id": notification_id} if lease_running else {"_id": notification_id, "claim": claim}
        r = await self._outbox.update(self.notifications, guard, _finish_update(fields, history, inc_attempts), events)
        return r.modified_count == 1

    async def counted_sends(self, customer_id: str, category: str, since: datetime, exclude_id: str) -> list[datetime]:
        """Times of messages that count against the cap: sent, or being sent right now."""
        query = {"customer_id": customer_id, "category": category, "_id": {"$ne": exclude_id},
                 "$or": [{"status": Status.sent.value, "sent_at": {"$gt": since}}, {"status": Status.sending.value}]}
        docs = self.notifications.find(query, {"sent_at": 1, "updated_at": 1, "status": 1})
        return [at async for doc in docs if (at := _cap_time(doc)) is not None]

    async def list_for_customer(self, customer_id: str, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
        query: Doc = {"customer_id": customer_id}
        if cursor:
            at, doc_id = decode_cursor(cursor)
            query["$or"] = [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": doc_id}}]
        docs = [d async for d in self.notifications.find(query, {"outbox": 0})
                .sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1)]
        next_cursor = encode_cursor(docs[limit - 1]["created_at"], docs[limit - 1]["_id"]) if len(docs) > limit else None
        return docs[:limit], next_cursor

    async def outcome_counts(self, since: datetime, until: datetime) -> list[Doc]:
        """``{"_id": {"status", "category", "reason"}, "count"}`` for messages created in ``[since, until)``."""
        pipeline: list[Doc] = [
            {"$match": {"created_at": {"$gte": since, "$lt": until}}},
            {"$group": {"_id": {"status": "$status", "category": "$category", "reason": "$reason_code"},
                        "count": {"$sum": 1}}},
        ]
        return [d async for d in await self.notifications.aggregate(pipeline)]

    async def cancel_open(self, customer_id: str, reason: str, at: datetime) -> int:
        r = await self.notifications.update_many(
            {"customer_id": customer_id, "status": {"$in": [s.value for s in OPEN_STATUSES]}},
            {"$set": {"status": Status.suppressed.value, "reason": reason, "reason_code": reason, "updated_at": at},
             "$push": {"history": {"at": at, "status": Status.suppressed.value, "reason": reason}}},
        )
        return r.modified_count

    async def anonymise(self, customer_id: str, pseudonym: str, at: datetime) -> int:
        """Keep the log countable (KPIs) but cut it from the person: no id, variables or address."""
        r = await self.notifications.update_many(
            {"customer_id": customer_id},
            {"$set": {"customer_id": pseudonym, "anonymised_at": at},
             "$unset": {"variables": "", "address_masked": ""}},
        )
        await self.inbox.delete_many({"customer_id": customer_id})
        return r.modified_count

    # ---- in-app inbox ----------------------------------------------------------------------

    async def put_inbox(self, message: OutboundMessage, at: datetime) -> None:
        await self.inbox.update_one(
            {"_id": message.notification_id},
            {"$setOnInsert": _inbox_doc(message, at)},
            upsert=True,
        )

    async def list_inbox(self, customer_id: str, limit: int, unread_only: bool) -> list[Doc]:
        query: Doc = {"customer_id": customer_id}
        if unread_only:
            query["read_at"] = None
        return [d async for d in self.inbox.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit)]

    async def mark_read(self, customer_id: str, message_id: str, at: datetime) -> Doc | None:
        await self.inbox.update_one({"_id": message_id, "customer_id": customer_id, "read_at": None}, {"$set": {"read_at": at}})
        return await self.inbox.find_one({"_id": message_id, "customer_id": customer_id})


def _inbox_doc(message: OutboundMessage, at: datetime) -> Doc:
    return {"customer_id": message.customer_id, "subject": message.subject, "body": message.body,
            "language": message.language, "category": message.category, "created_at": at, "read_at": None}


def _bson(value: Any) -> Any:
    """A copy of ``value`` as the store gives it back: BSON dates are UTC, to the millisecond; tuples are arrays."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).replace(microsecond=aware.microsecond // 1000 * 1000)
    if isinstance(value, dict):
        return {k: _bson(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bson(v) for v in value]
    return copy.deepcopy(value)


def _newest_first(docs: list[Doc]) -> list[Doc]:
    return sorted(docs, key=lambda d: (d["created_at"], d["_id"]), reverse=True)


class InMemoryNotificationStore:
    """``NotificationStore`` in dictionaries, for the fast tests. Documents go in and out as copies, stored
    as BSON would store them (``_bson``); the events an outcome is recorded with are kept, in order, in
    ``published``."""

    def __init__(self) -> None:
        self.notifications: dict[str, Doc] = {}
        self.templates: dict[str, Doc] = {}
        self.recipients: dict[str, Doc] = {}
        self.inbox: dict[str, Doc] = {}
        self.published: list[CloudEvent] = []

    # ---- templates

    async def seed_template(self, doc: Doc) -> bool:
        if any(t["key"] == doc["key"] and t["language"] == doc["language"] for t in self.templates.values()):
            return False
        return await self.insert_template_version(doc)

    def _versions(self, key: str, language: str) -> list[Doc]:
        found = [t for t in self.templates.values() if t["key"] == key and t["language"] == language]
        return sorted(found, key=lambda t: t["version"])

    async def latest_template(self, key: str, language: str) -> Doc | None:
        versions = self._versions(key, language)
        if not versions or versions[-1].get("archived"):
            return None
        return copy.deepcopy(versions[-1])

    async def template_version(self, key: str, language: str, version: int) -> Doc | None:
        return copy.deepcopy(self.templates.get(f"{key}:{language}:{version}"))

    async def template_versions(self, key: str, language: str) -> list[Doc]:
        return copy.deepcopy(self._versions(key, language))

    async def list_templates(self) -> list[Doc]:
        latest: dict[tuple[str, str], Doc] = {}
        for doc in sorted(self.templates.values(), key=lambda t: (t["key"], t["language"], t["version"])):
            latest[(doc["key"], doc["language"])] = doc
        return [copy.deepcopy(d) for d in latest.values() if not d.get("archived")]

    async def insert_template_version(self, doc: Doc) -> bool:
        if doc["_id"] in self.templates:
            return False
        self.templates[doc["_id"]] = _bson(doc)
        return True

    async def archive_template(self, key: str, language: str, at: datetime) -> int:
        changed = 0
        for doc in self._versions(key, language):
            if doc.get("archived") is not True or doc.get("archived_at") != at:
                doc.update(archived=True, archived_at=_bson(at))
                changed += 1
        return changed

    # ---- recipients

    async def recipient(self, customer_id: str) -> Doc | None:
        return copy.deepcopy(self.recipients.get(customer_id))

    def _recipient(self, customer_id: str) -> Doc:
        return self.recipients.setdefault(customer_id, {"_id": customer_id})

    async def learn_profile(self, customer_id: str, language: str | None, timezone: str | None,
                            member_level: str | None) -> None:
        fields = {k: v for k, v in {"language": language, "timezone": timezone, "member_level": member_level}.items() if v}
        self._recipient(customer_id).update(_bson(fields))

    async def learn_consents(self, customer_id: str, consents: dict[str, bool], at: datetime,
                             channels_opted_out: list[str] | None = None) -> bool:
        if customer_id not in self.recipients:
            self.recipients[customer_id] = {"_id": customer_id, "created": True}
        doc = self.recipients[customer_id]
        if "consents_at" in doc and doc["consents_at"] > at:
            return False
        update: Doc = {"consents": dict(consents), "consents_at": _bson(at)}
        if channels_opted_out is not None:
            update["opted_out_upstream"] = sorted(set(channels_opted_out))
        before = copy.deepcopy(doc)
        doc.update(_bson(update))
        return doc != before

    async def set_preferences(self, customer_id: str, fields: Doc) -> Doc:
        self._recipient(customer_id).update(_bson(fields))
        return copy.deepcopy(self.recipients[customer_id])

    async def mark_erased(self, customer_id: str, at: datetime) -> None:
        doc = self._recipient(customer_id)
        doc.update(erased=True, erased_at=_bson(at))
        for name in ("language", "timezone", "member_level"):
            doc.pop(name, None)

    # ---- notifications

    async def insert_claimed(self, doc: Doc, now: datetime, lease: timedelta) -> Doc | None:
        if doc["_id"] in self.notifications:
            return None
        claimed = _bson(_claimed(doc, now, lease))
        self.notifications[doc["_id"]] = claimed
        return copy.deepcopy(claimed)

    async def notification(self, notification_id: str) -> Doc | None:
        return copy.deepcopy(self.notifications.get(notification_id))

    @staticmethod
    def _is_claimable(doc: Doc, now: datetime) -> bool:
        if doc["status"] in {s.value for s in OPEN_STATUSES}:
            return bool(doc["due_at"] <= now)
        return doc["status"] == Status.sending.value and doc.get("lease_until") is not None and doc["lease_until"] <= now

    async def claim(self, notification_id: str, now: datetime, lease: timedelta) -> Doc | None:
        doc = self.notifications.get(notification_id)
        if doc is None or not self._is_claimable(doc, now):
            return None
        doc.update(_bson({"status": Status.sending.value, "claim": uuid.uuid4().hex, "lease_until": now + lease,
                          "updated_at": now}))
        return copy.deepcopy(doc)

    async def due_ids(self, now: datetime, limit: int = 100) -> list[str]:
        due = sorted((d for d in self.notifications.values() if self._is_claimable(d, now)), key=lambda d: d["due_at"])
        return [d["_id"] for d in due[:limit]]

    async def finish(self, notification_id: str, claim: str, fields: Doc, events: Sequence[CloudEvent],
                     history: Doc, inc_attempts: bool, *, lease_running: bool = False) -> bool:
        doc = self.notifications.get(notification_id)
        if doc is None or not (lease_running or doc.get("claim") == claim):
            return False
        doc.update(_bson(fields))
        doc.pop("claim", None)
        doc.pop("lease_until", None)
        doc.setdefault("history", []).append(_bson(history))
        if inc_attempts:
            doc["attempts"] = doc.get("attempts", 0) + 1
        self.published.extend(events)
        return True

    async def counted_sends(self, customer_id: str, category: str, since: datetime, exclude_id: str) -> list[datetime]:
        counted = [d for d in self.notifications.values()
                   if d["customer_id"] == customer_id and d["category"] == category and d["_id"] != exclude_id
                   and ((d["status"] == Status.sent.value and d.get("sent_at") is not None and d["sent_at"] > since)
                        or d["status"] == Status.sending.value)]
        return [at for d in counted if (at := _cap_time(d)) is not None]

    async def list_for_customer(self, customer_id: str, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
        docs = _newest_first([d for d in self.notifications.values() if d["customer_id"] == customer_id])
        if cursor:
            at, doc_id = decode_cursor(cursor)
            docs = [d for d in docs if (d["created_at"], d["_id"]) < (at, doc_id)]
        page = docs[:limit]
        next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["_id"]) if len(docs) > limit else None
        return copy.deepcopy(page), next_cursor

    async def outcome_counts(self, since: datetime, until: datetime) -> list[Doc]:
        counts: Counter[tuple[tuple[str, Any], ...]] = Counter()
        for doc in self.notifications.values():
            if since <= doc["created_at"] < until:
                key = {"status": doc.get("status"), "category": doc.get("category")}
                if "reason_code" in doc:
                    key["reason"] = doc["reason_code"]
                counts[tuple(key.items())] += 1
        return [{"_id": dict(key), "count": n} for key, n in counts.items()]

    async def cancel_open(self, customer_id: str, reason: str, at: datetime) -> int:
        changed = 0
        for doc in self.notifications.values():
            if doc["customer_id"] == customer_id and doc["status"] in {s.value for s in OPEN_STATUSES}:
                doc.update(status=Status.suppressed.value, reason=reason, reason_code=reason, updated_at=_bson(at))
                doc.setdefault("history", []).append(_bson({"at": at, "status": Status.suppressed.value, "reason": reason}))
                changed += 1
        return changed

    async def anonymise(self, customer_id: str, pseudonym: str, at: datetime) -> int:
        changed = 0
        for doc in self.notifications.values():
            if doc["customer_id"] == customer_id:
                doc.update(customer_id=pseudonym, anonymised_at=_bson(at))
                doc.pop("variables", None)
                doc.pop("address_masked", None)
                changed += 1
        self.inbox = {k: m for k, m in self.inbox.items() if m["customer_id"] != customer_id}
        return changed

    # ---- in-app inbox

    async def put_inbox(self, message: OutboundMessage, at: datetime) -> None:
        self.inbox.setdefault(message.notification_id, _bson({"_id": message.notification_id, **_inbox_doc(message, at)}))

    async def list_inbox(self, customer_id: str, limit: int, unread_only: bool) -> list[Doc]:
        docs = [m for m in self.inbox.values() if m["customer_id"] == customer_id and not (unread_only and m["read_at"])]
        return copy.deepcopy(_newest_first(docs)[:limit])

    async def mark_read(self, customer_id: str, message_id: str, at: datetime) -> Doc | None:
        doc = self.inbox.get(message_id)
        if doc is None or doc["customer_id"] != customer_id:
            return None
        if doc["read_at"] is None:
            doc["read_at"] = _bson(at)
        return copy.deepcopy(doc)
