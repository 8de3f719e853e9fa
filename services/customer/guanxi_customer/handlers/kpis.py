"""Customer KPIs (KP-1): response timeliness overall and per handler, churn rate, counts in a period."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .deps import Deps

_BUCKETS = ("on_time", "late", "overdue_unanswered", "pending")


async def kpis(deps: Deps, start: datetime, end: datetime) -> dict[str, Any]:
    """Inbound contacts due in the period, by how they were answered; the KPI handler is the agent who
    answered (or, for unanswered ones, the agent who logged the inbound contact)."""
    now = deps.clock.now()
    overall = dict.fromkeys(_BUCKETS, 0)
    per_handler: dict[str, dict[str, int]] = {}
    for d in await deps.store.inbound_due_between(start, end):
        if d.get("state") == "answered":
            bucket, handler = ("on_time" if d.get("on_time") else "late"), d.get("answered_by")
        elif d.get("state") == "overdue" or d["due_at"] <= now:
            bucket, handler = "overdue_unanswered", d.get("agent_id")
        else:
            bucket, handler = "pending", d.get("agent_id")
        overall[bucket] += 1
        per_handler.setdefault(handler or "unassigned", dict.fromkeys(_BUCKETS, 0))[bucket] += 1
    counts = await deps.store.counts(start, end)
    active, at_risk = counts.pop("active"), counts.pop("at_risk")
    return {
        "from": start, "to": end,
        "response_timeliness": {**_with_rate(overall), "per_handler": {k: _with_rate(v) for k, v in sorted(per_handler.items())}},
        "churn": {"customers": active, "at_risk": at_risk, "rate": round(at_risk / active, 4) if active else None},
        "counts": counts,
    }


def _with_rate(counts: dict[str, int]) -> dict[str, Any]:
    decided = counts["on_time"] + counts["late"] + counts["overdue_unanswered"]
    return {**counts, "timeliness_rate": round(counts["on_time"] / decided, 4) if decided else None}
