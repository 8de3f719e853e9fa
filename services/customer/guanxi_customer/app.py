"""Composition root of the customer service: the only place that wires things together."""

from __future__ import annotations

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from .settings import CustomerSettings


def build(settings: CustomerSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or CustomerSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    return runtime.http_app([], title="Guanxi customer service", description="profiles, segments, consent, PII vault, contact log, care schedule")


def main() -> None:
    settings = CustomerSettings()
    serve(build(settings), settings)
