"""What the end-to-end tests need around the platform: free ports, an SMTP sink, a small OTLP/HTTP
trace receiver, and the services started as real subprocesses (``python -m guanxi_<svc>``)."""

from __future__ import annotations

import email
import email.policy
import gzip
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from guanxi_gateway.settings import GatewaySettings
from guanxi_gateway.token import issue_token
from guanxi_shared.settings import DEV_SECRET
from guanxi_shared.testing import free_port
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("customer", "complaints", "surveys", "notifications", "audit")


# ---------------------------------------------------------------------------------------------
# Mail


class MailSink:
    """aiosmtpd on a free port; keeps every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if address in str(m.get("To", ""))]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    return str(part.get_content()) if part is not None else ""


# ---------------------------------------------------------------------------------------------
# Traces


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    linked_trace_ids: frozenset[str] = frozenset()  # batch consumers link to every producer's span


@dataclass
class TraceReceiver:
    """Accepts OTLP/HTTP protobuf exports on POST /v1/traces, as a collector would."""

    port: int = field(default_factory=free_port)
    spans: list[ReceivedSpan] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._take(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _take(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            service = attrs.get("service.name", "?")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(ReceivedSpan(
                        service, span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(), span.name, span.kind,
                        {a.key: _value(a.value) for a in span.attributes},
                        frozenset(link.trace_id.hex() for link in span.links)))
        with self._lock:
            self.spans.extend(received)

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


# ---------------------------------------------------------------------------------------------
# The platform as subprocesses


@dataclass
class Process:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def spawn(name: str, port: int, env: dict[str, str], logdir: Path) -> Process:
    log = logdir / f"{name}.log"
    handle = log.open("wb")
    popen = subprocess.Popen([sys.executable, "-m", f"guanxi_{name}"], cwd=REPO, env=env,  # noqa: S603
                             stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    handle.close()
    return Process(name, port, popen, log)


def ready(process: Process) -> bool:
    try:
        with urllib.request.urlopen(process.url + "/readyz", timeout=2) as response:  # noqa: S310 - local address
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(processes: list[Process], timeout: float, check: Callable[[Process], bool] = ready) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(processes)
    while waiting:
        for p in list(waiting):
            if p.popen.poll() is not None:
                raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}")
            if check(p):
                waiting.remove(p)
        if waiting and time.monotonic() > deadline:
            raise RuntimeError("not ready in time: " + ", ".join(f"{p.name}:\n{p.tail()}" for p in waiting))
        if waiting:
            time.sleep(0.3)


def stop(processes: list[Process], timeout: float = 30.0) -> None:
    for p in processes:
        if p.popen.poll() is None:
            p.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in processes:
        try:
            p.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.popen.kill()
            p.popen.wait(5)


def base_env(**extra: str) -> dict[str, str]:
    # Only what a process needs: no stray GUANXI_* / <SVC>_* settings of the developer's shell.
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "SSL_CERT_FILE")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(extra)
    return env


@dataclass
class Platform:
    gateway: Process
    services: dict[str, Process]
    mail: MailSink
    traces: TraceReceiver
    prefix: str
    kafka: str
    logdir: Path

    def token(self, role: str, subject: str = "alice") -> str:
        # The gateway subprocess gets no GATEWAY_* variables of this shell: sign with the same defaults.
        local = GatewaySettings(environment="local", jwt_secret=DEV_SECRET, jwt_issuer="guanxi-local",
                                jwt_audience="guanxi-api", jwks_url=None)
        return issue_token(local, subject, [role])

    def headers(self, role: str, subject: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, subject)}"}

    def client(self, role: str | None = None, subject: str = "alice") -> httpx.AsyncClient:
        headers = self.headers(role, subject) if role else {}
        return httpx.AsyncClient(base_url=self.gateway.url, headers=headers, timeout=30.0)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(25)}" for p in [*self.services.values(), self.gateway])
