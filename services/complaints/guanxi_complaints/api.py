"""HTTP routes of the complaints service (thin): the same paths the gateway exposes under /api/v1."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from guanxi_shared.auth import Identity, Role, require_roles
from guanxi_shared.problems import Problem
from pydantic import BaseModel, ConfigDict, Field

from . import domain, handlers, kpis
from .domain import DEADLINE_ORDER, Case, Outcome
from .store import CaseFilter, CursorError, encode_cursor

READERS = (Role.agent, Role.supervisor, Role.admin, Role.service)
ACTORS = (Role.agent, Role.supervisor)
KPI_READERS = (Role.supervisor, Role.admin)
MAX_KPI_PERIOD = timedelta(days=366)

Reader = Annotated[Identity, Depends(require_roles(*READERS))]
Actor = Annotated[Identity, Depends(require_roles(*ACTORS))]
KpiReader = Annotated[Identity, Depends(require_roles(*KPI_READERS))]


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


def make_router(deps: handlers.Deps, max_page_size: int) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["complaints"])
    policy = deps.policy
    tz = policy.calendar.tz

    def rfc3339(moment: datetime | None) -> str | None:
        return moment.astimezone(tz).isoformat() if moment is not None else None

    def view(case: Case) -> dict[str, Any]:
        now = deps.clock.now()
        return {
            "id": case.id,
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
            "deadlines": {d.value: rfc3339(case.deadlines[d].due_at) if d in case.deadlines else None
                          for d in DEADLINE_ORDER},
            "sla": {name: {"due_at": rfc3339(s.due_at), "met_at": rfc3339(s.met_at), "outcome": s.outcome(now),
                           "approaching_notified": s.approached, "breached": s.breached}
                    for name, s in case.deadlines.items()},
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

    async def act(case_id: str, identity: Identity, command: Callable[[Case, datetime], Outcome]) -> dict[str, Any]:
        try:
            case = await handlers.run_command(deps, case_id, identity.subject, identity.has(Role.supervisor), command)
        except handlers.CaseNotFound as exc:
            raise Problem(404, "Not found", f"no complaint {case_id}") from exc
        except domain.NotPermitted as exc:
            raise Problem(403, "Forbidden", str(exc)) from exc
        except domain.IllegalTransition as exc:
            raise Problem(409, "Illegal transition", str(exc)) from exc
        except handlers.Conflict as exc:
            raise Problem(409, "Conflict", str(exc)) from exc
        return view(case)

    @router.get("/complaints/{case_id}", summary="A complaint case with its status and deadlines")
    async def get_case(case_id: str, _: Reader) -> dict[str, Any]:
        case = await deps.cases.get(case_id)
        if case is None:
            raise Problem(404, "Not found", f"no complaint {case_id} (yet: intake is asynchronous)")
        return view(case)

    @router.get("/complaints", summary="Queues of complaints by customer, status, owner, overdue")
    async def list_cases(
        _: Reader,
        customer_id: str | None = None,
        status: domain.Status | None = None,
        owner: str | None = None,
        overdue: bool | None = None,
        limit: Annotated[int, Query(ge=1)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        size = min(limit, max_page_size)
        filters = CaseFilter(customer_id=customer_id, status=status.value if status else None, owner=owner, overdue=overdue)
        try:
            found = await deps.cases.query(filters, deps.clock.now(), size + 1, cursor)
        except CursorError as exc:
            raise Problem(400, "Bad cursor", str(exc)) from exc
        page = found[:size]
        return {"items": [view(c) for c in page], "next": encode_cursor(page[-1]) if len(found) > size else None}

    @router.post("/complaints/{case_id}/acknowledge", summary="Acknowledge receipt")
    async def acknowledge(case_id: str, who: Actor) -> dict[str, Any]:
        return await act(case_id, who, lambda c, now: domain.acknowledge(c, who.subject, now, policy))

    @router.post("/complaints/{case_id}/assign", summary="Assign or reassign to a named handler")
    async def assign(case_id: str, body: AssignBody, who: Actor) -> dict[str, Any]:
        if not who.has(Role.supervisor) and body.owner != who.subject:
            raise Problem(403, "Forbidden", "agents may only take a case themselves; a supervisor assigns to others")
        team = body.team or (who.team if body.owner == who.subject else None)
        return await act(case_id, who, lambda c, now: domain.assign(c, body.owner, who.subject, now, policy, team))

    @router.post("/complaints/{case_id}/preliminary-opinion", summary="Give the preliminary opinion")
    async def preliminary_opinion(case_id: str, body: OpinionBody, who: Actor) -> dict[str, Any]:
        return await act(case_id, who, lambda c, now: domain.give_preliminary_opinion(c, body.opinion, who.subject, now, policy))

    @router.post("/complaints/{case_id}/investigation", summary="Start an investigation")
    async def investigation(case_id: str, body: InvestigationBody, who: Actor) -> dict[str, Any]:
        return await act(case_id, who, lambda c, now: domain.start_investigation(c, body.reason, who.subject, now, policy))

    @router.post("/complaints/{case_id}/resolve", summary="Give the formal answer")
    async def resolve(case_id: str, body: ResolveBody, who: Actor) -> dict[str, Any]:
        return await act(case_id, who, lambda c, now: domain.resolve(
            c, body.resolution, who.subject, now, policy, compensation=body.compensation, apology=body.apology,
            root_cause=body.root_cause))

    @router.post("/complaints/{case_id}/close", summary="Close (customer confirmed)")
    async def close(case_id: str, who: Actor, body: CloseBody | None = None) -> dict[str, Any]:
        confirmed = body.confirmed_by_customer if body else False
        return await act(case_id, who, lambda c, now: domain.close(c, who.subject, now, policy,
                                                                     confirmed_by_customer=confirmed))

    @router.post("/complaints/{case_id}/reopen", summary="Reopen on the customer's request")
    async def reopen(case_id: str, body: ReopenBody, who: Actor) -> dict[str, Any]:
        return await act(case_id, who, lambda c, now: domain.reopen(c, body.reason, who.subject, now, policy))

    @router.post("/complaints/{case_id}/await-customer", summary="Wait for information from the customer")
    async def await_customer(case_id: str, body: AwaitCustomerBody, who: Actor) -> dict[str, Any]:
        return await act(case_id, who, lambda c, now: domain.await_customer(c, body.reason, who.subject, now, policy))

    @router.post("/complaints/{case_id}/customer-responded", summary="The customer answered; deadlines resume")
    async def customer_responded(case_id: str, who: Actor) -> dict[str, Any]:
        return await act(case_id, who, lambda c, now: domain.customer_responded(c, who.subject, now, policy))

    @router.get("/kpis/complaints", tags=["kpis"], summary="Complaint indicators of a period (by receipt time)")
    async def complaint_kpis(_: KpiReader, from_: Annotated[datetime, Query(alias="from")],
                             to: Annotated[datetime, Query()]) -> dict[str, Any]:
        if from_.tzinfo is None or to.tzinfo is None:
            raise Problem(422, "Invalid request", "from and to must be RFC 3339 with a UTC offset")
        if to <= from_ or to - from_ > MAX_KPI_PERIOD:
            raise Problem(422, "Invalid request", "the period must be positive and at most 366 days")
        cases = await deps.cases.received_between(from_, to)
        return {"from": from_.isoformat(), "to": to.isoformat(), **kpis.compute(cases, deps.clock.now())}

    return router
