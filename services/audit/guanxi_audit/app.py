"""Composition root of the audit service: the only place that constructs things."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from . import handlers
from .api import ROUTERS
from .handlers import Deps
from .settings import AuditSettings
from .store import MongoAuditStore
from .subscribers import subscribe


def build(settings: AuditSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or AuditSettings()
    runtime = ServiceRuntime(settings)
    store = MongoAuditStore(runtime.db, runtime.outbox_for("episodes"))
    deps = Deps(store=store, settings=settings, clock=clock or SystemClock())
    runtime.on_startup(store.ensure_indexes)
    subscribe(runtime, deps)

    runtime.every("settle-pii-reads", settings.bulk_pii_settle_interval_seconds, partial(handlers.settle_pii_reads, deps))
    runtime.every("checkpoint", settings.checkpoint_interval_seconds, partial(handlers.seal_checkpoint, deps))
    if settings.verify_interval_seconds > 0:
        runtime.every("verify", settings.verify_interval_seconds, partial(handlers.verify, deps))
    if settings.archive_after_days is not None:
        runtime.every("archive", settings.archive_interval_seconds, partial(handlers.archive_expired, deps))

    return runtime.http_app(ROUTERS, deps=deps, title="Guanxi audit service",
                            description="append-only, hash-chained record of every event and PII access")


def main() -> None:
    settings = AuditSettings()
    serve(build(settings), settings)
