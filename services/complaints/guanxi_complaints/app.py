"""Composition root of the complaints service: the only place that wires things together."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from . import handlers
from .api import ROUTERS
from .domain import Policy, StatusLinks, WorkingCalendar
from .domain.crisis import CrisisRule
from .settings import ComplaintsSettings
from .store import CASES, CRISIS, CaseStore, CrisisStore, MongoCaseStore, MongoCrisisStore
from .subscribers import subscribe


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
        team_by_category=dict(settings.team_by_category),
        default_team=settings.default_team,
        status_links=StatusLinks(secret=settings.status_link_secret.get_secret_value(), base_url=settings.status_link_base,
                                 valid_for=timedelta(days=settings.status_link_days)),
    )


def make_deps(settings: ComplaintsSettings, clock: Clock, cases: CaseStore, crisis_store: CrisisStore) -> handlers.Deps:
    """The handlers' dependencies over the given stores (the Mongo ones here, the in-memory fakes in tests)."""
    bucket = timedelta(minutes=settings.crisis_bucket_minutes)
    return handlers.Deps(
        cases=cases,
        crisis_store=crisis_store,
        policy=make_policy(settings),
        clock=clock,
        crisis_rule=CrisisRule(window=timedelta(minutes=settings.crisis_window_minutes), bucket=bucket,
                               baseline_windows=settings.crisis_baseline_windows, min_count=settings.crisis_min_count,
                               ratio=settings.crisis_ratio),
        # A run of low scores is compared with no baseline: the count alone decides.
        low_score_rule=CrisisRule(window=timedelta(minutes=settings.low_score_window_minutes), bucket=bucket,
                                  baseline_windows=1, min_count=settings.low_score_run, ratio=0.0),
        low_score_opens_case=settings.low_score_opens_case,
        max_page_size=settings.max_page_size,
        first_contact_hours=settings.first_contact_hours,
    )


def build(settings: ComplaintsSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or ComplaintsSettings()
    runtime = ServiceRuntime(settings)
    outbox = runtime.outbox_for(CASES, CRISIS)
    cases = MongoCaseStore(runtime.db, outbox, read_db=runtime.read_db)
    crisis_store = MongoCrisisStore(runtime.db, outbox)
    deps = make_deps(settings, clock or SystemClock(), cases, crisis_store)

    @runtime.on_startup
    async def _indexes() -> None:
        await cases.ensure_indexes()
        await crisis_store.ensure_indexes()

    runtime.every("deadline-watcher", settings.watcher_interval_seconds, partial(handlers.watch_once, deps))
    subscribe(runtime, deps)
    return runtime.http_app(ROUTERS, deps=deps, title="Guanxi complaints service",
                            description="cases, deadlines on working days, escalation, crisis watch")


def main() -> None:
    settings = ComplaintsSettings()
    serve(build(settings), settings)
