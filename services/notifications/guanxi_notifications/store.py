"""Persistence of the notifications service (PyMongo AsyncMongoClient; MongoDB 7 and FerretDB 1.24).

Collections:
* ``notifications`` – the delivery log and the durable state machine of every message
  (pending → held/sending → sent | failed | suppressed), with its outbox of outcome events;
  ``_id`` is derived from the triggering event id, which is what makes redelivery harmless.
* ``templates`` – one document per template version (``<key>:<language>:<version>``).
* ``recipients`` – what we learned from customer events: consents, language, time zone, channel
  preferences and opt-outs, erasure. Never a clear address.
* ``inbox`` – in-app messages, keyed by notification id.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from guanxi_shared.events import CloudEvent
from guanxi_shared.outbox import outbox_set
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .channels import OutboundMessage
from .domain import OPEN_STATUSES, Status

Doc = dict[str, Any]


def encode_cursor(created_at: datetime, doc_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), doc_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    padded = cursor + "=" * (-len(cursor) % 4)
    at, doc_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
    return datetime.fromisoformat(at), str(doc_id)


class MongoNotificationStore:
    def __init__(self, db: AsyncDatabase[Doc], read_db: AsyncDatabase[Doc] | None = None) -> None:
        self.db = db
        self.notifications = db["notifications"]
        # The dispatcher's search for due messages reads through the read pool when there is one: on
        # FerretDB it reads every stored message (~0.1-0.4 s at a few hundred), and on the one writing
        # connection each new message's insert and outcome waited behind it. Claiming stays on ``db``.
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

    async def insert_notification(self, doc: Doc) -> bool:
        try:
            await self.notifications.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def insert_claimed(self, doc: Doc, now: datetime, lease: timedelta) -> Doc | None:
        """Record a new message already claimed by this sender (``sending``, with a lease), as ``claim``
        would leave it; None when the id exists (a redelivered trigger: the caller claims it the usual way).

        An insert is cheap on every store, while on FerretDB 1.24 each modification of a document costs
        time in proportion to the whole collection (~0.1 ms per stored message): claiming a message we
        have just written would be one such modification per message, for nothing."""
        claimed = {**doc, "status": Status.sending.value, "claim": uuid.uuid4().hex, "lease_until": now + lease}
        try:
            await self.notifications.insert_one(claimed)
        except DuplicateKeyError:
            return None
        return claimed

    async def notification(self, notification_id: str) -> Doc | None:
        return await self.notifications.find_one({"_id": notification_id}, {"outbox": 0})

    @staticmethod
    def _claimable(now: datetime) -> Doc:
        return {"$or": [
            {"status": {"$in": [s.value for s in OPEN_STATUSES]}, "due_at": {"$lte": now}},
            {"status": Status.sending.value, "lease_until": {"$lte": now}},
        ]}

    async def claim(self, notification_id: str, now: datetime, lease: timedelta) -> Doc | None:
        """Atomically take a due message (or one whose sender died); None when not ours to send."""
        token = uuid.uuid4().hex
        return await self.notifications.find_one_and_update(
            {"_id": notification_id, **self._claimable(now)},
            {"$set": {"status": Status.sending.value, "claim": token, "lease_until": now + lease, "updated_at": now}},
            return_document=ReturnDocument.AFTER,  # no projection: FerretDB 1.24 rejects it on findAndModify
        )

    async def due_ids(self, now: datetime, limit: int = 100) -> list[str]:
        # A stale answer is harmless: ``claim`` checks the message again on the writing connection.
        cursor = self.scan_notifications.find(self._claimable(now), {"_id": 1}).sort("due_at", ASCENDING).limit(limit)
        return [d["_id"] async for d in cursor]

    async def finish(self, notification_id: str, claim: str, fields: Doc, events: Sequence[CloudEvent],
                     history: Doc, inc_attempts: bool, *, lease_running: bool = False) -> Doc | None:
        """Record the outcome of a claimed attempt and its events in one write: the outbox fields written,
        or None when the message is no longer ours (another sender claimed it after our lease ran out).

        ``lease_running``: the caller's lease is known to run on (see ``handlers.LEASE_MARGIN``). No one
        else writes a message's state while its lease runs (``claim`` only takes an expired ``sending``),
        so the write goes by _id alone: on FerretDB 1.24 the claim in the filter made this the costliest
        command of the path (a read of every stored message, 70-150 ms at a few hundred). Past the lease
        the claim is the guard, as before."""
        outbox = outbox_set(events)
        update: Doc = {"$set": {**fields, **outbox}, "$unset": {"claim": "", "lease_until": ""},
                       "$push": {"history": history}}
        if inc_attempts:
            update["$inc"] = {"attempts": 1}
        guard: Doc = {"_id": notification_id} if lease_running else {"_id": notification_id, "claim": claim}
        r = await self.notifications.update_one(guard, update)
        return outbox if r.modified_count == 1 else None

    async def counted_sends(self, customer_id: str, category: str, since: datetime, exclude_id: str) -> list[datetime]:
        """Times of messages that count against the cap: sent, or being sent right now."""
        out: list[datetime] = []
        query = {"customer_id": customer_id, "category": category, "_id": {"$ne": exclude_id},
                 "$or": [{"status": Status.sent.value, "sent_at": {"$gt": since}}, {"status": Status.sending.value}]}
        async for doc in self.notifications.find(query, {"sent_at": 1, "updated_at": 1, "status": 1}):
            at = doc.get("sent_at") if doc["status"] == Status.sent.value else doc.get("updated_at")
            if at is not None:
                out.append(at)
        return out

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
            {"$setOnInsert": {"customer_id": message.customer_id, "subject": message.subject, "body": message.body,
                              "language": message.language, "category": message.category, "created_at": at,
                              "read_at": None}},
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


class InboxProvider:
    """The in-app channel: the message lands in the customer's inbox in our own store."""

    def __init__(self, store: MongoNotificationStore, clock_now: Any) -> None:
        self._store = store
        self._now = clock_now

    async def send(self, message: OutboundMessage) -> None:
        await self._store.put_inbox(message, self._now())
