"""The ceiling: a hand-written raw aiokafka loop, no framework, the fewest round-trips possible.

Per polled batch: decode and validate every purchase, one ``bulk_write`` per collection the
services write (the purchase record, the customer counters — one read of the batch's customers skips
orders already applied, then one write per customer filtered on ``_id`` — and the survey-to-schedule
record; inserts where the document is new), produce one follow-up per purchase, wait for the acks, commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from guanxi_shared.contracts.inbound import PurchaseCompleted
from guanxi_shared.events import InvalidEvent, decode_event, parse_data
from guanxi_shared.settings import ServiceSettings
from guanxi_shared.store import update_each
from pymongo import AsyncMongoClient, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

# The same batch size the services poll with: a ceiling with smaller batches would make them look better.
SERVICE_BATCH: int = ServiceSettings.model_fields["batch_max_records"].default
NAMESPACE = uuid.UUID("0b7e54c1-1f7e-4c55-9a0d-2f4b3f0c6d11")


async def run(kafka: str, mongodb_url: str, database: str, topic: str, follow_up_topic: str, group: str,
              stop: asyncio.Event, max_records: int = SERVICE_BATCH) -> None:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, maxPoolSize=1, tz_aware=True)
    db = mongo[database]
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=max_records)
            records = [r for recs in batch.values() for r in recs]
            if not records:
                continue
            purchases, surveys, follow_ups = [], [], []
            now = datetime.now(UTC)
            per_customer: dict[str, list[tuple[str, Any]]] = {}
            for record in records:
                try:
                    event = decode_event(record.value)
                    p = parse_data(event, PurchaseCompleted)
                except InvalidEvent:
                    continue
                key = f"order:{p.order_id}"
                # Inserts keyed by the business key: a replay collides on _id (idempotent), and on
                # FerretDB an insert costs a fraction of an upsert, whose cost grows with the collection.
                purchases.append(InsertOne({"_id": p.order_id,
                    "customer_id": p.customer_id, "amount": p.amount, "currency": p.currency, "channel": p.channel,
                    "purchased_at": p.purchased_at, "items": [i.model_dump() for i in p.items], "event_id": event.id,
                    "recorded_at": now}))
                per_customer.setdefault(p.customer_id, []).append((key, p.purchased_at))
                # The same document shape as the surveys service's (FerretDB's costs grow with it).
                at = p.purchased_at + timedelta(days=3)
                surveys.append(InsertOne({"_id": f"post_purchase:{p.order_id}",
                    "customer_id": p.customer_id, "kind": "post_purchase", "trigger_id": p.order_id,
                    "trigger_event_id": event.id, "trigger_at": p.purchased_at, "channel": p.channel,
                    "member_level": "standard", "template_version": 1, "status": "scheduled", "scheduled_for": at,
                    "window": {"earliest": at, "latest": at + timedelta(days=4)}, "created_at": now, "reminded": False}))
                follow = event.follow_up("customer.tier_changed", {"customer_id": p.customer_id, "order_id": p.order_id},
                                         source="ceiling", id=str(uuid.uuid5(NAMESPACE, event.id)))
                follow_ups.append((p.customer_id, follow.to_json()))
            # One update per customer and batch: FerretDB 1.24 stalls on a bulk that updates one
            # document several times, and one write per document is the fewest round-trips anyway.
            # Filtered on _id alone, as the customer service writes (FerretDB reads the whole collection
            # for any further condition; a raw loop that owns its partitions is the only writer too), so the
            # replay guard is one read of the batch's customers instead of a condition in every update.
            applied = {d["_id"]: set(d.get("applied_events", [])) async for d in
                       db.customers.find({"_id": {"$in": list(per_customer)}}, {"applied_events": 1})}
            customers = []
            for cid, items in per_customer.items():
                fresh = [(k, at) for k, at in items if k not in applied.get(cid, set())]
                if not fresh:
                    continue
                # Customer documents of the customer service's shape (an unregistered customer's stub).
                customers.append(UpdateOne({"_id": cid},
                                           {"$inc": {"purchase_count": len(fresh)},
                                            "$max": {"last_purchase_at": max(at for _, at in fresh)},
                                            "$set": {"updated_at": now, "churn_risk": False},
                                            "$setOnInsert": {"status": "unregistered", "created_at": now,
                                                             "member_level": "standard", "tenure": "new",
                                                             "total_amount": "0", "consents": {},
                                                             "channels_opted_out": [], "history": [], "outbox": {}},
                                            "$addToSet": {"applied_events": {"$each": [k for k, _ in fresh]}}},
                                           upsert=True))
            for collection, ops in (("purchases", purchases), ("surveys", surveys)):
                if ops:
                    # A redelivered order collides on its record's _id: that is the duplicate being absorbed.
                    with contextlib.suppress(BulkWriteError):
                        await db[collection].bulk_write(ops, ordered=False)
            # Commands of at most UPDATES_PER_COMMAND updates, as the services (FerretDB 1.24 wedges on more).
            await update_each(db.customers, customers)
            sent = [await producer.send(follow_up_topic, value, key=key.encode()) for key, value in follow_ups]
            await asyncio.gather(*sent)
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
        await mongo.close()
