"""The gateway's use cases with a recording publisher, stand-in services and the in-memory store."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from guanxi_gateway import handlers
from guanxi_gateway.domain import StoredAnswer, UpstreamFailed
from guanxi_gateway.handlers import ComplaintIntake, Deps, InteractionIntake, PurchaseIntake
from guanxi_gateway.settings import GatewaySettings
from guanxi_gateway.store import InMemoryIdempotencyStore
from guanxi_shared.auth import Identity, Role
from guanxi_shared.clock import ManualClock
from guanxi_shared.errors import Invalid
from guanxi_shared.events import CloudEvent

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
AGENT = Identity(subject="alice", roles=[Role.agent])
CALL_CENTRE = Identity(subject="callcentre", roles=[Role.integration])


class Published:
    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    async def publish(self, event: CloudEvent) -> None:
        self.events.append(event)


class Services:
    """Each service's figures, or the failure it gives; every call is remembered."""

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Mapping[str, str] | None, float | None]] = []

    async def get_json(self, service: str, path: str, identity: Identity | None, request_id: str,
                       params: Mapping[str, str] | None = None, timeout: float | None = None) -> Any:
        self.calls.append((service, path, params, timeout))
        answer = self.answers[service]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def no_proxy(*_: Any) -> Any:
    raise AssertionError("the use cases never proxy")


def make_deps(services: Services | None = None) -> Deps:
    settings = GatewaySettings(kpi_timeout=2.5)
    return Deps(settings=settings, clock=ManualClock(T0), publisher=Published(), services=services or Services({}),
                idempotency=InMemoryIdempotencyStore(timedelta(hours=1)), forward=no_proxy)


def published(deps: Deps) -> list[CloudEvent]:
    assert isinstance(deps.publisher, Published)
    return deps.publisher.events


COMPLAINT = {"customer_id": "cust-7", "channel": "web", "category": "billing", "severity": "high",
             "description": "charged twice"}


async def test_a_complaint_is_published_with_a_new_id_or_one_derived_from_its_idempotency_record() -> None:
    """Complaint intake over HTTP (CP-1)."""
    deps = make_deps()
    accepted = await handlers.file_complaint(deps, ComplaintIntake.model_validate(COMPLAINT))
    assert accepted.type == "complaint.received" and uuid.UUID(accepted.id).version == 4
    [event] = published(deps)
    assert event.type == "complaint.received" and event.subject == "cust-7" and event.source == handlers.SOURCE
    assert event.data["complaint_id"] == accepted.id and event.data["severity"] == "high"
    assert datetime.fromisoformat(event.data["received_at"]) == T0 and event.time == T0

    # A retry the gateway runs again after a crash publishes the same complaint and event ids.
    first = await handlers.file_complaint(deps, ComplaintIntake.model_validate(COMPLAINT), "record-1")
    again = await handlers.file_complaint(deps, ComplaintIntake.model_validate(COMPLAINT), "record-1")
    other = await handlers.file_complaint(deps, ComplaintIntake.model_validate(COMPLAINT), "record-2")
    assert first.id == again.id != other.id
    assert published(deps)[1].id == published(deps)[2].id != published(deps)[3].id


async def test_an_intake_the_inbound_contract_refuses_is_invalid() -> None:
    deps = make_deps()
    naive = ComplaintIntake.model_validate({**COMPLAINT, "received_at": "2026-01-01T10:00:00"})
    with pytest.raises(Invalid, match="received_at"):
        await handlers.file_complaint(deps, naive)
    purchase = PurchaseIntake.model_validate({
        "order_id": "SO-1", "customer_id": "cust-7", "amount": "-1", "currency": "CNY", "channel": "web",
        "purchased_at": "2026-11-20T10:15:00+08:00", "items": []})
    with pytest.raises(Invalid, match="amount"):
        await handlers.record_purchase(deps, purchase)
    assert published(deps) == [] and Invalid.status == 422


