"""``HttpGateway``: the real client of the gateway's ``/api/v1`` (httpx), with the caller's bearer token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from .port import GatewayError, GatewayUnavailable, Params, Unauthenticated

API = "/api/v1"
# How long the gateway's OpenAPI document (which filters each list takes) is trusted before it is read again.
OPENAPI_TTL_SECONDS = 60.0


def _refusal(response: httpx.Response) -> GatewayError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    cls = Unauthenticated if response.status_code == 401 else GatewayError
    errors = body.get("errors")
    return cls(response.status_code, str(body.get("title") or response.reason_phrase), str(body.get("detail") or ""),
               errors if isinstance(errors, list) else None)


def _id(value: str) -> str:
    return quote(value, safe="")


class HttpGateway:
    def __init__(self, base_url: str, timeout: float) -> None:
        self.client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout,
                                        headers={"Accept": "application/json", "User-Agent": "guanxi-console"})
        self._openapi: dict[str, Any] = {}
        self._openapi_at = -OPENAPI_TTL_SECONDS
        self._openapi_lock = asyncio.Lock()

    async def close(self) -> None:
        await self.client.aclose()

    async def _call(self, method: str, path: str, token: str | None = None, *, params: Params | None = None,
                    json: Any = None, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        query: list[tuple[str, Any]] = list(params.items()) if isinstance(params, Mapping) else list(params or [])
        try:
            response = await self.client.request(method, API + path, params=query or None, json=json, headers=sent)
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise GatewayUnavailable(f"{method} {path}: {response.status_code}")
        if response.status_code >= 400:
            raise _refusal(response)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            data = response.json()
        except ValueError as exc:
            raise GatewayUnavailable(f"{method} {path}: not JSON") from exc
        return data if isinstance(data, dict) else {"items": data}

    async def ready(self) -> bool:
        try:
            response = await self.client.get("/readyz", timeout=3.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def api_parameters(self, path: str, method: str = "get") -> frozenset[str]:
        async with self._openapi_lock:
            if time.monotonic() - self._openapi_at >= OPENAPI_TTL_SECONDS:
                try:
                    response = await self.client.get("/openapi.json", timeout=5.0)
                    document = response.json() if response.status_code == 200 else None
                except (httpx.HTTPError, ValueError):
                    document = None
                if isinstance(document, dict):
                    self._openapi = document
                self._openapi_at = time.monotonic()
        operation = ((self._openapi.get("paths") or {}).get(API + path) or {}).get(method.lower()) or {}
        return frozenset(str(p.get("name")) for p in operation.get("parameters") or [] if isinstance(p, dict)
                         and p.get("in") == "query")

    # -- complaints

    async def list_complaints(self, token: str, params: Params) -> dict[str, Any]:
        return await self._call("GET", "/complaints", token, params=params)

    async def get_complaint(self, token: str, case_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/complaints/{_id(case_id)}", token)

    async def complaint_command(self, token: str, case_id: str, path: str, body: Mapping[str, Any],
                                idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self._call("POST", f"/complaints/{_id(case_id)}/{path}", token, json=dict(body), headers=headers)

    async def file_complaint(self, token: str, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self._call("POST", "/complaints", token, json=dict(body), headers=headers)

    async def complaint_status(self, link_token: str) -> dict[str, Any]:
        return await self._call("GET", f"/complaints/status/{_id(link_token)}")

    # -- customers

    async def get_customer(self, token: str, customer_id: str, *, reveal: bool = False,
                           purpose: str | None = None) -> dict[str, Any]:
        params = [("reveal", "true")] + ([("purpose", purpose)] if purpose else []) if reveal else []
        return await self._call("GET", f"/customers/{_id(customer_id)}", token, params=params)

    async def list_customers(self, token: str, params: Params) -> dict[str, Any]:
        return await self._call("GET", "/customers", token, params=params)

    async def lookup_customers(self, token: str, *, phone: str | None = None, email: str | None = None) -> dict[str, Any]:
        body = {"phone": phone} if phone else {"email": email}
        return await self._call("POST", "/customers/lookup", token, json=body)

    async def create_customer(self, token: str, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self._call("POST", "/customers", token, json=dict(body), headers=headers)

    async def update_customer(self, token: str, customer_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call("PATCH", f"/customers/{_id(customer_id)}", token, json=dict(body))

    async def erase_customer(self, token: str, customer_id: str, reason: str) -> None:
        await self._call("DELETE", f"/customers/{_id(customer_id)}", token, params=[("reason", reason)])

    async def export_customer(self, token: str, customer_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/customers/{_id(customer_id)}/export", token)

    async def customer_timeline(self, token: str, customer_id: str, params: Params) -> dict[str, Any]:
        return await self._call("GET", f"/customers/{_id(customer_id)}/timeline", token, params=params)

    async def customer_consents(self, token: str, customer_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/customers/{_id(customer_id)}/consents", token)

    async def list_interactions(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]:
        return await self._call("GET", "/interactions", token, params=[("customer_id", customer_id), ("limit", str(limit))])

    async def log_interaction(self, token: str, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self._call("POST", "/interactions", token, json=dict(body), headers=headers)

    async def list_visits(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]:
        return await self._call("GET", "/visits", token, params=[("customer_id", customer_id), ("limit", str(limit))])

    async def customer_care(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]:
        return await self._call("GET", f"/customers/{_id(customer_id)}/care", token, params=[("limit", str(limit))])

    # -- notifications and surveys

    async def list_notifications(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]:
        return await self._call("GET", "/notifications", token, params=[("customer_id", customer_id), ("limit", str(limit))])

    async def list_surveys(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]:
        return await self._call("GET", "/surveys", token, params=[("customer_id", customer_id), ("limit", str(limit))])

    async def survey_form(self, link_token: str) -> dict[str, Any]:
        return await self._call("GET", f"/surveys/answer/{_id(link_token)}")

    async def answer_survey(self, link_token: str, answers: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call("POST", f"/surveys/answer/{_id(link_token)}", json={"answers": dict(answers)})
