"""The front door without infrastructure: a small app behind it, the in-memory idempotency store, local
tokens. Admission (401/403/404/405/400/413/429), Idempotency-Key replays and access records."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from guanxi_gateway import domain
from guanxi_gateway.authn import TokenVerifier
from guanxi_gateway.frontdoor import FrontDoor, Gate
from guanxi_gateway.settings import GatewaySettings
from guanxi_gateway.store import InMemoryIdempotencyStore
from guanxi_gateway.token import issue_token
from guanxi_shared.clock import ManualClock
from guanxi_shared.contracts.audit import AccessRecorded
from guanxi_shared.problems import install_problem_handlers
from pydantic import BaseModel

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class NewCustomer(BaseModel):
    name: str
    delay: float = 0.0
    status: int = 201


class Door:
    def __init__(self, **overrides: Any) -> None:
        self.settings = GatewaySettings(**{"max_body_bytes": 2048, **overrides})
        self.store = InMemoryIdempotencyStore(timedelta(hours=24))
        self.records: list[tuple[AccessRecorded, str]] = []
        self.effects = 0
        service = FastAPI()
        install_problem_handlers(service)

        @service.post("/api/v1/customers")
        async def register(body: NewCustomer) -> JSONResponse:
            self.effects += 1
            await asyncio.sleep(body.delay)
            return JSONResponse({"name": body.name, "effect": self.effects}, status_code=body.status)

        @service.get("/api/v1/customers/{customer_id}")
        async def read(customer_id: str) -> dict[str, str]:
            return {"id": customer_id}

        gate = Gate(self.settings, ManualClock(T0), TokenVerifier(self.settings), self.store, domain.TemplateIndex(
            ["/api/v1/customers/{customer_id}"]), lambda record, subject: self.records.append((record, subject)))
        service.add_middleware(FrontDoor, gate=gate)
        self.app = service

    def token(self, role: str, subject: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.settings, subject, [role])}"}

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=self.app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


async def test_admission_at_the_door_and_an_access_record_for_every_request() -> None:
    """Roles checked at the door (CF-1); every request leaves an access record (CF-2)."""
    door = Door()
    async with door.client() as client:
        missing = await client.get("/api/v1/customers/c1")
        problem(missing, 401)
        assert missing.headers["www-authenticate"].startswith("Bearer")
        problem(await client.get("/api/v1/customers/c1", headers={"Authorization": "Bearer nonsense"}), 401)
        assert "auditor" in problem(await client.get("/api/v1/customers/c1", headers=door.token("auditor")), 403)["detail"]
        problem(await client.get("/api/v1/nowhere", headers=door.token("admin")), 404)
        problem(await client.delete("/api/v1/audit/verify", headers=door.token("auditor")), 405)
        problem(await client.get("/api/v1/customers/a%01b", headers=door.token("agent")), 400)
        problem(await client.post("/api/v1/customers", json={"name": "x" * 4000}, headers=door.token("agent")), 413)
        lone = b'{"name": "\\udbc9"}'
        problem(await client.post("/api/v1/customers", content=lone,
                                  headers={**door.token("agent"), "Content-Type": "application/json"}), 422)
        ok = await client.get("/api/v1/customers/c1", headers={**door.token("agent"), "X-Request-Id": "req-1"})
        assert ok.json() == {"id": "c1"} and ok.headers["x-request-id"] == "req-1"
        assert ok.headers["x-content-type-options"] == "nosniff" and ok.headers["cache-control"] == "no-store"
    assert door.effects == 0
    statuses = [(r.actor, r.role, r.status) for r, _ in door.records]
    # No route, no such method, a bad path: refused before anyone is authenticated.
    assert statuses == [("anonymous", "anonymous", 401), ("anonymous", "anonymous", 401), ("alice", "auditor", 403),
                        ("anonymous", "anonymous", 404), ("anonymous", "anonymous", 405), ("anonymous", "anonymous", 400),
                        ("alice", "agent", 413), ("alice", "agent", 422), ("alice", "agent", 200)]
    last, subject = door.records[-1]
    assert last.path == "/api/v1/customers/{customer_id}" and last.customer_id == "c1" == subject
    assert last.request_id == "req-1" and last.client_ip == "203.0.113.7"


async def test_idempotency_key_replays_the_first_answer_with_one_effect() -> None:
    door = Door()
    agent = {**door.token("agent"), "Idempotency-Key": "k-1"}
    async with door.client() as client:
        first = await client.post("/api/v1/customers", json={"name": "Li Lei"}, headers=agent)
        again = await client.post("/api/v1/customers", json={"name": "Li Lei"}, headers=agent)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers and door.effects == 1
        assert "different request" in problem(await client.post("/api/v1/customers", json={"name": "Han"}, headers=agent),
                                              422)["detail"]
        other = await client.post("/api/v1/customers", json={"name": "Li Lei"},
                                  headers={**door.token("agent", "bob"), "Idempotency-Key": "k-1"})
        assert other.status_code == 201 and door.effects == 2  # keys belong to their caller

        slow = {**door.token("agent"), "Idempotency-Key": "k-slow"}
        racing = await asyncio.gather(*(client.post("/api/v1/customers", json={"name": "Wang", "delay": 0.2}, headers=slow)
                                        for _ in range(2)))
        assert sorted(r.status_code for r in racing) == [201, 409] and door.effects == 3
        busy = next(r for r in racing if r.status_code == 409)
        assert problem(busy, 409) and busy.headers["retry-after"] == "1"

        failing = {**door.token("agent"), "Idempotency-Key": "k-5xx"}
        for effects in (4, 5):  # a 5xx is not remembered: the retry runs again
            answer = await client.post("/api/v1/customers", json={"name": "Zhao", "status": 503}, headers=failing)
            assert answer.status_code == 503 and "idempotent-replayed" not in answer.headers and door.effects == effects
        problem(await client.post("/api/v1/customers", json={"name": "Zhao"},
                                  headers={**door.token("agent"), "Idempotency-Key": ""}), 422)


async def test_rate_limits_per_identity_and_per_address() -> None:
    door = Door(rate_limit_per_identity=60, rate_limit_per_ip=600, rate_limit_burst_seconds=3)
    async with door.client() as client:
        statuses = [(await client.get("/api/v1/customers/c1", headers=door.token("agent"))).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        limited = await client.get("/api/v1/customers/c1", headers=door.token("agent"))
        assert "this caller" in problem(limited, 429)["detail"] and int(limited.headers["retry-after"]) >= 1
        assert (await client.get("/api/v1/customers/c1", headers=door.token("agent", "carol"))).status_code == 200

    door = Door(rate_limit_per_ip=60, rate_limit_burst_seconds=2)
    async with door.client() as client:
        statuses = [(await client.get(f"/api/v1/customers/c{i}", headers=door.token("agent", f"u{i}"))).status_code
                    for i in range(3)]
        assert statuses == [200, 200, 429]
