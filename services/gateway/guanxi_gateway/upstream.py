"""HTTP calls to the owning services: proxying with timeouts, streaming both ways, and clear
502/503/504 problems when a service is down. httpx instrumentation carries ``traceparent``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from guanxi_shared.auth import IDENTITY_HEADER, Identity, sign_internal
from guanxi_shared.problems import Problem
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse

from .settings import GatewaySettings

# Request headers a service needs; everything else (cookies, Authorization, hop-by-hop) stays here.
_FORWARD_REQUEST = ("accept", "accept-language", "content-type", "content-encoding", "if-match", "if-none-match",
                    "idempotency-key", "x-request-id")
_DROP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "server", "date",
                  "proxy-authenticate", "proxy-authorization", "x-request-id"}


class Upstreams:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.base_urls = settings.upstreams()
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.upstream_timeout, connect=settings.upstream_connect_timeout),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self.client.aclose()

    def identity_headers(self, identity: Identity | None, request_id: str) -> dict[str, str]:
        headers = {"x-request-id": request_id}
        if identity is not None:
            signed = identity.model_copy(update={"request_id": request_id})
            headers[IDENTITY_HEADER] = sign_internal(signed, self.settings.internal_secret.get_secret_value())
        return headers

    async def forward(self, service: str, request: Request, identity: Identity | None, request_id: str,
                      query: str) -> StreamingResponse:
        headers = {k: v for k, v in request.headers.items() if k in _FORWARD_REQUEST}
        headers.update(self.identity_headers(identity, request_id))
        url = self.base_urls[service] + request.url.path + (f"?{query}" if query else "")
        body: AsyncIterator[bytes] | None = None
        if request.method not in ("GET", "HEAD", "OPTIONS", "DELETE"):
            body = request.stream()
        upstream_request = self.client.build_request(request.method, url, headers=headers, content=body)
        try:
            response = await self.client.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            raise upstream_problem(service, exc) from exc
        return StreamingResponse(
            _relay(response, service),
            status_code=response.status_code,
            headers={k: v for k, v in response.headers.items() if k.lower() not in _DROP_RESPONSE},
            background=BackgroundTask(response.aclose),
        )

    async def get_json(self, service: str, path: str, identity: Identity | None, request_id: str,
                       params: Mapping[str, str] | None = None, timeout: float | None = None) -> Any:
        try:
            response = await self.client.get(self.base_urls[service] + path, params=params,
                                              headers=self.identity_headers(identity, request_id),
                                              timeout=timeout or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise upstream_problem(service, exc) from exc
        if response.status_code >= 400:
            raise Problem(502, "Bad gateway", f"{service} answered {response.status_code}",
                          upstream_status=response.status_code)
        try:
            return response.json()
        except ValueError as exc:
            raise Problem(502, "Bad gateway", f"{service} answered something other than JSON") from exc


async def _relay(response: httpx.Response, service: str) -> AsyncIterator[bytes]:
    # Raw bytes: Content-Encoding and Content-Length stay true to what the service sent.
    async for chunk in response.aiter_raw():
        yield chunk


def upstream_problem(service: str, exc: httpx.HTTPError) -> Problem:
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return Problem(504, "Gateway timeout", f"the {service} service did not answer in time", service=service)
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return Problem(503, "Service unavailable", f"the {service} service cannot be reached; try again shortly",
                       service=service, headers={"Retry-After": "5"})
    return Problem(502, "Bad gateway", f"the {service} service gave no valid answer ({type(exc).__name__})",
                   service=service)
