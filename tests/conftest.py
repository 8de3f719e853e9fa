"""The whole platform for the end-to-end tests: five services and the gateway as subprocesses on free
ports, in their own topic prefix and databases, with an SMTP sink and an OTLP trace receiver."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    SERVICES,
    MailSink,
    Platform,
    Process,
    TraceReceiver,
    base_env,
    free_port,
    spawn,
    stop,
    wait_ready,
)
from guanxi_shared.testing import Infra, create_topics, delete_topics
from guanxi_shared.topics import CATALOGUE
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[MailSink]:
    sink = MailSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def trace_receiver() -> Iterator[TraceReceiver]:
    receiver = TraceReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
async def e2e_platform(infra: Infra, mail_sink: MailSink, trace_receiver: TraceReceiver) -> AsyncIterator[Platform]:
    run = uuid.uuid4().hex[:8]
    prefix = f"e2e{run}."
    # One partition each: the platform's behaviour does not need more, and the shared broker's
    # file handles are finite (every test run's topics stay until deleted below).
    names = [prefix + t.name for t in CATALOGUE] + [prefix + t.dlq for t in CATALOGUE]
    await create_topics(infra.kafka, names, partitions=1)
    logdir = Path(tempfile.mkdtemp(prefix=f"guanxi-e2e-{run}-"))
    ports = {name: free_port() for name in (*SERVICES, "gateway")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    common = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka, "MONGODB_URL": infra.mongodb_url, "GUANXI_TOPIC_PREFIX": prefix,
        "GUANXI_ENV": "local", "LOG_LEVEL": "INFO", "OTEL_EXPORTER_OTLP_ENDPOINT": trace_receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "300",
    }
    per_service: dict[str, dict[str, str]] = {
        "customer": {},
        "complaints": {},
        # Post-resolution surveys go out at once and at any hour, so the test can answer one.
        # The emailed link goes straight to the API (the console, whose /s page it opens by default, is not run here).
        "surveys": {"SURVEYS_LINK_BASE_URL": f"{urls['gateway']}/api/v1/surveys/answer",
                    "SURVEYS_POST_RESOLUTION_MIN_DAYS": "0", "SURVEYS_POST_RESOLUTION_MAX_DAYS": "0.02",
                    "SURVEYS_QUIET_START": "00:00", "SURVEYS_QUIET_END": "00:00", "SURVEYS_SCHEDULER_INTERVAL_SECONDS": "0.5"},
        "notifications": {"NOTIFICATIONS_SMTP_HOST": "127.0.0.1", "NOTIFICATIONS_SMTP_PORT": str(mail_sink.port),
                          "NOTIFICATIONS_CUSTOMER_BASE_URL": urls["customer"], "NOTIFICATIONS_QUIET_HOURS_START": "00:00",
                          "NOTIFICATIONS_QUIET_HOURS_END": "00:00", "NOTIFICATIONS_DISPATCH_INTERVAL_SECONDS": "0.5"},
        "audit": {"AUDIT_CHECKPOINT_INTERVAL_SECONDS": "2"},
        "gateway": {**{f"GATEWAY_{svc.upper()}_URL": urls[svc] for svc in SERVICES},
                    "GATEWAY_RATE_LIMIT_PER_IDENTITY": "100000", "GATEWAY_RATE_LIMIT_PER_IP": "100000"},
    }
    processes: dict[str, Process] = {}
    try:
        for name in SERVICES:
            env = base_env(**common, **per_service[name], **{
                f"{name.upper()}_HTTP_PORT": str(ports[name]), f"{name.upper()}_MONGODB_DATABASE": f"e2e_{name}_{run}",
                f"{name.upper()}_CONSUMER_GROUP": f"e2e-{name}-{run}", f"{name.upper()}_OUTBOX_POLL_SECONDS": "0.2"})
            processes[name] = spawn(name, ports[name], env, logdir)
        wait_ready(list(processes.values()), timeout=120)
        # The gateway last: it merges the services' OpenAPI documents at start.
        gateway_env = base_env(**common, **per_service["gateway"], GATEWAY_HTTP_PORT=str(ports["gateway"]),
                               GATEWAY_MONGODB_DATABASE=f"e2e_gateway_{run}", GATEWAY_CONSUMER_GROUP=f"e2e-gateway-{run}")
        services = dict(processes)
        gateway = processes["gateway"] = spawn("gateway", ports["gateway"], gateway_env, logdir)
        wait_ready([gateway], timeout=60)
        yield Platform(gateway, services, mail_sink, trace_receiver, prefix, infra.kafka, logdir)
    finally:
        stop(list(processes.values()))
        await delete_topics(infra.kafka, names)
        await drop_databases(infra.mongodb_url, [f"e2e_{name}_{run}" for name in (*SERVICES, "gateway")])


async def drop_databases(url: str, names: list[str]) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, serverSelectionTimeoutMS=5_000)
    try:
        for name in names:
            await client.drop_database(name)
    except PyMongoError:
        pass  # cleanup only
    finally:
        await client.close()

