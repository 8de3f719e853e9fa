"""The 360° view (CI-2): complaint and survey summaries learned from events, and the timeline that
merges them with contacts, purchases and visits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from guanxi_shared.contracts.complaints import ComplaintStep
from guanxi_shared.contracts.surveys import SurveyCompleted
from guanxi_shared.events import CloudEvent, parse_data

from ..domain import Doc
from .common import existing, masked_view
from .deps import Deps

_COMPLAINT_DETAILS = ("channel", "category", "severity", "owner")
_SUMMARY_DETAILS = ("category", "severity", "channel", "owner", "csat", "nps", "survey_kind")


async def on_complaint_step(deps: Deps, event: CloudEvent) -> None:
    data = parse_data(event, ComplaintStep)
    status = event.type.split(".", 1)[1]
    sets: dict[str, Any] = {"customer_id": data.customer_id, "kind": "complaint", "complaint_id": data.complaint_id,
                            f"steps.{status}": data.at, "updated_at": deps.clock.now()}
    sets.update({f: value for f in _COMPLAINT_DETAILS if (value := getattr(data, f)) is not None})
    key = f"complaint:{data.complaint_id}"
    # Each step has its own topic, so steps can arrive out of order: the latest step by its own time
    # names the current status, whichever was handled last. The step topics have equal partition counts
    # and the consumer assigns partition n of each to one member, so one member handles all of a
    # customer's steps, in turn (see guanxi_shared.messaging), and comparing before writing is safe.
    status_at = await deps.store.activity_status_at(key)
    if status_at is None or status_at <= data.at:
        sets.update(status=data.status or status, status_at=data.at)
    await deps.store.upsert_activity(key, sets, earliest=data.at)


async def on_survey_completed(deps: Deps, event: CloudEvent) -> None:
    data = parse_data(event, SurveyCompleted)
    await deps.store.upsert_activity(f"survey:{data.survey_id}", {
        "customer_id": data.customer_id, "kind": "survey", "survey_id": data.survey_id, "survey_kind": str(data.kind),
        "csat": data.csat, "nps": data.nps, "channel": data.channel, "status": "completed", "at": data.completed_at,
    })


async def timeline(deps: Deps, customer_id: str, limit: int, before: datetime | None) -> dict[str, Any]:
    """The customer's latest records of every kind before ``before``, newest first; ``next`` pages on."""
    doc = await existing(deps, customer_id, allow_stub=True)
    limit = min(limit, deps.settings.page_limit_max)
    items = [_contact(d) for d in await deps.store.recent("interactions", customer_id, limit, before)]
    items += [_purchase(d) for d in await deps.store.recent("purchases", customer_id, limit, before)]
    items += [_summary(d) for d in await deps.store.recent("activity", customer_id, limit, before)]
    items += [_visit(d) for d in await deps.store.recent("visits", customer_id, limit, before)]
    items.sort(key=lambda i: i["at"], reverse=True)
    page = items[:limit]
    nxt = page[-1]["at"].isoformat() if len(items) > limit else None
    return {"customer": masked_view(deps, doc), "items": page, "next": nxt}


def _contact(d: Doc) -> dict[str, Any]:
    return {"type": "contact", "at": d["occurred_at"], "id": d["_id"], "channel": d["channel"], "direction": d["direction"],
            "summary": d["summary"], "handler": d.get("agent_id"), "outcome": d.get("outcome"),
            "response_state": d.get("state")}


def _purchase(d: Doc) -> dict[str, Any]:
    return {"type": "purchase", "at": d["purchased_at"], "id": d["_id"], "amount": d["amount"], "currency": d["currency"],
            "channel": d["channel"], "items": len(d.get("items", []))}


def _summary(d: Doc) -> dict[str, Any]:
    entry = {"type": d["kind"], "at": d["at"], "id": d.get("complaint_id") or d.get("survey_id"), "status": d.get("status")}
    entry.update({k: d[k] for k in _SUMMARY_DETAILS if d.get(k) is not None})
    return entry


def _visit(d: Doc) -> dict[str, Any]:
    return {"type": "visit", "at": d["planned_for"], "id": d["_id"], "purpose": d["purpose"], "owner": d.get("owner"),
            "status": d.get("status")}
