"""The search box: one query, the lookups it can mean run side by side (case number, phone and email
exactly, an id as a customer and as a complaint, a name), the customers and cases found."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from .. import domain
from ..domain import N_, Session
from ..domain.search import SearchQuery
from ..gateway import GatewayError, Unauthenticated
from .deps import Deps, SessionEnded

NUMBERS_NOT_AVAILABLE = N_("Searching by case number is not available yet: the complaints service does not give "
                           "case numbers.")
SEARCH_FAILED = N_("Part of the search could not be done right now.")
NOT_ALLOWED = N_("Your role may not search here.")
NOT_A_NUMBER = N_("This is not a valid phone number or email address.")
LIMIT = 20


@dataclass
class SearchResults:
    query: SearchQuery
    customers: list[dict[str, Any]] = field(default_factory=list)
    complaints: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # msgids


async def _none_if_missing(call: Awaitable[dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return await call
    except GatewayError as exc:
        if exc.status in (404, 410, 422) and not isinstance(exc, Unauthenticated):
            return None
        raise


async def search(deps: Deps, session: Session, raw: str | None) -> SearchResults:
    query = domain.search.classify(raw)
    results = SearchResults(query)
    token, gateway = session.token, deps.gateway
    calls: dict[str, Awaitable[Any]] = {}
    for lookup in query.lookups:
        if lookup == "complaint_number":
            if "number" in await gateway.api_parameters("/complaints", "get"):
                calls[lookup] = gateway.list_complaints(token, [("number", query.value), ("limit", "5")])
            else:
                results.notes.append(NUMBERS_NOT_AVAILABLE)
        elif lookup == "customer_phone":
            calls[lookup] = gateway.lookup_customers(token, phone=query.value)
        elif lookup == "customer_email":
            calls[lookup] = gateway.lookup_customers(token, email=query.value)
        elif lookup == "customer_id":
            calls[lookup] = _none_if_missing(gateway.get_customer(token, query.value))
        elif lookup == "complaint_id":
            calls[lookup] = _none_if_missing(gateway.get_complaint(token, query.value))
        elif lookup == "customer_name":
            calls[lookup] = gateway.list_customers(token, [("q", query.value), ("limit", str(LIMIT))])
    answers = dict(zip(calls, await asyncio.gather(*calls.values(), return_exceptions=True), strict=True))
    if any(isinstance(a, Unauthenticated) for a in answers.values()):
        await deps.store.delete_session(session.id)
        raise SessionEnded("token_rejected")
    seen: set[str] = set()
    for lookup, answer in answers.items():
        if isinstance(answer, BaseException):
            status = answer.status if isinstance(answer, GatewayError) else 503
            note = {403: NOT_ALLOWED, 422: NOT_A_NUMBER}.get(status, SEARCH_FAILED)
            if note not in results.notes:
                results.notes.append(note)
            continue
        if answer is None:
            continue
        found = answer["items"] if "items" in answer else [answer]
        if lookup == "complaint_number":
            found = [c for c in found if str(c.get("number", "")).upper() == query.value]
        target = results.complaints if lookup.startswith("complaint") else results.customers
        for item in found:
            key = f"{lookup.split('_')[0]}:{item.get('id')}"
            if item.get("id") and key not in seen and item.get("status") != "erased":
                seen.add(key)
                target.append({**item, "received_at_time": domain.parse_time(item.get("received_at"))})
    return results
