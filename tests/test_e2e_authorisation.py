"""Route by route, role by role, against the running platform: the gateway's matrix holds at the
door, and the services refuse a caller that bypasses the gateway."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from e2e_support import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROLES = ("agent", "supervisor", "auditor", "admin", "integration")
STAFF = {"agent", "supervisor", "admin"}
CUSTOMER = "authz-customer-1"


def complaint() -> dict[str, Any]:
    return {"customer_id": CUSTOMER, "channel": "phone", "category": "service", "severity": "low", "description": "slow"}


def interaction() -> dict[str, Any]:
    return {"customer_id": CUSTOMER, "channel": "phone", "direction": "inbound", "summary": "asked about opening hours"}


def purchase() -> dict[str, Any]:
    return {"order_id": f"SO-{uuid.uuid4().hex[:8]}", "customer_id": CUSTOMER, "amount": "10.00", "currency": "CNY",
            "channel": "web", "purchased_at": datetime.now(UTC).isoformat(),
            "items": [{"sku": "S1", "name": "Tea", "quantity": 1, "unit_price": "10.00"}]}


# (method, path, body, roles the gateway lets through)
ROUTES: list[tuple[str, str, Any, set[str]]] = [
    ("GET", f"/api/v1/customers/{CUSTOMER}", None, STAFF),
    ("GET", "/api/v1/customers", None, STAFF),
    ("GET", f"/api/v1/customers/{CUSTOMER}/timeline", None, STAFF),
    ("GET", f"/api/v1/interactions?customer_id={CUSTOMER}", None, STAFF),
    ("GET", f"/api/v1/visits?customer_id={CUSTOMER}", None, STAFF),
    ("GET", f"/api/v1/complaints?customer_id={CUSTOMER}", None, STAFF),
    ("GET", f"/api/v1/complaints/{uuid.uuid4()}", None, STAFF),
    ("GET", f"/api/v1/surveys?customer_id={CUSTOMER}", None, STAFF),
    ("GET", f"/api/v1/notifications?customer_id={CUSTOMER}", None, STAFF),
    ("GET", "/api/v1/templates", None, {"supervisor", "admin"}),
    ("DELETE", "/api/v1/templates/no_such_template/en", None, {"admin"}),
    ("GET", "/api/v1/audit/verify", None, {"auditor"}),
    ("GET", f"/api/v1/audit/records?customer_id={CUSTOMER}", None, {"auditor"}),
    ("GET", "/api/v1/kpis", None, {"supervisor", "admin"}),
    ("GET", "/api/v1/kpis/complaints?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", None, {"supervisor", "admin"}),
    ("POST", "/api/v1/complaints", complaint, STAFF | {"integration"}),
    ("POST", "/api/v1/interactions", interaction, STAFF | {"integration"}),
    ("POST", "/api/v1/purchases", purchase, {"integration", "admin"}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES, ids=[f"{m} {p.split('?')[0]}" for m, p, _, _ in ROUTES])
async def test_role_matrix_route_by_route(e2e_platform: Platform, method: str, path: str, body: Any, allowed: set[str]) -> None:
    """Every role, every route, on the running platform (CF-1)."""
    async with e2e_platform.client() as client:
        anonymous = await client.request(method, path, json=body() if body else None)
        assert anonymous.status_code == 401, anonymous.text
        for role in ROLES:
            response = await client.request(method, path, json=body() if body else None,
                                            headers=e2e_platform.headers(role, f"{role}-user"))
            if role in allowed:
                assert response.status_code not in (401, 403, 405), f"{role}: {response.status_code} {response.text}"
                assert response.status_code < 500, f"{role}: {response.status_code} {response.text}"
            else:
                assert response.status_code == 403, f"{role}: {response.status_code} {response.text}"
                assert response.headers["content-type"].startswith("application/problem+json")


async def test_public_answer_link_needs_no_token_and_the_services_refuse_bypassing_callers(e2e_platform: Platform) -> None:
    async with e2e_platform.client() as client:
        bogus = await client.get("/api/v1/surveys/answer/not-a-real-link")
        assert 400 <= bogus.status_code < 500 and bogus.status_code != 401
        assert "www-authenticate" not in bogus.headers  # refused by the surveys service, not by the door
    for name, path in (("customer", f"/api/v1/customers/{CUSTOMER}"), ("complaints", "/api/v1/complaints"),
                       ("surveys", "/api/v1/surveys"), ("notifications", "/api/v1/notifications"),
                       ("audit", "/api/v1/audit/verify")):
        async with httpx.AsyncClient(base_url=e2e_platform.services[name].url) as direct:
            no_identity = await direct.get(path)
            assert no_identity.status_code == 401, f"{name}: {no_identity.status_code}"
            # A user token is not an internal identity: the services trust only the gateway's signature.
            forged = await direct.get(path, headers={"X-Guanxi-Identity": e2e_platform.token("admin")})
            assert forged.status_code == 401, f"{name}: {forged.status_code}"
