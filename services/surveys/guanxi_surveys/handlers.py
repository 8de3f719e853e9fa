"""Use cases of the surveys service, as plain async functions over a ``Deps`` bundle."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from guanxi_shared.clock import Clock
from guanxi_shared.contracts.surveys import SurveyCompleted, SurveyLowScore, SurveyRequested, SurveyScheduled, SurveySkipped
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.messaging import EventPublisher
from guanxi_shared.outbox import OutboxRelay
from guanxi_shared.scheduling import DueWatch
from guanxi_shared.topics import SURVEY_COMPLETED, SURVEY_LOW_SCORE, SURVEY_REQUESTED, SURVEY_SCHEDULED, SURVEY_SKIPPED

from . import domain
from .links import LinkClaims, LinkExpired, LinkInvalid, link_url, read_link, sign_link
from .settings import SurveysSettings
from .store import SKIPS, SURVEYS, SurveyStore

SOURCE = "guanxi/surveys"


@dataclass
class Deps:
    store: SurveyStore
    settings: SurveysSettings
    clock: Clock
    relay: OutboxRelay
    publisher: EventPublisher
    policy: domain.SendPolicy
    # When the scheduler's queries can find something (send, remind or expire times written here).
    due: DueWatch

    @classmethod
    def create(cls, store: SurveyStore, settings: SurveysSettings, clock: Clock, relay: OutboxRelay,
               publisher: EventPublisher) -> Deps:
        policy = domain.SendPolicy(
            domain.QuietHours(domain.parse_hhmm(settings.quiet_start), domain.parse_hhmm(settings.quiet_end)),
            domain.working_day_checker(settings.calendar_country),
        )
        return cls(store, settings, clock, relay, publisher, policy,
                   DueWatch(timedelta(seconds=settings.scheduler_rescan_seconds)))

    def window_days(self, kind: str) -> tuple[float, float]:
        s = self.settings
        if kind == "post_purchase":
            return s.post_purchase_min_days, s.post_purchase_max_days
        return s.post_resolution_min_days, s.post_resolution_max_days


@dataclass(frozen=True)
class Trigger:
    """Something that calls for a survey: a completed purchase or a resolved complaint."""

    kind: str
    trigger_id: str  # order_id or complaint_id: the business key
    customer_id: str
    at: datetime
    channel: str | None
    cause: CloudEvent

    @property
    def survey_id(self) -> str:
        return domain.survey_id(self.kind, self.trigger_id)


def _event(cause: CloudEvent | None, type_: str, subject: str, data: dict[str, Any], event_id: str) -> CloudEvent:
    if cause is not None:
        return cause.follow_up(type_, data, source=SOURCE, subject=subject, id=event_id)
    return new_event(type_, subject, data, source=SOURCE, id=event_id)


def _skip_event(cause: CloudEvent | None, customer_id: str, kind: str, trigger_id: str, reason: str, at: datetime,
                survey_id: str | None = None) -> CloudEvent:
    data = SurveySkipped(customer_id=customer_id, kind=kind, trigger_id=trigger_id, reason=reason, at=at,  # type: ignore[arg-type]
                         survey_id=survey_id).model_dump(mode="json", exclude_none=True)
    return _event(cause, SURVEY_SKIPPED, customer_id, data, domain.derived_event_id(f"{kind}:{trigger_id}", f"skipped:{reason}"))


def _scheduled_event(t: Trigger, scheduled_for: datetime) -> CloudEvent:
    scheduled = SurveyScheduled(survey_id=t.survey_id, customer_id=t.customer_id, kind=t.kind,  # type: ignore[arg-type]
                                scheduled_for=scheduled_for, trigger_id=t.trigger_id)
    return _event(t.cause, SURVEY_SCHEDULED, t.customer_id, scheduled.model_dump(mode="json"),
                  domain.derived_event_id(t.survey_id, "scheduled"))


# ---------------------------------------------------------------- triggers

async def schedule_surveys(deps: Deps, triggers: Sequence[Trigger]) -> None:
    """Schedule (or record the skip of) one survey per trigger; a replayed trigger changes nothing
    stored, and announces its decision again (same event id).

    Built for batches: one read of what is known, one read of the customers, then bulk inserts.
    Triggers of one customer are decided in their delivery order, so the cooldown holds inside a batch.

    The decisions are announced straight from memory once stored, and this returns only when Kafka
    has them, so the triggers' offsets are committed after their announcements (consume, store,
    produce, commit). No outbox entry is needed: after a crash the triggers come again, find their
    decisions stored and announce those again; consumers deduplicate on the event id. Each entry used
    to cost the survey or skip document a second write to clear it (~0.7 ms of the store each, a
    write per purchase).
    """
    unique: dict[str, Trigger] = {}
    for t in triggers:
        unique.setdefault(t.survey_id, t)
    if not unique:
        return
    store, settings, now = deps.store, deps.settings, deps.clock.now()
    known_surveys, known_skips = await store.known_triggers(list(unique))
    announced: dict[str, CloudEvent] = {}  # survey id -> the decision's event, in trigger order
    customer_ids = {t.customer_id for t in unique.values()}
    views = await store.views(customer_ids)
    # The cooldown reads the surveys already scheduled (one read for the batch) rather than a
    # per-customer "last survey" field that would cost one more write per customer and batch.
    for cid, at in (await store.last_survey_times(customer_ids)).items():
        known = views.setdefault(cid, domain.CustomerView(cid))
        known.last_survey_at = max(at, known.last_survey_at or at)
    cooldown = timedelta(days=settings.cooldown_days)
    surveys: list[dict[str, Any]] = []
    skips: list[dict[str, Any]] = []

    for sid, t in unique.items():
        if sid in known_surveys:  # stored before: announced again, as stored
            announced[sid] = _scheduled_event(t, known_surveys[sid]["scheduled_for"])
            continue
        if sid in known_skips:
            skip = known_skips[sid]
            announced[sid] = _skip_event(t.cause, t.customer_id, t.kind, t.trigger_id, skip["reason"], skip["at"])
            continue
        view = views.get(t.customer_id)
        tz = domain.zone(view.timezone if view else None, settings.default_timezone)
        low, high = deps.window_days(t.kind)
        window = domain.send_window(t.at, now, low, high)
        reason: str | None
        scheduled_for: datetime | None = None
        if window is None:
            reason = "window_passed"
        else:
            scheduled_for = deps.policy.choose(window[0], window[1], tz).astimezone(UTC)
            reason = domain.refusal_at_trigger(view, scheduled_for, cooldown)
        if reason is not None or scheduled_for is None or window is None:
            reason = reason or "window_passed"
            # An erased customer's id is not kept with the record (the event still names it, as all events do).
            kept_id = None if reason == "customer_erased" else t.customer_id
            skips.append({"_id": sid, "customer_id": kept_id, "kind": t.kind, "trigger_id": t.trigger_id,
                          "reason": reason, "at": now, "trigger_event_id": t.cause.id})
            announced[sid] = _skip_event(t.cause, t.customer_id, t.kind, t.trigger_id, reason, now)
            continue
        if view is None:
            view = views[t.customer_id] = domain.CustomerView(t.customer_id)
        view.last_survey_at = max(scheduled_for, view.last_survey_at or scheduled_for)
        template = domain.current_template(t.kind)
        announced[sid] = _scheduled_event(t, scheduled_for)
        surveys.append({
            "_id": sid, "customer_id": t.customer_id, "kind": t.kind, "trigger_id": t.trigger_id,
            "trigger_event_id": t.cause.id, "trigger_at": t.at, "channel": t.channel or "unknown",
            "member_level": (view.member_level or "unknown"), "template_version": template.version,
            "status": "scheduled", "scheduled_for": scheduled_for, "window": {"earliest": window[0], "latest": window[1]},
            "created_at": now, "reminded": False,
        })

    for survey in surveys:
        deps.due.note(survey["scheduled_for"])
    for name, docs in ((SURVEYS, surveys), (SKIPS, skips)):
        # A document another writer stored meanwhile (a consumer that lost the partition without
        # knowing) is that writer's decision, and its announcement: ours is dropped.
        for sid in await store.insert_new(name, docs):
            announced.pop(sid, None)
    await deps.publisher.publish_many(announced.values())


# ---------------------------------------------------------------- customer view

async def customer_registered(deps: Deps, customer_id: str, consents: Mapping[str, bool], language: str, timezone: str,
                              member_level: str, at: datetime) -> None:
    await deps.store.learn_profile(customer_id, {"language": language, "timezone": timezone})
    await deps.store.learn_if_newer(customer_id, "consent_at", at, {"survey_consent": bool(consents.get("survey", False))})
    await deps.store.learn_if_newer(customer_id, "level_at", at, {"member_level": member_level})


async def consent_changed(deps: Deps, customer_id: str, consents: Mapping[str, bool], at: datetime, cause: CloudEvent) -> None:
    granted = bool(consents.get("survey", False))
    await deps.store.learn_if_newer(customer_id, "consent_at", at, {"survey_consent": granted})
    if not granted:
        await cancel_pending(deps, customer_id, "consent_withdrawn", cause)


@dataclass(frozen=True)
class TierChange:
    """A customer's member level as of ``at`` (``customer.tier_changed``)."""

    customer_id: str
    member_level: str
    at: datetime


