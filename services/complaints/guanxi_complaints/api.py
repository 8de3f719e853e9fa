"""HTTP routes of the complaints service (thin): the same paths the gateway exposes under /api/v1."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from guanxi_shared.auth import Identity, Role, require_roles
from guanxi_shared.runtime import app_deps
from pydantic import BaseModel, ConfigDict, Field

from . import handlers
from .domain import DEADLINE_ORDER, Actor, Case
from .handlers import Deps

READERS = (Role.agent, Role.supervisor, Role.admin, Role.service)
ACTORS = (Role.agent, Role.supervisor)
KPI_READERS = (Role.supervisor, Role.admin)

DepsDep = Annotated[Deps, Depends(app_deps)]
Reader = Annotated[Identity, Depends(require_roles(*READERS))]
Staff = Annotated[Identity, Depends(require_roles(*ACTORS))]
KpiReader = Annotated[Identity, Depends(require_roles(*KPI_READERS))]

# The customer's status link is public: the signed token is the credential, and the answer holds no
# personal data. First, so that its path is never taken for a case id.
public = APIRouter(prefix="/api/v1", tags=["complaint status (public)"])
router = APIRouter(prefix="/api/v1", tags=["complaints"])
ROUTERS = [public, router]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AssignBody(_Body):
    owner: str = Field(min_length=1, max_length=128)
    team: str | None = Field(default=None, max_length=128)


class OpinionBody(_Body):
    opinion: str = Field(min_length=1, max_length=10_000)


class InvestigationBody(_Body):
    reason: str = Field(min_length=1, max_length=10_000)


class ResolveBody(_Body):
    resolution: str = Field(min_length=1, max_length=10_000)
    compensation: str | None = Field(default=None, max_length=2_000)
    apology: bool = False
    root_cause: str | None = Field(default=None, max_length=100)


class AwaitCustomerBody(_Body):
    reason: str = Field(min_length=1, max_length=2_000)


class CloseBody(_Body):
    confirmed_by_customer: bool = False


class ReopenBody(_Body):
    reason: str = Field(min_length=1, max_length=10_000)


def actor(who: Identity) -> Actor:
    return Actor(who.subject, supervisor=who.has(Role.supervisor), team=who.team)


def _rfc3339(deps: Deps) -> Callable[[datetime | None], str | None]:
    tz = deps.policy.calendar.tz

    def rfc3339(moment: datetime | None) -> str | None:
        return moment.astimezone(tz).isoformat() if moment is not None else None

    return rfc3339


def view(case: Case, deps: Deps) -> dict[str, Any]:
    """The case as clients see it: times in RFC 3339 in the service's time zone, SLA outcomes as of now."""
    now = deps.clock.now()
    rfc3339 = _rfc3339(deps)
    return {
        "id": case.id,
        "number": case.number,
        "customer_id": case.customer_id,
        "status": case.status.value,
        "channel": case.channel,
        "category": case.category,
        "severity": case.severity,
        "product": case.product,
        "description": case.description,
        "evidence": case.evidence,
        "source": case.source,
        "external_ref": case.external_ref,
        "owner": case.owner,
        "team": case.team,
        "received_at": rfc3339(case.received_at),
        "deadlines": {d.value: rfc3339(case.deadlines[d].due_at) if d in case.deadlines else None for d in DEADLINE_ORDER},
        "sla": {name: {"due_at": rfc3339(s.due_at), "met_at": rfc3339(s.met_at), "outcome": s.outcome(now),
                       "approaching_notified": s.approached, "breached": s.breached}
                for name, s in case.deadlines.items()},
        "next_deadline": case.next_deadline(),
        "next_due_at": rfc3339(case.next_due_at),
        "overdue": case.is_overdue(now),
        "preliminary_opinion": case.preliminary_opinion,
        "investigation_reason": case.investigation_reason,
        "resolution": case.resolution,
        "compensation": case.compensation,
        "apology": case.apology,
        "root_cause": case.root_cause,
        "first_contact_resolution": case.first_contact_resolution,
        "acknowledged_at": rfc3339(case.acknowledged_at),
        "resolved_at": rfc3339(case.resolved_at),
        "closed_at": rfc3339(case.closed_at),
        "confirmed_by_customer": case.confirmed_by_customer,
        "reopen_count": case.reopen_count,
        "waiting_on_customer_since": rfc3339(case.waiting_since),
        "escalations": [{"reason": e.reason, "at": rfc3339(e.at), "owner": e.owner} for e in case.escalations],
        "history": [{"step": s.step, "actor": s.actor, "at": rfc3339(s.at), "note": s.note} for s in case.history],
        "version": case.version,
    }


def status_view(case: Case, deps: Deps) -> dict[str, Any]:
    """What the customer's status page shows: non-personal facts only (no id, customer, description or notes)."""
    now = deps.clock.now()
    rfc3339 = _rfc3339(deps)
    nearest = case.next_deadline()
    state = case.deadlines.get(nearest) if nearest else None
    return {
        "number": case.number,
        "status": case.status.value,
        "received_at": rfc3339(case.received_at),
        "acknowledged_at": rfc3339(case.acknowledged_at),
        "resolved_at": rfc3339(case.resolved_at),
        "closed_at": rfc3339(case.closed_at),
        "next_deadline": nearest,
        "next_due_at": rfc3339(case.next_due_at),
        "breached": case.is_overdue(now) or bool(state is not None and state.breached),
    }


