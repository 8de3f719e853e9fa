"""Opening cases: from ``complaint.received``, and from low survey scores when the policy says so."""

from __future__ import annotations

import logging

from guanxi_shared.contracts.inbound import ComplaintReceived
from guanxi_shared.contracts.surveys import SurveyLowScore
from guanxi_shared.events import CloudEvent, InvalidEvent, parse_data

from .. import domain
from ..domain import Case, Intake
from .crisis import count_arrival, count_low_score
from .deps import SOURCE, Deps, to_cloud_events

log = logging.getLogger(__name__)


async def on_complaint_received(deps: Deps, event: CloudEvent) -> None:
    data = parse_data(event, ComplaintReceived)
    if data.customer_id != event.subject:
        raise InvalidEvent(f"subject {event.subject!r} is not the customer_id of the complaint")
    intake = Intake(source=event.source, customer_id=data.customer_id, channel=data.channel.value, category=data.category,
                    severity=data.severity.value, description=data.description, received_at=data.received_at,
                    complaint_id=str(data.complaint_id) if data.complaint_id else None, external_ref=data.external_ref,
                    product=data.product, evidence=tuple(data.evidence), event_id=event.id)
    await open_case(deps, intake, causation_id=event.id)


async def open_case(deps: Deps, intake: Intake, causation_id: str | None = None) -> Case | None:
    """Open the case once; a duplicate (same id or same source + external_ref) changes nothing.

    The case number is taken first and the case inserted with it, so a case keeps the number it was
    opened with; a duplicate intake takes a number it does not use (a gap in the sequence, never a reuse).
    """
    now = deps.clock.now()
    year = deps.policy.number_year(intake.received_at)
    number = domain.case_number(year, await deps.cases.next_number(year))
    outcome = domain.open_case(intake, deps.policy, now, number=number)
    if not await deps.cases.insert_new(outcome.case, to_cloud_events(outcome.case, outcome.events, causation_id)):
        # Events a crash left unpublished still go out from the stored case (same ids, deduplicated downstream).
        log.info("complaint %s already registered; duplicate intake ignored", outcome.case.id)
        return None
    await count_arrival(deps, outcome.case, now)
    return outcome.case


async def on_survey_low_score(deps: Deps, event: CloudEvent) -> None:
    data = parse_data(event, SurveyLowScore)
    if not await count_low_score(deps, data):
        return
    if deps.low_score_opens_case:
        scores = ", ".join(f"{k}={v}" for k, v in (("csat", data.csat), ("nps", data.nps)) if v is not None)
        intake = Intake(source=SOURCE, customer_id=data.customer_id, channel="survey", category="low_satisfaction",
                        severity="high", description=f"Low score on {data.kind} survey {data.survey_id} ({scores}); "
                        f"reason: {data.reason}", received_at=data.at, external_ref=f"survey:{data.survey_id}",
                        event_id=event.id)
        await open_case(deps, intake, causation_id=event.id)
