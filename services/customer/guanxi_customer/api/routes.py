"""Thin HTTP routers of the customer service; roles are enforced here, rules live in handlers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from guanxi_shared.auth import Identity, Role, require_roles
from guanxi_shared.problems import Problem
from guanxi_shared.runtime import app_deps

from .. import handlers
from ..handlers import Deps
from .schemas import (
    ChannelOptOuts,
    ConsentChange,
    ContactDetailsRequest,
    Lookup,
    NewCustomer,
    NewInteraction,
    NewVisit,
    ProfileFields,
    VisitReport,
)

DepsDep = Annotated[Deps, Depends(app_deps)]
Staff = Annotated[Identity, Depends(require_roles(Role.agent, Role.supervisor, Role.admin))]
Intake = Annotated[Identity, Depends(require_roles(Role.agent, Role.supervisor, Role.admin, Role.integration))]
Senior = Annotated[Identity, Depends(require_roles(Role.supervisor, Role.admin))]
Admin = Annotated[Identity, Depends(require_roles(Role.admin))]
Service = Annotated[Identity, Depends(require_roles(Role.service))]
Limit = Annotated[int, Query(ge=1, le=200)]
IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=200, description=(
    "the same key again (same caller) registers nothing new and answers with the customer registered first"))]

customers = APIRouter(prefix="/api/v1/customers", tags=["customers"])
interactions = APIRouter(prefix="/api/v1/interactions", tags=["contact records"])
visits = APIRouter(prefix="/api/v1/visits", tags=["visits"])
kpis = APIRouter(prefix="/api/v1/kpis", tags=["kpis"])
internal = APIRouter(prefix="/internal/customers", tags=["internal"])


@customers.post("", status_code=201, summary="Register a customer (personal fields are sealed at once)")
async def register(body: NewCustomer, deps: DepsDep, who: Intake, idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    return await handlers.register(deps, body.model_dump(), who.subject, idempotency_key)


@customers.get("", summary="List and search customers (masked)")
async def list_customers(
    deps: DepsDep, who: Staff, limit: Limit = 50, cursor: str | None = None,
    q: Annotated[str | None, Query(max_length=100, description="name contains")] = None,
    status: Annotated[str | None, Query(pattern="^(registered|unregistered|erased)$")] = None,
    member_level: str | None = None, tenure: str | None = None, industry: str | None = None, size: str | None = None,
    tag: str | None = None, churn_risk: bool | None = None,
) -> dict[str, Any]:
    filters = {"q": q, "status": status, "member_level": member_level, "tenure": tenure, "industry": industry,
               "size": size, "tag": tag, "churn_risk": churn_risk}
    return await handlers.list_customers(deps, filters, limit, cursor)


@customers.post("/lookup", summary="Exact lookup by phone or email through the blind index (masked)")
async def lookup(body: Lookup, deps: DepsDep, who: Staff) -> dict[str, Any]:
    return await handlers.lookup(deps, body.phone, body.email)


@customers.post("/keys:rewrap", summary="Re-wrap every data key under the current master key (rotation)")
async def rewrap(deps: DepsDep, who: Admin) -> dict[str, Any]:
    return await handlers.rewrap_keys(deps)


@customers.get("/{customer_id}", summary="A profile: masked, or clear with reveal=true for roles allowed (audited)")
async def get_customer(
    customer_id: str, deps: DepsDep, who: Staff, reveal: bool = False,
    purpose: Annotated[str | None, Query(max_length=200, description="why clear values are needed")] = None,
) -> dict[str, Any]:
    return await handlers.get_profile(deps, customer_id, who, reveal_clear=reveal, purpose=purpose)


@customers.patch("/{customer_id}", summary="Change some fields; history keeps who, when and which fields")
async def patch_customer(customer_id: str, body: ProfileFields, deps: DepsDep, who: Staff) -> dict[str, Any]:
    return await handlers.update_profile(deps, customer_id, body.model_dump(exclude_unset=True), who.subject)


@customers.delete("/{customer_id}", status_code=204, summary="Erase: crypto-shred, keep a tombstone, publish customer.erased")
async def erase_customer(
    customer_id: str, deps: DepsDep, who: Senior, reason: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    await handlers.erase(deps, customer_id, who.subject, reason)
    return Response(status_code=204)


@customers.get("/{customer_id}/export", summary="Everything held about the customer (clear, audited)")
async def export_customer(customer_id: str, deps: DepsDep, who: Senior) -> dict[str, Any]:
    return await handlers.export(deps, customer_id, who)


@customers.get("/{customer_id}/history", summary="Change history (field names, never values)")
async def customer_history(customer_id: str, deps: DepsDep, who: Staff) -> dict[str, Any]:
    return await handlers.history(deps, customer_id)


@customers.get("/{customer_id}/timeline", summary="360° view: contacts, purchases, complaints, surveys, visits")
async def customer_timeline(
    customer_id: str, deps: DepsDep, who: Staff, limit: Limit = 50,
    cursor: Annotated[datetime | None, Query(description="items before this time")] = None,
) -> dict[str, Any]:
    return await handlers.timeline(deps, customer_id, limit, cursor)


@customers.get("/{customer_id}/care", summary="The customer's care occasions: greetings, revisits, commitments, churn watch")
async def care_schedule(customer_id: str, deps: DepsDep, who: Staff, limit: Limit = 50) -> dict[str, Any]:
    return await handlers.care_schedule(deps, customer_id, limit)


@customers.get("/{customer_id}/consents", summary="Consent per purpose and channel opt-outs")
async def get_consents(customer_id: str, deps: DepsDep, who: Staff) -> dict[str, Any]:
    return await handlers.get_consents(deps, customer_id)


@customers.put("/{customer_id}/consents/{purpose}", summary="Grant or withdraw consent for one purpose (effective at once)")
async def put_consent(customer_id: str, purpose: str, body: ConsentChange, deps: DepsDep, who: Intake) -> dict[str, Any]:
    return await handlers.set_consent(deps, customer_id, purpose, body.granted, body.source, who.subject)


@customers.put("/{customer_id}/opt-outs", summary="Channels the customer does not want to be reached on")
async def put_opt_outs(customer_id: str, body: ChannelOptOuts, deps: DepsDep, who: Staff) -> dict[str, Any]:
    return await handlers.set_opt_outs(deps, customer_id, list(body.channels), who.subject)


@interactions.post("", status_code=201, summary="Record a contact (CC-2); inbound ones start a response clock")
async def log_interaction(body: NewInteraction, deps: DepsDep, who: Intake) -> dict[str, Any]:
    return await handlers.log_interaction(deps, body.model_dump(), who)


@interactions.get("", summary="A customer's contact records")
async def list_interactions(customer_id: str, deps: DepsDep, who: Staff, limit: Limit = 50,
                            cursor: str | None = None) -> dict[str, Any]:
    return await handlers.list_interactions(deps, customer_id, limit, cursor)


@visits.post("", status_code=201, summary="Plan a visit")
async def plan_visit(body: NewVisit, deps: DepsDep, who: Staff) -> dict[str, Any]:
    return await handlers.plan_visit(deps, body.customer_id, body.purpose, body.planned_for, body.owner, who.subject)


@visits.get("", summary="Visits by customer or owner")
async def list_visits(deps: DepsDep, who: Staff, customer_id: str | None = None, owner: str | None = None,
                      limit: Limit = 50, cursor: str | None = None) -> dict[str, Any]:
    return await handlers.list_visits(deps, customer_id, owner, limit, cursor)


@visits.get("/{visit_id}", summary="One visit with its report")
async def get_visit(visit_id: str, deps: DepsDep, who: Staff) -> dict[str, Any]:
    return await handlers.get_visit(deps, visit_id)


@visits.post("/{visit_id}/report", summary="File the visit report; commitments get reminders at their due dates")
async def file_report(visit_id: str, body: VisitReport, deps: DepsDep, who: Staff) -> dict[str, Any]:
    return await handlers.file_report(deps, visit_id, body.model_dump(), who.subject)


@visits.post("/{visit_id}/commitments/{commitment_id}/fulfil", summary="Mark a commitment fulfilled (stops its reminder)")
async def fulfil(visit_id: str, commitment_id: str, deps: DepsDep, who: Staff) -> dict[str, Any]:
    return await handlers.fulfil_commitment(deps, visit_id, commitment_id, who.subject)


@kpis.get("/customer", summary="Response timeliness (overall, per handler), churn rate, counts")
async def customer_kpis(
    deps: DepsDep, who: Senior,
    start: Annotated[datetime, Query(alias="from")], end: Annotated[datetime, Query(alias="to")],
) -> dict[str, Any]:
    if start.tzinfo is None or end.tzinfo is None:
        raise Problem(422, "Invalid request", "from and to must carry a UTC offset")
    if end <= start:
        raise Problem(422, "Invalid request", "to must be after from")
    return await handlers.kpis(deps, start, end)


@internal.post("/{customer_id}/contact-details", summary="Contact details for a stated purpose (services only; audited)")
async def contact_details(customer_id: str, body: ContactDetailsRequest, deps: DepsDep, who: Service) -> dict[str, Any]:
    return await handlers.contact_details(deps, customer_id, body.purpose, body.channels, who)


ROUTERS = (customers, interactions, visits, kpis, internal)