async def test_a_contact_is_handled_by_the_staff_member_who_logged_it() -> None:
    """A contact records who handled it (CC-2)."""
    deps = make_deps()
    contact = {"customer_id": "cust-7", "channel": "phone", "direction": "inbound", "summary": "asked about an order"}
    by_agent = await handlers.log_interaction(deps, InteractionIntake.model_validate(contact), AGENT)
    by_system = await handlers.log_interaction(deps, InteractionIntake.model_validate(
        {**contact, "interaction_id": "ivr-9"}), CALL_CENTRE)
    assert by_system.id == "ivr-9" and by_agent.id != by_system.id
    first, second = published(deps)
    assert first.data["agent_id"] == "alice" and "agent_id" not in second.data
    assert datetime.fromisoformat(first.data["occurred_at"]) == T0


async def test_a_purchase_is_keyed_by_its_order() -> None:
    deps = make_deps()
    body = PurchaseIntake.model_validate({
        "order_id": "SO-2026-000123", "customer_id": "cust-7", "amount": "199.00", "currency": "CNY", "channel": "web",
        "purchased_at": "2026-11-20T10:15:00+08:00",
        "items": [{"sku": "TEA-01", "name": "龙井 250g", "quantity": 1, "unit_price": "199.00"}]})
    accepted = await handlers.record_purchase(deps, body)
    await handlers.record_purchase(deps, body)  # the order system resends it
    assert accepted.id == "SO-2026-000123"
    one, two = published(deps)
    assert one.id == two.id and one.subject == "cust-7" and one.data["amount"] == "199.00"


async def test_the_kpi_overview_marks_the_sections_of_services_that_give_no_answer() -> None:
    """The indicator overview (KP-1)."""
    services = Services({
        "customer": {"churn": {"customers": 120, "rate": 0.03}},
        "complaints": {"overall": {"first_contact_resolution": 0.8, "counts": {"received": 12}}},
        "surveys": UpstreamFailed("the surveys service did not answer in time"),
        "notifications": UpstreamFailed("notifications answered 500", upstream_status=500),
    })
    deps = make_deps(services)
    overview = await handlers.kpi_overview(deps, AGENT, "req-1", None, None)
    assert overview["to"] == T0.isoformat() and overview["from"] == (T0 - timedelta(days=30)).isoformat()
    sections = overview["sections"]
    assert sections["customer"] == {"available": True, "figures": {"churn": {"customers": 120, "rate": 0.03}}}
    assert sections["surveys"] == {"available": False, "reason": "the surveys service did not answer in time"}
    assert sections["notifications"] == {"available": False, "reason": "notifications answered 500"}
    indicators = {i["indicator"]: i for i in overview["indicators"]}
    assert indicators["churn_rate"]["met"] is True and indicators["first_contact_resolution"]["met"] is False
    assert indicators["complaint_rate"]["value"] == 0.1 and indicators["average_satisfaction"]["value"] is None
    assert {(s, path, timeout) for s, path, _, timeout in services.calls} == {
        (s, f"/api/v1/kpis/{s}", 2.5) for s in handlers.KPI_SERVICES}
    assert all(params == {"from": overview["from"], "to": overview["to"]} for _, _, params, _ in services.calls)


async def test_a_kpi_range_needs_offsets_and_order() -> None:
    deps = make_deps(Services({service: {} for service in handlers.KPI_SERVICES}))
    with pytest.raises(Invalid, match="'from' must be before 'to'"):
        await handlers.kpi_overview(deps, AGENT, "r", T0, T0 - timedelta(days=1))
    with pytest.raises(Invalid, match="'to' must carry a UTC offset"):
        await handlers.kpi_overview(deps, AGENT, "r", None, datetime(2026, 11, 1))
    overview = await handlers.kpi_overview(deps, AGENT, "r", T0 - timedelta(days=7), None)
    assert overview["from"] == (T0 - timedelta(days=7)).isoformat() and overview["to"] == T0.isoformat()


async def test_the_sweep_removes_expired_idempotency_records() -> None:
    deps = make_deps()
    await deps.idempotency.claim("r-1", "fp", T0 - timedelta(hours=2))
    await deps.idempotency.complete("r-1", StoredAnswer(201, [], b"{}"), T0 - timedelta(hours=2))
    await deps.idempotency.claim("r-2", "fp", T0)
    assert await handlers.sweep_idempotency_keys(deps) == 1
    assert await handlers.sweep_idempotency_keys(deps) == 0
    assert (await deps.idempotency.claim("r-2", "fp", T0)).outcome == "in_progress"
