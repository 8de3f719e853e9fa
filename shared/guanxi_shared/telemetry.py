"""OpenTelemetry setup: one tracer provider per process, named after the service.

Export follows the standard variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) turns on OTLP/HTTP export; ``OTEL_TRACES_EXPORTER=console``
prints spans; ``OTEL_SDK_DISABLED=true`` disables tracing. Log records carry ``trace_id`` and
``span_id`` so a log line can be found from a trace and back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

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
    """FastAPI's own OpenTelemetry support (``FastAPI(telemetry=...)``): one SERVER span per request,
    parented by the caller's ``traceparent``, named ``METHOD route`` once the route is known, with
    ``http.route`` and ``http.response.status_code``; 5xx and exceptions mark it failed.

    It replaces opentelemetry-instrumentation-fastapi, whose middleware matched the request against
    every route a second time and recorded two sets of attributes (old and new conventions): about
    0.3 ms per request on this machine, once per service hop (bench/README.md, "Gateway").
    Operation spans (one per dependency resolution, endpoint and serialisation, three or four more
    per request) stay off for the same reason. FastAPI's log records are off: a validation failure
    record carries the request's input values, which may be personal data.
    """
    return {"operation_spans": False, "logs": False, "exclude": _untraced}


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


def shutdown_tracing() -> None:
    if _configured is not None:
        _configured.force_flush(5_000)
