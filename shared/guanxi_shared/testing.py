"""Pytest fixtures giving each test real Kafka and a real MongoDB-wire store.

Where the infrastructure comes from, in order:
1. ``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URL`` when both are set;
2. the local provisioning (``deploy/local/infra.py up``: Kafka from Maven Central jars and
   FerretDB built with Go), started if it is not running;
3. testcontainers (real Kafka and MongoDB images) when ``GUANXI_TEST_INFRA=containers`` and a
   Docker engine answers.
Anything else fails loudly: a test that needs infrastructure never silently skips.

Each test gets its own topic prefix and database name, so tests never see each other's data.
Load with ``pytest_plugins = ["guanxi_shared.testing"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from .events import CloudEvent, decode_event
from .messaging import EventPublisher
from .outbox import Outbox, OutboxRelay
from .settings import ServiceSettings
from .store import database, make_mongo_client
from .telemetry import setup_tracing
from .topics import CATALOGUE

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_FIXTURES = {"infra", "make_settings", "topics", "tap", "producer"}
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass(frozen=True)
class Infra:
    kafka: str
    mongodb_url: str
    origin: str


def _start_local() -> Infra:
    script = REPO_ROOT / "deploy" / "local" / "infra.py"
    if not script.exists():
        pytest.fail(f"no infrastructure: KAFKA_BOOTSTRAP_SERVERS/MONGODB_URL unset and {script} missing")
    proc = subprocess.run([sys.executable, str(script), "up"], capture_output=True, text=True, timeout=1200)  # noqa: S603
    if proc.returncode != 0:
        pytest.fail(f"local infrastructure failed to start:\n{proc.stdout}\n{proc.stderr}")
    port_k = os.environ.get("GUANXI_KAFKA_PORT", "9092")
    port_m = os.environ.get("GUANXI_MONGO_PORT", "27017")
    return Infra(f"127.0.0.1:{port_k}", f"mongodb://127.0.0.1:{port_m}", "local")


def _start_containers() -> tuple[Infra, Callable[[], None]]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    kafka = KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft()
    mongo = MongoDbContainer("mongo:7.0.14")
    kafka.start()
    mongo.start()

    def stop() -> None:
        kafka.stop()
        mongo.stop()

    return Infra(kafka.get_bootstrap_server(), mongo.get_connection_url(), "testcontainers"), stop


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reaches real Kafka or a real store is ``integration`` by what it uses, so the fast tier
    (``-m "not integration"``) can never include one by mistake."""
    for item in items:
        if INFRA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    kafka, mongo = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URL")
    if kafka and mongo:
        yield Infra(kafka, mongo, "environment")
        return
    if os.environ.get("GUANXI_TEST_INFRA") == "containers":
        found, stop = _start_containers()
        try:
            yield found
        finally:
            stop()
        return
    yield _start_local()


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing("guanxi-tests", "0", extra_processors=[SimpleSpanProcessor(exporter)])
    return exporter


@pytest.fixture
def isolation() -> str:
    """A unique token for this test: topic prefix ``t<token>.`` and database suffix."""
    return uuid.uuid4().hex[:10]


async def create_topics(bootstrap: str, names: list[str], partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(n, num_partitions=1 if n.endswith(".dlq") else partitions, replication_factor=1)
                  for n in names if n not in existing]
        if wanted:
            await admin.create_topics(wanted)
    finally:
        await admin.close()


@pytest.fixture
async def make_settings(infra: Infra, isolation: str) -> AsyncIterator[Callable[..., Any]]:
    """Build a service's settings pointed at the test infrastructure and this test's namespace.

    The test's databases are dropped afterwards: each one is a file (and open handles) in FerretDB.
    """
    databases: set[tuple[str, str]] = set()

    def build(cls: type[SettingsT], **overrides: Any) -> SettingsT:
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": infra.kafka,
            "mongodb_url": infra.mongodb_url,
            "mongodb_database": f"test_{cls.service_name}_{isolation}",
            "topic_prefix": f"t{isolation}.",
            "consumer_group": f"test-{cls.service_name}-{isolation}",
            "outbox_poll_seconds": 0.1,
        }
        values.update(overrides)
        settings = cls(**values)
        databases.add((settings.mongodb_url, settings.mongodb_database))
        return settings

    yield build
    for url, name in databases:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, serverSelectionTimeoutMS=3000)
        try:
            await client.drop_database(name)
        except Exception:  # noqa: S110 - cleanup must never fail a test
            pass
        finally:
            await client.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Best-effort cleanup: every partition left behind holds file handles in the shared broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        await admin.delete_topics(names)
    except Exception:  # noqa: S110 - cleanup must never fail a test
        pass
    finally:
        try:
            await admin.close()
        except Exception:  # noqa: S110
            pass


