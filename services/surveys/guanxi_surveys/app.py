"""Composition root of the surveys service: the only place that wires things together."""

from __future__ import annotations

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from .settings import SurveysSettings


def build(settings: SurveysSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or SurveysSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    return runtime.http_app([], title="Guanxi surveys service", description="post-purchase and post-resolution surveys, CSAT, NPS, reports")


def main() -> None:
    settings = SurveysSettings()
    serve(build(settings), settings)
