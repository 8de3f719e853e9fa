"""Composition root of the audit service: the only place that wires things together."""

from __future__ import annotations

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from .settings import AuditSettings


def build(settings: AuditSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or AuditSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    return runtime.http_app([], title="Guanxi audit service", description="append-only, hash-chained record of every event and PII access")


def main() -> None:
    settings = AuditSettings()
    serve(build(settings), settings)
