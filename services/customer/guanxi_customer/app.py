"""Composition root of the customer service: the only place that wires things together."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve
from guanxi_shared.scheduling import DueJobs

from . import handlers
from .api import ROUTERS
from .handlers import Context
from .settings import CustomerSettings
from .store import OUTBOX_COLLECTIONS, CustomerStore
from .subscribers import subscribe
from .vault import Vault


def build(settings: CustomerSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or CustomerSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    runtime.outbox_collections(*OUTBOX_COLLECTIONS)
    store = CustomerStore(runtime.db, read_db=runtime.read_db)
    jobs = DueJobs(store.jobs, clock, rescan=timedelta(seconds=settings.scheduler_rescan_seconds))
    vault = Vault(settings.master_key_bytes(), settings.master_key_id, settings.blind_index_key_bytes())
    ctx = Context(store=store, vault=vault, settings=settings, clock=clock, relay=runtime.relay, jobs=jobs)

    async def prepare() -> None:
        await store.ensure_indexes()
        await jobs.ensure_indexes()

    async def care_planner() -> None:
        # Looks for occasions (birthdays, revisits, stale profiles, churn); jobs are keyed by
        # occasion, so planning again (or on another instance, or after a restart) adds nothing.
        while True:
            await handlers.plan_care(ctx)
            await asyncio.sleep(settings.care_scan_seconds)

    async def due_jobs() -> None:
        await jobs.run(partial(handlers.due_events, ctx), runtime.relay, interval=settings.scheduler_interval_seconds)

    runtime.on_startup(prepare)
    runtime.background("care-planner", care_planner)
    runtime.background("due-jobs", due_jobs)
    subscribe(runtime, ctx)
    app = runtime.http_app(list(ROUTERS), title="Guanxi customer service",
                           description="profiles, segments, consent, PII vault, contact log, care schedule")
    app.state.ctx = ctx
    return app


def main() -> None:
    settings = CustomerSettings()
    serve(build(settings), settings)
