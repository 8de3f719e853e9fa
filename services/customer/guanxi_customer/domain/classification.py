"""Classification (CI-3, CR-1): member level and tenure from purchases, and how purchases fold onto a
customer, one at a time or a batch's worth at once, deciding alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from guanxi_shared.contracts.inbound import PurchaseCompleted
from guanxi_shared.events import CloudEvent
from guanxi_shared.topics import CUSTOMER_TIER_CHANGED

from ..settings import CustomerSettings, TierRule
from .events import derived_id, event
from .profile import ERASED, Doc

# The fields of a customer's document that purchases decide.
PURCHASE_STATE = ("purchase_count", "total_amount", "member_level", "tenure", "last_purchase_at", "churn_risk",
                  "updated_at", "level_since")


class Tenure(StrEnum):
    new = "new"
    returning = "returning"
    loyal = "loyal"


def member_level(purchase_count: int, total: Decimal, rules: Sequence[TierRule], base_level: str) -> str:
    """The highest configured level whose thresholds are met (rules ordered lowest to highest)."""
    level = base_level
    for rule in rules:
        by_count = purchase_count >= rule.min_purchases
        by_amount = total >= rule.min_amount
        reached = (by_count and by_amount) if rule.match == "all" else (
            (rule.min_purchases > 0 and by_count) or (rule.min_amount > 0 and by_amount)
            or (rule.min_purchases == 0 and rule.min_amount == 0))
        if reached:
            level = rule.level
    return level


def tenure(purchase_count: int, returning_min: int, loyal_min: int) -> Tenure:
    if purchase_count >= loyal_min:
        return Tenure.loyal
    if purchase_count >= returning_min:
        return Tenure.returning
    return Tenure.new


def levels_in_order(rules: Sequence[TierRule], base_level: str) -> list[str]:
    return [base_level, *(r.level for r in rules)]


def order_key(order_id: str) -> str:
    """How a customer's document remembers that a purchase was folded into it."""
    return f"order:{order_id}"


def applied_orders(doc: Doc) -> set[str]:
    """The order keys of the purchases folded into a customer."""
    return {k for k in doc.get("applied_events", []) if k.startswith("order:")}


def purchase_state(state: Doc) -> Doc:
    return {f: state[f] for f in PURCHASE_STATE if f in state}


def fold_purchase(state: Doc, data: PurchaseCompleted, cause: CloudEvent, now: datetime,
                  settings: CustomerSettings) -> list[CloudEvent]:
    """Apply one purchase to the customer's counters and classification in ``state``; the tier change it
    causes, if any. Shared by the one-by-one and the batch path, so both decide alike."""
    count = int(state.get("purchase_count", 0)) + 1
    total = Decimal(state.get("total_amount", "0")) + data.amount_decimal
    level = member_level(count, total, settings.tier_rules, settings.base_level)
    ten = tenure(count, settings.returning_min_purchases, settings.loyal_min_purchases).value
    events: list[CloudEvent] = []
    if level != state.get("member_level") or ten != state.get("tenure"):
        events.append(event(CUSTOMER_TIER_CHANGED, data.customer_id, {
            "customer_id": data.customer_id, "member_level": level, "previous_level": state.get("member_level"),
            "tenure": ten, "previous_tenure": state.get("tenure"), "purchase_count": count, "total_amount": str(total),
            "changed_at": now,
        }, at=now, cause=cause, id=derived_id(order_key(data.order_id), "tier_changed")))
    if level != state.get("member_level"):
        state["level_since"] = now
    last = state.get("last_purchase_at")
    state.update(purchase_count=count, total_amount=str(total), member_level=level, tenure=ten,
                 last_purchase_at=max(last, data.purchased_at) if last else data.purchased_at, churn_risk=False,
                 updated_at=now)
    return events


@dataclass
class Fold:
    """One customer's purchases of a batch folded onto the document as it was read (``seen``)."""

    seen: Doc
    keys: list[str]
    state: Doc
    # Each tier change paired with the trace context of the purchase that caused it.
    caused: list[tuple[CloudEvent, Any]]

    def landed(self, doc: Doc) -> bool:
        """``doc`` (read after the write) is exactly this fold on top of what was read: nobody else
        changed the customer's purchase state in between."""
        return (doc.get("status") != ERASED and doc.get("purchase_count") == self.state["purchase_count"]
                and applied_orders(doc) == applied_orders(self.seen) | set(self.keys))


def plan_fold(seen: Doc, items: Sequence[tuple[CloudEvent, PurchaseCompleted, Any]], now: datetime,
              settings: CustomerSettings) -> Fold | None:
    """The fold of ``items`` (event, purchase, trace context; in delivery order) onto ``seen``; None when
    there is nothing to write (an erased customer, or a batch delivered again)."""
    if seen.get("status") == ERASED:
        return None
    applied = set(seen.get("applied_events", []))
    todo = [i for i in items if order_key(i[1].order_id) not in applied]
    if not todo:
        return None
    state = dict(seen)
    caused: list[tuple[CloudEvent, Any]] = []
    for cause, data, trace_context in todo:
        caused += [(e, trace_context) for e in fold_purchase(state, data, cause, now, settings)]
    return Fold(seen, [order_key(d.order_id) for _, d, _ in todo], purchase_state(state), caused)
