"""Thin HTTP layer: intake routes (publish, 202), the KPI overview, and the proxy to the services.
Authentication, roles, limits and idempotency already happened in the front door."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from guanxi_shared.auth import Identity
from guanxi_shared.errors import NotFound
from guanxi_shared.problems import Problem
from guanxi_shared.runtime import app_deps

from . import handlers
from .domain import API
from .handlers import Accepted, ComplaintIntake, Deps, InteractionIntake, PurchaseIntake

DepsDep = Annotated[Deps, Depends(app_deps)]


async def caller(request: Request) -> Identity:
    identity: Identity | None = getattr(request.state, "identity", None)
    if identity is None:  # the front door authenticates every non-public route; this is a wiring error
        raise Problem(401, "Unauthenticated", "no verified identity")
    return identity


Caller = Annotated[Identity, Depends(caller)]
_ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"description": "Accepted: the event is on Kafka"}}

router = APIRouter(prefix=API)


def _idempotency_record(request: Request) -> str | None:
    record: str | None = getattr(request.state, "idempotency_record", None)  # set by the front door
    return record


def _accepted(result: Accepted, location: str | None) -> JSONResponse:
    headers = {"Location": location} if location else None
    return JSONResponse(result.model_dump(), status_code=202, headers=headers)


@router.post("/complaints", status_code=202, response_model=Accepted, responses=_ACCEPTED, tags=["intake"],
             summary="File a complaint (publishes complaint.received); roles: agent, supervisor, admin, integration")
async def file_complaint(body: ComplaintIntake, request: Request, deps: DepsDep, _: Caller) -> JSONResponse:
    request.state.customer_id = body.customer_id
    result = await handlers.file_complaint(deps, body, _idempotency_record(request))
    return _accepted(result, f"{API}/complaints/{result.id}")


@router.post("/interactions", status_code=202, response_model=Accepted, responses=_ACCEPTED, tags=["intake"],
             summary="Log a contact (publishes interaction.logged); roles: agent, supervisor, admin, integration")
async def log_interaction(body: InteractionIntake, request: Request, deps: DepsDep, identity: Caller) -> JSONResponse:
    request.state.customer_id = body.customer_id
    result = await handlers.log_interaction(deps, body, identity, _idempotency_record(request))
    return _accepted(result, None)


@router.post("/purchases", status_code=202, response_model=Accepted, responses=_ACCEPTED, tags=["intake"],
             summary="Record a completed purchase (publishes purchase.completed); roles: integration, admin")
async def record_purchase(body: PurchaseIntake, request: Request, deps: DepsDep, _: Caller) -> JSONResponse:
    request.state.customer_id = body.customer_id
    result = await handlers.record_purchase(deps, body)
    return _accepted(result, None)


@router.get("/kpis", tags=["kpis"], summary="KP-1 indicators beside their targets; roles: supervisor, admin",
            responses={200: {"content": {"application/json": {"example": {
                "from": "2026-10-24T00:00:00+00:00", "to": "2026-11-23T00:00:00+00:00",
                "indicators": [{"indicator": "first_contact_resolution", "label": "First-contact resolution",
                                "value": 0.92, "unit": "ratio", "target": 0.9, "comparison": ">=", "met": True,
                                "source": "complaints:first_contact_resolution"}],
                "sections": {"surveys": {"available": False, "reason": "the surveys service cannot be reached"}}}}}}})
async def kpis(request: Request, deps: DepsDep, identity: Caller,
               start: Annotated[datetime | None, Query(alias="from", description="RFC 3339; default 30 days before 'to'")] = None,
               end: Annotated[datetime | None, Query(alias="to", description="RFC 3339; default now")] = None) -> dict[str, Any]:
    return await handlers.kpi_overview(deps, identity, request.state.request_id, start, end)


@router.api_route("/{rest:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def proxy(rest: str, request: Request, deps: DepsDep) -> Response:
    rule = getattr(request.state, "rule", None)
    if rule is None or rule.service is None:
        raise NotFound(f"no route {request.url.path}")
    identity: Identity | None = getattr(request.state, "identity", None)
    query = request.scope.get("query_string", b"").decode("latin-1")
    response: Response = await deps.forward(rule.service, request, identity, request.state.request_id, query)
    return response


ROUTERS = [router]
