"""Composition root of the gateway service: the only place that wires things together."""

from __future__ import annotations

from fastapi import FastAPI
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from .settings import GatewaySettings


def build(settings: GatewaySettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    return runtime.http_app([], title="Guanxi gateway service", description="the HTTP front door: authentication, roles, rate limits, routing")


def main() -> None:
    settings = GatewaySettings()
    serve(build(settings), settings)
