"""Composition root of the audit service: the only place that wires things together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from . import handlers
from .api import router
from .handlers import Audit
from .settings import AuditSettings
from .store import AuditStore
from .subscribers import subscribe

log = logging.getLogger(__name__)


def every(seconds: float, job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    """A background loop running ``job`` every ``seconds`` (the runtime restarts it if it dies)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            await job()

    return loop


def build(settings: AuditSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or AuditSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    store = AuditStore(runtime.db)
    runtime.outbox_collections("episodes")
    audit = Audit(store=store, settings=settings, clock=clock, relay=runtime.relay)
    runtime.on_startup(store.ensure_indexes)
    subscribe(runtime.broker, settings, runtime.publisher, audit)

    runtime.background("checkpoint", every(settings.checkpoint_interval_seconds, lambda: handlers.seal_checkpoint(audit)))
    if settings.verify_interval_seconds > 0:
        runtime.background("verify", every(settings.verify_interval_seconds, lambda: handlers.verify(audit)))
    if settings.archive_after_days is not None:
        runtime.background("archive", every(settings.archive_interval_seconds, lambda: handlers.archive_expired(audit)))

    app = runtime.http_app([router], title="Guanxi audit service",
                           description="append-only, hash-chained record of every event and PII access")
    app.state.audit = audit
    return app


def main() -> None:
    settings = AuditSettings()
    serve(build(settings), settings)
