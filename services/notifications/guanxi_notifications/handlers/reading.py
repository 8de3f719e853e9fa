"""Reading the delivery log, the in-app inbox and the KPIs; views are plain JSON values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from guanxi_shared.errors import Invalid

from ..domain import InboxMessageNotFound, NotificationNotFound, Status
from .deps import Deps


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def notification_view(doc: dict[str, Any]) -> dict[str, Any]:
    keys = ("customer_id", "template", "template_version", "language", "category", "channel", "status", "reason",
            "address_masked", "attempts", "trigger_type", "trigger_event_id", "requested_channel")
    view = {"id": doc["_id"], **{k: doc.get(k) for k in keys}}
    for k in ("created_at", "updated_at", "sent_at", "held_until"):
        view[k] = _iso(doc.get(k))
    view["next_attempt_at"] = _iso(doc.get("due_at")) if doc.get("status") in (Status.pending, Status.held) else None
    view["history"] = [{**h, "at": _iso(h.get("at"))} for h in doc.get("history", [])]
    return view


def document_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as JSON: its ``_id`` as ``id``, times in ISO 8601."""
    return {k: _iso(v) for k, v in doc.items() if k != "_id"} | {"id": doc["_id"]}


async def notifications_of(deps: Deps, customer_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """A customer's messages, newest first, a page at a time."""
    docs, next_cursor = await deps.store.list_for_customer(customer_id, limit, cursor)
    return {"items": [notification_view(d) for d in docs], "next": next_cursor}


async def notification(deps: Deps, notification_id: str) -> dict[str, Any]:
    doc = await deps.store.notification(notification_id)
    if doc is None:
        raise NotificationNotFound(f"no notification {notification_id}")
    return notification_view(doc)


async def inbox(deps: Deps, customer_id: str, limit: int, unread_only: bool) -> dict[str, Any]:
    docs = await deps.store.list_inbox(customer_id, limit, unread_only)
    return {"items": [document_view(d) for d in docs], "next": None}


async def mark_read(deps: Deps, customer_id: str, message_id: str) -> dict[str, Any]:
    doc = await deps.store.mark_read(customer_id, message_id, deps.clock.now())
    if doc is None:
        raise InboxMessageNotFound(f"no in-app message {message_id} for customer {customer_id}")
    return document_view(doc)


async def kpis(deps: Deps, since: datetime, until: datetime) -> dict[str, Any]:
    """Counts of the messages created in ``[since, until)`` by outcome, category and reason."""
    if until <= since:
        raise Invalid("to must be after from")
    totals = {"sent": 0, "failed": 0, "suppressed": 0, "held": 0, "pending": 0}
    by_category: dict[str, dict[str, int]] = {}
    reasons: dict[str, int] = {}
    for row in await deps.store.outcome_counts(since, until):
        key, count = row["_id"], int(row["count"])
        status = Status.pending.value if key.get("status") == Status.sending.value else str(key.get("status"))
        totals[status] = totals.get(status, 0) + count
        cat = by_category.setdefault(str(key.get("category")), {})
        cat[status] = cat.get(status, 0) + count
        if key.get("reason") and status in ("suppressed", "failed", "held"):
            label = f"{status}:{key['reason']}"
            reasons[label] = reasons.get(label, 0) + count
    return {"from": since.isoformat(), "to": until.isoformat(), **totals, "total": sum(totals.values()),
            "by_category": by_category, "reasons": reasons}
