"""One customer's journey through the whole platform, driven only through the gateway's HTTP API and
Kafka (and read back from the SMTP sink and the OTLP receiver): register, complain, get the
acknowledgement email, walk the case to resolution, answer the survey through its link, see an order
system's purchase published straight to Kafka, read the timeline, the KPIs and the audit chain, and
find one trace that spans gateway, complaints, notifications and audit."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from e2e_support import Platform, text_of
from guanxi_shared.events import new_event
from guanxi_shared.testing import eventually
from guanxi_shared.topics import PURCHASE_COMPLETED
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

LINK = re.compile(r"https?://[^\s\"'<>]+/api/v1/surveys/answer/[A-Za-z0-9._~%-]+")
SERVER = 2  # OTLP SpanKind SERVER


async def _json(client: httpx.AsyncClient, path: str, status: int = 200) -> Any:
    response = await client.get(path)
    return response.json() if response.status_code == status else None


async def test_customer_journey_from_complaint_to_survey_answer(e2e_platform: Platform) -> None:
    p = e2e_platform
    address = f"li.lei.{uuid.uuid4().hex[:8]}@example.com"
    async with p.client("agent", "alice") as agent, p.client("supervisor", "sue") as supervisor, \
            p.client("auditor", "audrey") as auditor, p.client() as public:
        # Register the customer (personal data stays in the customer service).
        registered = await agent.post("/api/v1/customers", json={
            "name": "李雷", "phone": "+8613800138000", "email": address, "consents": ["service", "survey"]})
        assert registered.status_code == 201, f"{registered.text}\n{p.logs()}"
        customer_id = registered.json()["id"]

        # File a complaint over HTTP: a publish to Kafka, answered 202 with the case id. The caller is
        # traced too (W3C traceparent), so we know which trace to look for.
        caller = SpanContext(trace_id=uuid.uuid4().int, span_id=uuid.uuid4().int >> 64,
                             is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        trace_id = format(caller.trace_id, "032x")
        # The header for a plain client; the current span for an httpx the test process instrumented.
        with trace.use_span(NonRecordingSpan(caller)):
            filed = await agent.post(
                "/api/v1/complaints", headers={"traceparent": f"00-{trace_id}-{caller.span_id:016x}-01"},
                json={"customer_id": customer_id, "channel": "web", "category": "billing", "severity": "normal",
                      "description": "charged twice for one order"})
        assert filed.status_code == 202, filed.text
        complaint_id = filed.json()["id"]

        case = await eventually(lambda: _json(agent, f"/api/v1/complaints/{complaint_id}"),
                                lambda c: c is not None and c["status"] == "acknowledged", timeout=60,
                                what="the case, acknowledged")
        assert set(case["deadlines"]) >= {"acknowledge", "preliminary_opinion", "investigation", "formal_answer"}
        assert case["deadlines"]["investigation"] is None

        # The acknowledgement reaches the customer's mailbox, naming the case.
        acknowledgement = await eventually(
            lambda: _async(p.mail.to(address)), lambda mails: any(complaint_id in text_of(m) for m in mails),
            timeout=60, what="the acknowledgement email")
        assert acknowledgement

        # Walk the case to its formal answer.
        steps = [("assign", {"owner": "alice"}), ("preliminary-opinion", {"opinion": "a duplicate charge; refund due"}),
                 ("resolve", {"resolution": "refunded the duplicate charge", "apology": True, "root_cause": "billing"})]
        for step, body in steps:
            response = await agent.post(f"/api/v1/complaints/{complaint_id}/{step}", json=body)
            assert response.status_code == 200, f"{step}: {response.text}"
        resolved = await agent.get(f"/api/v1/complaints/{complaint_id}")
        assert resolved.json()["status"] == "resolved"

        # The post-resolution survey arrives by email; the customer answers through the link, no account.
        try:
            survey_mail = await eventually(
                lambda: _async([m for m in p.mail.to(address) if LINK.search(text_of(m))]), timeout=60,
                what="the survey email with its answer link")
        except AssertionError as exc:
            seen = {path: (await agent.get(path, params={"customer_id": customer_id})).text
                    for path in ("/api/v1/surveys", "/api/v1/surveys/skips", "/api/v1/notifications")}
            raise AssertionError(f"{exc}\n{seen}\n{p.logs()}") from None
        link = LINK.search(text_of(survey_mail[0]))
        assert link is not None
        path = "/api/v1/surveys/answer/" + link.group(0).rsplit("/api/v1/surveys/answer/", 1)[1]
        form = await public.get(path)
        assert form.status_code == 200, form.text
        assert {q["id"] for q in form.json()["questions"]} >= {"satisfaction", "recommend"}
        answered = await public.post(path, json={"answers": {"satisfaction": 92, "recommend": 9, "resolved": "yes"}})
        assert answered.status_code == 200, answered.text
        again = await public.post(path, json={"answers": {"satisfaction": 10, "recommend": 0}})
        assert 400 <= again.status_code < 500  # single use

        surveys = await agent.get("/api/v1/surveys", params={"customer_id": customer_id})
        assert surveys.status_code == 200
        assert any(s["status"] == "completed" and s.get("scheduled_for") for s in surveys.json()["items"])
        notifications = await agent.get("/api/v1/notifications", params={"customer_id": customer_id})
        assert notifications.status_code == 200 and notifications.json()["items"]
        assert all("status" in n and address not in str(n) for n in notifications.json()["items"])

        # An order system publishes a purchase straight to Kafka, as the inbound contract allows.
        order_id = f"SO-{uuid.uuid4().hex[:10]}"
        purchase = new_event(PURCHASE_COMPLETED, customer_id, {
            "order_id": order_id, "customer_id": customer_id, "amount": "199.00", "currency": "CNY", "channel": "store",
            "purchased_at": datetime.now(UTC).isoformat(),
            "items": [{"sku": "TEA-01", "name": "龙井 250g", "quantity": 1, "unit_price": "199.00"}]}, source="pos-system")
        producer = AIOKafkaProducer(bootstrap_servers=p.kafka, enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(p.prefix + PURCHASE_COMPLETED, purchase.to_json(), key=customer_id.encode())
        finally:
            await producer.stop()

        # The 360° view tells the story: the complaint and the purchase.
        timeline = await eventually(lambda: _json(agent, f"/api/v1/customers/{customer_id}/timeline"),
                                    lambda t: t is not None and complaint_id in str(t) and order_id in str(t),
                                    timeout=60, what="timeline with the complaint and the purchase")
        assert address not in str(timeline)  # staff see masked personal data

        # KPIs of the period gather every service, each figure beside its target.
        kpis = await supervisor.get("/api/v1/kpis")
        assert kpis.status_code == 200, kpis.text
        overview = kpis.json()
        assert {name: s["available"] for name, s in overview["sections"].items()} == {
            "customer": True, "complaints": True, "surveys": True, "notifications": True}, overview["sections"]
        indicators = {i["indicator"]: i for i in overview["indicators"]}
        assert indicators["average_satisfaction"]["target"] == 85.0 and indicators["average_satisfaction"]["value"] is not None
        assert indicators["resolution_rate"]["value"] is not None

        # The audit chain is intact and holds the gateway's access records.
        verified = await eventually(lambda: _json(auditor, "/api/v1/audit/verify"), lambda v: v is not None, timeout=30)
        assert verified["ok"] is True, verified

    # One trace: the complaint's HTTP request through Kafka to the case, the email and the audit record.
    # The audit service consumes in batches, so its span joins by a span link (messaging conventions
    # for batch receive) and its records carry the trace id, which the audit API can be asked for.
    def complaint_trace() -> set[str]:
        return {s.service for s in p.traces.snapshot() if s.trace_id == trace_id or trace_id in s.linked_trace_ids}

    await eventually(lambda: _async(complaint_trace()),
                     lambda found: {"gateway", "complaints", "notifications", "audit"} <= found,
                     timeout=60, what="one trace across gateway, complaints, notifications and audit")
    gateway_spans = [s for s in p.traces.snapshot() if s.trace_id == trace_id and s.service == "gateway" and s.kind == SERVER]
    assert any(s.attributes.get("http.route") == "/api/v1/complaints" for s in gateway_spans)
    in_trace = {s.service for s in p.traces.snapshot() if s.trace_id == trace_id}
    assert {"gateway", "complaints", "notifications"} <= in_trace, in_trace  # parented, not only linked
    async with p.client("auditor", "audrey") as auditor:

        async def audited_types() -> set[str]:
            response = await auditor.get("/api/v1/audit/records", params={"trace_id": trace_id, "limit": 200})
            return {r.get("type") for r in response.json()["items"]} if response.status_code == 200 else set()

        await eventually(audited_types, lambda types: {"complaint.received", "access.recorded"} <= types, timeout=30,
                         what="the audit records of the complaint's trace")


async def _async(value: Any) -> Any:
    return value
