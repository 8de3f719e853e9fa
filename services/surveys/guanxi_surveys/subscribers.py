"""Event type → use case. Triggers and tier changes are consumed in batches (bulk reads and writes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

from guanxi_shared.contracts.complaints import ComplaintResolved
from guanxi_shared.contracts.customer import CustomerConsentChanged, CustomerErased, CustomerRegistered, CustomerTierChanged
from guanxi_shared.contracts.inbound import PurchaseCompleted
from guanxi_shared.events import CloudEvent, InvalidEvent, parse_data
from guanxi_shared.messaging import BatchHandler, Delivery, EventConsumer, is_transient
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.topics import (
    COMPLAINT_RESOLVED,
    CUSTOMER_CONSENT_CHANGED,
    CUSTOMER_ERASED,
    CUSTOMER_REGISTERED,
    CUSTOMER_TIER_CHANGED,
    PURCHASE_COMPLETED,
)

from .handlers import Deps, TierChange, Trigger, customers, triggers

Failures = list[tuple[Delivery, BaseException]]
Item = TypeVar("Item")


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


def _purchase(event: CloudEvent) -> Trigger:
    p = parse_data(event, PurchaseCompleted)
    return Trigger("post_purchase", p.order_id, p.customer_id, p.purchased_at, p.channel, event)


def _resolution(event: CloudEvent) -> Trigger:
    c = parse_data(event, ComplaintResolved)
    return Trigger("post_resolution", c.complaint_id, c.customer_id, c.at, c.channel, event)


def _tier_change(event: CloudEvent) -> TierChange:
    c = parse_data(event, CustomerTierChanged)
    return TierChange(c.customer_id, c.member_level, c.changed_at)


async def _registered(deps: Deps, event: CloudEvent) -> None:
    c = parse_data(event, CustomerRegistered)
    await customers.customer_registered(deps, c.customer_id, c.consents, c.language, c.timezone, c.member_level,
                                        c.registered_at)


async def _consent(deps: Deps, event: CloudEvent) -> None:
    c = parse_data(event, CustomerConsentChanged)
    await customers.consent_changed(deps, c.customer_id, c.consents, c.changed_at, event)


async def _erased(deps: Deps, event: CloudEvent) -> None:
    c = parse_data(event, CustomerErased)
    await customers.customer_erased(deps, c.customer_id, event)


def subscribe(runtime: ServiceRuntime, deps: Deps) -> EventConsumer:
    return runtime.consume(
        {
            CUSTOMER_REGISTERED: partial(_registered, deps),
            CUSTOMER_CONSENT_CHANGED: partial(_consent, deps),
            CUSTOMER_ERASED: partial(_erased, deps),
        },
        batch_handlers={
            PURCHASE_COMPLETED: in_batches(_purchase, partial(triggers.schedule_surveys, deps)),
            COMPLAINT_RESOLVED: in_batches(_resolution, partial(triggers.schedule_surveys, deps)),
            CUSTOMER_TIER_CHANGED: in_batches(_tier_change, partial(customers.tier_changes, deps)),
        },
    )
