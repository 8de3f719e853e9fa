"""The gateway on real Kafka + FerretDB, in front of small fake services served on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import gateway_fakes as fakes
import jwt
import pytest
from fastapi import FastAPI
from gateway_fakes import bearer, gateway_client, served, unused_url
from guanxi_gateway.app import build
from guanxi_gateway.settings import GatewaySettings
from guanxi_gateway.token import issue_token
from guanxi_shared.auth import Identity, Role, verify_internal
from guanxi_shared.settings import DEV_SECRET
from guanxi_shared.testing import eventually
from opentelemetry.trace import SpanKind
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration


@dataclass
class Platform:
    app: FastAPI
    settings: GatewaySettings
    fakes: dict[str, FastAPI]

    def token(self, role: str, subject: str = "alice", **kw: Any) -> dict[str, Any]:
        return bearer(issue_token(self.settings, subject, [role], **kw))


@contextlib.asynccontextmanager
async def platform(make_settings: Any, **overrides: Any) -> AsyncIterator[Platform]:
    apps = {"customer": fakes.customer(DEV_SECRET), "complaints": fakes.complaints(DEV_SECRET),
            "surveys": fakes.surveys(DEV_SECRET), "audit": fakes.audit(DEV_SECRET)}
    async with (served(apps["customer"]) as customer_url, served(apps["complaints"]) as complaints_url,
                served(apps["surveys"]) as surveys_url, served(apps["audit"]) as audit_url):
        values = {"customer_url": customer_url, "complaints_url": complaints_url, "surveys_url": surveys_url,
                  "audit_url": audit_url, "notifications_url": unused_url(), "upstream_timeout": 1.0, **overrides}
        settings = make_settings(GatewaySettings, **values)
        app = build(settings)
        async with app.router.lifespan_context(app):
            yield Platform(app, settings, apps)


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


async def test_complaint_intake_publishes_the_inbound_event_and_an_access_record(make_settings, topics, tap) -> None:
    received = await tap("complaint.received", "access.recorded")
    async with platform(make_settings) as p, gateway_client(p.app) as client:
        body = {"customer_id": "cust-7", "channel": "web", "category": "billing", "severity": "high",
                "description": "charged twice"}
        response = await client.post("/api/v1/complaints", json=body, headers=p.token("agent"))
        assert response.status_code == 202, response.text
        complaint_id = response.json()["id"]
        assert uuid.UUID(complaint_id).version == 4
        assert response.headers["location"] == f"/api/v1/complaints/{complaint_id}"

        await received.wait_for(lambda t: t.count("complaint.received") == 1 and t.count("access.recorded") >= 1)
        record = next(r for r in received.records if r.topic.endswith("complaint.received"))
        event = json.loads(record.value)
        assert record.key == b"cust-7" and event["subject"] == "cust-7"
        assert event["data"]["complaint_id"] == complaint_id and event["data"]["severity"] == "high"
        assert datetime.fromisoformat(event["data"]["received_at"]).utcoffset() is not None
        assert "traceparent" in dict(record.headers)
        access = received.events("access.recorded")[0]
        assert access["subject"] == "cust-7"
        assert access["data"] | {"at": None, "duration_ms": None} == {
            "actor": "alice", "role": "agent", "method": "POST", "path": "/api/v1/complaints", "status": 202,
            "request_id": response.headers["x-request-id"], "client_ip": "203.0.113.7", "customer_id": "cust-7",
            "at": None, "duration_ms": None}

        invalid = await client.post("/api/v1/complaints", json={**body, "severity": "apocalyptic"}, headers=p.token("agent"))
        assert "severity" in problem(invalid, 422)["detail"]
        naive = await client.post("/api/v1/complaints", json={**body, "received_at": "2026-01-01T10:00:00"},
                                  headers=p.token("agent"))
        problem(naive, 422)
        interaction = await client.post("/api/v1/interactions", headers=p.token("integration", "callcentre"), json={
            "customer_id": "cust-7", "channel": "phone", "direction": "inbound", "summary": "asked about an order"})
        assert interaction.status_code == 202, interaction.text


async def test_authentication_and_the_role_matrix_at_the_door(make_settings, topics, tap) -> None:
    """Only authorised staff, each role on its own routes (CF-1)."""
    access = await tap("access.recorded")
    async with platform(make_settings) as p, gateway_client(p.app) as client:
        missing = await client.get("/api/v1/customers/c1")
        problem(missing, 401)
        assert missing.headers["www-authenticate"].startswith("Bearer")
        problem(await client.get("/api/v1/customers/c1", headers={"Authorization": "Basic abc"}), 401)
        expired = p.token("agent", ttl_seconds=-120)
        problem(await client.get("/api/v1/customers/c1", headers=expired), 401)
        foreign = jwt.encode({"sub": "eve", "roles": ["admin"], "iss": p.settings.jwt_issuer, "aud": "someone-else",
                              "exp": int(time.time()) + 60}, DEV_SECRET, algorithm="HS256")
        problem(await client.get("/api/v1/customers/c1", headers=bearer(foreign)), 401)
        forged = jwt.encode({"sub": "eve", "roles": ["admin"], "iss": p.settings.jwt_issuer, "aud": p.settings.jwt_audience,
                             "exp": int(time.time()) + 60}, "not-the-secret-" * 3, algorithm="HS256")
        problem(await client.get("/api/v1/customers/c1", headers=bearer(forged)), 401)

        assert "auditor" in problem(await client.get("/api/v1/customers/c1", headers=p.token("auditor")), 403)["detail"]
        problem(await client.get("/api/v1/customers/c1", headers=p.token("integration")), 403)
        problem(await client.get("/api/v1/audit/verify", headers=p.token("admin")), 403)
        problem(await client.get("/api/v1/kpis", headers=p.token("agent")), 403)
        assert (await client.get("/api/v1/audit/verify", headers=p.token("auditor"))).json() == {"ok": True, "checked": 3}
        problem(await client.get("/api/v1/nowhere", headers=p.token("admin")), 404)
        problem(await client.delete("/api/v1/audit/verify", headers=p.token("auditor")), 405)
        problem(await client.get("/internal/secret-thing", headers=p.token("admin")), 404)

        await access.wait_for(lambda t: t.count("access.recorded", data__status=403) >= 4, what="403 access records")
        denied = [e for e in access.events() if e["data"]["status"] == 403]
        assert {e["data"]["role"] for e in denied} >= {"auditor", "integration", "admin", "agent"}
        anonymous = [e for e in access.events() if e["data"]["status"] == 401]
        assert anonymous and all(e["data"]["actor"] == "anonymous" and e["subject"] == "c1" for e in anonymous)
        verify = [e for e in access.events() if e["data"]["path"] == "/api/v1/audit/verify"]
        assert verify and all(e["subject"] == f"actor:{e['data']['actor']}" for e in verify)
        customer_reads = [e for e in access.events() if e["data"]["path"] == "/api/v1/customers/{customer_id}"]
        assert customer_reads and all(e["subject"] == "c1" for e in customer_reads)


async def test_proxy_forwards_identity_request_id_and_trace_and_caps_pages(make_settings, topics, span_exporter) -> None:
    async with platform(make_settings) as p, gateway_client(p.app) as client:
        span_exporter.clear()
        caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        response = await client.get("/api/v1/customers/c1?fields=name", headers={
            **p.token("agent", team="north"), "X-Request-Id": "req-123", "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"})
        assert response.status_code == 200, response.text
        seen = response.json()
        # The gateway's server span continues the caller's trace and is named by the path template (no id
        # in it); the service is called under the gateway's client span, child of the server span.
        spans = [s for s in span_exporter.get_finished_spans() if format(s.context.trace_id, "032x") == caller_trace]
        server = [s for s in spans if s.kind == SpanKind.SERVER and s.parent and s.parent.span_id == 0x00F067AA0BA902B7]
        assert [s.name for s in server] == ["GET /api/v1/customers/{customer_id}"], [s.name for s in spans]
        assert server[0].attributes["http.route"] == "/api/v1/customers/{customer_id}"
        assert server[0].attributes["http.response.status_code"] == 200
        client_span = next(s for s in spans
                           if s.kind == SpanKind.CLIENT and s.parent and s.parent.span_id == server[0].context.span_id)
        assert seen["traceparent"] == f"00-{caller_trace}-{format(client_span.context.span_id, '016x')}-01"
        assert seen["identity"]["subject"] == "alice" and seen["identity"]["roles"] == ["agent"]
        assert seen["identity"]["team"] == "north" and seen["identity"]["request_id"] == "req-123"
        assert seen["request_id"] == "req-123" == response.headers["x-request-id"]
        assert seen["traceparent"] and seen["authorization"] is None  # the user's token stays at the door
        assert seen["query"] == {"fields": "name"}
        for header in ("x-content-type-options", "x-frame-options", "referrer-policy", "cache-control"):
            assert header in response.headers
        assert "access-control-allow-origin" not in response.headers

        problem(await client.get("/api/v1/customers/a%01b", headers=p.token("agent")), 400)
        lone = b'{"name": "\\udbc9"}'
        problem(await client.post("/api/v1/customers", content=lone, headers={**p.token("agent"),
                                                                              "Content-Type": "application/json"}), 422)
        assert p.fakes["customer"].state.effects == 0

        capped = await client.get("/api/v1/customers?limit=5000", headers=p.token("agent"))
        assert capped.json()["limit"] == p.settings.max_page_size

        streamed = []
        async with client.stream("GET", "/api/v1/audit/export", headers=p.token("auditor")) as stream:
            assert stream.status_code == 200
            async for line in stream.aiter_lines():
                if line:
                    streamed.append(json.loads(line)["n"])
        assert streamed == list(range(50))

        survey = await client.get("/api/v1/surveys/answer/signed.token.value")
        assert survey.status_code == 200 and survey.json() == {"token": "signed.token.value", "identity_header": None}
        # The single-use link token reaches the service but not the gateway's spans (names and attributes);
        # the fake services here are plain FastAPI apps with FastAPI's own tracing, so only ours are checked.
        ours = [s for s in span_exporter.get_finished_spans() if s.instrumentation_scope.name.startswith("guanxi.")]
        assert any(s.name == "GET /api/v1/surveys/answer/{token}" for s in ours), [s.name for s in ours]
        assert not [s.name for s in ours if "signed.token.value" in s.name + str(dict(s.attributes or {}))]
        # An internal identity header sent from outside is not trusted on public routes either.
        outsider = await client.get("/api/v1/surveys/answer/t", headers={"X-Guanxi-Identity": "forged"})
        assert outsider.json()["identity_header"] is None

        # The customer's complaint status link: public for reading, the token kept out of the spans.
        status = await client.get("/api/v1/complaints/status/signed.status.token", headers={"X-Guanxi-Identity": "forged"})
        assert status.status_code == 200 and status.json() == {"token": "signed.status.token", "identity_header": None}
        ours = [s for s in span_exporter.get_finished_spans() if s.instrumentation_scope.name.startswith("guanxi.")]
        assert any(s.name == "GET /api/v1/complaints/status/{token}" for s in ours), [s.name for s in ours]
        assert not [s.name for s in ours if "signed.status.token" in s.name + str(dict(s.attributes or {}))]
        problem(await client.post("/api/v1/complaints/status/t", json={}), 401)  # only reading is public


async def test_service_down_slow_or_broken_gives_problems_and_kpis_mark_sections(make_settings, topics) -> None:
    async with platform(make_settings) as p, gateway_client(p.app) as client:
        down = await client.get("/api/v1/notifications?customer_id=c1", headers=p.token("agent"))
        assert problem(down, 503)["service"] == "notifications" and down.headers["retry-after"]
        problem(await client.get("/api/v1/complaints/slow", headers=p.token("agent")), 504)

        kpis = await client.get("/api/v1/kpis?from=2026-10-01T00:00:00%2B08:00&to=2026-11-01T00:00:00%2B08:00",
                                headers=p.token("supervisor"))
        assert kpis.status_code == 200, kpis.text
        body = kpis.json()
        sections = body["sections"]
        assert sections["customer"]["available"] and sections["complaints"]["available"]
        assert not sections["notifications"]["available"] and not sections["surveys"]["available"]
        assert sections["customer"]["figures"]["query"]["from"].startswith("2026-10-01T00:00:00")
        indicators = {i["indicator"]: i for i in body["indicators"]}
        assert indicators["churn_rate"] | {"label": None} == {
            "indicator": "churn_rate", "label": None, "value": 0.03, "unit": "ratio", "target": 0.05,
            "comparison": "<=", "met": True, "source": "customer:churn.rate"}
        assert indicators["first_contact_resolution"]["met"] is False
        assert indicators["average_satisfaction"]["value"] is None
        problem(await client.get("/api/v1/kpis?from=2026-11-01T00:00:00Z&to=2026-10-01T00:00:00Z",
                                 headers=p.token("supervisor")), 422)


async def test_idempotency_key_replays_the_first_answer_with_one_effect(make_settings, topics, tap) -> None:
    complaints = await tap("complaint.received")
    async with platform(make_settings) as p, gateway_client(p.app) as client:
        agent = {**p.token("agent"), "Idempotency-Key": "k-1"}
        first = await client.post("/api/v1/customers", json={"name": "Li Lei"}, headers=agent)
        again = await client.post("/api/v1/customers", json={"name": "Li Lei"}, headers=agent)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        assert p.fakes["customer"].state.effects == 1
        problem(await client.post("/api/v1/customers", json={"name": "Han Meimei"}, headers=agent), 422)
        # Keys belong to their caller: another subject with the same key is another request.
        other = await client.post("/api/v1/customers", json={"name": "Li Lei"}, headers={**p.token("agent", "bob"),
                                                                                         "Idempotency-Key": "k-1"})
        assert other.status_code == 201 and p.fakes["customer"].state.effects == 2

        slow = {**p.token("agent"), "Idempotency-Key": "k-slow"}
        racing = await asyncio.gather(
            client.post("/api/v1/customers", json={"name": "Wang", "delay": 0.6}, headers=slow),
            client.post("/api/v1/customers", json={"name": "Wang", "delay": 0.6}, headers=slow))
        assert sorted(r.status_code for r in racing) == [201, 409]
        assert p.fakes["customer"].state.effects == 3

        intake = {**p.token("agent"), "Idempotency-Key": "complaint-1"}
        body = {"customer_id": "c-i", "channel": "phone", "category": "delivery", "severity": "low", "description": "late"}
        ids = {(await client.post("/api/v1/complaints", json=body, headers=intake)).json()["id"] for _ in range(3)}
        assert len(ids) == 1
        await complaints.wait_for(lambda t: len(t.records) >= 1)
        await complaints.settle(0.5)
        assert len(complaints.records) == 1

        down = await client.post("/api/v1/notifications", json={}, headers={**p.token("agent"), "Idempotency-Key": "n"})
        problem(down, 503)
        # A 5xx is not remembered: the retry runs again (and meets the same outage, not a replay).
        retry = await client.post("/api/v1/notifications", json={}, headers={**p.token("agent"), "Idempotency-Key": "n"})
        assert retry.status_code == 503 and "idempotent-replayed" not in retry.headers


async def test_rate_limits_and_body_size(make_settings, topics) -> None:
    async with platform(make_settings, rate_limit_per_identity=60, rate_limit_per_ip=600, rate_limit_burst_seconds=3,
                        max_body_bytes=2048) as p, gateway_client(p.app) as client:
        statuses = [(await client.get("/api/v1/audit/verify", headers=p.token("auditor"))).status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        limited = await client.get("/api/v1/audit/verify", headers=p.token("auditor"))
        assert problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        # Another identity still has its own bucket.
        assert (await client.get("/api/v1/audit/verify", headers=p.token("auditor", "carol"))).status_code == 200

        big = {"customer_id": "c", "channel": "web", "category": "x", "severity": "low", "description": "x" * 4000}
        problem(await client.post("/api/v1/complaints", json=big, headers=p.token("agent", "dave")), 413)

    async with platform(make_settings, rate_limit_per_ip=60, rate_limit_burst_seconds=2) as p, gateway_client(p.app) as client:
        statuses = [(await client.get("/api/v1/surveys/answer/t")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


async def test_merged_openapi_document(make_settings, topics) -> None:
    async with platform(make_settings) as p, gateway_client(p.app) as client:
        doc = (await client.get("/openapi.json")).json()
        paths = doc["paths"]
        assert {"/api/v1/complaints", "/api/v1/kpis", "/api/v1/customers/{customer_id}", "/api/v1/audit/verify",
                "/api/v1/surveys/answer/{token}", "/api/v1/complaints/{complaint_id}"} <= set(paths)
        assert not any(path.startswith("/internal") for path in paths)
        intake = paths["/api/v1/complaints"]["post"]
        assert intake["security"] == [{"bearerAuth": []}] and "429" in intake["responses"]
        assert any(param["name"] == "Idempotency-Key" for param in intake["parameters"])
        schema = doc["components"]["schemas"]["ComplaintIntake"]
        assert schema["examples"][0]["channel"] == "web"
        assert "security" not in paths["/api/v1/surveys/answer/{token}"]["get"]
        assert "security" not in paths["/api/v1/complaints/status/{token}"]["get"]
        assert paths["/api/v1/customers/{customer_id}"]["get"]["tags"] == ["customer"]
        assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
        assert (await client.get("/docs")).status_code == 200


async def test_tokens_of_an_external_identity_provider_via_jwks(make_settings, topics) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key())) | {"kid": "k1", "use": "sig", "alg": "RS256"}
    idp = fakes.customer(DEV_SECRET)
    idp.state.jwks = {"keys": [jwk]}
    async with served(idp) as idp_url, platform(make_settings, jwks_url=f"{idp_url}/jwks.json", jwt_issuer="https://idp",
                                                  jwt_audience="guanxi", jwt_roles_claim="realm_access.roles") as p:
        claims = {"sub": "sso-user", "iss": "https://idp", "aud": "guanxi", "exp": int(time.time()) + 60,
                  "realm_access": {"roles": ["auditor", "offline_access"]}}
        good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        async with gateway_client(p.app) as client:
            assert (await client.get("/api/v1/audit/verify", headers=bearer(good))).status_code == 200
            # A locally signed token means nothing once an identity provider is configured.
            local = jwt.encode(claims, DEV_SECRET, algorithm="HS256", headers={"kid": "k1"})
            problem(await client.get("/api/v1/audit/verify", headers=bearer(local)), 401)
            no_role = jwt.encode({**claims, "realm_access": {"roles": ["offline_access"]}}, key, algorithm="RS256",
                                 headers={"kid": "k1"})
            problem(await client.get("/api/v1/audit/verify", headers=bearer(no_role)), 403)


async def test_cors_only_when_configured(make_settings, topics) -> None:
    async with platform(make_settings, cors_origins=["https://crm.example.com"]) as p, gateway_client(p.app) as client:
        preflight = await client.options("/api/v1/customers/c1", headers={
            "Origin": "https://crm.example.com", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert preflight.headers["access-control-allow-origin"] == "https://crm.example.com"
        other = await client.options("/api/v1/customers/c1", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in other.headers
        # The internal identity the gateway signs verifies with the shared secret (services trust it).
        seen = (await client.get("/api/v1/customers/c1", headers=p.token("agent"))).json()
        assert seen["identity"]["subject"] == "alice"
        signed = p.app.state.deps.services.identity_headers(Identity(subject="s", roles=[Role.agent]), "r")
        assert verify_internal(signed["X-Guanxi-Identity"], DEV_SECRET).subject == "s" and signed["x-request-id"] == "r"


async def test_readiness_and_clean_stop(make_settings, topics) -> None:
    async with platform(make_settings) as p, gateway_client(p.app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"store": True, "broker": True, "started": True}
        probe = await eventually(lambda: client.get("/healthz"), lambda r: r.status_code == 200, timeout=5)
        assert "x-request-id" in probe.headers


async def test_intake_retried_after_a_crash_before_recording_publishes_the_same_ids(make_settings, topics, tap) -> None:
    """The gateway died after publishing and before recording the answer; the retry runs again and must
    publish the same complaint (and event) id, so the complaints service opens one case."""
    received = await tap("complaint.received", "interaction.logged")
    async with platform(make_settings) as p, gateway_client(p.app) as client:
        agent = {**p.token("agent"), "Idempotency-Key": "intake-crash-1"}
        body = {"customer_id": "c-x", "channel": "phone", "category": "delivery", "severity": "low", "description": "late"}
        contact = {"customer_id": "c-x", "channel": "phone", "direction": "inbound", "summary": "asked again"}
        first = (await client.post("/api/v1/complaints", json=body, headers=agent)).json()["id"]
        first_contact = (await client.post("/api/v1/interactions", json=contact,
                                           headers={**agent, "Idempotency-Key": "contact-crash-1"})).json()["id"]
        store: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(p.settings.mongodb_url)
        try:
            # What a crash between publishing and recording leaves: no answer to replay (the lease expired).
            await store[p.settings.mongodb_database]["idempotency_keys"].delete_many({})
        finally:
            await store.close()
        again = await client.post("/api/v1/complaints", json=body, headers=agent)
        again_contact = await client.post("/api/v1/interactions", json=contact,
                                          headers={**agent, "Idempotency-Key": "contact-crash-1"})
        assert "idempotent-replayed" not in again.headers  # it really ran again
        assert again.json()["id"] == first and again_contact.json()["id"] == first_contact
        # Another caller's same key is another complaint.
        other = await client.post("/api/v1/complaints", json=body,
                                  headers={**p.token("agent", "bob"), "Idempotency-Key": "intake-crash-1"})
        assert other.json()["id"] != first
        await received.wait_for(lambda t: t.count("complaint.received") == 3 and t.count("interaction.logged") == 2)
        complaints = received.events("complaint.received")
        assert [e["data"]["complaint_id"] for e in complaints].count(first) == 2
        assert len({e["id"] for e in complaints if e["data"]["complaint_id"] == first}) == 1  # one event id, deduplicated
        assert len({e["id"] for e in received.events("interaction.logged")}) == 1
