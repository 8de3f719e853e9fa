"""The service under fault: a purchase ledger wired exactly like a Guanxi service on the shared runtime.

``purchase.completed`` → one ledger document per customer (``purchases`` counter, the ordered list
of sequence numbers, ``applied_events`` guard) plus a follow-up ``customer.tier_changed`` in the
same document's outbox; the relay publishes it. The same process also plays the downstream
consumer of that follow-up (``followups`` collection, applied once per event id, with an
unguarded ``deliveries`` counter that shows redeliveries happened and were absorbed).

It uses the real building blocks (``ServiceRuntime.consume``, ``Outbox``, ``OutboxRelay``), so what
the fault tests prove holds for every service built on them. Order ids are ``<customer>:<n>``: ``n``
lets the checker verify per-customer order.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import ClassVar

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.contracts.inbound import PurchaseCompleted
from guanxi_shared.events import CloudEvent, parse_data
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.settings import ServiceSettings
from guanxi_shared.topics import CUSTOMER_TIER_CHANGED, PURCHASE_COMPLETED
from pydantic_settings import SettingsConfigDict
from pymongo.errors import DuplicateKeyError

FOLLOW_UP_NAMESPACE = uuid.UUID("6a1e0c3e-8f0b-4b61-9d55-3d1c8f4f9a01")


class LedgerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "ledger"
    http_port: int = 8190


def sequence_of(order_id: str) -> int:
    return int(order_id.rsplit(":", 1)[1])


def build(settings: LedgerSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or LedgerSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings, tracing=False)
    ledger = runtime.db["ledger"]
    followups = runtime.db["followups"]
    outbox = runtime.outbox_for("ledger")

    async def on_purchase(event: CloudEvent) -> None:
        purchase = parse_data(event, PurchaseCompleted)
        # Deterministic follow-up id: a replay republishes the same id, so downstream can deduplicate.
        follow = event.follow_up(CUSTOMER_TIER_CHANGED, {"customer_id": purchase.customer_id, "order_id": purchase.order_id,
                                                         "changed_at": clock.now().isoformat()},
                                 source="ledger", id=str(uuid.uuid5(FOLLOW_UP_NAMESPACE, event.id)))
        # Once per event id: a redelivery matches no document, and its upsert collides on _id.
        with contextlib.suppress(DuplicateKeyError):
            await outbox.update(ledger, {"_id": purchase.customer_id, "applied_events": {"$ne": event.id}}, {
                "$inc": {"purchases": 1}, "$push": {"seqs": sequence_of(purchase.order_id)},
                "$addToSet": {"applied_events": event.id}}, [follow], upsert=True)

    async def on_follow_up(event: CloudEvent) -> None:
        await followups.update_one({"_id": event.id}, {"$inc": {"deliveries": 1}}, upsert=True)
        with contextlib.suppress(DuplicateKeyError):
            await followups.update_one({"_id": event.id, "applied_events": {"$ne": event.id}},
                                       {"$inc": {"applied": 1}, "$addToSet": {"applied_events": event.id}}, upsert=True)

    runtime.consume({PURCHASE_COMPLETED: on_purchase})
    runtime.consume({CUSTOMER_TIER_CHANGED: on_follow_up}, group_id=f"{settings.consumer_group}-downstream")
    return runtime.http_app([], deps=None, title="fault-injection ledger")
