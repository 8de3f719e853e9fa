"""Composition root of the complaints service: the only place that wires things together."""

from __future__ import annotations

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from .settings import ComplaintsSettings


def build(settings: ComplaintsSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or ComplaintsSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    return runtime.http_app([], title="Guanxi complaints service", description="cases, deadlines on working days, escalation, crisis watch")


def main() -> None:
    settings = ComplaintsSettings()
    serve(build(settings), settings)
