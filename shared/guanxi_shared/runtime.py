"""The process shell every service shares: connect on start, serve HTTP, stop cleanly on SIGTERM.

Nothing connects at import time: ``ServiceRuntime`` only builds clients; ``start`` (run by the
FastAPI lifespan) creates indexes, starts the broker and the background loops; ``stop`` cancels the
loops, lets in-flight handlers finish (FastStream's graceful timeout: an interrupted batch is
not committed) and closes connections. ``serve`` runs it under uvicorn, which turns SIGTERM and
SIGINT into that orderly stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .messaging import BatchHandler, EventConsumer, EventHandler, EventPublisher, make_broker
from .outbox import Outbox, OutboxRelay
from .problems import install_problem_handlers
from .settings import ServiceSettings
from .store import database, make_mongo_client, ping, pool_size
from .telemetry import fastapi_telemetry, flush_spans, setup_logging, setup_tracing, trace_requests

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


class ServiceRuntime:
    def __init__(self, settings: ServiceSettings, *, tracing: bool = True, messaging: bool = True) -> None:
        """``messaging=False`` for a service that neither consumes nor publishes events (the console): no
        Kafka client is made, started or asked for readiness."""
        self.settings = settings
        self.messaging = messaging
        tracer_provider = setup_tracing(settings.service_name, settings.service_version) if tracing else None
        self.mongo = make_mongo_client(settings)
        self.db = database(self.mongo, settings)
        # A second, read-only pool only where the writing one is narrow (one connection on FerretDB).
        self.read_mongo = self.mongo
        if settings.mongodb_read_pool_size > pool_size(settings):
            self.read_mongo = make_mongo_client(settings, maxPoolSize=settings.mongodb_read_pool_size)
        self.read_db = database(self.read_mongo, settings)
        self.broker = make_broker(settings, tracer_provider=tracer_provider)
        self.publisher = EventPublisher(settings)
        self.relay = OutboxRelay(self.publisher, [], poll_seconds=settings.outbox_poll_seconds)
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        self._loops: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False

    def outbox_for(self, *names: str) -> Outbox:
        """The service's ``Outbox`` over the collections whose documents carry outbox entries; the relay
        behind it is started and stopped with the service. Called once, by the composition root."""
        self._need_messaging("an outbox")
        # The relay's polling pass reads through the read pool, off the one writing connection (see OutboxRelay).
        self.relay = OutboxRelay(self.publisher, [self.db[n] for n in names], poll_seconds=self.settings.outbox_poll_seconds,
                                 scan_collections=[self.read_db[n] for n in names])
        return Outbox(self.relay)

    def consume(self, handlers: dict[str, EventHandler], *, batch_handlers: dict[str, BatchHandler] | None = None,
                group_id: str | None = None, **options: Any) -> EventConsumer:
        """Subscribe ``handlers`` (event type → use case) in the service's consumer group: the one way a
        service subscribes. The consumer keeps the outbox relay in step with its batches."""
        self._need_messaging("a consumer")
        return EventConsumer(self.broker, self.settings, self.publisher, handlers, batch_handlers=batch_handlers,
                             group_id=group_id, relay=self.relay, **options)

    def _need_messaging(self, what: str) -> None:
        if not self.messaging:
            raise RuntimeError(f"{self.settings.service_name} was built without messaging and cannot have {what}")

    def every(self, name: str, seconds: float, work: Callable[[], Awaitable[Any]]) -> None:
        """Run ``work`` every ``seconds`` while the service runs. A failed pass is logged and the next
        one runs on time: a scheduler must not stop over one bad pass."""

        async def loop() -> None:
            while True:
                try:
                    await work()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s pass failed; the next one runs in %ss", name, seconds)
                await asyncio.sleep(seconds)

        self.background(name, loop)

    def ready_when(self, name: str, check: Callable[[], Awaitable[bool]]) -> None:
        """Add a readiness check (``/readyz`` answers 503 while it is false), e.g. a service this one needs."""
        self._checks[name] = check

    def on_startup(self, hook: Hook) -> Hook:
        self._startup.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        self._shutdown.append(hook)
        return hook

    def background(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        self._loops.append((name, loop))

    async def start(self) -> None:
        for hook in self._startup:
            await hook()
        loops = list(self._loops)
        if self.messaging:
            await self.broker.start()
            await self.publisher.start()
            loops.insert(0, ("outbox-relay", self.relay.run))
        self._tasks = [asyncio.create_task(self._guard(name, loop), name=name) for name, loop in loops]
        self.started = True
        log.info("%s started", self.settings.service_name)

    async def _guard(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        # A background loop that dies is restarted: a scheduler must not silently stop.
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background loop %s crashed; restarting in 1s", name)
                await asyncio.sleep(1)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.messaging:
            await self.broker.stop()  # waits for in-flight handlers up to graceful_timeout
        for hook in self._shutdown:
            await hook()
        if self.messaging:
            await self._drain_outbox()
        await self.mongo.close()
        if self.read_mongo is not self.mongo:
            await self.read_mongo.close()
        self.started = False
        flush_spans()
        log.info("%s stopped", self.settings.service_name)

    async def _drain_outbox(self) -> None:
        # Clear what went out (bounded: whatever is left is published again, with the same ids, by
        # the next start, and consumers deduplicate).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.relay.settle(), timeout=10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.relay.clear_deferred(), timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.relay.flush_all(), timeout=10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.publisher.stop(), timeout=10)

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"store": await ping(self.mongo)}
        if self.messaging:
            try:
                checks["broker"] = bool(await self.broker.ping(timeout=2.0))
            except Exception:
                checks["broker"] = False
        for name, check in self._checks.items():
            try:
                checks[name] = bool(await check())
            except Exception:
                checks[name] = False
        return {**checks, "started": self.started}

    def http_app(self, routers: Sequence[APIRouter], *, deps: Any, title: str, description: str = "") -> FastAPI:
        """The service's FastAPI app: its routers, the health probes, problem+json errors, request ids and
        server spans. ``deps`` (the service's dependency bundle) is what its routes get from ``app_deps``."""
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(title=title, version=self.settings.service_version, description=description, lifespan=lifespan,
                      telemetry=fastapi_telemetry())
        app.state.internal_secret = self.settings.internal_secret.get_secret_value()
        app.state.runtime = self
        app.state.deps = deps
        install_problem_handlers(app)
        app.add_middleware(RequestIdMiddleware)
        trace_requests(app)

        @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
        async def healthz() -> dict[str, str]:
            return {"status": "ok", "service": self.settings.service_name}

        @app.get("/readyz", tags=["health"], summary="Readiness: store and broker reachable")
        async def readyz() -> JSONResponse:
            checks = await self.readiness()
            ok = all(checks.values())
            return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)

        for router in routers:
            app.include_router(router)
        return app


async def app_deps(request: Request) -> Any:
    """The dependency bundle the composition root gave ``http_app``; each service's ``api`` narrows the type.
    A coroutine: FastAPI would run a plain function in a worker thread on every request."""
    return request.app.state.deps


class RequestIdMiddleware:
    """``request.state.request_id`` from ``X-Request-Id`` (or a new one), echoed on the answer.

    Pure ASGI: a ``BaseHTTPMiddleware`` would run every request through an extra task and memory
    stream, a cost paid on every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), "") or str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run under uvicorn; SIGTERM/SIGINT trigger the lifespan shutdown above."""
    setup_logging(settings.service_name, settings.log_level)
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, lifespan="on",
                            log_config=None, access_log=False, timeout_graceful_shutdown=30)
    uvicorn.Server(config).run()
