"""Thin wiring: event type → handler. Triggers are consumed in batches (bulk reads and writes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

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
from .handlers import Deps, Trigger

Failures = list[tuple[Delivery, BaseException]]


def _purchase(event: CloudEvent) -> Trigger:
    p = parse_data(event, PurchaseCompleted)
    return Trigger("post_purchase", p.order_id, p.customer_id, p.purchased_at, p.channel, event)


def _resolution(event: CloudEvent) -> Trigger:
    c = parse_data(event, ComplaintResolved)
    return Trigger("post_resolution", c.complaint_id, c.customer_id, c.at, c.channel, event)


def trigger_batch(deps: Deps, parse: Callable[[CloudEvent], Trigger]) -> BatchHandler:
    async def handle(batch: list[Delivery]) -> Failures:
        failures: Failures = []
        triggers: list[Trigger] = []
        used: list[Delivery] = []
        for delivery in batch:
            try:
                triggers.append(parse(delivery.event))
                used.append(delivery)
            except InvalidEvent as exc:
                failures.append((delivery, exc))
        try:
            await handlers.schedule_surveys(deps, triggers)
        except Exception as exc:
            if is_transient(exc):  # the consumer redelivers the whole batch once the store is back
                return failures + [(d, exc) for d in used]
            # Find the one trigger that cannot be handled; the others still get their survey.
            for delivery, trigger in zip(used, triggers, strict=True):
                try:
                    await handlers.schedule_surveys(deps, [trigger])
                except Exception as one:
                    failures.append((delivery, one))
        return failures

    return handle


def tier_batch(deps: Deps) -> BatchHandler:
    async def handle(batch: list[Delivery]) -> Failures:
        failures: Failures = []
        changes: list[tuple[str, str, datetime]] = []
        used: list[Delivery] = []
        for delivery in batch:
            try:
                c = parse_data(delivery.event, CustomerTierChanged)
            except InvalidEvent as exc:
                failures.append((delivery, exc))
                continue
            changes.append((c.customer_id, c.member_level, c.changed_at))
            used.append(delivery)
        try:
            await handlers.tier_changes(deps, changes)
        except Exception as exc:
            if is_transient(exc):
                return failures + [(d, exc) for d in used]
            for delivery in used:  # find the one that cannot be handled; the others still land
                try:
                    await _tier(deps, delivery.event)
                except Exception as one:
                    failures.append((delivery, one))
        return failures

    return handle


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


async def _tier(deps: Deps, event: CloudEvent) -> None:
    c = parse_data(event, CustomerTierChanged)
    await handlers.tier_changed(deps, c.customer_id, c.member_level, c.changed_at)


async def _erased(deps: Deps, event: CloudEvent) -> None:
    c = parse_data(event, CustomerErased)
    await handlers.customer_erased(deps, c.customer_id, event)


def subscribe(runtime: ServiceRuntime, deps: Deps) -> EventConsumer:
    return EventConsumer(
        runtime.broker, runtime.settings, runtime.publisher,
        {
            CUSTOMER_REGISTERED: _one(deps, _registered),
            CUSTOMER_CONSENT_CHANGED: _one(deps, _consent),
            CUSTOMER_TIER_CHANGED: _one(deps, _tier),  # what the batch path could not settle
            CUSTOMER_ERASED: _one(deps, _erased),
        },
        batch_handlers={
            PURCHASE_COMPLETED: trigger_batch(deps, _purchase),
            COMPLAINT_RESOLVED: trigger_batch(deps, _resolution),
            CUSTOMER_TIER_CHANGED: tier_batch(deps),
        },
        batch_scope=runtime.relay.holding, before_release=runtime.relay.settle,
    )
