"""Crisis early warning (CP-7): count arrivals and low scores, raise one alert per episode, end quiet ones."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial

from guanxi_shared.contracts.complaints import CrisisAlert
from guanxi_shared.contracts.surveys import SurveyLowScore
from guanxi_shared.events import new_event

from ..domain import Case
from ..domain.crisis import CrisisRule, Reading, alert_id, bucket_of, read
from ..store import Episode
from .deps import SOURCE, Deps

log = logging.getLogger(__name__)

_DIMENSIONS = ("category", "product", "channel")


async def count_arrival(deps: Deps, case: Case, now: datetime) -> None:
    rule = deps.crisis_rule
    bucket = bucket_of(now, rule.bucket)
    for dimension in _DIMENSIONS:
        value = getattr(case, dimension)
        if not value:
            continue
        await deps.crisis_store.bump(dimension, value, bucket)
        reading = read(await deps.crisis_store.counts_since(dimension, value, now - rule.lookback), now, rule)
        if reading.spiking:
            await _maybe_alert(deps, dimension, value, reading, rule, now, case.customer_id,
                               samples=partial(deps.cases.recent_ids, dimension, value, now - rule.window))


async def count_low_score(deps: Deps, data: SurveyLowScore) -> bool:
    """Count a low score once per survey; False when this survey was already counted (a redelivery)."""
    now = deps.clock.now()
    rule = deps.low_score_rule
    # Counted in the bucket of the answer's time (the same on every redelivery): the bucket remembers
    # which surveys it holds.
    if not await deps.crisis_store.bump_once("satisfaction", "low_score", bucket_of(data.at, rule.bucket), data.survey_id):
        return False
    reading = read(await deps.crisis_store.counts_since("satisfaction", "low_score", now - rule.lookback), now, rule)
    if reading.spiking:
        await _maybe_alert(deps, "satisfaction", "low_score", reading, rule, now, data.customer_id)
    return True


async def _maybe_alert(deps: Deps, dimension: str, value: str, reading: Reading, rule: CrisisRule, now: datetime,
                       subject: str, samples: Callable[[], Awaitable[list[str]]] | None = None) -> None:
    episode = await deps.crisis_store.episode(dimension, value)
    if episode.active:
        # Every complaint of a running episode lands here: the sample query (a scan of the cases) is
        # only worth running for the alert that is actually raised.
        return
    number = episode.number + 1
    alert = CrisisAlert(alert_id=alert_id(dimension, value, number), dimension=dimension, value=value,
                        count=reading.count, window_minutes=int(rule.window.total_seconds() // 60),
                        baseline=reading.baseline, threshold=reading.threshold, at=now,
                        sample_complaint_ids=await samples() if samples else [])
    # Keyed by the alert, not a customer: the subject is the customer whose complaint tipped it over.
    event = new_event("crisis.alert", subject, alert.model_dump(mode="json"), source=SOURCE, id=alert.alert_id, time=now)
    if await deps.crisis_store.start_episode(episode, now, [event]):
        log.warning("crisis alert %s: %s=%s count %d over baseline %.2f", alert.alert_id, dimension, value,
                    reading.count, reading.baseline)


async def end_quiet_episodes(deps: Deps, now: datetime) -> None:
    """End each running episode whose count has fallen back under its threshold."""
    for episode in await deps.crisis_store.active_episodes():
        await _maybe_end_episode(deps, episode, now)


async def _maybe_end_episode(deps: Deps, episode: Episode, now: datetime) -> None:
    rule = deps.low_score_rule if episode.dimension == "satisfaction" else deps.crisis_rule
    counts = await deps.crisis_store.counts_since(episode.dimension, episode.value, now - rule.lookback)
    if not read(counts, now, rule).spiking:
        await deps.crisis_store.end_episode(episode, now)
