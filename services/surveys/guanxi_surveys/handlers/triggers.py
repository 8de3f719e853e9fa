"""A survey per completed purchase or resolved complaint: scheduled at a considerate moment, or skipped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from guanxi_shared.events import CloudEvent

from .. import domain
from ..domain import events
from ..store import Doc
from .deps import Deps


async def schedule_surveys(deps: Deps, triggers: Sequence[domain.Trigger]) -> None:
    """Schedule (or record the skip of) one survey per trigger; a replayed trigger changes nothing
    stored, and announces its decision again (same event id).

    Built for batches: one read of what is known, one of the customers, one of their latest surveys
    (the cooldown's anchor), then bulk inserts. Triggers of one customer are decided in their delivery
    order, so the cooldown holds inside a batch. The store announces the decisions once they are
    stored and returns when they are out, so the triggers are committed after their announcements
    (consume, store, produce, commit: no outbox entry per decision, see ``SurveyStore.record_decisions``)."""
    unique: dict[str, domain.Trigger] = {}
    for t in triggers:
        unique.setdefault(t.survey_id, t)
    if not unique:
        return
    store, settings, now = deps.store, deps.settings, deps.clock.now()
    known_surveys, known_skips = await store.known_triggers(list(unique))
    customer_ids = {t.customer_id for t in unique.values()}
    views = await store.views(customer_ids)
    for cid, at in (await store.last_survey_times(customer_ids)).items():
        known = views.setdefault(cid, domain.CustomerView(cid))
        known.last_survey_at = max(at, known.last_survey_at or at)
    cooldown = timedelta(days=settings.cooldown_days)
    announced: dict[str, CloudEvent] = {}  # survey id -> the decision's event, in trigger order
    surveys: list[Doc] = []
    skips: list[Doc] = []

    for sid, t in unique.items():
        if sid in known_surveys:  # stored before: announced again, as stored
            announced[sid] = events.scheduled(t, known_surveys[sid])
            continue
        if sid in known_skips:
            reason, at = known_skips[sid]
            announced[sid] = events.skipped(t.cause, t.customer_id, t.kind, t.trigger_id, reason, at)
            continue
        view = views.get(t.customer_id)
        decision = domain.schedule(t, view, now, deps.window_days(t.kind), deps.policy, cooldown, settings.default_timezone)
        if isinstance(decision, str):
            skips.append(_skip(t, decision, now))
            announced[sid] = events.skipped(t.cause, t.customer_id, t.kind, t.trigger_id, decision, now)
            continue
        if view is None:
            view = views[t.customer_id] = domain.CustomerView(t.customer_id)
        view.last_survey_at = max(decision.at, view.last_survey_at or decision.at)  # the cooldown, inside the batch
        surveys.append(_survey(t, decision, view, now))
        announced[sid] = events.scheduled(t, decision.at)

    for survey in surveys:
        deps.due.note(survey["scheduled_for"])
    await store.record_decisions(surveys, skips, announced)


def _survey(t: domain.Trigger, decision: domain.Scheduled, view: domain.CustomerView, now: datetime) -> Doc:
    return {
        "_id": t.survey_id, "customer_id": t.customer_id, "kind": t.kind, "trigger_id": t.trigger_id,
        "trigger_event_id": t.cause.id, "trigger_at": t.at, "channel": t.channel or "unknown",
        # Reports group by the member level at trigger time.
        "member_level": view.member_level or "unknown", "template_version": domain.current_template(t.kind).version,
        "status": "scheduled", "scheduled_for": decision.at,
        "window": {"earliest": decision.window[0], "latest": decision.window[1]},
        "created_at": now, "reminded": False,
    }


def _skip(t: domain.Trigger, reason: str, now: datetime) -> Doc:
    # An erased customer's id is not kept with the record (the event still names it, as all events do).
    return {"_id": t.survey_id, "customer_id": None if reason == "customer_erased" else t.customer_id, "kind": t.kind,
            "trigger_id": t.trigger_id, "reason": reason, "at": now, "trigger_event_id": t.cause.id}
