"""Composition root of the customer service: the only place that constructs anything."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve
from guanxi_shared.scheduling import DueJobs

from . import handlers
from .api import ROUTERS
from .domain import Vault
from .handlers import Deps
from .settings import CustomerSettings
from .store import JOBS, OUTBOX_COLLECTIONS, MongoCustomerStore
from .subscribers import subscribe


def build(settings: CustomerSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or CustomerSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    outbox = runtime.outbox_for(*OUTBOX_COLLECTIONS)
    jobs = DueJobs(runtime.db[JOBS], clock, outbox, rescan=timedelta(seconds=settings.scheduler_rescan_seconds))
    store = MongoCustomerStore(runtime.db, outbox, jobs, read_db=runtime.read_db)
    vault = Vault(settings.master_key_bytes(), settings.master_key_id, settings.blind_index_key_bytes())
    deps = Deps(store=store, vault=vault, settings=settings, clock=clock)

    runtime.on_startup(store.ensure_indexes)
    # Occasions (birthdays, revisits, stale profiles, churn) are planned as jobs keyed by occasion, so
    # planning again (or on another instance, or after a restart) adds nothing.
    runtime.every("care-planner", settings.care_scan_seconds, partial(handlers.plan_care, deps))
    runtime.every("due-jobs", settings.scheduler_interval_seconds, partial(jobs.pass_if_due, partial(handlers.due_events, deps)))
    subscribe(runtime, deps)
    return runtime.http_app(ROUTERS, deps=deps, title="Guanxi customer service",
                            description="profiles, segments, consent, PII vault, contact log, care schedule")


def main() -> None:
    settings = CustomerSettings()
    serve(build(settings), settings)