async def tier_changes(deps: Deps, changes: Sequence[TierChange]) -> None:
    """A batch of member-level changes: one read of the views, the newest change per customer compared
    in code, one insert and one bulk write by _id. One by one it was two writes per event, one of them
    conditional (a read of the whole view collection on FerretDB): ~100 events/s, and the surveys
    service fell behind whenever tier changes queued up. Comparing in code is safe because this consumer
    is the only writer of ``level_at``: registrations and tier changes have equal partition counts and
    the consumer assigns by range, so one member handles all of a customer's, in turn."""
    newest: dict[str, tuple[str, datetime]] = {}
    for change in changes:
        if change.customer_id not in newest or change.at >= newest[change.customer_id][1]:
            newest[change.customer_id] = (change.member_level, change.at)
    if not newest:
        return
    stamps = await deps.store.level_stamps(list(newest))
    wanted = {c: v for c, v in newest.items() if (known := stamps.get(c)) is None or known <= v[1]}
    await deps.store.learn_levels(wanted, set(stamps))


async def customer_erased(deps: Deps, customer_id: str, cause: CloudEvent) -> None:
    now = deps.clock.now()
    await deps.store.learn_profile(customer_id, {"erased": True, "erased_at": now, "survey_consent": False})
    await deps.store.customers.update_one({"_id": customer_id}, {"$unset": {"language": "", "timezone": ""}})
    await cancel_pending(deps, customer_id, "customer_erased", cause)
    free_text = {q for kind in domain.TEMPLATES.values() for t in kind.values() for q in domain.free_text_questions(t)}
    await deps.store.anonymise(customer_id, sorted(free_text), now)


