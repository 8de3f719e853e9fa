"""OpenTelemetry setup: one tracer provider per process, named after the service.

Export follows the standard variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) turns on OTLP/HTTP export; ``OTEL_TRACES_EXPORTER=console``
prints spans; ``OTEL_SDK_DISABLED=true`` disables tracing. Log records carry ``trace_id`` and
``span_id`` so a log line can be found from a trace and back.
"""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_configured: TracerProvider | None = None


class TraceContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else "-"
        record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else "-"
        return True


def setup_logging(service_name: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s %(levelname)s {service_name} [trace=%(trace_id)s span=%(span_id)s] %(name)s: %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymongo", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def setup_tracing(
    service_name: str, service_version: str, *, extra_processors: list[SpanProcessor] | None = None
) -> TracerProvider:
    """Install the global tracer provider (once per process) and instrument PyMongo and httpx."""
    global _configured
    if _configured is None:
        resource = Resource.create({SERVICE_NAME: service_name, SERVICE_VERSION: service_version,
                                    "deployment.environment.name": os.environ.get("GUANXI_ENV", "local")})
        provider = TracerProvider(resource=resource)
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=500))
        if os.environ.get("OTEL_TRACES_EXPORTER", "") == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
        _configured = provider
        _instrument_libraries()
    for processor in extra_processors or []:
        _configured.add_span_processor(processor)
    return _configured


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    # PyMongo's command monitoring also fires for AsyncMongoClient; a test proves the spans appear.
    if not PymongoInstrumentor().is_instrumented_by_opentelemetry:
        PymongoInstrumentor().instrument()
    if not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        HTTPXClientInstrumentor().instrument()


# Health probes run every few seconds on every instance; a span each would bury the real requests.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz"})


def fastapi_telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry support, with its tracing off: ``ServerSpans`` makes the one span
    per request for less. FastAPI still records its HTTP metrics when a meter provider is configured.
    Its log records stay off: a validation failure record carries the request's input values, which
    may be personal data."""
    return {"tracing": False, "operation_spans": False, "logs": False}


def trace_requests(app: FastAPI) -> None:
    """Put ``ServerSpans`` outside everything else the app runs, its error handler and the middleware
    added later included, so the span sees the final status and is current for all of them."""
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: ServerSpans(build())  # type: ignore[method-assign]


class _AsgiHeaders(Getter[list[tuple[bytes, bytes]]]):
    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.encode("latin-1")
        found = [v.decode("latin-1") for k, v in carrier if k == name]
        return found or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_HEADERS = _AsgiHeaders()


class ServerSpans:
    """One SERVER span per HTTP request (pure ASGI), parented by the caller's ``traceparent``, named
    ``METHOD route`` once the router has matched (``http.route``; ids and link tokens stay out of the span), with
    ``http.response.status_code``; a 5xx answer or an exception marks it failed.

    Written here rather than taken from opentelemetry-instrumentation-fastapi or FastAPI's own tracing
    because of what they add per request, once per service hop: the instrumentation matches the request
    against every route a second time and records two sets of attribute conventions (the comparison is
    in bench/README.md)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._tracer = trace.get_tracer("guanxi.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        parent = propagate.extract(scope["headers"], getter=_HEADERS)
        status = 0

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # No url.path: paths carry ids and single-use answer-link tokens; the route template says where it went.
        with self._tracer.start_as_current_span(method, context=parent, kind=SpanKind.SERVER, attributes={
                "http.request.method": method, "url.scheme": scope.get("scheme", "http")}) as span:
            try:
                await self.app(scope, receive, send_with_status)
            finally:
                route = getattr(scope.get("route"), "path_format", None)
                if route and span.is_recording():
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(StatusCode.ERROR)


def flush_spans(timeout_ms: int = 5_000) -> None:
    """Export the spans still buffered (at shutdown: a batch exporter would otherwise drop the last ones)."""
    if _configured is not None:
        _configured.force_flush(timeout_ms)
