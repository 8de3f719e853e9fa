"""The customer's own pages, public (the link is the credential): the survey behind its signed link
and the status of their complaint behind the emailed link."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import domain
from ..domain.status import CustomerStatus
from ..gateway import GatewayError, Unauthenticated
from .deps import Deps


async def survey_form(deps: Deps, link_token: str) -> dict[str, Any]:
    return await deps.gateway.survey_form(link_token)


async def answer_survey(deps: Deps, link_token: str, form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the survey as the API shows it, the answers sent). The form is checked against the questions
    the API gives before anything is sent (``FormProblems``); the API checks again (``GatewayError``)."""
    survey = await deps.gateway.survey_form(link_token)
    answers = domain.survey_answers(survey.get("questions", []), form)
    await deps.gateway.answer_survey(link_token, answers)
    return survey, answers


async def complaint_status(deps: Deps, link_token: str) -> CustomerStatus:
    """What the customer may see of their complaint; ``GatewayError`` 404 (unknown link) or 410
    (expired). While the complaints API has no public status route the gateway asks for a token
    (401): that is answered as an unknown link."""
    try:
        data = await deps.gateway.complaint_status(link_token)
    except Unauthenticated as exc:
        raise GatewayError(404, "Not found", "no public complaint status route") from exc
    return domain.status.customer_status(data)
