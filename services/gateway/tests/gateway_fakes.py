"""Helpers for the gateway tests: small stand-ins for the owning services, served on free ports.
They verify the identity header like the real ones and echo what the gateway forwarded."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from guanxi_shared.auth import IDENTITY_HEADER, CurrentIdentity, Identity
from guanxi_shared.problems import install_problem_handlers
from guanxi_shared.testing import free_port
from pydantic import BaseModel

Caller: TypeAlias = CurrentIdentity  # verifies X-Guanxi-Identity like a real service


class NewCustomer(BaseModel):
    name: str
    delay: float = 0.0


def _base(name: str, secret: str) -> FastAPI:
    app = FastAPI(title=f"fake {name}")
    app.state.internal_secret = secret
    app.state.effects = 0
    install_problem_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/internal/secret-thing")
    async def internal() -> dict[str, str]:
        return {"never": "public"}

    return app


def _echo(request: Request, identity: Identity | None) -> dict[str, Any]:
    return {"identity": identity.model_dump(mode="json") if identity else None,
            "request_id": request.headers.get("x-request-id"),
            "traceparent": request.headers.get("traceparent"),
            "authorization": request.headers.get("authorization"),
            "query": dict(request.query_params)}


def customer(secret: str) -> FastAPI:
    app = _base("customer", secret)

    @app.get("/api/v1/customers/{customer_id}", summary="One customer")
    async def get_customer(customer_id: str, request: Request, identity: Caller) -> dict[str, Any]:
        return {"id": customer_id, **_echo(request, identity)}

    @app.get("/api/v1/customers")
    async def list_customers(request: Request, identity: Caller, limit: int = 50) -> dict[str, Any]:
        return {"items": [], "next": None, "limit": limit}

    @app.post("/api/v1/customers", status_code=201)
    async def register(body: NewCustomer, request: Request, identity: Caller) -> dict[str, Any]:
        app.state.effects += 1
        if body.delay:
            await asyncio.sleep(body.delay)
        return {"id": str(uuid.uuid4()), "name": body.name, "effects": app.state.effects}

    @app.get("/api/v1/kpis/customer")
    async def kpis(request: Request, identity: Caller) -> dict[str, Any]:
        return {"churn": {"customers": 120, "rate": 0.03}, "query": dict(request.query_params)}

    @app.get("/jwks.json")
    async def jwks() -> dict[str, Any]:
        return app.state.jwks  # type: ignore[no-any-return]

    return app


def complaints(secret: str) -> FastAPI:
    app = _base("complaints", secret)

    @app.get("/api/v1/complaints/status/{token}", summary="A complaint's status behind a customer's link")
    async def status(token: str, request: Request) -> dict[str, Any]:
        return {"token": token, "identity_header": request.headers.get(IDENTITY_HEADER)}

    @app.get("/api/v1/complaints/{complaint_id}")
    async def get_complaint(complaint_id: str, identity: Caller) -> dict[str, Any]:
        if complaint_id == "slow":
            await asyncio.sleep(3)
        return {"id": complaint_id, "status": "received"}

    @app.get("/api/v1/kpis/complaints")
    async def kpis(identity: Caller) -> dict[str, Any]:
        return {"overall": {"first_contact_resolution": 0.8, "resolution_rate": 0.95,
                            "sla": {"acknowledge": {"compliance": 1.0}, "formal_answer": {"compliance": 0.9}}}}

    return app


def surveys(secret: str) -> FastAPI:
    app = _base("surveys", secret)

    @app.get("/api/v1/surveys/answer/{token}", summary="The survey behind a link")
    async def show(token: str, request: Request) -> dict[str, Any]:
        return {"token": token, "identity_header": request.headers.get(IDENTITY_HEADER)}

    @app.get("/api/v1/kpis/surveys")
    async def kpis(identity: Caller) -> dict[str, Any]:
        raise RuntimeError("report broken")

    return app


def audit(secret: str) -> FastAPI:
    app = _base("audit", secret)

    @app.get("/api/v1/audit/verify")
    async def verify(identity: Caller) -> dict[str, Any]:
        return {"ok": True, "checked": 3}

    @app.get("/api/v1/audit/export")
    async def export(identity: Caller) -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            for i in range(50):
                yield f'{{"n": {i}}}\n'.encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in this event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                          access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not server.started:
            if task.done() or asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"fake service did not start on {port}")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def gateway_client(app: FastAPI, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
                             base_url="http://gateway", headers=headers)


def unused_url() -> str:
    """An address where nothing listens: a service that is down."""
    return f"http://127.0.0.1:{free_port()}"


def bearer(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}
