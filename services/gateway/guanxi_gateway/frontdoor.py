"""The front door every request passes (a pure ASGI middleware, so proxied answers keep streaming):
request id, security headers, per-IP and per-identity rate limits, authentication, the role matrix,
body size limit, page size cap, Idempotency-Key, and an access record for the audit service."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from guanxi_shared.auth import Identity
from guanxi_shared.clock import Clock
from guanxi_shared.contracts.audit import AccessRecorded
from guanxi_shared.problems import Problem, problem_response
from opentelemetry import trace
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import domain
from .authn import TokenVerifier
from .domain import Claim, StoredAnswer, fingerprint, record_id
from .settings import GatewaySettings
from .store import IdempotencyStore

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_API_ONLY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
_REPLAY_SKIP = {"x-request-id", "date", "server", "content-length"} | {
    k.decode() for k, _ in _SECURITY_HEADERS + _API_ONLY_HEADERS}
_MAX_STORED_ANSWER = 256 * 1024

AccessSink = Callable[[AccessRecorded, str], None]
# (service, request, identity, request id, query string) -> the service's answer (Upstreams.forward)
Proxy = Callable[[str, Request, Identity | None, str, str], Awaitable[Response]]


@dataclass
class Gate:
    settings: GatewaySettings
    clock: Clock
    verifier: TokenVerifier
    idempotency: IdempotencyStore
    templates: domain.TemplateIndex
    record_access: AccessSink
    proxy: Proxy | None = None
    ip_limiter: domain.RateLimiter = field(init=False)
    identity_limiter: domain.RateLimiter = field(init=False)
    monotonic: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        s = self.settings
        self.ip_limiter = domain.RateLimiter(s.rate_limit_per_ip, max(1.0, s.rate_limit_per_ip / 60 * s.rate_limit_burst_seconds))
        self.identity_limiter = domain.RateLimiter(
            s.rate_limit_per_identity, max(1.0, s.rate_limit_per_identity / 60 * s.rate_limit_burst_seconds))


class _TooLarge(Exception):
    pass


class FrontDoor:
    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        api = path.startswith("/api/")
        request_id = self._request_id(scope)
        status = {"code": 500}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers += [(b"x-request-id", request_id.encode())] + _SECURITY_HEADERS + (_API_ONLY_HEADERS if api else [])
                message = {**message, "headers": headers}
            await send(message)

        if not api:
            await self.app(scope, receive, send_with_headers)
            return
        started = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = self._client_ip(scope)
        try:
            await self._admit_and_run(scope, receive, send_with_headers, state)
        except Problem as exc:
            await self._problem(scope, send_with_headers, exc)
        finally:
            self._record(scope, state, status["code"], request_id, started)

    # -- steps -----------------------------------------------------------------------------------

    async def _admit_and_run(self, scope: Scope, receive: Receive, send: Send, state: dict[str, Any]) -> None:
        gate, method, path = self.gate, scope["method"], scope["path"]
        wait = gate.ip_limiter.take("ip:" + state["client_ip"], gate.monotonic())
        if wait:
            raise _rate_limited(wait, "this address")
        if domain.has_control_characters(path):
            # No id or token anywhere in Guanxi contains them; refuse before any service sees them.
            raise Problem(400, "Bad request", "the path contains control characters")
        rule = domain.find_rule(method, path)
        if rule is None:
            if domain.path_known(path):
                raise Problem(405, "Method not allowed", f"{method} is not allowed on {path}")
            raise Problem(404, "Not found", f"no route {path}")
        state["rule"] = rule
        identity: Identity | None = None
        if not rule.public:
            headers = dict(scope.get("headers", []))
            raw = headers.get(b"authorization")
            identity = await gate.verifier.verify(raw.decode("latin-1") if raw else None)
            state["identity"] = identity
            wait = gate.identity_limiter.take("sub:" + identity.subject, gate.monotonic())
            if wait:
                raise _rate_limited(wait, "this caller")
            if not domain.allowed(rule, identity.roles):
                raise Problem(403, "Forbidden", f"role {', '.join(identity.roles)} may not {method} {path}; needs one of: "
                              + ", ".join(sorted(rule.roles)))
        self._cap_page_size(scope)
        if method in ("POST", "PUT", "PATCH"):
            body = await self._read_body(receive)
            if domain.json_with_lone_surrogates(body, _header(scope, b"content-type")):
                raise Problem(422, "Invalid request", "the JSON body contains unpaired UTF-16 surrogates (not valid Unicode)")
            receive = _replay(body, receive)
            key = _header(scope, b"idempotency-key")
            if method == "POST" and key is not None:
                caller = identity.subject if identity else "ip:" + state["client_ip"]
                await self._idempotent(scope, receive, send, caller, key, body)
                return
        if rule.service is not None and gate.proxy is not None:
            # Admitted and owned by a service: forward from here. Routing it through FastAPI's router,
            # dependency solving and exception layers only to reach the catch-all proxy route is a
            # noticeable share of the gateway's CPU per read. Idempotent commands still take the route.
            query = scope.get("query_string", b"").decode("latin-1")
            _name_server_span(method, self._template(scope, state)[0])
            response = await gate.proxy(rule.service, Request(scope, receive), identity, state["request_id"], query)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _idempotent(self, scope: Scope, receive: Receive, send: Send, caller: str, key: str, body: bytes) -> None:
        if not 1 <= len(key) <= 200:
            raise Problem(422, "Invalid request", "Idempotency-Key must be 1 to 200 characters")
        gate = self.gate
        rid = record_id(caller, key)
        # Intake derives its ids from the record: a retry after a crash publishes the same complaint.
        scope.setdefault("state", {})["idempotency_record"] = rid
        fp = fingerprint(scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1"), body)
        claim: Claim = await gate.idempotency.claim(rid, fp, gate.clock.now())
        if claim.outcome == "in_progress":
            raise Problem(409, "Conflict", "a request with this Idempotency-Key is still being handled; retry shortly",
                          headers={"Retry-After": "1"})
        if claim.outcome == "mismatch":
            raise Problem(422, "Invalid request", "this Idempotency-Key was used for a different request")
        if claim.outcome == "replay" and claim.answer is not None:
            answer = claim.answer
            headers = [(k.encode(), v.encode()) for k, v in answer.headers]
            headers += [(b"content-length", str(len(answer.body)).encode()), (b"idempotent-replayed", b"true")]
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": answer.body})
            return
        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray(), "complete": True}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
                                       if k.decode("latin-1").lower() not in _REPLAY_SKIP]
            elif message["type"] == "http.response.body" and captured["complete"]:
                captured["body"] += message.get("body", b"")
                if len(captured["body"]) > _MAX_STORED_ANSWER:
                    captured["complete"] = False
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await _shielded(gate.idempotency.release(rid))
            raise
        if captured["status"] >= 500 or not captured["complete"]:
            # No answer worth replaying (the effect may not have happened): let a retry run again.
            await _shielded(gate.idempotency.release(rid))
            return
        answer = StoredAnswer(captured["status"], captured["headers"], bytes(captured["body"]))
        await _shielded(gate.idempotency.complete(rid, answer, gate.clock.now()))

    async def _read_body(self, receive: Receive) -> bytes:
        limit = self.gate.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Problem(400, "Bad request", "the client went away while sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Problem(413, "Payload too large", f"request bodies are limited to {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _cap_page_size(self, scope: Scope) -> None:
        raw = scope.get("query_string", b"").decode("latin-1")
        if "limit=" not in raw:
            return
        cap = self.gate.settings.max_page_size
        pairs = parse_qsl(raw, keep_blank_values=True)
        changed = False
        for i, (k, v) in enumerate(pairs):
            if k == "limit" and v.isdigit() and int(v) > cap:
                pairs[i] = (k, str(cap))  # a bigger page is served as the largest allowed, not refused
                changed = True
        if changed:
            scope["query_string"] = urlencode(pairs).encode("latin-1")

    def _request_id(self, scope: Scope) -> str:
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.match(given) else str(uuid.uuid4())
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"x-request-id"]
        scope["headers"] = [*headers, (b"x-request-id", rid.encode())]
        return rid

    def _client_ip(self, scope: Scope) -> str:
        hops = self.gate.settings.trusted_proxies
        forwarded = _header(scope, b"x-forwarded-for")
        if hops and forwarded:
            chain = [p.strip() for p in forwarded.split(",") if p.strip()]
            if len(chain) >= hops:
                return chain[-hops]
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    async def _problem(self, scope: Scope, send: Send, exc: Problem) -> None:
        extra = dict(exc.extra)
        headers = extra.pop("headers", None)
        response = problem_response(exc.status, exc.title, exc.detail, Request(scope), exc.type, headers=headers, **extra)
        await response(scope, _no_body, send)

    def _template(self, scope: Scope, state: dict[str, Any]) -> tuple[str, dict[str, str]]:
        found: tuple[str, dict[str, str]] | None = state.get("path_template")
        if found is None:
            found = state["path_template"] = self.gate.templates.match(scope["path"])
        return found

    def _record(self, scope: Scope, state: dict[str, Any], status: int, request_id: str, started: float) -> None:
        template, params = self._template(scope, state)
        identity: Identity | None = state.get("identity")
        rule: domain.Rule | None = state.get("rule")
        if identity is not None:
            actor, role = identity.subject, str(identity.primary_role)
        elif rule is not None and rule.public:
            actor, role = "public-link", "public"
        else:
            actor, role = "anonymous", "anonymous"
        record = AccessRecorded(
            actor=actor, role=role, method=scope["method"], path=template, status=status, request_id=request_id,
            client_ip=state.get("client_ip"), customer_id=domain.customer_of(template, params) or state.get("customer_id"),
            duration_ms=round((time.perf_counter() - started) * 1000, 3), at=self.gate.clock.now())
        subject = record.customer_id or f"actor:{actor}"
        try:
            self.gate.record_access(record, subject)
        except Exception:
            log.exception("could not record access to %s", template)


def _name_server_span(method: str, template: str) -> None:
    # A proxied request never reaches FastAPI's router, so FastAPI cannot name its server span by route;
    # the path template does it (ids stay out of span names, as with routed requests).
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{method} {template}")
        span.set_attribute("http.route", template)


def _rate_limited(wait: float, whom: str) -> Problem:
    return Problem(429, "Too many requests", f"rate limit for {whom} exceeded; retry later",
                   headers={"Retry-After": domain.retry_after(wait)})


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return str(v.decode("latin-1"))
    return None


def _replay(body: bytes, original: Receive) -> Receive:
    """The buffered body once, then the client's own channel (which reports a disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _shielded(work: Awaitable[Any]) -> None:
    # Bookkeeping must finish even when the client disconnects and the request task is cancelled.
    try:
        await asyncio.shield(asyncio.ensure_future(work))
    except Exception:
        log.exception("idempotency bookkeeping failed")
