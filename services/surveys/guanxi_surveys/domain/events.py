"""The events a survey's decisions and steps cause. Their ids are derived from the survey and the step,
so a replay (a trigger delivered again, a step retried) produces the same event, which consumers
deduplicate. Events carry ids and scores only: free-text answers never leave the service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from guanxi_shared.contracts.surveys import SurveyCompleted, SurveyLowScore, SurveyRequested, SurveyScheduled, SurveySkipped
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.topics import SURVEY_COMPLETED, SURVEY_LOW_SCORE, SURVEY_REQUESTED, SURVEY_SCHEDULED, SURVEY_SKIPPED

from .surveys import Trigger, derived_event_id
from .templates import Answers

SOURCE = "guanxi/surveys"

Survey = Mapping[str, Any]


def _event(cause: CloudEvent | None, type_: str, subject: str, data: dict[str, Any], event_id: str) -> CloudEvent:
    if cause is not None:
        return cause.follow_up(type_, data, source=SOURCE, subject=subject, id=event_id)
    return new_event(type_, subject, data, source=SOURCE, id=event_id)


def skipped(cause: CloudEvent | None, customer_id: str, kind: str, trigger_id: str, reason: str, at: datetime,
            survey_id: str | None = None) -> CloudEvent:
    """No survey for a trigger, or a scheduled one cancelled (``survey_id`` then names it)."""
    data = SurveySkipped(customer_id=customer_id, kind=kind, trigger_id=trigger_id, reason=reason, at=at,  # type: ignore[arg-type]
                         survey_id=survey_id).model_dump(mode="json", exclude_none=True)
    return _event(cause, SURVEY_SKIPPED, customer_id, data, derived_event_id(f"{kind}:{trigger_id}", f"skipped:{reason}"))


def cancelled(survey: Survey, reason: str, at: datetime, cause: CloudEvent | None = None) -> CloudEvent:
    return skipped(cause, survey["customer_id"], survey["kind"], survey["trigger_id"], reason, at, survey["_id"])


def scheduled(trigger: Trigger, scheduled_for: datetime) -> CloudEvent:
    data = SurveyScheduled(survey_id=trigger.survey_id, customer_id=trigger.customer_id, kind=trigger.kind,  # type: ignore[arg-type]
                           scheduled_for=scheduled_for, trigger_id=trigger.trigger_id)
    return _event(trigger.cause, SURVEY_SCHEDULED, trigger.customer_id, data.model_dump(mode="json"),
                  derived_event_id(trigger.survey_id, "scheduled"))


def requested(survey: Survey, *, language: str, link: str, expires_at: datetime, template: str,
              reminder: bool = False) -> CloudEvent:
    """The survey is due (once), or a reminder (once more, same link)."""
    data = SurveyRequested(survey_id=survey["_id"], customer_id=survey["customer_id"], kind=survey["kind"],
                           language=language, link=link, expires_at=expires_at, reminder=reminder,
                           trigger_id=survey["trigger_id"], template=template)
    return new_event(SURVEY_REQUESTED, survey["customer_id"], data.model_dump(mode="json"), source=SOURCE,
                     id=derived_event_id(survey["_id"], "reminder" if reminder else "requested"),
                     causationid=survey.get("trigger_event_id"))


def answered(survey: Survey, answers: Answers, template: str, low_score_reasons: Sequence[str],
             at: datetime) -> list[CloudEvent]:
    """``survey.completed``, and ``survey.low_score`` when the answers call for a follow-up."""
    sid, customer = survey["_id"], survey["customer_id"]
    completed = SurveyCompleted(survey_id=sid, customer_id=customer, kind=survey["kind"], csat=answers.csat,
                                nps=answers.nps, channel=survey.get("channel"), completed_at=at,
                                trigger_id=survey["trigger_id"], member_level=survey.get("member_level"), template=template)
    events = [new_event(SURVEY_COMPLETED, customer, completed.model_dump(mode="json", exclude_none=True), source=SOURCE,
                        id=derived_event_id(sid, "completed"), causationid=survey.get("trigger_event_id"))]
    if low_score_reasons:
        low = SurveyLowScore(survey_id=sid, customer_id=customer, kind=survey["kind"], csat=answers.csat, nps=answers.nps,
                             reason=",".join(low_score_reasons), at=at, trigger_id=survey["trigger_id"],
                             channel=survey.get("channel"))
        events.append(new_event(SURVEY_LOW_SCORE, customer, low.model_dump(mode="json", exclude_none=True), source=SOURCE,
                                id=derived_event_id(sid, "low_score"), causationid=events[0].id))
    return events
