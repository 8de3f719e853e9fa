"""The naive peer: the same handler written the way a typical FastStream tutorial does it.

One message per call, each store operation awaited in turn, the follow-up published and awaited,
and the offset committed after every single message (``AckPolicy.ACK``).
"""

from __future__ import annotations

import uuid
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from guanxi_shared.contracts.inbound import PurchaseCompleted
from guanxi_shared.events import decode_event, parse_data
from pymongo import AsyncMongoClient

NAMESPACE = uuid.UUID("0b7e54c1-1f7e-4c55-9a0d-2f4b3f0c6d11")


def build(kafka: str, mongodb_url: str, database: str, topic: str, follow_up_topic: str, group: str) -> tuple[KafkaBroker, Any]:
    broker = KafkaBroker(kafka, enable_idempotence=True)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, maxPoolSize=1, tz_aware=True)
    db = mongo[database]

    @broker.subscriber(topic, group_id=group, auto_offset_reset="earliest", ack_policy=AckPolicy.ACK)
    async def on_purchase(body: dict[str, Any]) -> None:
        # FastStream hands a JSON body over decoded (a ``bytes`` annotation failed validation on every
        # message, so until 2026-11-23 this peer acknowledged each one without doing any work).
        event = decode_event(body)
        p = parse_data(event, PurchaseCompleted)
        key = f"order:{p.order_id}"
        await db.purchases.update_one({"_id": p.order_id}, {"$setOnInsert": {
            "customer_id": p.customer_id, "amount": p.amount, "currency": p.currency, "channel": p.channel,
            "purchased_at": p.purchased_at, "items": [i.model_dump() for i in p.items], "event_id": event.id}}, upsert=True)
        customer = await db.customers.find_one({"_id": p.customer_id})
        if customer is not None and key in customer.get("applied_events", []):
            return
        await db.customers.update_one({"_id": p.customer_id}, {"$inc": {"purchase_count": 1},
                                                               "$set": {"last_purchase_at": p.purchased_at},
                                                               "$addToSet": {"applied_events": key}}, upsert=True)
        await db.surveys.update_one({"_id": f"post_purchase:{p.order_id}"}, {"$setOnInsert": {
            "customer_id": p.customer_id, "kind": "post_purchase", "status": "scheduled"}}, upsert=True)
        follow = event.follow_up("customer.tier_changed", {"customer_id": p.customer_id, "order_id": p.order_id},
                                 source="naive", id=str(uuid.uuid5(NAMESPACE, event.id)))
        await broker.publish(follow.to_json(), topic=follow_up_topic, key=p.customer_id.encode())

    return broker, mongo
