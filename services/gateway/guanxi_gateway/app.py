"""Composition root of the gateway service: the only place that constructs things."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.runtime import ServiceRuntime, serve

from . import domain, handlers
from .access_records import AccessRecorder
from .api import ROUTERS
from .authn import TokenVerifier
from .frontdoor import FrontDoor, Gate
from .handlers import Deps
from .openapi import OpenApiSources, merge
from .settings import GatewaySettings
from .store import MongoIdempotencyStore
from .upstream import Upstreams

DESCRIPTION = """The HTTP front door of Guanxi (关系), the customer relationship platform.

Authenticate with an OAuth2 bearer JWT (`Authorization: Bearer …`; locally `make token ROLE=agent SUBJECT=alice`).
Complaint, interaction and purchase intake is a publish to Kafka (202 Accepted). Everything else is answered
by the owning service. Errors are RFC 9457 problem+json. POSTs accept `Idempotency-Key`.
"""
_PUBLIC_PREFIXES = tuple(r.prefix for r in domain.ROLE_MATRIX if r.public)
SWEEP_EVERY = timedelta(hours=1)


def build(settings: GatewaySettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings)
    upstreams = Upstreams(settings)
    idempotency = MongoIdempotencyStore(runtime.db["idempotency_keys"], timedelta(hours=settings.idempotency_ttl_hours),
                                        timedelta(seconds=settings.idempotency_lease_seconds))
    deps = Deps(settings=settings, clock=clock, publisher=runtime.publisher, services=upstreams, idempotency=idempotency,
                forward=upstreams.forward)
    recorder = AccessRecorder(settings)
    sources = OpenApiSources(upstreams.client, settings.upstreams())
    templates = domain.TemplateIndex(domain.PUBLIC_TEMPLATES)

    app = runtime.http_app(ROUTERS, deps=deps, title="Guanxi API", description=DESCRIPTION)
    gate = Gate(settings, clock, TokenVerifier(settings), idempotency, templates, recorder, upstreams.forward)
    app.add_middleware(FrontDoor, gate=gate)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"],
                           expose_headers=["X-Request-Id", "Retry-After", "Location"])

    remerge_openapi = _serve_merged_openapi(app, sources, templates)

    @runtime.on_startup
    async def _startup() -> None:
        await recorder.start()
        await idempotency.ensure_indexes()
        await sources.refresh()
        remerge_openapi()  # path templates for access records are known from the first request on

    @runtime.on_shutdown
    async def _shutdown() -> None:
        await upstreams.close()

    runtime_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        async with runtime_lifespan(application):
            try:
                yield
            finally:
                await recorder.stop()  # the last access records go out too

    app.router.lifespan_context = lifespan
    runtime.every("idempotency-sweep", SWEEP_EVERY.total_seconds(), partial(handlers.sweep_idempotency_keys, deps))
    return app


def _serve_merged_openapi(app: FastAPI, sources: OpenApiSources, templates: domain.TemplateIndex) -> Callable[[], None]:
    """Serve one document for the platform at ``/openapi.json`` (merged on first use, again once a missing
    service answers); the merge also teaches ``templates`` every path. Returns what merges again now."""
    merged: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not merged:
            own = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            merged.update(merge(own, sources.documents, _PUBLIC_PREFIXES))
            templates.add(merged.get("paths", {}))
        return merged

    def remerge() -> None:
        merged.clear()
        openapi()

    app.openapi = openapi  # type: ignore[method-assign]
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != "/openapi.json"]

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        if sources.missing and await sources.refresh():
            merged.clear()  # a service came up since: merge again
        return JSONResponse(app.openapi())

    return remerge


def main() -> None:
    settings = GatewaySettings()
    serve(build(settings), settings)
