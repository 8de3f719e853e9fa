"""Thin HTTP routes of the audit trail; only the auditor role reads it (enforced here, not only at the gateway)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from guanxi_shared.auth import Role, require_roles
from guanxi_shared.runtime import app_deps

from . import handlers
from .domain import RecordQuery
from .handlers import Deps

DepsDep = Annotated[Deps, Depends(app_deps)]

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], dependencies=[Depends(require_roles(Role.auditor))])


def _query(
    customer_id: Annotated[str | None, Query(max_length=200, description="the customer (event subject)")] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    type: Annotated[str | None, Query(max_length=200, description="event type, e.g. customer.pii_accessed")] = None,
    trace_id: Annotated[str | None, Query(pattern="^[0-9a-fA-F]{32}$")] = None,
    since: Annotated[datetime | None, Query(description="event time from (inclusive), RFC 3339")] = None,
    until: Annotated[datetime | None, Query(description="event time to (exclusive), RFC 3339")] = None,
) -> RecordQuery:
    return RecordQuery(customer_id=customer_id, actor=actor, type=type, trace_id=trace_id, since=since, until=until)


QueryDep = Annotated[RecordQuery, Depends(_query)]


@router.get("/verify", summary="Re-walk the hash chain and report the first broken link")
async def verify(deps: DepsDep) -> dict[str, Any]:
    return await handlers.verify(deps)


@router.get("/records", summary="Audit records by customer, actor, type, time range or trace id, in chain order")
async def records(deps: DepsDep, query: QueryDep, limit: Annotated[int, Query(ge=1)] = 50,
                  cursor: Annotated[str | None, Query(pattern="^[0-9]{1,18}$")] = None) -> dict[str, Any]:
    items, next_cursor = await handlers.find_records(deps, query, int(cursor or 0), min(limit, deps.settings.query_max_limit))
    return {"items": items, "next": next_cursor}


@router.get("/export", summary="Export the matching records as JSON lines, in chain order",
            response_class=StreamingResponse, responses={200: {"content": {"application/x-ndjson": {}}}})
async def export(deps: DepsDep, query: QueryDep) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        async for item in handlers.export_records(deps, query):
            yield json.dumps(item, ensure_ascii=False, sort_keys=True).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="audit-export.jsonl"'})


ROUTERS = [router]
