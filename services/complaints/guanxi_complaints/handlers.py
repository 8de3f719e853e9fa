"""Use cases of the complaints service, as plain async functions over the stores and the relay."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from guanxi_shared.clock import Clock
from guanxi_shared.contracts.complaints import ComplaintEscalated, ComplaintResolved, ComplaintStep, CrisisAlert, DeadlineEvent
from guanxi_shared.contracts.customer import CustomerErased
from guanxi_shared.contracts.inbound import ComplaintReceived, Contract
from guanxi_shared.contracts.surveys import SurveyLowScore
from guanxi_shared.events import CloudEvent, InvalidEvent, new_event, parse_data
from guanxi_shared.outbox import OutboxRelay, outbox_set

from . import crisis, domain
from .domain import Case, Emitted, Intake, Outcome, Policy
from .store import CaseStore, CrisisStore, Episode, episode_id

log = logging.getLogger(__name__)

SOURCE = "guanxi.complaints"
# Every write publishes its own outbox entries at once: intake from what it has just stored
# (``relay.written``), the other writes by the document's id (``relay.flush``); the acknowledgement
# email waits on it. Waking the poll loop instead made each write cost a query over
# the whole case collection, which FerretDB answers by reading every case (hundreds of ms per pass
# at a few hundred cases, on the process's single store connection). The relay serialises a
# flush and the poll on the same document and remembers confirmed ids, so they do not both publish.
# Payload contracts of what this service publishes: every outgoing event is validated first.
CONTRACTS: dict[str, type[Contract]] = {
    "complaint.resolved": ComplaintResolved,
    "complaint.deadline_approaching": DeadlineEvent,
    "complaint.deadline_breached": DeadlineEvent,
    "complaint.escalated": ComplaintEscalated,
    "crisis.alert": CrisisAlert,
}
_SAVE_ATTEMPTS = 5


class CaseNotFound(Exception):
    pass


class Conflict(Exception):
    """The case kept changing under us (HTTP 409, try again)."""


@dataclass
class Deps:
    cases: CaseStore
    crisis_store: CrisisStore
    relay: OutboxRelay
    policy: Policy
    clock: Clock
    crisis_rule: crisis.CrisisRule
    low_score_rule: crisis.CrisisRule
    low_score_opens_case: bool = False


def to_cloud_events(case: Case, emitted: list[Emitted], causation_id: str | None = None) -> list[CloudEvent]:
    out = []
    for e in emitted:
        contract = CONTRACTS.get(e.type, ComplaintStep)
        data = contract.model_validate(e.data).model_dump(mode="json", exclude_none=True)
        out.append(new_event(e.type, case.customer_id, data, source=SOURCE, id=domain.event_id(case.id, e.key),
                             time=e.data.get("at"), correlationid=case.correlation_id, causationid=causation_id))
    return out


# ---------------------------------------------------------------- intake


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
    """Open the case once; a duplicate (same id or same source + external_ref) changes nothing."""
    now = deps.clock.now()
    outcome = domain.open_case(intake, deps.policy, now)
    outbox = outbox_set(to_cloud_events(outcome.case, outcome.events, causation_id))
    if not await deps.cases.insert_new(outcome.case, outbox):
        # Events a crash left unpublished are the relay's poll loop's job (same ids, deduplicated downstream).
        log.info("complaint %s already registered; duplicate intake ignored", outcome.case.id)
        return None
    # Intake is the busiest writer and the acknowledgement email waits on its events: they are
    # published from what was just stored (stored first: nothing is lost), with no read-back, and
    # cleared once intake is quiet (``OutboxRelay.written``). Reading the case back and clearing it
    # at once were two more commands per complaint on the one writing connection, the clearing
    # among the costliest on FerretDB (a modification costs in proportion to the collection).
    await deps.relay.written(deps.cases.cases, {outcome.case.id: outbox})
    await count_arrival(deps, outcome.case, now)
    return outcome.case


# ---------------------------------------------------------------- commands


Command = Callable[[Case, datetime], Outcome]


async def run_command(deps: Deps, case_id: str, actor: str, privileged: bool, command: Command) -> Case:
    """Load, check the actor may act, apply, and save with its events (retrying on a concurrent write)."""
    for _ in range(_SAVE_ATTEMPTS):
        case = await deps.cases.get(case_id)
        if case is None:
            raise CaseNotFound(case_id)
        case_id = case.id  # the id asked for may be an alias
        domain.ensure_may_act(case, actor, privileged=privileged)
        outcome = command(case, deps.clock.now())
        if await deps.cases.save(outcome.case, case.version, to_cloud_events(outcome.case, outcome.events)):
            await deps.relay.flush(deps.cases.cases, [case_id])
            return outcome.case
    raise Conflict(f"complaint {case_id} is being changed concurrently; try again")


# ---------------------------------------------------------------- watcher


async def watch_once(deps: Deps, limit: int = 200) -> int:
    """One pass of the deadline watcher; returns how many cases changed."""
    now = deps.clock.now()
    changed = 0
    for case in await deps.cases.due_for_check(now, limit):
        outcome = domain.tick(case, now, deps.policy)
        # The version guard makes each flag (approaching, breached, escalated) flip once across instances.
        if await deps.cases.save(outcome.case, case.version, to_cloud_events(outcome.case, outcome.events)):
            changed += 1
            await deps.relay.flush(deps.cases.cases, [case.id])
    for episode in await deps.crisis_store.active_episodes():
        await _maybe_end_episode(deps, episode, now)
    return changed


# ---------------------------------------------------------------- crisis early warning


_DIMENSIONS = ("category", "product", "channel")


async def count_arrival(deps: Deps, case: Case, now: datetime) -> None:
    rule = deps.crisis_rule
    bucket = crisis.bucket_of(now, rule.bucket)
    for dimension in _DIMENSIONS:
        value = getattr(case, dimension)
        if not value:
            continue
        await deps.crisis_store.bump(dimension, value, bucket)
        reading = crisis.read(await deps.crisis_store.counts_since(dimension, value, now - rule.lookback), now, rule)
        if reading.spiking:
            await _maybe_alert(deps, dimension, value, reading, rule, now, case.customer_id,
                               samples=partial(deps.cases.recent_ids, dimension, value, now - rule.window))


async def on_survey_low_score(deps: Deps, event: CloudEvent) -> None:
    data = parse_data(event, SurveyLowScore)
    now = deps.clock.now()
    rule = deps.low_score_rule
    # Counted once per survey, in the bucket of the answer's time (the same on every redelivery):
    # the bucket document remembers which surveys it holds.
    if not await deps.crisis_store.bump_once("satisfaction", "low_score", crisis.bucket_of(data.at, rule.bucket),
                                             data.survey_id):
        return
    reading = crisis.read(await deps.crisis_store.counts_since("satisfaction", "low_score", now - rule.lookback), now, rule)
    if reading.spiking:
        await _maybe_alert(deps, "satisfaction", "low_score", reading, rule, now, data.customer_id)
    if deps.low_score_opens_case:
        scores = ", ".join(f"{k}={v}" for k, v in (("csat", data.csat), ("nps", data.nps)) if v is not None)
        intake = Intake(source=SOURCE, customer_id=data.customer_id, channel="survey", category="low_satisfaction",
                        severity="high", description=f"Low score on {data.kind} survey {data.survey_id} ({scores}); "
                        f"reason: {data.reason}", received_at=data.at, external_ref=f"survey:{data.survey_id}",
                        event_id=event.id)
        await open_case(deps, intake, causation_id=event.id)


async def _maybe_alert(deps: Deps, dimension: str, value: str, reading: crisis.Reading, rule: crisis.CrisisRule,
                       now: datetime, subject: str, samples: Callable[[], Awaitable[list[str]]] | None = None) -> None:
    episode = await deps.crisis_store.episode(dimension, value)
    if episode.active:
        # Every complaint of a running episode lands here: the sample query (a scan of the cases on
        # FerretDB) is only worth running for the alert that is actually raised.
        return
    number = episode.number + 1
    alert = CrisisAlert(alert_id=crisis.alert_id(dimension, value, number), dimension=dimension, value=value,
                        count=reading.count, window_minutes=int(rule.window.total_seconds() // 60),
                        baseline=reading.baseline, threshold=reading.threshold, at=now,
                        sample_complaint_ids=await samples() if samples else [])
    # Keyed by the alert, not a customer: the subject is the customer whose complaint tipped it over.
    event = new_event("crisis.alert", subject, alert.model_dump(mode="json"), source=SOURCE, id=alert.alert_id, time=now)
    if await deps.crisis_store.start_episode(episode, now, [event]):
        log.warning("crisis alert %s: %s=%s count %d over baseline %.2f", alert.alert_id, dimension, value,
                    reading.count, reading.baseline)
        await deps.relay.flush(deps.crisis_store.episodes, [episode_id(dimension, value)])


async def _maybe_end_episode(deps: Deps, episode: Episode, now: datetime) -> None:
    rule = deps.low_score_rule if episode.dimension == "satisfaction" else deps.crisis_rule
    counts = await deps.crisis_store.counts_since(episode.dimension, episode.value, now - rule.lookback)
    if not crisis.read(counts, now, rule).spiking:
        await deps.crisis_store.end_episode(episode, now)


# ---------------------------------------------------------------- erasure


async def on_customer_erased(deps: Deps, event: CloudEvent) -> None:
    data = parse_data(event, CustomerErased)
    for case in await deps.cases.of_customer(data.customer_id):
        if case.erased:
            continue
        for _ in range(_SAVE_ATTEMPTS):
            if await deps.cases.save(domain.anonymise(case), case.version, []):
                break
            fresh = await deps.cases.get(case.id)
            if fresh is None or fresh.erased:
                break
            case = fresh
