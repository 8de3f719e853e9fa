"""HTTP calls to the owning services: proxying with timeouts, streaming large answers, and clear
502/503/504 problems when a service is down.

The proxy (every public read and command) goes through aiohttp: its connection pool hands out a
kept-alive connection in constant time and parses in C, where httpx/httpcore checks every pooled
connection with a poll() per request, a large share of the gateway's CPU (bench/README.md). The proxy
makes its own client span and injects ``traceparent``. The few other calls (KPI sections, OpenAPI
documents) stay on httpx, whose instrumentation carries the trace.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import httpx
from guanxi_shared.auth import IDENTITY_HEADER, Identity, sign_internal
from guanxi_shared.problems import Problem
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .domain import UpstreamFailed
from .settings import GatewaySettings

tracer = trace.get_tracer("guanxi.gateway.upstream")

# Request headers a service needs; everything else (cookies, Authorization, hop-by-hop) stays here.
_FORWARD_REQUEST = ("accept", "accept-language", "content-type", "content-encoding", "if-match", "if-none-match",
                    "idempotency-key", "x-request-id")
_DROP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "server", "date",
                  "proxy-authenticate", "proxy-authorization", "x-request-id"}
_DROP_RESPONSE_RAW = {h.encode() for h in _DROP_RESPONSE}
# Answers up to this size (declared by Content-Length) are read whole and sent in one piece; larger or
# unsized ones (exports) keep streaming through.
_BUFFER_UP_TO = 256 * 1024


class SignedIdentities:
    """The internal identity token of each caller, signed once and reused for ``REUSE_SECONDS``.

    Signing per request would cost CPU here and make every token unique, so the services would check
    each one again; a token reused for a minute is checked once per service. It lives
    ``TTL_SECONDS``, so a reused token always has at least four minutes left."""

    TTL_SECONDS = 300
    REUSE_SECONDS = 60.0
    MAX_CALLERS = 10_000

    def __init__(self, secret: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._secret = secret
        self._clock = clock
        self._tokens: OrderedDict[tuple[str, tuple[str, ...], str | None], tuple[str, float]] = OrderedDict()

    def token(self, identity: Identity) -> str:
        key = (identity.subject, tuple(str(r) for r in identity.roles), identity.team)
        now = self._clock()
        hit = self._tokens.get(key)
        if hit is not None and now - hit[1] < self.REUSE_SECONDS:
            return hit[0]
        token = sign_internal(identity.model_copy(update={"request_id": None}), self._secret, self.TTL_SECONDS)
        self._tokens[key] = (token, now)
        self._tokens.move_to_end(key)
        if len(self._tokens) > self.MAX_CALLERS:
            self._tokens.popitem(last=False)
        return token


class Upstreams:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.base_urls = settings.upstreams()
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.upstream_timeout, connect=settings.upstream_connect_timeout),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            follow_redirects=False,
        )
        self._session: aiohttp.ClientSession | None = None
        self._signed = SignedIdentities(settings.internal_secret.get_secret_value())

    def _proxy_session(self) -> aiohttp.ClientSession:
        # Created on first use: an aiohttp session belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=30),
                # The same limits as before: connect, then each read may take upstream_timeout.
                timeout=aiohttp.ClientTimeout(total=None, connect=self.settings.upstream_connect_timeout,
                                              sock_read=self.settings.upstream_timeout),
                auto_decompress=False,  # relay the bytes as the service encoded them
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        await self.client.aclose()
        if self._session is not None:
            await self._session.close()

    def identity_headers(self, identity: Identity | None, request_id: str) -> dict[str, str]:
        # The request id goes in its own header; the services put it on the identity they verify.
        headers = {"x-request-id": request_id}
        if identity is not None:
            headers[IDENTITY_HEADER] = self._signed.token(identity)
        return headers

    async def forward(self, service: str, request: Request, identity: Identity | None, request_id: str,
                      query: str) -> Response:
        headers = {k: v for k, v in request.headers.items() if k in _FORWARD_REQUEST}
        headers.update(self.identity_headers(identity, request_id))
        url = self.base_urls[service] + request.url.path + (f"?{query}" if query else "")
        method = request.method
        # The front door has already read (and size-limited) every command body: send it with its length.
        body = await request.body() if method not in ("GET", "HEAD", "OPTIONS", "DELETE") else None
        # No path attribute: it may carry ids or an answer-link token; the server span above names the route.
        with tracer.start_as_current_span(method, kind=SpanKind.CLIENT, attributes={
                "http.request.method": method, "server.address": service}) as span:
            propagate.inject(headers)
            try:
                response = await self._proxy_session().request(method, url, headers=headers, data=body,
                                                               allow_redirects=False)
            except (aiohttp.ClientError, TimeoutError) as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise upstream_problem(service, exc) from exc
            span.set_attribute("http.response.status_code", response.status)
        try:
            kept = [(k, v) for k, v in response.raw_headers if k.lower() not in _DROP_RESPONSE_RAW]
            if response.content_length is not None and response.content_length <= _BUFFER_UP_TO:
                content = await response.read()
                answer = Response(content, status_code=response.status)
                answer.raw_headers = kept
                response.release()
                return answer
        except (aiohttp.ClientError, TimeoutError) as exc:
            response.release()
            raise upstream_problem(service, exc) from exc
        streamed = StreamingResponse(_relay(response), status_code=response.status,
                                     background=BackgroundTask(_release, response))
        streamed.raw_headers = kept
        return streamed

    async def get_json(self, service: str, path: str, identity: Identity | None, request_id: str,
                       params: Mapping[str, str] | None = None, timeout: float | None = None) -> Any:
        """The service's JSON answer, for a use case (``handlers.Services``): no answer is ``UpstreamFailed``."""
        try:
            response = await self.client.get(self.base_urls[service] + path, params=params,
                                              headers=self.identity_headers(identity, request_id),
                                              timeout=timeout or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise UpstreamFailed(upstream_problem(service, exc).detail, service=service) from exc
        if response.status_code >= 400:
            raise UpstreamFailed(f"{service} answered {response.status_code}", upstream_status=response.status_code)
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamFailed(f"{service} answered something other than JSON") from exc


async def _relay(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    # Raw bytes: Content-Encoding and Content-Length stay true to what the service sent.
    async for chunk in response.content.iter_any():
        yield chunk


async def _release(response: aiohttp.ClientResponse) -> None:
    response.release()


def upstream_problem(service: str, exc: BaseException) -> Problem:
    connect_failed = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | aiohttp.ClientConnectorError
                                | aiohttp.ConnectionTimeoutError)
    timed_out = isinstance(exc, httpx.TimeoutException | aiohttp.ServerTimeoutError | TimeoutError)
    if timed_out and not connect_failed:
        return Problem(504, "Gateway timeout", f"the {service} service did not answer in time", service=service)
    if connect_failed:
        return Problem(503, "Service unavailable", f"the {service} service cannot be reached; try again shortly",
                       service=service, headers={"Retry-After": "5"})
    return Problem(502, "Bad gateway", f"the {service} service gave no valid answer ({type(exc).__name__})",
                   service=service)
