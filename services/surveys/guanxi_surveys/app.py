"""Composition root of the surveys service: the only place that wires things together."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from . import api, handlers
from .handlers import Deps
from .settings import SurveysSettings
from .store import SKIPS, SURVEYS, SurveyStore
from .subscribers import subscribe


def build(settings: SurveysSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or SurveysSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    runtime.outbox_collections(SURVEYS, SKIPS)
    store = SurveyStore(runtime.db)
    deps = Deps.create(store, settings, clock, runtime.relay, runtime.publisher)
    subscribe(runtime, deps)

    async def scheduler() -> None:
        # Sends, reminds and expires; every step is a conditional update, so restarts and
        # several instances never send a survey twice.
        while True:
            await handlers.tick_if_due(deps)
            await asyncio.sleep(settings.scheduler_interval_seconds)

    async def load_calendar() -> None:
        # The holiday calendar is loaded (a module import) on first use; do it before the first batch,
        # which otherwise paid ~0.4 s for it.
        now = clock.now()
        for year in (now.year, now.year + 1):
            deps.policy.is_working(now.replace(year=year, month=1, day=1).date())

    runtime.on_startup(store.ensure_indexes)
    runtime.on_startup(load_calendar)
    runtime.background("survey-scheduler", scheduler)
    app = runtime.http_app([api.router()], title="Guanxi surveys service",
                           description="post-purchase and post-resolution surveys, CSAT, NPS, reports")
    app.state.deps = deps
    return app


def main() -> None:
    settings = SurveysSettings()
    serve(build(settings), settings)
