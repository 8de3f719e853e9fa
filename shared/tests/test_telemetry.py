"""The HTTP tracing every service gets (``ServerSpans`` through ``trace_requests``): one server span per
request, in the caller's trace, named by route."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI
from guanxi_shared.problems import install_problem_handlers
from guanxi_shared.telemetry import fastapi_telemetry, trace_requests
from opentelemetry.trace import SpanKind, StatusCode

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def _app() -> FastAPI:
    app = FastAPI(telemetry=fastapi_telemetry())
    install_problem_handlers(app)
    things = APIRouter(prefix="/api/v1/things")

    @things.get("/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @things.post("/{thing_id}:break")
    async def broken(thing_id: str) -> dict[str, str]:
        raise RuntimeError("boom")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(things)
    trace_requests(app)
    return app


async def test_one_server_span_per_request_named_by_route_in_the_callers_trace(span_exporter) -> None:
    span_exporter.clear()
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://guanxi.test") as client:
        parent = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
        assert (await client.get("/api/v1/things/t-42", headers=parent)).json() == {"id": "t-42"}
        assert (await client.get("/healthz", headers=parent)).status_code == 200
        assert (await client.post("/api/v1/things/t-42:break", headers=parent)).status_code == 500

    spans = span_exporter.get_finished_spans()
    # Only the two API requests: no span for the health probe, no per-operation child spans.
    assert [(s.name, s.kind) for s in spans] == [("GET /api/v1/things/{thing_id}", SpanKind.SERVER),
                                                ("POST /api/v1/things/{thing_id}:break", SpanKind.SERVER)]
    ok, failed = spans
    for span in spans:
        assert format(span.context.trace_id, "032x") == CALLER_TRACE
        assert span.parent is not None and format(span.parent.span_id, "016x") == CALLER_SPAN
        # Ids (and answer-link tokens) stay out of names and attributes: the route template says where it went.
        assert "t-42" not in span.name and "t-42" not in str(dict(span.attributes or {}))
    assert ok.attributes["http.route"] == "/api/v1/things/{thing_id}"
    assert ok.attributes["http.request.method"] == "GET"
    assert ok.attributes["http.response.status_code"] == 200
    assert ok.status.status_code == StatusCode.UNSET
    assert failed.attributes["http.response.status_code"] == 500
    assert failed.status.status_code == StatusCode.ERROR