async def cancel_pending(deps: Deps, customer_id: str, reason: str, cause: CloudEvent | None) -> int:
    now = deps.clock.now()
    cancelled: list[str] = []
    for doc in await deps.store.pending_of(customer_id):
        event = _skip_event(cause, customer_id, doc["kind"], doc["trigger_id"], reason, now, doc["_id"])
        if await deps.store.transition(doc["_id"], {"status": doc["status"]},
                                       {"status": "cancelled", "cancel_reason": reason, "cancelled_at": now}, [event]):
            cancelled.append(doc["_id"])
    await deps.relay.flush(deps.store.surveys, cancelled)
    return len(cancelled)


# ---------------------------------------------------------------- scheduler

def _link(deps: Deps, survey_id: str, nonce: str, expires_at: datetime) -> str:
    token = sign_link(survey_id, nonce, expires_at, deps.settings.link_secret.get_secret_value())
    return link_url(deps.settings.public_base_url, token)


async def send_due(deps: Deps) -> int:
    """Send every survey whose time has come, exactly once: the state change and the event are one write."""
    store, settings, now = deps.store, deps.settings, deps.clock.now()
    due = await store.due("scheduled_for", now, settings.scheduler_batch, status="scheduled")
    if not due:
        return 0
    views = await store.views(d["customer_id"] for d in due if d.get("customer_id"))
    touched: list[str] = []
    for doc in due:
        view = views.get(doc["customer_id"])
        refusal = domain.refusal_at_send(view)
        if refusal is not None:
            event = _skip_event(None, doc["customer_id"], doc["kind"], doc["trigger_id"], refusal, now, doc["_id"])
            if await store.transition(doc["_id"], {"status": "scheduled"},
                                      {"status": "cancelled", "cancel_reason": refusal, "cancelled_at": now}, [event]):
                touched.append(doc["_id"])
            continue
        language = view.language if view and view.language in domain.LANGUAGES else settings.default_language
        nonce = secrets.token_hex(12)
        expires_at = now + timedelta(days=settings.expire_after_days)
        template = domain.template_of(doc["kind"], doc["template_version"])
        requested = SurveyRequested(survey_id=doc["_id"], customer_id=doc["customer_id"], kind=doc["kind"], language=language,
                                    link=_link(deps, doc["_id"], nonce, expires_at), expires_at=expires_at,
                                    trigger_id=doc["trigger_id"], template=template.key)
        event = new_event(SURVEY_REQUESTED, doc["customer_id"], requested.model_dump(mode="json"), source=SOURCE,
                          id=domain.derived_event_id(doc["_id"], "requested"), causationid=doc.get("trigger_event_id"))
        tz = domain.zone(None, settings.default_timezone)
        changes = {"status": "sent", "sent_at": now, "language": language, "link_nonce": nonce, "expires_at": expires_at,
                   "remind_at": now + timedelta(days=settings.reminder_after_days),
                   **{f"p_{k}": v for k, v in domain.period_keys(now, tz).items()}}
        deps.due.note(changes["remind_at"])
        deps.due.note(expires_at)
        if await store.transition(doc["_id"], {"status": "scheduled"}, changes, [event]):
            touched.append(doc["_id"])
    await deps.relay.flush(store.surveys, touched)
    return len(touched)


