"""Test doubles that speak the real protocols, for the integration tests: an SMTP server (aiosmtpd),
the customer service's contact-details contract (a FastAPI app reached through httpx ASGITransport),
an HTTP webhook provider (uvicorn on a free port), and a helper running the notifications service
in-process. (The fast tests use the in-memory fakes beside the real adapters instead.)

The module name is unique on purpose: every service has a ``tests`` folder without ``__init__``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from guanxi_notifications.app import build
from guanxi_notifications.settings import NotificationsSettings
from guanxi_shared.auth import IDENTITY_HEADER, Identity, Role, sign_internal, verify_internal
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import new_event
from guanxi_shared.testing import free_port, send_event, serving

# 11:00 in Shanghai: outside quiet hours.
DAYTIME = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


# ---- SMTP ----------------------------------------------------------------------------------------


class MailCollector:
    """aiosmtpd handler: keeps every accepted message; refuses recipients starting with 'bounce'."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def smtp() -> Any:
    collector = MailCollector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    collector.port = port  # type: ignore[attr-defined]
    yield collector
    controller.stop()


# ---- customer service contract -----------------------------------------------------------------


@dataclass
class FakeCustomerService:
    """Implements POST /internal/customers/{id}/contact-details as the customer service promises."""

    secret: str
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, list[str], str]] = field(default_factory=list)  # (customer, purpose, channels, caller)
    erased: set[str] = field(default_factory=set)
    unavailable: set[str] = field(default_factory=set)  # answer 503 for these

    def add(self, customer_id: str, *, name: str, email: str | None = None, phone: str | None = None,
            language: str = "zh", timezone: str = "Asia/Shanghai", consents: dict[str, bool] | None = None,
            opted_out: list[str] | None = None) -> None:
        self.customers[customer_id] = {
            "customer_id": customer_id, "name": name, "email": email, "phone": phone, "language": language,
            "timezone": timezone, "consents": consents or {"service": True, "survey": True, "care": True, "marketing": True},
            "channels_opted_out": opted_out or [], "member_level": "gold",
        }

    def calls_for(self, customer_id: str) -> int:
        return sum(1 for c in self.calls if c[0] == customer_id)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/internal/customers/{customer_id}/contact-details")
        async def contact_details(customer_id: str, request: Request) -> JSONResponse:
            identity = verify_internal(request.headers.get(IDENTITY_HEADER, ""), self.secret)
            if not identity.has(Role.service):
                return JSONResponse({"detail": "services only"}, status_code=403)
            body = await request.json()
            self.calls.append((customer_id, body["purpose"], body["channels"], identity.subject))
            if customer_id in self.unavailable:
                return JSONResponse({"detail": "try later"}, status_code=503)
            if customer_id in self.erased:
                return JSONResponse({"detail": "erased"}, status_code=410)
            customer = self.customers.get(customer_id)
            if customer is None:
                return JSONResponse({"detail": "unknown"}, status_code=404)
            if not customer["consents"].get(body["purpose"], False):
                return JSONResponse({"detail": f"no consent for {body['purpose']}"}, status_code=403)
            return JSONResponse(customer)

        return app


# ---- webhook provider --------------------------------------------------------------------------


@dataclass
class WebhookProviderServer:
    """A local HTTP provider: answers ``fail_first`` requests with 500, then 200."""

    fail_first: int = 1
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/send")
        async def send(request: Request) -> JSONResponse:
            self.requests.append((dict(request.headers), await request.body()))
            if len(self.requests) <= self.fail_first:
                return JSONResponse({"error": "busy"}, status_code=500)
            return JSONResponse({"accepted": True})

        return app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/send"


@contextlib.asynccontextmanager
async def webhook_server(fail_first: int = 1) -> AsyncIterator[WebhookProviderServer]:
    provider = WebhookProviderServer(fail_first=fail_first, port=free_port())
    server = uvicorn.Server(uvicorn.Config(provider.app(), host="127.0.0.1", port=provider.port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + 10
    while not server.started:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("webhook server did not start")
        await asyncio.sleep(0.02)
    try:
        yield provider
    finally:
        server.should_exit = True
        await task


# ---- the service under test ----------------------------------------------------------------------


@dataclass
class Running:
    app: FastAPI
    http: httpx.AsyncClient
    settings: NotificationsSettings
    clock: ManualClock
    customers: FakeCustomerService

    def headers(self, role: Role = Role.agent, subject: str = "alice") -> dict[str, str]:
        token = sign_internal(Identity(subject=subject, roles=[role]), self.settings.internal_secret.get_secret_value())
        return {IDENTITY_HEADER: token}

    @property
    def db(self) -> Any:
        return self.app.state.runtime.db

    async def notifications_of(self, customer_id: str) -> list[dict[str, Any]]:
        r = await self.http.get("/api/v1/notifications", params={"customer_id": customer_id}, headers=self.headers())
        assert r.status_code == 200, r.text
        return list(r.json()["items"])


@contextlib.asynccontextmanager
async def running(settings: NotificationsSettings, clock: ManualClock,
                  customers: FakeCustomerService) -> AsyncIterator[Running]:
    app = build(settings, clock, contact_transport=httpx.ASGITransport(app=customers.app()))
    async with serving(app) as http:
        yield Running(app, http, settings, clock, customers)


def service_settings(make_settings: Any, smtp: MailCollector, **overrides: Any) -> NotificationsSettings:
    values: dict[str, Any] = {"smtp_port": smtp.port, "dispatch_interval_seconds": 0.1}  # type: ignore[attr-defined]
    values.update(overrides)
    return make_settings(NotificationsSettings, **values)  # type: ignore[no-any-return]


async def publish(producer: AIOKafkaProducer, prefix: str, type: str, customer_id: str, data: dict[str, Any],
                  *, event_id: str | None = None) -> str:
    return await send_event(producer, prefix, new_event(type, customer_id, data, source="tests", id=event_id))


def complaint_step(customer_id: str, complaint_id: str, status: str = "acknowledged", **extra: Any) -> dict[str, Any]:
    return {"complaint_id": complaint_id, "customer_id": customer_id, "status": status, "actor": "agent-7",
            "at": DAYTIME.isoformat(), "category": "delivery", **extra}


def survey_requested(customer_id: str, survey_id: str, language: str = "en") -> dict[str, Any]:
    return {"survey_id": survey_id, "customer_id": customer_id, "kind": "post_purchase", "language": language,
            "link": f"https://guanxi.example/s/{survey_id}", "expires_at": "2026-12-01T00:00:00+00:00"}
