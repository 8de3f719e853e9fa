"""Composition root of the surveys service: the only place that constructs things."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from .api import ROUTERS
from .handlers import Deps, scheduler
from .settings import SurveysSettings
from .store import SURVEYS, MongoSurveyStore
from .subscribers import subscribe


def build(settings: SurveysSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or SurveysSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    # Surveys carry their steps' events in their outbox; decisions on triggers are announced by the
    # store from memory (see MongoSurveyStore.record_decisions), so skips have no outbox.
    outbox = runtime.outbox_for(SURVEYS)
    store = MongoSurveyStore(runtime.db, outbox, runtime.publisher)
    deps = Deps.create(store, settings, clock)
    subscribe(runtime, deps)
    runtime.on_startup(store.ensure_indexes)
    runtime.on_startup(partial(scheduler.load_calendar, deps))
    runtime.every("survey-scheduler", settings.scheduler_interval_seconds, partial(scheduler.tick_if_due, deps))
    return runtime.http_app(ROUTERS, deps=deps, title="Guanxi surveys service",
                            description="post-purchase and post-resolution surveys, CSAT, NPS, reports")


def main() -> None:
    settings = SurveysSettings()
    serve(build(settings), settings)
