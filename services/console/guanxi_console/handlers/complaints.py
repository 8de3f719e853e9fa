"""A complaint: the case, its commands, the customer panel beside it, and a complaint logged by phone
(filed through the gateway: 202 with the case id, the case exists a moment later)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from guanxi_shared.errors import NotFound

from .. import domain
from ..domain import Session
from ..domain.customers import NOT_ALLOWED, UNAVAILABLE, Section
from ..gateway import GatewayError, GatewayUnavailable, Unauthenticated
from .deps import Deps, SessionEnded, as_person


async def load_complaint(deps: Deps, session: Session, case_id: str) -> dict[str, Any]:
    return await as_person(deps, session, deps.gateway.get_complaint(session.token, case_id))


async def complaint_if_any(deps: Deps, session: Session, case_id: str) -> dict[str, Any] | None:
    """The case, or None while it is not registered yet (404)."""
    try:
        return await load_complaint(deps, session, case_id)
    except GatewayError as exc:
        if exc.status == 404:
            return None
        raise


async def run_action(deps: Deps, session: Session, case_id: str, action_name: str, form: Mapping[str, Any],
                     idempotency_key: str | None) -> dict[str, Any]:
    """Send one command of the case's lifecycle; ``FormProblems`` before sending when the form is
    incomplete, ``GatewayError`` when the API refuses (403 not yours, 409 not now, 422 invalid)."""
    action = domain.ACTIONS.get(action_name)
    if action is None:
        raise NotFound(f"no action {action_name}")
    body = domain.action_body(action, form, session.subject)
    return await as_person(deps, session, deps.gateway.complaint_command(
        session.token, case_id, action.path, body, idempotency_key))


async def file_complaint(deps: Deps, session: Session, customer_id: str, form: Mapping[str, Any],
                         idempotency_key: str | None) -> str:
    """File the complaint taken by phone; its case id (``FormProblems`` before sending, ``GatewayError``
    when refused). The Idempotency-Key of the form makes a double click file one complaint."""
    body = domain.intake_body(customer_id, form)
    accepted = await as_person(deps, session, deps.gateway.file_complaint(session.token, body, idempotency_key))
    return str(accepted["id"])


@dataclass
class CustomerPanel:
    """The customer beside a complaint: masked profile, tier, consents, their other cases, last contacts."""

    customer: dict[str, Any] | None
    problem: str | None = None  # msgid when the profile could not be read
    consents: list[dict[str, Any]] = field(default_factory=list)
    cases: Section = field(default_factory=Section)
    contacts: Section = field(default_factory=Section)


def _section(result: Any, key: str = "items", *, skip: str | None = None, limit: int = 5) -> Section:
    if isinstance(result, Unauthenticated):
        raise SessionEnded("token_rejected")
    if isinstance(result, GatewayError):
        return Section(problem=NOT_ALLOWED if result.status == 403 else UNAVAILABLE)
    if isinstance(result, BaseException):
        return Section(problem=UNAVAILABLE)
    items = [i for i in result.get(key, []) if i.get("id") != skip]
    return Section(items=items[:limit], more=len(items) > limit or bool(result.get("next")))


async def customer_panel(deps: Deps, session: Session, case: Mapping[str, Any]) -> CustomerPanel:
    customer_id = str(case.get("customer_id") or "")
    if not customer_id:
        return CustomerPanel(None, UNAVAILABLE)
    token = session.token
    results: list[Any] = await asyncio.gather(
        deps.gateway.get_customer(token, customer_id),
        deps.gateway.list_complaints(token, [("customer_id", customer_id), ("limit", "6")]),
        deps.gateway.list_interactions(token, customer_id, 3), return_exceptions=True)
    profile, cases, contacts = results
    for result in results:
        if isinstance(result, Unauthenticated):
            await deps.store.delete_session(session.id)
            raise SessionEnded("token_rejected")
    panel = CustomerPanel(None)
    if isinstance(profile, GatewayError):
        panel.problem = NOT_ALLOWED if profile.status == 403 else domain.N_("This customer is unknown or was erased.")
    elif isinstance(profile, BaseException):
        panel.problem = UNAVAILABLE
    else:
        panel.customer = profile
        panel.consents = domain.customers.consent_rows(profile.get("consents") or {})
    panel.cases = _section(cases, skip=str(case.get("id")))
    panel.contacts = _section(contacts, limit=3)
    panel.contacts.items = domain.customers.with_times(panel.contacts.items, "occurred_at")
    return panel


__all__ = ["CustomerPanel", "GatewayUnavailable", "complaint_if_any", "customer_panel", "file_complaint",
           "load_complaint", "run_action"]
