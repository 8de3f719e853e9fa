"""Composition root of the notifications service: the only place that wires things together."""

from __future__ import annotations

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from .settings import NotificationsSettings


def build(settings: NotificationsSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    return runtime.http_app([], title="Guanxi notifications service", description="templates, channels, consent, caps, quiet hours, delivery log")


def main() -> None:
    settings = NotificationsSettings()
    serve(build(settings), settings)