async def remind_due(deps: Deps) -> int:
    """One reminder with the same link, if still unanswered after the reminder delay."""
    store, now = deps.store, deps.clock.now()
    due = await store.due("remind_at", now, deps.settings.scheduler_batch, status="sent", reminded=False)
    touched: list[str] = []
    for doc in due:
        if doc["expires_at"] <= now:
            continue
        template = domain.template_of(doc["kind"], doc["template_version"])
        same_link = _link(deps, doc["_id"], doc["link_nonce"], doc["expires_at"])  # same claims: the same token
        requested = SurveyRequested(survey_id=doc["_id"], customer_id=doc["customer_id"], kind=doc["kind"],
                                    language=doc.get("language", "zh"), link=same_link, expires_at=doc["expires_at"],
                                    reminder=True, trigger_id=doc["trigger_id"], template=template.key)
        event = new_event(SURVEY_REQUESTED, doc["customer_id"], requested.model_dump(mode="json"), source=SOURCE,
                          id=domain.derived_event_id(doc["_id"], "reminder"), causationid=doc.get("trigger_event_id"))
        expect = {"status": "sent", "reminded": False}
        if await store.transition(doc["_id"], expect, {"reminded": True, "reminded_at": now}, [event]):
            touched.append(doc["_id"])
    await deps.relay.flush(store.surveys, touched)
    return len(touched)


async def tick(deps: Deps) -> int:
    """One scheduler pass: send, remind, expire."""
    sent = await send_due(deps)
    reminded = await remind_due(deps)
    expired = await deps.store.expire(deps.clock.now())
    return sent + reminded + expired


async def tick_if_due(deps: Deps) -> int:
    """``tick`` when something can be due (``Deps.due``); -1 when the pass was not needed."""
    return await deps.due.pass_if_due(deps.clock.now(), partial(tick, deps))


# ---------------------------------------------------------------- answering

