"""Visits (拜访, CR-2): plans, reports, and the commitments made in them, each with a reminder."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from .. import domain
from ..domain import Doc
from .common import existing, public
from .deps import Deps


async def plan_visit(deps: Deps, customer_id: str, purpose: str, planned_for: datetime, owner: str | None,
                     actor: str) -> dict[str, Any]:
    await existing(deps, customer_id)
    visit = {"_id": str(uuid.uuid4()), "customer_id": customer_id, "purpose": purpose, "planned_for": planned_for,
             "owner": owner or actor, "status": "planned", "created_at": deps.clock.now(), "created_by": actor}
    await deps.store.add_visit(visit)
    return public(visit)


async def _visit(deps: Deps, visit_id: str) -> Doc:
    visit = await deps.store.visit(visit_id)
    if visit is None:
        raise domain.VisitNotFound(visit_id)
    return visit


async def file_report(deps: Deps, visit_id: str, report: dict[str, Any], actor: str) -> dict[str, Any]:
    """``report``: summary, needs, issues, and commitments (each a description and a due time)."""
    visit = await _visit(deps, visit_id)
    if visit.get("status") == "reported":
        raise domain.ReportAlreadyFiled()
    await existing(deps, visit["customer_id"])
    now = deps.clock.now()
    commitments = {str(i + 1): {"description": c["description"], "due_at": c["due_at"], "status": "open"}
                   for i, c in enumerate(report.get("commitments") or [])}
    filed = {"summary": report.get("summary", ""), "needs": report.get("needs") or [], "issues": report.get("issues") or [],
             "commitments": commitments}
    if not await deps.store.file_visit_report(visit_id, {"status": "reported", "reported_at": now, "reported_by": actor,
                                                         "report": filed}):
        raise domain.ReportAlreadyFiled()
    for cid, c in commitments.items():
        await deps.store.schedule(f"commitment:{visit_id}:{cid}", c["due_at"], "commitment", {
            "customer_id": visit["customer_id"], "visit_id": visit_id, "commitment_id": cid, "owner": visit.get("owner")})
    await deps.store.note_contact(visit["customer_id"], now)
    return public(await _visit(deps, visit_id))


async def fulfil_commitment(deps: Deps, visit_id: str, commitment_id: str, actor: str) -> dict[str, Any]:
    visit = await _visit(deps, visit_id)
    if commitment_id not in ((visit.get("report") or {}).get("commitments") or {}):
        raise domain.CommitmentNotFound(visit_id, commitment_id)
    await deps.store.fulfil_commitment(visit_id, commitment_id, deps.clock.now(), actor)
    await deps.store.cancel_job(f"commitment:{visit_id}:{commitment_id}", "fulfilled")
    return public(await _visit(deps, visit_id))


async def get_visit(deps: Deps, visit_id: str) -> dict[str, Any]:
    return public(await _visit(deps, visit_id))


async def list_visits(deps: Deps, customer_id: str | None, owner: str | None, limit: int,
                      cursor: str | None) -> dict[str, Any]:
    match = {k: v for k, v in (("customer_id", customer_id), ("owner", owner)) if v}
    docs, nxt = await deps.store.page_visits(match, min(limit, deps.settings.page_limit_max), cursor)
    return {"items": [public(d) for d in docs], "next": nxt}