Several = Annotated[list[str] | None, Query(description="repeat the parameter or separate values with commas")]


@public.get("/complaints/status/{token}", summary="A complaint's status behind the customer's signed link")
async def complaint_status(token: str, deps: DepsDep) -> dict[str, Any]:
    return status_view(await handlers.status_page(deps, token), deps)


@router.get("/complaints/{case_id}", summary="A complaint case (by id or case number) with its status and deadlines")
async def get_case(case_id: str, _: Reader, deps: DepsDep) -> dict[str, Any]:
    return view(await handlers.get_case(deps, case_id), deps)


@router.get("/complaints", summary="Queues of complaints: filters, newest receipt or nearest deadline first")
async def list_cases(
    _: Reader,
    deps: DepsDep,
    customer_id: str | None = None,
    status: Several = None,
    open_: Annotated[bool | None, Query(alias="open", description="true: every status but resolved and closed")] = None,
    owner: Annotated[str | None, Query(description="a handler, or `none` for the unassigned cases")] = None,
    team: str | None = None,
    severity: Several = None,
    channel: Several = None,
    category: Several = None,
    number: Annotated[str | None, Query(description="a case number, e.g. TS-2026-000123 (exact)")] = None,
    overdue: bool | None = None,
    sort: Annotated[str | None, Query(description="`received` (newest first, the default) or `deadline`")] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    page = await handlers.list_cases(deps, customer_id=customer_id, status=status, open_=open_, owner=owner, team=team,
                                     severity=severity, channel=channel, category=category, number=number,
                                     overdue=overdue, sort=sort, limit=limit, cursor=cursor)
    return {"items": [view(c, deps) for c in page.items], "next": page.next}


@router.post("/complaints/{case_id}/acknowledge", summary="Acknowledge receipt")
async def acknowledge(case_id: str, who: Staff, deps: DepsDep) -> dict[str, Any]:
    return view(await handlers.acknowledge(deps, case_id, actor(who)), deps)


@router.post("/complaints/{case_id}/assign", summary="Assign or reassign to a named handler")
async def assign(case_id: str, body: AssignBody, who: Staff, deps: DepsDep) -> dict[str, Any]:
    return view(await handlers.assign(deps, case_id, actor(who), body.owner, body.team), deps)


@router.post("/complaints/{case_id}/preliminary-opinion", summary="Give the preliminary opinion")
async def preliminary_opinion(case_id: str, body: OpinionBody, who: Staff, deps: DepsDep) -> dict[str, Any]:
    return view(await handlers.give_preliminary_opinion(deps, case_id, actor(who), body.opinion), deps)


@router.post("/complaints/{case_id}/investigation", summary="Start an investigation")
async def investigation(case_id: str, body: InvestigationBody, who: Staff, deps: DepsDep) -> dict[str, Any]:
    return view(await handlers.start_investigation(deps, case_id, actor(who), body.reason), deps)


@router.post("/complaints/{case_id}/resolve", summary="Give the formal answer")
async def resolve(case_id: str, body: ResolveBody, who: Staff, deps: DepsDep) -> dict[str, Any]:
    return view(await handlers.resolve(deps, case_id, actor(who), body.resolution, compensation=body.compensation,
                                       apology=body.apology, root_cause=body.root_cause), deps)


@router.post("/complaints/{case_id}/close", summary="Close (customer confirmed)")
async def close(case_id: str, who: Staff, deps: DepsDep, body: CloseBody | None = None) -> dict[str, Any]:
    confirmed = body.confirmed_by_customer if body else False
    return view(await handlers.close(deps, case_id, actor(who), confirmed_by_customer=confirmed), deps)


@router.post("/complaints/{case_id}/reopen", summary="Reopen on the customer's request")
async def reopen(case_id: str, body: ReopenBody, who: Staff, deps: DepsDep) -> dict[str, Any]:
    return view(await handlers.reopen(deps, case_id, actor(who), body.reason), deps)


@router.post("/complaints/{case_id}/await-customer", summary="Wait for information from the customer")
async def await_customer(case_id: str, body: AwaitCustomerBody, who: Staff, deps: DepsDep) -> dict[str, Any]:
    return view(await handlers.await_customer(deps, case_id, actor(who), body.reason), deps)


@router.post("/complaints/{case_id}/customer-responded", summary="The customer answered; deadlines resume")
async def customer_responded(case_id: str, who: Staff, deps: DepsDep) -> dict[str, Any]:
    return view(await handlers.customer_responded(deps, case_id, actor(who)), deps)


@router.get("/kpis/complaints", tags=["kpis"], summary="Complaint indicators of a period (by receipt time)")
async def complaint_kpis(_: KpiReader, deps: DepsDep, from_: Annotated[datetime, Query(alias="from")],
                         to: Annotated[datetime, Query()]) -> dict[str, Any]:
    return {"from": from_.isoformat(), "to": to.isoformat(), **await handlers.complaint_kpis(deps, from_, to)}
