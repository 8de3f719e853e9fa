"""Use cases of the gateway over ``Deps``: intake of inbound events (publish, 202), the KPI overview,
and the sweep of expired idempotency records."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from guanxi_shared.auth import Identity
from guanxi_shared.clock import Clock
from guanxi_shared.contracts.inbound import (
    ComplaintChannel,
    ComplaintReceived,
    Direction,
    InteractionLogged,
    PurchaseCompleted,
    PurchaseItem,
    Severity,
)
from guanxi_shared.errors import Invalid
from guanxi_shared.events import CloudEvent, describe_validation_error, new_event
from guanxi_shared.topics import COMPLAINT_RECEIVED, INTERACTION_LOGGED, PURCHASE_COMPLETED
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import domain
from .settings import GatewaySettings
from .store import IdempotencyStore

log = logging.getLogger(__name__)

SOURCE = "guanxi-gateway"
KPI_SERVICES = ("customer", "complaints", "surveys", "notifications")


class Publisher(Protocol):
    async def publish(self, event: CloudEvent) -> None:
        """Put ``event`` on its topic and wait for Kafka's acknowledgement."""
        ...


class Services(Protocol):
    """The owning services, as the use cases ask them (``upstream.Upstreams``)."""

    async def get_json(self, service: str, path: str, identity: Identity | None, request_id: str,
                       params: Mapping[str, str] | None = None, timeout: float | None = None) -> Any:
        """The service's JSON answer; ``domain.UpstreamFailed`` when it gives none."""
        ...


@dataclass
class Deps:
    settings: GatewaySettings
    clock: Clock
    publisher: Publisher
    services: Services
    idempotency: IdempotencyStore
    # The HTTP edge's proxy (``Upstreams.forward``): (service, request, identity, request id, query) → answer.
    forward: Callable[..., Awaitable[Any]]


def _examples(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [example]})


class ComplaintIntake(BaseModel):
    """``complaint.received`` as an HTTP caller files it: the gateway gives the id and, if absent, the time."""

    model_config = _examples({
        "customer_id": "c0a8012e-5b1f-4f7e-9d7e-0d1b2c3d4e5f", "channel": "web", "category": "billing",
        "severity": "normal", "description": "账单重复扣费 / charged twice for one order", "product": "broadband-200M"})

    external_ref: str | None = Field(default=None, max_length=200, description="the caller's own reference")
    customer_id: str = Field(min_length=1, max_length=128)
    channel: ComplaintChannel
    category: str = Field(min_length=1, max_length=100)
    severity: Severity
    description: str = Field(min_length=1, max_length=20_000)
    received_at: datetime | None = Field(default=None, description="RFC 3339 with offset; defaults to now")
    product: str | None = Field(default=None, max_length=200)
    evidence: list[str] = Field(default_factory=list, max_length=50, description="links to attachments")


class InteractionIntake(BaseModel):
    """``interaction.logged``: one contact with a customer (CC-2)."""

    model_config = _examples({
        "customer_id": "c0a8012e-5b1f-4f7e-9d7e-0d1b2c3d4e5f", "channel": "phone", "direction": "inbound",
        "summary": "asked about the membership benefits", "outcome": "answered", "kind": "consultation"})

    interaction_id: str | None = Field(default=None, max_length=128, description="generated when absent")
    customer_id: str = Field(min_length=1, max_length=128)
    channel: str = Field(min_length=1, max_length=32)
    direction: Direction
    occurred_at: datetime | None = Field(default=None, description="RFC 3339 with offset; defaults to now")
    summary: str = Field(min_length=1, max_length=5_000)
    agent_id: str | None = Field(default=None, max_length=128, description="defaults to the calling staff member")
    outcome: str | None = Field(default=None, max_length=200)
    kind: str | None = Field(default=None, max_length=64)
    urgent: bool | None = None


class PurchaseIntake(BaseModel):
    """``purchase.completed`` exactly as the inbound contract has it."""

    model_config = _examples({
        "order_id": "SO-2026-000123", "customer_id": "c0a8012e-5b1f-4f7e-9d7e-0d1b2c3d4e5f", "amount": "199.00",
        "currency": "CNY", "channel": "web", "purchased_at": "2026-11-20T10:15:00+08:00",
        "items": [{"sku": "TEA-01", "name": "龙井 250g", "quantity": 1, "unit_price": "199.00"}]})

    order_id: str = Field(min_length=1, max_length=128)
    customer_id: str = Field(min_length=1, max_length=128)
    amount: str = Field(description="decimal string")
    currency: str = Field(description="ISO 4217")
    items: list[PurchaseItem]
    channel: str = Field(min_length=1, max_length=32)
    purchased_at: datetime


class Accepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": "5b0e7c1e-3a53-4cf4-8b42-6a1f2f1c9d10", "type": "complaint.received", "status": "accepted"}]})

    id: str = Field(description="the id of the complaint, interaction or order")
    type: str = Field(description="the event published")
    status: str = "accepted"


def _validated(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid(describe_validation_error(exc)) from exc


def _intake_id(kind: str, idempotency_record: str | None) -> str:
    """A fresh id, or with an Idempotency-Key one derived from it (and the caller): a retry the gateway runs
    again after a crash (its answer was never recorded) publishes the same id, and the owning service
    deduplicates on it, so the complaint or contact is still recorded once."""
    if idempotency_record is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"guanxi:{kind}:{idempotency_record}"))


async def file_complaint(deps: Deps, body: ComplaintIntake, idempotency_record: str | None = None) -> Accepted:
    clock = deps.clock
    complaint_id = _intake_id("complaint", idempotency_record)
    data = {**body.model_dump(exclude_none=True), "complaint_id": complaint_id,
            "received_at": (body.received_at or clock.now()).isoformat()}
    complaint = _validated(ComplaintReceived, data)
    event = new_event(COMPLAINT_RECEIVED, complaint.customer_id, complaint.model_dump(mode="json", exclude_none=True),
                      source=SOURCE, time=clock.now(), id=_intake_id("complaint.received", idempotency_record))
    await deps.publisher.publish(event)
    return Accepted(id=complaint_id, type=COMPLAINT_RECEIVED)


async def log_interaction(deps: Deps, body: InteractionIntake, identity: Identity,
                          idempotency_record: str | None = None) -> Accepted:
    clock = deps.clock
    data = body.model_dump(exclude_none=True)
    data["interaction_id"] = body.interaction_id or _intake_id("interaction", idempotency_record)
    data["occurred_at"] = (body.occurred_at or clock.now()).isoformat()
    if body.agent_id is None and identity.has(*domain.STAFF):
        data["agent_id"] = identity.subject  # the member of staff who logged it handled it
    interaction = _validated(InteractionLogged, data)
    event = new_event(INTERACTION_LOGGED, interaction.customer_id, interaction.model_dump(mode="json", exclude_none=True),
                      source=SOURCE, time=clock.now(), id=_intake_id("interaction.logged", idempotency_record))
    await deps.publisher.publish(event)
    return Accepted(id=data["interaction_id"], type=INTERACTION_LOGGED)


async def record_purchase(deps: Deps, body: PurchaseIntake) -> Accepted:
    purchase = _validated(PurchaseCompleted, body.model_dump(mode="json"))
    # The order id keys the event: an order system resending the same order publishes the same id.
    event = new_event(PURCHASE_COMPLETED, purchase.customer_id, purchase.model_dump(mode="json"), source=SOURCE,
                      id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"guanxi:purchase:{purchase.order_id}")), time=deps.clock.now())
    await deps.publisher.publish(event)
    return Accepted(id=purchase.order_id, type=PURCHASE_COMPLETED)


async def kpi_overview(deps: Deps, identity: Identity, request_id: str, start: datetime | None,
                       end: datetime | None) -> dict[str, Any]:
    for value, name in ((start, "from"), (end, "to")):
        if value is not None and value.tzinfo is None:
            raise Invalid(f"'{name}' must carry a UTC offset (RFC 3339)")
    end = end or deps.clock.now()
    start = start or end - timedelta(days=30)
    if start >= end:
        raise Invalid("'from' must be before 'to'")
    params = {"from": start.isoformat(), "to": end.isoformat()}

    async def section(service: str) -> dict[str, Any]:
        try:
            figures = await deps.services.get_json(service, f"{domain.API}/kpis/{service}", identity, request_id, params,
                                                   timeout=deps.settings.kpi_timeout)
        except domain.UpstreamFailed as exc:
            # One service down leaves its section marked, the rest of the overview stands.
            return {"available": False, "reason": exc.detail}
        return {"available": True, "figures": figures}

    results = await asyncio.gather(*(section(s) for s in KPI_SERVICES))
    sections = dict(zip(KPI_SERVICES, results, strict=True))
    indicators = domain.assess({s: v.get("figures") if v["available"] else None for s, v in sections.items()})
    return {"from": params["from"], "to": params["to"], "indicators": indicators, "sections": sections}


async def sweep_idempotency_keys(deps: Deps) -> int:
    """Delete expired idempotency records (the store has no TTL index)."""
    removed = await deps.idempotency.sweep(deps.clock.now())
    if removed:
        log.info("removed %d expired idempotency records", removed)
    return removed
