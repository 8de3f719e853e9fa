"""Thin HTTP routes of the audit trail; only the auditor role reads it (enforced here, not only at the gateway)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from guanxi_shared.auth import Role, require_roles
from guanxi_shared.problems import Problem

from . import handlers
from .handlers import Audit, RecordQuery

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], dependencies=[Depends(require_roles(Role.auditor))])


def _audit(request: Request) -> Audit:
    return request.app.state.audit  # type: ignore[no-any-return]


AuditDep = Annotated[Audit, Depends(_audit)]


def _query(
    customer_id: Annotated[str | None, Query(max_length=200, description="the customer (event subject)")] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    type: Annotated[str | None, Query(max_length=200, description="event type, e.g. customer.pii_accessed")] = None,
    trace_id: Annotated[str | None, Query(pattern="^[0-9a-fA-F]{32}$")] = None,
    since: Annotated[datetime | None, Query(description="event time from (inclusive), RFC 3339")] = None,
    until: Annotated[datetime | None, Query(description="event time to (exclusive), RFC 3339")] = None,
) -> RecordQuery:
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise Problem(422, "Invalid request", f"{name} must carry a UTC offset (RFC 3339)")
    if since is not None and until is not None and since >= until:
        raise Problem(422, "Invalid request", "since must be before until")
    return RecordQuery(customer_id=customer_id, actor=actor, type=type, trace_id=trace_id, since=since, until=until)


QueryDep = Annotated[RecordQuery, Depends(_query)]


@router.get("/verify", summary="Re-walk the hash chain and report the first broken link")
async def verify(audit: AuditDep) -> dict[str, Any]:
    return await handlers.verify(audit)


@router.get("/records", summary="Audit records by customer, actor, type, time range or trace id, in chain order")
async def records(audit: AuditDep, query: QueryDep, limit: Annotated[int, Query(ge=1)] = 50,
                  cursor: Annotated[str | None, Query(pattern="^[0-9]{1,18}$")] = None) -> dict[str, Any]:
    items, next_cursor = await handlers.find_records(audit, query, int(cursor or 0),
                                                     min(limit, audit.settings.query_max_limit))
    return {"items": items, "next": next_cursor}


@router.get("/export", summary="Export the matching records as JSON lines, in chain order",
            response_class=StreamingResponse, responses={200: {"content": {"application/x-ndjson": {}}}})
async def export(audit: AuditDep, query: QueryDep) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        async for item in handlers.export_records(audit, query):
            yield json.dumps(item, ensure_ascii=False, sort_keys=True).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="audit-export.jsonl"'})
