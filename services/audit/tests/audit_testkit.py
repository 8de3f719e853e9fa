"""Helpers shared by the audit service's integration tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from guanxi_audit.app import build
from guanxi_audit.handlers import Deps
from guanxi_audit.settings import AuditSettings
from guanxi_audit.store import MongoAuditStore
from guanxi_shared.auth import Identity, Role, sign_internal
from guanxi_shared.clock import Clock
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.testing import serving


@dataclass
class Running:
    app: FastAPI
    http: httpx.AsyncClient
    settings: AuditSettings

    @property
    def deps(self) -> Deps:
        return self.app.state.deps  # type: ignore[no-any-return]

    @property
    def store(self) -> MongoAuditStore:
        """The service's store, whose collections a test reads (and tampers with) directly."""
        assert isinstance(self.deps.store, MongoAuditStore)
        return self.deps.store

    def headers(self, role: Role = Role.auditor, subject: str = "ada") -> dict[str, str]:
        token = sign_internal(Identity(subject=subject, roles=[role]), self.settings.internal_secret.get_secret_value())
        return {"X-Guanxi-Identity": token}

    async def get(self, path: str, role: Role = Role.auditor, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.headers(role))

    async def count(self, **filters: Any) -> int:
        return await self.store.records.count_documents(filters)


@contextlib.asynccontextmanager
async def running(settings: AuditSettings, clock: Clock | None = None) -> AsyncIterator[Running]:
    app = build(settings, clock)
    async with serving(app, base_url="http://audit") as http:
        yield Running(app, http, settings)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def purchase(customer: str, order: str) -> CloudEvent:
    return new_event("purchase.completed", customer, {
        "order_id": order, "customer_id": customer, "amount": "88.00", "currency": "CNY",
        "items": [{"sku": "T1", "name": "Oolong", "quantity": 1, "unit_price": "88.00"}],
        "channel": "web", "purchased_at": now_iso()}, source="orders")


def complaint(customer: str, description: str = "Parcel arrived broken; call me on 13800138000") -> CloudEvent:
    return new_event("complaint.received", customer, {
        "customer_id": customer, "channel": "phone", "category": "delivery", "severity": "normal",
        "description": description, "received_at": now_iso()}, source="call-centre")


def interaction(customer: str, summary: str = "follow-up call", agent: str = "agent-7") -> CloudEvent:
    return new_event("interaction.logged", customer, {
        "customer_id": customer, "channel": "phone", "direction": "outbound", "occurred_at": now_iso(),
        "summary": summary, "agent_id": agent}, source="call-centre")


def pii_read(customer: str, actor: str, role: str = "agent", at: datetime | None = None) -> CloudEvent:
    return new_event("customer.pii_accessed", customer, {
        "customer_id": customer, "actor": actor, "actor_role": role, "fields": ["phone"], "purpose": "service",
        "via": "api", "accessed_at": (at or datetime.now(UTC)).isoformat()}, source="customer")


def contact_read(customer: str, purpose: str = "service", at: datetime | None = None,
                 actor: str = "notifications") -> CloudEvent:
    """The notifications service reading a customer's contact details to send a message, as the customer
    service records it."""
    return new_event("customer.pii_accessed", customer, {
        "customer_id": customer, "actor": actor, "actor_role": "service", "fields": ["email", "name", "phone"],
        "purpose": purpose, "via": "internal", "accessed_at": (at or datetime.now(UTC)).isoformat(),
        "request_id": f"r-{customer}"}, source="guanxi/customer")


def notified(customer: str, category: str = "service", at: datetime | None = None, *,
             type_: str = "notification.sent", channel: str | None = "sms", n: int = 0) -> CloudEvent:
    """The outcome of a message as the notifications service publishes it."""
    data: dict[str, Any] = {"notification_id": f"n-{customer}-{category}-{n}", "customer_id": customer,
                            "template": "order_shipped", "category": category,
                            "at": (at or datetime.now(UTC)).isoformat(), "status": type_.split(".")[1]}
    if channel is not None:
        data |= {"channel": channel, "address_masked": "138****8000"}
    return new_event(type_, customer, data, source="guanxi/notifications")


def access(actor: str, role: str, path: str, status: int, customer: str | None = None) -> CloudEvent:
    return new_event("access.recorded", customer or actor, {
        "actor": actor, "role": role, "method": "GET", "path": path, "status": status,
        "request_id": f"r-{actor}-{status}", "customer_id": customer, "at": now_iso()}, source="gateway")


def erased(customer: str) -> CloudEvent:
    return new_event("customer.erased", customer, {"customer_id": customer, "erased_at": now_iso(), "actor": "admin-1",
                                                   "reason": "contract terminated"}, source="customer")
