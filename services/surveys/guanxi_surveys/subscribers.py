"""Thin wiring: event type → handler. Triggers are consumed in batches (bulk reads and writes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

from guanxi_shared.contracts.complaints import ComplaintResolved
from guanxi_shared.contracts.customer import CustomerConsentChanged, CustomerErased, CustomerRegistered, CustomerTierChanged
from guanxi_shared.contracts.inbound import PurchaseCompleted
from guanxi_shared.events import CloudEvent, InvalidEvent, parse_data
from guanxi_shared.messaging import BatchHandler, Delivery, EventConsumer, EventHandler, is_transient
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.topics import (
    COMPLAINT_RESOLVED,
    CUSTOMER_CONSENT_CHANGED,
    CUSTOMER_ERASED,
    CUSTOMER_REGISTERED,
    CUSTOMER_TIER_CHANGED,
    PURCHASE_COMPLETED,
)

from . import handlers
from .handlers import Deps, TierChange, Trigger

Failures = list[tuple[Delivery, BaseException]]
Item = TypeVar("Item")


def _purchase(event: CloudEvent) -> Trigger:
    p = parse_data(event, PurchaseCompleted)
    return Trigger("post_purchase", p.order_id, p.customer_id, p.purchased_at, p.channel, event)


def _resolution(event: CloudEvent) -> Trigger:
    c = parse_data(event, ComplaintResolved)
    return Trigger("post_resolution", c.complaint_id, c.customer_id, c.at, c.channel, event)


def in_batches(parse: Callable[[CloudEvent], Item], handle: Callable[[Sequence[Item]], Awaitable[None]]) -> BatchHandler:
    """A batch handler: every event parsed, then ``handle`` once for all of them. A store outage fails
    the whole batch (the consumer redelivers it once the store is back); any other failure is looked
    for one event at a time, so the others still land and only the culprit is reported."""
    async def run(batch: list[Delivery]) -> Failures:
        failures: Failures = []
        items: list[Item] = []
        used: list[Delivery] = []
        for delivery in batch:
            try:
                items.append(parse(delivery.event))
                used.append(delivery)
            except InvalidEvent as exc:
                failures.append((delivery, exc))
        try:
            await handle(items)
        except Exception as exc:
            if is_transient(exc):
                return failures + [(d, exc) for d in used]
            for delivery, item in zip(used, items, strict=True):
                try:
                    await handle([item])
                except Exception as one:
                    failures.append((delivery, one))
        return failures

    return run


def _tier_change(event: CloudEvent) -> TierChange:
    c = parse_data(event, CustomerTierChanged)
    return TierChange(c.customer_id, c.member_level, c.changed_at)


def _one(deps: Deps, fn: Callable[[Deps, CloudEvent], Awaitable[None]]) -> EventHandler:
    async def handle(event: CloudEvent) -> None:
        await fn(deps, event)

    return handle


async def _registered(deps: Deps, event: CloudEvent) -> None:
    c = parse_data(event, CustomerRegistered)
    await handlers.customer_registered(deps, c.customer_id, c.consents, c.language, c.timezone, c.member_level, c.registered_at)


async def _consent(deps: Deps, event: CloudEvent) -> None:
    c = parse_data(event, CustomerConsentChanged)
    await handlers.consent_changed(deps, c.customer_id, c.consents, c.changed_at, event)


async def _erased(deps: Deps, event: CloudEvent) -> None:
    c = parse_data(event, CustomerErased)
    await handlers.customer_erased(deps, c.customer_id, event)


def subscribe(runtime: ServiceRuntime, deps: Deps) -> EventConsumer:
    return EventConsumer(
        runtime.broker, runtime.settings, runtime.publisher,
        {
            CUSTOMER_REGISTERED: _one(deps, _registered),
            CUSTOMER_CONSENT_CHANGED: _one(deps, _consent),
            CUSTOMER_ERASED: _one(deps, _erased),
        },
        batch_handlers={
            PURCHASE_COMPLETED: in_batches(_purchase, partial(handlers.schedule_surveys, deps)),
            COMPLAINT_RESOLVED: in_batches(_resolution, partial(handlers.schedule_surveys, deps)),
            CUSTOMER_TIER_CHANGED: in_batches(_tier_change, partial(handlers.tier_changes, deps)),
        },
        relay=runtime.relay,
    )
