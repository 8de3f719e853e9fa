"""HTTP routes of the surveys service (thin: parse, authorise, call a handler)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from guanxi_shared.auth import Identity, Role, require_roles
from guanxi_shared.runtime import app_deps
from pydantic import BaseModel, Field

from .handlers import Deps, answers, reads

STAFF = require_roles(Role.agent, Role.supervisor, Role.admin)
MANAGERS = require_roles(Role.supervisor, Role.admin)
KPI_READERS = require_roles(Role.supervisor, Role.admin, Role.service)
MAX_LIMIT = 200

DepsDep = Annotated[Deps, Depends(app_deps)]

# The answer link is public: the token is the credential.
public = APIRouter(prefix="/api/v1", tags=["answer (public)"])
staff = APIRouter(prefix="/api/v1")
ROUTERS = [public, staff]


class AnswerSubmission(BaseModel):
    answers: dict[str, Any] = Field(description="question id → answer, e.g. {\"satisfaction\": 90, \"recommend\": 9}")


@public.get("/surveys/answer/{token}", summary="The questions behind an answer link")
async def answer_form(token: str, deps: DepsDep) -> dict[str, Any]:
    return await answers.survey_form(deps, token)


@public.post("/surveys/answer/{token}", summary="Answer a survey once, with the link's token")
async def answer(token: str, body: AnswerSubmission, deps: DepsDep) -> dict[str, Any]:
    return await answers.submit_answers(deps, token, body.answers)


@staff.get("/surveys", tags=["surveys"], summary="Surveys, e.g. of one customer, each with scheduled_for and status")
async def list_surveys(
    deps: DepsDep, _: Annotated[Identity, Depends(STAFF)],
    customer_id: str | None = None, status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50, cursor: str | None = None,
) -> dict[str, Any]:
    return await reads.list_surveys(deps, customer_id, status, limit, cursor)


@staff.get("/surveys/skips", tags=["surveys"], summary="Triggers that got no survey, with the reason")
async def list_skips(
    deps: DepsDep, _: Annotated[Identity, Depends(STAFF)], customer_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50, cursor: str | None = None,
) -> dict[str, Any]:
    return await reads.list_skips(deps, customer_id, limit, cursor)


@staff.get("/surveys/templates", tags=["surveys"], summary="Survey templates (every version) in zh and en")
async def templates(_: Annotated[Identity, Depends(STAFF)], language: Literal["zh", "en"] = "zh") -> dict[str, Any]:
    return reads.templates(language)


@staff.get("/surveys/reports", tags=["reports"], summary="CSAT (target shown), NPS, response rate and distribution")
async def reports(
    deps: DepsDep, _: Annotated[Identity, Depends(MANAGERS)],
    since: Annotated[str | None, Query(alias="from")] = None, until: Annotated[str | None, Query(alias="to")] = None,
    group_by: Literal["channel", "member_level", "kind", "period"] | None = None,
    period: Literal["day", "week", "month"] = "month",
) -> dict[str, Any]:
    start, end = reads.report_range(deps, since, until)
    return await reads.report(deps, start, end, group_by, period)


@staff.get("/surveys/{survey_id}", tags=["surveys"], summary="One survey")
async def get_survey(survey_id: str, deps: DepsDep, _: Annotated[Identity, Depends(STAFF)]) -> dict[str, Any]:
    return await reads.get_survey(deps, survey_id)


@staff.get("/kpis/surveys", tags=["reports"], summary="Average satisfaction, NPS and response rate")
async def kpis(
    deps: DepsDep, _: Annotated[Identity, Depends(KPI_READERS)],
    since: Annotated[str | None, Query(alias="from")] = None, until: Annotated[str | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    start, end = reads.report_range(deps, since, until)
    return await reads.kpis(deps, start, end)
