"""The care schedule (CR-2, CR-4): the planner makes sure every current occasion of every customer has
its job, and a due job's events are decided when it fires (``DueJobs`` stores them with the firing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from guanxi_shared.events import CloudEvent

from .. import domain
from ..domain import REGISTERED, Doc, VaultError
from .common import existing
from .deps import Deps


async def plan_care(deps: Deps) -> int:
    """Schedule every current occasion (idempotent: a job is keyed by its occasion, so planning again, on
    another instance or after a restart, adds nothing); how many jobs were new."""
    now = deps.clock.now()
    planned = 0
    async for doc in deps.store.registered_customers():
        planned += await _plan_customer(deps, doc, now)
    return planned


async def _plan_customer(deps: Deps, doc: Doc, now: datetime) -> int:
    cid, settings = doc["_id"], deps.settings
    common = {"customer_id": cid, "member_level": doc.get("member_level")}
    planned = 0
    # Birthday greetings only with care consent.
    if doc.get("pii", {}).get("birthday") and domain.consent_flags(doc.get("consents") or {}).get("care"):
        try:
            birthday = domain.reveal(deps.vault, doc).get("birthday")
        except VaultError:
            birthday = None
        if birthday:
            at = domain.next_birthday(birthday, now, doc.get("timezone"), settings.birthday_hour)
            key = domain.birthday_key(cid, at, doc.get("timezone"))
            planned += await deps.store.schedule(key, at, "care", {**common, "occasion": "birthday"})
    revisit = domain.revisit_key(doc, settings)
    if revisit:
        planned += await deps.store.schedule(revisit[0], revisit[1], "care", {**common, "occasion": "revisit"})
    key, due = domain.profile_update_key(doc, settings)
    planned += await deps.store.schedule(key, due, "care", {**common, "occasion": "profile_update"})
    if not doc.get("churn_risk"):
        key, due, since = domain.churn_key(doc, settings)
        planned += await deps.store.schedule(key, due, "churn", {**common, "since": since})
    return planned


async def due_events(deps: Deps, job: Doc, now: datetime) -> list[CloudEvent]:
    """The events a due job emits; an occasion overtaken by events (answered, fulfilled, contact since,
    consent withdrawn, erased) emits nothing, and the job is still marked fired so it never comes back."""
    if job["kind"] == "response":
        return await _response_overdue(deps, job, now)
    if job["kind"] == "commitment":
        return await _commitment_overdue(deps, job, now)
    data = job.get("data") or {}
    doc = await deps.store.customer(data.get("customer_id", ""))
    if doc is None or doc.get("status") != REGISTERED:
        return []
    if job["kind"] == "churn":
        key, _, since = domain.churn_key(doc, deps.settings)
        if key != str(job["_id"]) or doc.get("churn_risk"):
            return []
        await deps.store.flag_churn(doc["_id"], now)
        return domain.churn_flagged(doc, job, since, now, deps.settings)
    occasion = data["occasion"]
    if not domain.occasion_current(doc, occasion, str(job["_id"]), deps.settings):
        return []
    return [domain.care_due(doc["_id"], job, occasion, now, doc.get("member_level"))]


async def _response_overdue(deps: Deps, job: Doc, now: datetime) -> list[CloudEvent]:
    data = job["data"]
    flagged = await deps.store.mark_overdue(data["interaction_id"], now)
    inbound = await deps.store.interaction(data["interaction_id"])
    if inbound is None or (not flagged and inbound.get("state") != "overdue"):
        return []  # answered in time (or erased) meanwhile
    return [domain.response_overdue(data["customer_id"], inbound, job, now)]


async def _commitment_overdue(deps: Deps, job: Doc, now: datetime) -> list[CloudEvent]:
    data = job["data"]
    visit = await deps.store.visit(data["visit_id"])
    commitment = (((visit or {}).get("report") or {}).get("commitments") or {}).get(data["commitment_id"])
    if not commitment or commitment.get("status") != "open":
        return []
    return domain.commitment_overdue(data, commitment, job, now)


# The jobs that are the customer's care plan (not the response clocks of contacts, which the contact log shows).
CARE_KINDS = ("care", "churn", "commitment")


async def care_schedule(deps: Deps, customer_id: str, limit: int = 50) -> dict[str, Any]:
    """The customer's care occasions (CR-2, CR-4) for the 360: birthday greeting, revisit, profile update,
    churn watch, visit commitments, each ``pending``, ``fired`` or ``cancelled`` (with why), soonest first.
    A birthday greeting's date is not given: it would reveal the birthday, which staff see only masked."""
    await existing(deps, customer_id, allow_stub=True)
    jobs = await deps.store.jobs_of(customer_id, CARE_KINDS, min(limit, deps.settings.page_limit_max))
    return {"items": [_care_item(j) for j in jobs], "next": None}


def _care_item(job: Doc) -> dict[str, Any]:
    data = job.get("data") or {}
    occasion = data.get("occasion") or {"churn": "churn_risk"}.get(job["kind"], job["kind"])
    birthday = occasion == "birthday"
    return {"occasion": occasion, "kind": job["kind"], "state": job.get("state", "pending"),
            "due_at": None if birthday else job.get("due_at"), "fired_at": None if birthday else job.get("fired_at"),
            "cancel_reason": job.get("cancel_reason"), "visit_id": data.get("visit_id"),
            "commitment_id": data.get("commitment_id"), "owner": data.get("owner")}
