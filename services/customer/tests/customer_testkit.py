"""Helpers for the customer service's tests: the app in-process on real infra, and use cases on the fake store."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from guanxi_customer.app import build
from guanxi_customer.domain import Vault
from guanxi_customer.handlers import Deps
from guanxi_customer.settings import CustomerSettings
from guanxi_customer.store import InMemoryCustomerStore, MongoCustomerStore
from guanxi_shared.auth import IDENTITY_HEADER, Identity, Role, sign_internal
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import new_event
from guanxi_shared.testing import send_event, serving

ALICE = {"name": "王丽", "phone": "+8613812345678", "email": "Li.Wang@Example.com", "birthday": "1990-05-17",
         "address": "北京市朝阳区建国路88号", "id_number": "110101199005171234"}
# Every form a clear value could take in a dump.
ALICE_PLAINTEXTS = ["+8613812345678", "8613812345678", "13812345678", "Li.Wang@Example.com", "li.wang@example.com",
                    "1990-05-17", "北京市朝阳区建国路88号", "建国路88号", "110101199005171234"]


def fast_settings(make_settings: Any, **overrides: Any) -> CustomerSettings:
    values: dict[str, Any] = {"care_scan_seconds": 0.2, "scheduler_interval_seconds": 0.1}
    values.update(overrides)
    return make_settings(CustomerSettings, **values)


def who(settings: CustomerSettings, role: Role = Role.agent, subject: str = "alice") -> dict[str, str]:
    token = sign_internal(Identity(subject=subject, roles=[role]), settings.internal_secret.get_secret_value())
    return {IDENTITY_HEADER: token}


@contextlib.asynccontextmanager
async def running(settings: CustomerSettings, clock: ManualClock) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = build(settings, clock)
    async with serving(app) as client:
        yield app, client


def deps_of(app: FastAPI) -> Deps:
    return app.state.deps  # type: ignore[no-any-return]


def store_of(app: FastAPI) -> MongoCustomerStore:
    """The app's store, with its collections for a test to look into."""
    store = deps_of(app).store
    assert isinstance(store, MongoCustomerStore)
    return store


def fake_deps(clock: ManualClock | None = None, **settings: Any) -> Deps:
    """Use cases on the in-memory store: no infrastructure."""
    return Deps(store=InMemoryCustomerStore(), vault=Vault({"k1": os.urandom(32)}, "k1", os.urandom(32)),
                settings=CustomerSettings(**settings), clock=clock or ManualClock())


def fake_store(deps: Deps) -> InMemoryCustomerStore:
    assert isinstance(deps.store, InMemoryCustomerStore)
    return deps.store


def purchase(order_id: str, customer_id: str, amount: str, at: datetime | None = None) -> dict[str, Any]:
    return {"order_id": order_id, "customer_id": customer_id, "amount": amount, "currency": "CNY",
            "items": [{"sku": "TEA-1", "name": "Longjing tea", "quantity": 1, "unit_price": amount}],
            "channel": "web", "purchased_at": (at or datetime.now(UTC)).isoformat()}


async def send(producer: Any, prefix: str, type_: str, customer_id: str, data: dict[str, Any], source: str = "tests") -> str:
    return await send_event(producer, prefix, new_event(type_, customer_id, data, source=source))


async def dump(app: FastAPI) -> str:
    """Every document of every collection of the service's database, as one string."""
    db = store_of(app).db
    parts = []
    for name in await db.list_collection_names():
        async for doc in db[name].find({}):
            parts.append(json.dumps(doc, default=str, ensure_ascii=False))
    return "\n".join(parts)


def uniq(tap: Any, topic_suffix: str, **match: Any) -> int:
    """Distinct events (by CloudEvent id) matching: the outbox relay is at-least-once, so the same
    event may be published twice, and consumers deduplicate on its id."""
    ids = set()
    for e in tap.events(topic_suffix):
        if all(_get(e, k) == v for k, v in match.items()):
            ids.add(e.get("id"))
    return len(ids)


def unique_events(tap: Any, topic_suffix: str) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for e in tap.events(topic_suffix):
        seen.setdefault(e.get("id", ""), e)
    return list(seen.values())


def _get(obj: dict[str, Any], dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("__"):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur
