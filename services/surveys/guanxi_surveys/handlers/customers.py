"""What this service knows of customers (consent, language, zone, member level), learnt from their events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from guanxi_shared.events import CloudEvent

from .. import domain
from ..domain import events
from ..store import Change
from .deps import Deps


async def customer_registered(deps: Deps, customer_id: str, consents: Mapping[str, bool], language: str, timezone: str,
                              member_level: str, at: datetime) -> None:
    await deps.store.learn_profile(customer_id, language, timezone)
    await deps.store.learn_consent(customer_id, bool(consents.get("survey", False)), at)
    await deps.store.learn_level(customer_id, member_level, at)


async def consent_changed(deps: Deps, customer_id: str, consents: Mapping[str, bool], at: datetime, cause: CloudEvent) -> None:
    granted = bool(consents.get("survey", False))
    await deps.store.learn_consent(customer_id, granted, at)
    if not granted:
        await cancel_pending(deps, customer_id, "consent_withdrawn", cause)


async def tier_changes(deps: Deps, changes: Sequence[domain.TierChange]) -> None:
    """A batch of member-level changes: one read of the views, the newest change per customer compared
    in code, one insert and one bulk write by _id; one by one it would be two writes per event, one of
    them conditional, and the service fell behind whenever tier changes queued up. Comparing in code is
    safe because this consumer is the only writer of a customer's level: registrations and tier changes
    have equal partition counts and the consumer assigns by range, so one member handles all of a
    customer's, in turn."""
    newest: dict[str, tuple[str, datetime]] = {}
    for change in changes:
        if change.customer_id not in newest or change.at >= newest[change.customer_id][1]:
            newest[change.customer_id] = (change.member_level, change.at)
    if not newest:
        return
    stamps = await deps.store.level_stamps(list(newest))
    wanted = {c: v for c, v in newest.items() if (known := stamps.get(c)) is None or known <= v[1]}
    await deps.store.learn_levels(wanted, set(stamps))


async def customer_erased(deps: Deps, customer_id: str, cause: CloudEvent) -> None:
    """Pending surveys cancelled; answers detached from the customer, free text removed, scores kept for the
    figures; later triggers refused (the view says erased)."""
    now = deps.clock.now()
    await deps.store.forget_customer(customer_id, now)
    await cancel_pending(deps, customer_id, "customer_erased", cause)
    await deps.store.anonymise(customer_id, domain.all_free_text_questions(), now)


async def cancel_pending(deps: Deps, customer_id: str, reason: str, cause: CloudEvent | None) -> int:
    now = deps.clock.now()
    return await deps.store.change_each([
        Change(doc["_id"], {"status": doc["status"]}, {"status": "cancelled", "cancel_reason": reason, "cancelled_at": now},
               [events.cancelled(doc, reason, now, cause)])
        for doc in await deps.store.pending_of(customer_id)])
