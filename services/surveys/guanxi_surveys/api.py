"""HTTP routes of the surveys service (thin: parse, authorise, call a handler)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from guanxi_shared.auth import Identity, Role, require_roles
from guanxi_shared.problems import Problem
from pydantic import BaseModel, Field

from . import domain, handlers
from .handlers import AnswerRefused, Deps

STAFF = require_roles(Role.agent, Role.supervisor, Role.admin)
MANAGERS = require_roles(Role.supervisor, Role.admin)
KPI_READERS = require_roles(Role.supervisor, Role.admin, Role.service)
MAX_LIMIT = 200


def deps_of(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


DepsDep = Annotated[Deps, Depends(deps_of)]


class AnswerSubmission(BaseModel):
    answers: dict[str, Any] = Field(description="question id → answer, e.g. {\"satisfaction\": 90, \"recommend\": 9}")


def _moment(value: str | None, default: datetime, deps: Deps, name: str) -> datetime:
    """RFC 3339 with offset, or a date (midnight in the business time zone)."""
    if value is None:
        return default
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(),
                                    tzinfo=domain.zone(None, deps.settings.default_timezone))
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Problem(422, "Invalid request", f"{name}: must be a date (YYYY-MM-DD) or RFC 3339 time") from exc
    if moment.tzinfo is None:
        raise Problem(422, "Invalid request", f"{name}: a time needs a UTC offset")
    return moment


def _range(deps: Deps, since: str | None, until: str | None) -> tuple[datetime, datetime]:
    now = deps.clock.now()
    start = _moment(since, now - timedelta(days=30), deps, "from")
    end = _moment(until, now, deps, "to")
    if end <= start:
        raise Problem(422, "Invalid request", "to must be after from")
    return start, end


def _refused(exc: AnswerRefused) -> Problem:
    extra: dict[str, Any] = {"errors": exc.errors} if exc.errors else {}
    return Problem(exc.status, exc.title, exc.detail, **extra)


def _page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next": items[-1]["id"] if more and items else None}


def router() -> APIRouter:
    r = APIRouter(prefix="/api/v1")

    @r.get("/surveys/answer/{token}", tags=["answer (public)"], summary="The questions behind an answer link")
    async def answer_form(token: str, deps: DepsDep) -> dict[str, Any]:
        try:
            return await handlers.survey_form(deps, token)
        except AnswerRefused as exc:
            raise _refused(exc) from exc

    @r.post("/surveys/answer/{token}", tags=["answer (public)"], summary="Answer a survey once, with the link's token")
    async def answer(token: str, body: AnswerSubmission, deps: DepsDep) -> dict[str, Any]:
        try:
            return await handlers.submit_answers(deps, token, body.answers)
        except AnswerRefused as exc:
            raise _refused(exc) from exc

    @r.get("/surveys", tags=["surveys"], summary="Surveys, e.g. of one customer, each with scheduled_for and status")
    async def list_surveys(
        deps: DepsDep, _: Annotated[Identity, Depends(STAFF)],
        customer_id: str | None = None, status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50, cursor: str | None = None,
    ) -> dict[str, Any]:
        match: dict[str, Any] = {}
        if customer_id:
            match["customer_id"] = customer_id
        if status:
            match["status"] = status
        docs = await deps.store.page("surveys", match, limit, cursor)
        return _page([handlers.survey_view(d) for d in docs], limit)

    @r.get("/surveys/skips", tags=["surveys"], summary="Triggers that got no survey, with the reason")
    async def list_skips(
        deps: DepsDep, _: Annotated[Identity, Depends(STAFF)], customer_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50, cursor: str | None = None,
    ) -> dict[str, Any]:
        docs = await deps.store.page("skips", {"customer_id": customer_id} if customer_id else {}, limit, cursor)
        return _page([handlers.skip_view(d) for d in docs], limit)

    @r.get("/surveys/templates", tags=["surveys"], summary="Survey templates (every version) in zh and en")
    async def templates(_: Annotated[Identity, Depends(STAFF)], language: Literal["zh", "en"] = "zh") -> dict[str, Any]:
        items = [t.render(language) | {"kind": t.kind, "version": t.version}
                 for versions in domain.TEMPLATES.values() for t in versions.values()]
        return {"items": items, "next": None}

    @r.get("/surveys/reports", tags=["reports"], summary="CSAT (target shown), NPS, response rate and distribution")
    async def reports(
        deps: DepsDep, _: Annotated[Identity, Depends(MANAGERS)],
        since: Annotated[str | None, Query(alias="from")] = None, until: Annotated[str | None, Query(alias="to")] = None,
        group_by: Literal["channel", "member_level", "kind", "period"] | None = None,
        period: Literal["day", "week", "month"] = "month",
    ) -> dict[str, Any]:
        start, end = _range(deps, since, until)
        return await handlers.report(deps, start, end, group_by, period)

    @r.get("/surveys/{survey_id}", tags=["surveys"], summary="One survey")
    async def get_survey(survey_id: str, deps: DepsDep, _: Annotated[Identity, Depends(STAFF)]) -> dict[str, Any]:
        doc = await deps.store.get(survey_id)
        if doc is None:
            raise Problem(404, "Not found", f"no survey {survey_id}")
        return handlers.survey_view(doc)

    @r.get("/kpis/surveys", tags=["reports"], summary="Average satisfaction, NPS and response rate")
    async def kpis(
        deps: DepsDep, _: Annotated[Identity, Depends(KPI_READERS)],
        since: Annotated[str | None, Query(alias="from")] = None, until: Annotated[str | None, Query(alias="to")] = None,
    ) -> dict[str, Any]:
        start, end = _range(deps, since, until)
        return await handlers.kpis(deps, start, end)

    return r
