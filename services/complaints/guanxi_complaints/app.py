"""Composition root of the complaints service: the only place that wires things together."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from . import handlers
from .api import make_router
from .crisis import CrisisRule
from .domain import Policy
from .settings import ComplaintsSettings
from .store import CASES, CRISIS, CaseStore, CrisisStore
from .subscribers import subscribe
from .workdays import WorkingCalendar


def make_policy(settings: ComplaintsSettings) -> Policy:
    calendar = WorkingCalendar(
        country=settings.calendar_country,
        timezone=settings.timezone,
        business_day_end=settings.business_day_end,
        extra_holidays=settings.extra_holidays,
        extra_working_days=settings.extra_working_days,
        subdivision=settings.calendar_subdivision,
    )
    return Policy(
        calendar=calendar,
        acknowledge_hours=settings.acknowledge_hours,
        acknowledge_minutes_by_severity=dict(settings.acknowledge_minutes_by_severity),
        preliminary_opinion_working_days=settings.preliminary_opinion_working_days,
        investigation_working_days=settings.investigation_working_days,
        formal_answer_working_days=settings.formal_answer_working_days,
        auto_acknowledge=settings.auto_acknowledge,
        lead_time=timedelta(minutes=settings.deadline_lead_minutes),
        unowned_grace=timedelta(minutes=settings.unowned_grace_minutes),
        follow_up_window=timedelta(days=settings.follow_up_window_days),
        pause_while_waiting=settings.pause_while_waiting_on_customer,
    )


def build(settings: ComplaintsSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or ComplaintsSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    runtime.outbox_collections(CASES, CRISIS)
    deps = handlers.Deps(
        cases=CaseStore(runtime.db, read_db=runtime.read_db),
        crisis_store=CrisisStore(runtime.db),
        relay=runtime.relay,
        policy=make_policy(settings),
        clock=clock,
        crisis_rule=CrisisRule(window=timedelta(minutes=settings.crisis_window_minutes),
                               bucket=timedelta(minutes=settings.crisis_bucket_minutes),
                               baseline_windows=settings.crisis_baseline_windows, min_count=settings.crisis_min_count,
                               ratio=settings.crisis_ratio),
        # A run of low scores is compared with no baseline: the count alone decides.
        low_score_rule=CrisisRule(window=timedelta(minutes=settings.low_score_window_minutes),
                                  bucket=timedelta(minutes=settings.crisis_bucket_minutes), baseline_windows=1,
                                  min_count=settings.low_score_run, ratio=0.0),
        low_score_opens_case=settings.low_score_opens_case,
    )

    @runtime.on_startup
    async def _indexes() -> None:
        await deps.cases.ensure_indexes()
        await deps.crisis_store.ensure_indexes()

    async def watcher() -> None:
        while True:
            await handlers.watch_once(deps)
            await asyncio.sleep(settings.watcher_interval_seconds)

    runtime.background("deadline-watcher", watcher)
    subscribe(runtime.broker, settings, runtime.publisher, deps)
    app = runtime.http_app([make_router(deps, settings.max_page_size)], title="Guanxi complaints service",
                           description="cases, deadlines on working days, escalation, crisis watch")
    app.state.deps = deps
    return app


def main() -> None:
    settings = ComplaintsSettings()
    serve(build(settings), settings)