@pytest.fixture
async def topics(infra: Infra, isolation: str) -> AsyncIterator[str]:
    """Create this test's copy of the whole topic catalogue (and DLQs); returns the prefix.

    Deleted after the test: leaked per-test topics exhausted the broker's file handles."""
    prefix = f"t{isolation}."
    names = [prefix + t.name for t in CATALOGUE] + [prefix + t.dlq for t in CATALOGUE]
    # One partition each: a test needs order, not parallelism, and every partition costs the shared
    # broker files and memory maps. A test that needs more partitions creates its own topics.
    await create_topics(infra.kafka, names, partitions=1)
    yield prefix
    await delete_topics(infra.kafka, names)


class EventTap:
    """Reads what lands on a set of topics, from the beginning, for assertions."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                          enable_auto_commit=False, group_id=None)
        self.records: list[Any] = []

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def _poll(self) -> None:
        batch = await self._consumer.getmany(timeout_ms=200)
        for recs in batch.values():
            self.records.extend(recs)

    def events(self, topic_suffix: str | None = None) -> list[dict[str, Any]]:
        out = []
        for r in self.records:
            if topic_suffix is None or r.topic.endswith(topic_suffix):
                try:
                    out.append(json.loads(r.value))
                except (ValueError, TypeError):
                    out.append({"_raw": r.value})
        return out

    async def wait_for(self, predicate: Callable[[EventTap], bool], timeout: float = 30.0, what: str = "events") -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                seen = [(r.topic, r.value[:200]) for r in self.records[-20:]]
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; last records: {seen}")
            await self._poll()

    async def settle(self, seconds: float = 1.0) -> None:
        """Keep reading for a while (to prove something does NOT arrive twice)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self._poll()

    def count(self, topic_suffix: str, **match: Any) -> int:
        return sum(1 for e in self.events(topic_suffix) if all(_get(e, k) == v for k, v in match.items()))


def _get(obj: dict[str, Any], dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("__"):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


@pytest.fixture
async def tap(infra: Infra, topics: str) -> AsyncIterator[Callable[..., Awaitable[EventTap]]]:
    """``await tap("customer.registered", ...)`` → an EventTap on this test's copies of those topics."""
    taps: list[EventTap] = []

    async def open_tap(*names: str) -> EventTap:
        t = EventTap(infra.kafka, [topics + n for n in names])
        await t.start()
        taps.append(t)
        return t

    yield open_tap
    for t in taps:
        await t.stop()


@pytest.fixture
async def producer(infra: Infra) -> AsyncIterator[AIOKafkaProducer]:
    """A plain aiokafka producer, as an external order or call-centre system would use."""
    p = AIOKafkaProducer(bootstrap_servers=infra.kafka, enable_idempotence=True)
    await p.start()
    yield p
    await p.stop()


T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool] = bool, timeout: float = 30.0,
                     interval: float = 0.1, what: str = "condition") -> T:
    """Poll ``probe`` until ``check`` holds; fail with the last value seen (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await probe()
        if check(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
        await asyncio.sleep(interval)


def free_port() -> int:
    """A TCP port nobody listens on now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: FastAPI, base_url: str = "http://svc") -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan (connect, subscribe, start its loops) and give an HTTP client calling it in-process."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
            yield client


async def send_event(producer: AIOKafkaProducer, prefix: str, event: CloudEvent,
                     headers: dict[str, str] | None = None) -> str:
    """Put ``event`` on this test's copy of its topic, keyed by its subject, as an external system would."""
    await producer.send_and_wait(prefix + event.type, event.to_json(), key=event.subject.encode(),
                                 headers=[(k, v.encode()) for k, v in (headers or {}).items()])
    return event.id


class RecordingPublisher(EventPublisher):
    """Takes what a relay (or an announcer) publishes instead of sending it to Kafka: the events, in order.
    For the Mongo side of a store contract suite, where the fake store records what it was asked to save."""

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        self.events: list[CloudEvent] = []

    async def publish(self, event: CloudEvent, *, topic: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.events.append(event)

    async def publish_encoded(self, value: bytes, event_id: str, event_type: str, subject: str) -> None:
        self.events.append(decode_event(value))

    async def publish_many(self, events: Iterable[CloudEvent]) -> None:
        self.events.extend(events)


@dataclass
class MongoKit:
    """A store's database on the test infrastructure, with an ``Outbox`` whose relay sends to ``publisher``."""

    db: AsyncDatabase[dict[str, Any]]
    outbox: Outbox
    publisher: RecordingPublisher


@contextlib.asynccontextmanager
async def mongo_kit(settings: ServiceSettings, outbox_collections: Iterable[str] = ()) -> AsyncIterator[MongoKit]:
    """What the Mongo side of a store contract suite builds its store from; the relay's loop never runs,
    so entries written with events stay in their documents until a later bulk write clears them."""
    client = make_mongo_client(settings)
    db = database(client, settings)
    publisher = RecordingPublisher(settings)
    try:
        yield MongoKit(db, Outbox(OutboxRelay(publisher, [db[n] for n in outbox_collections])), publisher)
    finally:
        await client.close()
