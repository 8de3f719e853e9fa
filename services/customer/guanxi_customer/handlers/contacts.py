"""Contact records and response clocks (CC-2, CC-3): an inbound contact starts a clock, the next
outbound one stops it (on time or late), an unanswered one falls due as a job (see ``care``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from guanxi_shared.auth import Identity
from guanxi_shared.contracts.inbound import InteractionLogged
from guanxi_shared.events import CloudEvent, parse_data

from .. import domain
from ..domain import ERASED, UNREGISTERED, Doc
from .common import ensure_customer, public
from .deps import Deps


async def on_interaction(deps: Deps, event: CloudEvent) -> None:
    data = parse_data(event, InteractionLogged)
    iid = data.interaction_id or domain.derived_id(event.id, "interaction")
    await record_interaction(deps, iid, data.model_dump(), source="event")


async def log_interaction(deps: Deps, values: dict[str, Any], identity: Identity) -> dict[str, Any]:
    """A contact recorded over HTTP (``values``: the request's fields) for a registered customer."""
    values = {**values, "occurred_at": values.get("occurred_at") or deps.clock.now(),
              "agent_id": values.get("agent_id") or identity.subject}
    iid = values.get("interaction_id") or str(uuid.uuid4())
    doc = await deps.store.customer(values["customer_id"])
    if doc is None or doc.get("status") == UNREGISTERED:
        raise domain.CustomerNotFound(values["customer_id"])
    if doc.get("status") == ERASED:
        raise domain.CustomerErased(values["customer_id"])
    return public(await record_interaction(deps, iid, values, source="api"))


async def record_interaction(deps: Deps, iid: str, v: dict[str, Any], *, source: str) -> Doc:
    """Record the contact once (by ``iid``) and settle the response clocks it starts or stops."""
    cid = v["customer_id"]
    customer = await ensure_customer(deps, cid)
    if customer.get("status") == ERASED:
        # Contact with an erased customer: nothing of it may be kept.
        return await deps.store.interaction(iid) or {"_id": iid, "customer_id": cid, "ignored": "customer erased"}
    occurred: datetime = v["occurred_at"]
    doc: Doc = {"_id": iid, "customer_id": cid, "channel": v["channel"], "direction": str(v["direction"]),
                "occurred_at": occurred, "summary": v["summary"], "agent_id": v.get("agent_id"),
                "outcome": v.get("outcome"), "kind": v.get("kind"), "urgent": bool(v.get("urgent")),
                "source": source, "recorded_at": deps.clock.now()}
    if doc["direction"] == "inbound":
        minutes = domain.response_minutes(doc["channel"], doc["kind"], doc["urgent"], deps.settings.response_targets)
        doc.update({"state": "open", "due_at": domain.add_minutes(occurred, minutes), "target_minutes": minutes})
    doc = await deps.store.add_interaction(doc)
    if doc["direction"] == "inbound" and doc.get("state") == "open":
        # The answer may have been recorded first (HTTP and Kafka intake interleave).
        answer = await deps.store.earliest_answer(cid, occurred)
        if answer is not None:
            await _answer(deps, doc, answer)
        else:
            await deps.store.schedule(f"response:{iid}", doc["due_at"], "response", {"customer_id": cid, "interaction_id": iid})
    elif doc["direction"] == "outbound":
        # The outbound contact stops the clock of every earlier inbound one still waiting.
        for inbound in await deps.store.open_inbound(cid, doc["occurred_at"]):
            await _answer(deps, inbound, doc)
    await deps.store.note_contact(cid, occurred)
    return doc


async def _answer(deps: Deps, inbound: Doc, answer: Doc) -> None:
    await deps.store.answer_inbound(inbound["_id"], inbound["state"], {
        "state": "answered", "answered_at": answer["occurred_at"], "answered_by": answer.get("agent_id"),
        "answer_id": answer["_id"], "on_time": answer["occurred_at"] <= inbound["due_at"]})
    await deps.store.cancel_job(f"response:{inbound['_id']}", "answered")


async def list_interactions(deps: Deps, customer_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    docs, nxt = await deps.store.page_interactions(customer_id, min(limit, deps.settings.page_limit_max), cursor)
    return {"items": [public(d) for d in docs], "next": nxt}
