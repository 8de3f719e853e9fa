"""A customer: the 360 page (profile masked by role, a clear read only with its purpose, tier, consents,
purchases, contacts, complaints, surveys, messages, visits), creation and correction, a contact logged,
export and erasure for the roles the customer API allows. Every part comes from the gateway with the
person's own token; a part the API refuses or cannot give is shown as such, the rest of the page stays."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .. import domain
from ..domain import Session
from ..domain.customers import NOT_ALLOWED, UNAVAILABLE, Section
from ..gateway import GatewayError, Unauthenticated
from .deps import Deps, SessionEnded, as_person

TIMELINE_LIMIT = 100
LIST_LIMIT = 20


@dataclass
class Customer360:
    customer: dict[str, Any]
    clear: bool  # the profile shows clear values (a recorded clear read), not masked ones
    consents: list[dict[str, Any]] = field(default_factory=list)
    opted_out: list[str] = field(default_factory=list)
    purchases: Section = field(default_factory=Section)
    contacts: Section = field(default_factory=Section)
    complaints: Section = field(default_factory=Section)
    surveys: Section = field(default_factory=Section)
    messages: Section = field(default_factory=Section)
    visits: Section = field(default_factory=Section)
    care: Section = field(default_factory=Section)


def _problem(result: BaseException) -> str:
    if isinstance(result, GatewayError) and result.status == 403:
        return NOT_ALLOWED
    return UNAVAILABLE


def _listed(result: Any, *times: str) -> Section:
    if isinstance(result, BaseException):
        return Section(problem=_problem(result))
    items = result.get("items", [])
    return Section(items=domain.customers.with_times(items, *times), more=bool(result.get("next")))


async def customer_360(deps: Deps, session: Session, customer_id: str, *, reveal: bool = False,
                       purpose: str | None = None) -> Customer360:
    """Everything about the customer in one page. The profile must be readable (else its refusal is the
    page's: 404 unknown, 410 erased, 403 role); the other parts are read side by side and each may fail
    alone. ``reveal``: the profile's clear values, with ``purpose`` (audited by the customer service)."""
    token, gateway = session.token, deps.gateway
    profile = await as_person(deps, session, gateway.get_customer(token, customer_id, reveal=reveal, purpose=purpose))
    results = await asyncio.gather(
        gateway.customer_timeline(token, customer_id, [("limit", str(TIMELINE_LIMIT))]),
        gateway.list_interactions(token, customer_id, LIST_LIMIT),
        gateway.list_complaints(token, [("customer_id", customer_id), ("limit", str(LIST_LIMIT))]),
        gateway.list_surveys(token, customer_id, LIST_LIMIT),
        gateway.list_notifications(token, customer_id, LIST_LIMIT),
        gateway.list_visits(token, customer_id, LIST_LIMIT),
        gateway.customer_care(token, customer_id, LIST_LIMIT), return_exceptions=True)
    if any(isinstance(r, Unauthenticated) for r in results):
        await deps.store.delete_session(session.id)
        raise SessionEnded("token_rejected")
    timeline, contacts, complaints, surveys, messages, visits, care = results
    view = Customer360(profile, clear=bool(reveal and not profile.get("masked", True)),
                       consents=domain.customers.consent_rows(profile.get("consents") or {}),
                       opted_out=list(profile.get("channels_opted_out") or []))
    if isinstance(timeline, BaseException):
        view.purchases = Section(problem=_problem(timeline))
    else:
        view.purchases = Section(items=domain.customers.timeline_items(timeline.get("items", []), "purchase"))
    view.contacts = _listed(contacts, "occurred_at", "due_at")
    view.complaints = _listed(complaints, "received_at")
    view.surveys = _listed(surveys, "sent_at", "completed_at", "scheduled_for")
    if view.surveys.problem and not isinstance(timeline, BaseException):
        # The survey summaries the customer service keeps (scores of answered surveys) stand in.
        view.surveys = Section(items=[{**s, "completed_at_time": s["at_time"]} for s in
                                      domain.customers.timeline_items(timeline.get("items", []), "survey")])
    view.messages = _listed(messages, "sent_at", "created_at")
    view.visits = _listed(visits, "planned_for")
    view.care = _listed(care, "due_at", "fired_at")
    return view


async def load_customer(deps: Deps, session: Session, customer_id: str) -> dict[str, Any]:
    return await as_person(deps, session, deps.gateway.get_customer(session.token, customer_id))


def _field_problems(exc: GatewayError, known: list[str]) -> domain.FormProblems | None:
    if exc.status != 422:
        return None
    return domain.FormProblems(domain.customers.api_problems(exc.errors, known) or
                               {"": domain.customers.NOT_ACCEPTED})


async def create_customer(deps: Deps, session: Session, form: Mapping[str, Any], idempotency_key: str | None,
                          today: date) -> str:
    """Register a customer from the form; its id. ``FormProblems`` for what the form or the API (422
    ``errors``) refuses, field by field; ``GatewayError`` for other refusals."""
    body = domain.customers.new_customer_body(form, today)
    try:
        created = await as_person(deps, session, deps.gateway.create_customer(session.token, body, idempotency_key))
    except GatewayError as exc:
        problems = _field_problems(exc, [f.name for f in domain.customers.NEW_FIELDS])
        if problems is None:
            raise
        raise problems from exc
    return str(created["id"])


async def correct_customer(deps: Deps, session: Session, customer_id: str, form: Mapping[str, Any],
                           today: date) -> list[str]:
    """Send what changed; the names of the fields sent (none: nothing changed)."""
    current = await load_customer(deps, session, customer_id)
    body = domain.customers.correction_body(form, current, today)
    if not body:
        return []
    try:
        await as_person(deps, session, deps.gateway.update_customer(session.token, customer_id, body))
    except GatewayError as exc:
        problems = _field_problems(exc, [f.name for f in domain.customers.PROFILE_FIELDS])
        if problems is None:
            raise
        raise problems from exc
    return sorted(body)


async def log_contact(deps: Deps, session: Session, customer_id: str, form: Mapping[str, Any],
                      idempotency_key: str | None) -> str:
    body = domain.customers.contact_body(customer_id, form)
    accepted = await as_person(deps, session, deps.gateway.log_interaction(session.token, body, idempotency_key))
    return str(accepted.get("id", ""))


async def export_customer(deps: Deps, session: Session, customer_id: str) -> dict[str, Any]:
    """Everything the customer service holds, clear (it records the export in the audit trail)."""
    return await as_person(deps, session, deps.gateway.export_customer(session.token, customer_id))


async def erase_customer(deps: Deps, session: Session, customer_id: str, form: Mapping[str, Any]) -> None:
    """Erase after the confirmation (``FormProblems`` without it); the customer API refuses other roles."""
    reason = domain.customers.erase_reason(form)
    await as_person(deps, session, deps.gateway.erase_customer(session.token, customer_id, reason))
