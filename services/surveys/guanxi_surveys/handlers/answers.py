"""The public answer link: the questions behind it, and the answers, taken once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import domain
from ..domain import events
from ..store import Change
from .deps import Deps

Survey = Mapping[str, Any]


async def _open(deps: Deps, token: str) -> tuple[domain.LinkClaims, Survey]:
    """The link's claims and its survey, if it can be answered now; else a refusal saying why."""
    now = deps.clock.now()
    claims = domain.read_link(token, deps.settings.link_secret.get_secret_value(), now)
    return claims, domain.check_answerable(await deps.store.get(claims.survey_id), claims.nonce, now)


async def survey_form(deps: Deps, token: str) -> dict[str, Any]:
    _, doc = await _open(deps, token)
    template = domain.template_of(doc["kind"], doc["template_version"])
    return {"survey_id": doc["_id"], "kind": doc["kind"], "expires_at": doc["expires_at"].isoformat(),
            **template.render(doc.get("language") or deps.settings.default_language)}


async def submit_answers(deps: Deps, token: str, answers: Mapping[str, Any]) -> dict[str, Any]:
    claims, doc = await _open(deps, token)
    template = domain.template_of(doc["kind"], doc["template_version"])
    valid = domain.validate_answers(template, answers)
    now = deps.clock.now()
    reasons = domain.low_score_reasons(valid.csat, valid.nps, deps.settings.low_score_threshold)
    changes = {"status": "completed", "completed_at": now, "answers": valid.values, "csat": valid.csat, "nps": valid.nps,
               "low_score": bool(reasons)}
    # Only the one submission that finds the survey still open with this link's nonce wins.
    answered = Change(doc["_id"], {"status": "sent", "link_nonce": claims.nonce}, changes,
                      events.answered(doc, valid, template.key, reasons, now))
    if not await deps.store.change(answered):
        await _open(deps, token)  # explains why (answered meanwhile, closed...)
        raise domain.SurveyAnswered()
    return {"survey_id": doc["_id"], "status": "completed", "low_score": bool(reasons)}