class AnswerRefused(Exception):
    def __init__(self, status: int, title: str, detail: str, errors: list[str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors or []


async def _open(deps: Deps, token: str) -> tuple[LinkClaims, dict[str, Any]]:
    now = deps.clock.now()
    try:
        claims = read_link(token, deps.settings.link_secret.get_secret_value(), now)
    except LinkExpired as exc:
        raise AnswerRefused(410, "Survey link expired", str(exc)) from exc
    except LinkInvalid as exc:
        raise AnswerRefused(404, "Survey link not valid", "this survey link is not valid") from exc
    doc = await deps.store.get(claims.survey_id)
    if doc is None or doc.get("link_nonce") != claims.nonce:
        raise AnswerRefused(404, "Survey link not valid", "this survey link is not valid")
    status = doc["status"]
    if status == "completed":
        raise AnswerRefused(409, "Survey already answered", "this survey has already been answered; thank you")
    if status == "cancelled" or status == "expired" or doc["expires_at"] <= now:
        raise AnswerRefused(410, "Survey closed", "this survey is no longer open")
    return claims, doc


async def survey_form(deps: Deps, token: str) -> dict[str, Any]:
    _, doc = await _open(deps, token)
    template = domain.template_of(doc["kind"], doc["template_version"])
    return {"survey_id": doc["_id"], "kind": doc["kind"], "expires_at": doc["expires_at"].isoformat(),
            **template.render(doc.get("language") or deps.settings.default_language)}


async def submit_answers(deps: Deps, token: str, answers: Mapping[str, Any]) -> dict[str, Any]:
    claims, doc = await _open(deps, token)
    template = domain.template_of(doc["kind"], doc["template_version"])
    try:
        valid = domain.validate_answers(template, answers)
    except domain.AnswerError as exc:
        raise AnswerRefused(422, "Invalid answers", str(exc), exc.problems) from exc
    now = deps.clock.now()
    sid, customer = doc["_id"], doc["customer_id"]
    completed = SurveyCompleted(survey_id=sid, customer_id=customer, kind=doc["kind"], csat=valid.csat, nps=valid.nps,
                                channel=doc.get("channel"), completed_at=now, trigger_id=doc["trigger_id"],
                                member_level=doc.get("member_level"), template=template.key)
    events = [new_event(SURVEY_COMPLETED, customer, completed.model_dump(mode="json", exclude_none=True), source=SOURCE,
                        id=domain.derived_event_id(sid, "completed"), causationid=doc.get("trigger_event_id"))]
    reasons = domain.low_score_reasons(valid.csat, valid.nps, deps.settings.low_score_threshold)
    if reasons:
        low = SurveyLowScore(survey_id=sid, customer_id=customer, kind=doc["kind"], csat=valid.csat, nps=valid.nps,
                             reason=",".join(reasons), at=now, trigger_id=doc["trigger_id"], channel=doc.get("channel"))
        events.append(new_event(SURVEY_LOW_SCORE, customer, low.model_dump(mode="json", exclude_none=True), source=SOURCE,
                                id=domain.derived_event_id(sid, "low_score"), causationid=events[0].id))
    changes = {"status": "completed", "completed_at": now, "answers": valid.values, "csat": valid.csat, "nps": valid.nps,
               "low_score": bool(reasons)}
    # Only the one submission that finds the survey still open with this link's nonce wins.
    if not await deps.store.transition(sid, {"status": "sent", "link_nonce": claims.nonce}, changes, events):
        await _open(deps, token)  # explains why (answered meanwhile, closed...)
        raise AnswerRefused(409, "Survey already answered", "this survey has already been answered; thank you")
    await deps.relay.flush(deps.store.surveys, [sid])
    return {"survey_id": sid, "status": "completed", "low_score": bool(reasons)}


# ---------------------------------------------------------------- reads and reports

def survey_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    def iso(name: str) -> str | None:
        value = doc.get(name)
        return value.isoformat() if isinstance(value, datetime) else None

    return {
        "id": doc["_id"], "customer_id": doc.get("customer_id"), "kind": doc["kind"], "trigger_id": doc["trigger_id"],
        "status": doc["status"], "scheduled_for": iso("scheduled_for"), "sent_at": iso("sent_at"),
        "expires_at": iso("expires_at"), "reminded": bool(doc.get("reminded")), "completed_at": iso("completed_at"),
        "csat": doc.get("csat"), "nps": doc.get("nps"), "channel": doc.get("channel"), "member_level": doc.get("member_level"),
        "template": f"{doc['kind']}@v{doc['template_version']}", "language": doc.get("language"),
        "cancel_reason": doc.get("cancel_reason"), "low_score": doc.get("low_score"),
    }


def skip_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "customer_id": doc.get("customer_id"), "kind": doc["kind"], "trigger_id": doc["trigger_id"],
            "reason": doc["reason"], "at": doc["at"].isoformat()}


GROUP_FIELDS = {"channel": "channel", "member_level": "member_level", "kind": "kind"}


def _tallies(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[domain.Tally]]:
    groups: dict[str, list[domain.Tally]] = {}
    for row in rows:
        key = row["_id"]
        tally = domain.Tally(key.get("status") == "completed", key.get("csat"), key.get("nps"), int(row["n"]))
        groups.setdefault(str(key.get("k") or "unknown"), []).append(tally)
    return groups


async def report(deps: Deps, since: datetime, until: datetime, group_by: str | None, period: str = "month") -> dict[str, Any]:
    """Figures of the surveys sent in [since, until): counts from the store, every ratio computed here."""
    key = f"p_{period}" if group_by == "period" else (GROUP_FIELDS[group_by] if group_by else None)
    target = deps.settings.csat_target
    groups = _tallies(await deps.store.report_counts(since, until, key))
    everything = [t for tallies in groups.values() for t in tallies]
    return {"from": since.isoformat(), "to": until.isoformat(), "group_by": group_by,
            "period": period if group_by == "period" else None,
            "overall": domain.Figures.of(everything).as_report(target) | {"distribution": domain.distribution(everything)},
            "groups": [{"group": name, **domain.Figures.of(tallies).as_report(target),
                        "distribution": domain.distribution(tallies)} for name, tallies in sorted(groups.items())]}


async def kpis(deps: Deps, since: datetime, until: datetime) -> dict[str, Any]:
    rows = await deps.store.report_counts(since, until, None)
    r = domain.Figures.of(t for ts in _tallies(rows).values() for t in ts).as_report(deps.settings.csat_target)
    return {"from": since.isoformat(), "to": until.isoformat(), "avg_satisfaction": r["avg_csat"],
            "satisfaction_target": r["csat_target"], "meets_target": r["meets_target"], "nps": r["nps"],
            "response_rate": r["response_rate"], "sent": r["sent"], "completed": r["completed"]}
