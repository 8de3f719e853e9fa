"""Purchases (CI-3): each order recorded once and folded once into its customer's counters and
classification, one by one or a consumer batch at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from guanxi_shared.contracts.inbound import PurchaseCompleted
from guanxi_shared.events import CloudEvent, InvalidEvent, parse_data
from guanxi_shared.messaging import PermanentError
from opentelemetry import context as otel_context

from .. import domain
from ..domain import ERASED, Doc
from .common import ensure_customer
from .deps import Deps

log = logging.getLogger(__name__)

Purchase = tuple[CloudEvent, PurchaseCompleted, otel_context.Context]
_ATTEMPTS = 10


def _record(deps: Deps, data: PurchaseCompleted, event: CloudEvent) -> Doc:
    return {"_id": data.order_id, "customer_id": data.customer_id, "amount": data.amount, "currency": data.currency,
            "channel": data.channel, "purchased_at": data.purchased_at, "items": [i.model_dump() for i in data.items],
            "event_id": event.id, "recorded_at": deps.clock.now()}


async def on_purchase(deps: Deps, event: CloudEvent) -> None:
    data = parse_data(event, PurchaseCompleted)
    cid = data.customer_id
    await deps.store.record_purchases([_record(deps, data, event)])
    owner = await deps.store.purchase_owner(data.order_id)
    if owner is not None and owner != cid:
        raise PermanentError(f"order {data.order_id} was already recorded for another customer")
    key = domain.order_key(data.order_id)
    for _ in range(_ATTEMPTS):
        doc = await ensure_customer(deps, cid)
        if doc.get("status") == ERASED or key in doc.get("applied_events", []):
            return
        state = dict(doc)
        events = domain.fold_purchase(state, data, event, deps.clock.now(), deps.settings)
        # Optimistic: the count we read must still be there, and this order not yet applied.
        if await deps.store.apply_purchase(cid, doc.get("purchase_count", 0), key, domain.purchase_state(state), events):
            return
    raise RuntimeError(f"purchase {data.order_id} kept colliding with concurrent updates")


async def on_purchases(deps: Deps, batch: Sequence[tuple[CloudEvent, otel_context.Context]]) -> list[CloudEvent]:
    """A batch of purchases in a few round-trips: one insert of the purchase records, one read of the
    customers (at the same time), then one guarded write per customer folding all of its purchases in
    delivery order.

    Returns the events this path did not settle (a bad payload, an order already recorded for another
    customer, a customer whose document changed meanwhile, ...): the caller runs those through
    ``on_purchase`` one by one, in order, which decides every corner case. Every write here is
    idempotent, so a batch delivered again after a crash changes nothing twice."""
    parsed, leftovers = _parse(batch)
    if not parsed:
        return leftovers
    # Inserts keyed by the order: a replay collides on _id and changes nothing. The fold needs both the
    # records and the customers, and neither needs the other.
    collided, found = await asyncio.gather(
        deps.store.record_purchases([_record(deps, d, e) for e, d, _ in parsed]),
        deps.store.customers_by_id(list(dict.fromkeys(d.customer_id for _, d, _ in parsed))))
    if collided:
        owners = await deps.store.purchase_owners(sorted(collided))
        conflicting = {d.order_id for _, d, _ in parsed if d.order_id in collided
                       and owners.get(d.order_id, d.customer_id) != d.customer_id}
        leftovers += [e for e, d, _ in parsed if d.order_id in conflicting]
        parsed = [p for p in parsed if p[1].order_id not in conflicting]

    by_customer: dict[str, list[Purchase]] = {}
    for item in parsed:
        by_customer.setdefault(item[1].customer_id, []).append(item)
    docs = await _customers_or_stubs(deps, list(by_customer), found)
    now = deps.clock.now()
    folds = {cid: f for cid, items in by_customer.items() if (f := domain.plan_fold(docs[cid], items, now, deps.settings))}
    missed = await deps.store.apply_folds(folds) if folds else set()
    if missed:
        log.warning("purchase state of %d customer(s) changed between the batch's read and its write; deciding "
                    "their purchases one by one", len(missed))
        leftovers += [e for cid in folds if cid in missed for e, _, _ in by_customer[cid]]
    return leftovers


def _parse(batch: Sequence[tuple[CloudEvent, otel_context.Context]]) -> tuple[list[Purchase], list[CloudEvent]]:
    """The purchases the batch path takes, and the events it leaves to the one-by-one path."""
    parsed: list[Purchase] = []
    leftovers: list[CloudEvent] = []
    seen_orders: set[str] = set()
    for event, trace_context in batch:
        try:
            data = parse_data(event, PurchaseCompleted)
        except InvalidEvent:
            leftovers.append(event)  # the one-by-one path reports it
            continue
        if data.order_id in seen_orders:
            leftovers.append(event)  # the same order twice in one batch: the second is decided alone
            continue
        seen_orders.add(data.order_id)
        parsed.append((event, data, trace_context))
    return parsed, leftovers


async def _customers_or_stubs(deps: Deps, customer_ids: list[str], found: dict[str, Doc]) -> dict[str, Doc]:
    """The customers' documents (``found``: read already); unknown ids get their unregistered stub (see
    ``ensure_customer``)."""
    docs = {c: found[c] for c in customer_ids if c in found}
    missing = [c for c in customer_ids if c not in docs]
    if missing:
        now = deps.clock.now()
        docs.update(await deps.store.add_stubs([domain.stub(c, now, deps.settings.base_level) for c in missing]))
    return docs
