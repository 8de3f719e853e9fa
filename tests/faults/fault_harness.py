"""Fault-injection harness: service processes, a numbered event stream, and the exactly-once checks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from guanxi_shared.events import new_event
from guanxi_shared.topics import PURCHASE_COMPLETED
from pymongo import AsyncMongoClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SERVE = HERE / "fault_serve.py"
CRASH_CODE = 137  # what fault_serve.py exits with when a hook fires
SUBJECT = ("fault_subject:build", "fault_subject:LedgerSettings")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """One service instance in its own OS process, so it can be SIGKILLed, SIGTERMed and restarted."""

    def __init__(self, env: dict[str, str], target: tuple[str, str] = SUBJECT, prefix: str = "LEDGER_",
                 log_path: Path | None = None) -> None:
        self.port = free_port()
        self.target = target
        self.env = {**os.environ, **env, f"{prefix}HTTP_PORT": str(self.port), "PYTHONPATH": str(HERE),
                    "OTEL_SDK_DISABLED": "true", "LOG_LEVEL": "INFO"}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **fault_env: str) -> ServiceProcess:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-P", str(SERVE), *self.target], cwd=ROOT, env={**self.env, **fault_env},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        return self

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"service exited with {self.proc.returncode} during start-up ({self.log_path})")
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"service not ready within {timeout}s ({self.log_path})")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"service did not exit within {timeout}s")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def purchase_event(customer: str, n: int) -> Any:
    data = {"order_id": f"{customer}:{n}", "customer_id": customer, "amount": "12.50", "currency": "CNY",
            "items": [{"sku": "TEA-1", "name": "Tea", "quantity": 1, "unit_price": "12.50"}],
            "channel": "web", "purchased_at": datetime.now(UTC).isoformat()}
    return new_event(PURCHASE_COMPLETED, customer, data, source="fault-stream")


@dataclass
class NumberedStream:
    """Numbered purchases for ``customers`` keys; an event counts as accepted once Kafka acknowledged it."""

    bootstrap: str
    topic: str
    customers: int = 20
    accepted: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    event_ids: dict[str, tuple[str, int]] = field(default_factory=dict)
    send_failures: int = 0

    def customer(self, i: int) -> str:
        return f"c{i % self.customers:03d}"

    async def run(self, count: int, rate: float = 0.0, start: int = 0, producer: AIOKafkaProducer | None = None) -> None:
        """Send ``count`` events in order; retry each until acknowledged (a broker outage only delays)."""
        own = producer is None
        if producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True, linger_ms=5,
                                        request_timeout_ms=5_000, retry_backoff_ms=200)
            await producer.start()
        try:
            next_at = time.monotonic()
            for i in range(start, start + count):
                customer = self.customer(i)
                n = i // self.customers
                event = purchase_event(customer, n)
                while True:
                    try:
                        await producer.send_and_wait(self.topic, event.to_json(), key=customer.encode())
                        break
                    except KafkaError:
                        # Same event id again: if the first try did land, consumers deduplicate on the id.
                        self.send_failures += 1
                        await asyncio.sleep(0.5)
                self.accepted[customer].append(n)
                self.event_ids[event.id] = (customer, n)
                if rate:
                    next_at += 1.0 / rate
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
        finally:
            if own:
                await producer.stop()

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.accepted.values())


class Ledger:
    """Reads the subject's store directly (the test is the auditor of the effects)."""

    def __init__(self, mongodb_url: str, database: str) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, serverSelectionTimeoutMS=20_000,
                                                                          tz_aware=True)
        self.db = self.client[database]

    async def docs(self) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self.db["ledger"].find({}, {"outbox": 0})}

    async def applied_total(self) -> int:
        return sum(int(d.get("purchases", 0)) for d in (await self.docs()).values())

    async def wait_applied(self, total: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            try:
                last = await self.applied_total()
            except Exception:  # the store may be restarting in some tests
                last = -1
            if last >= total:
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"only {last} of {total} purchases applied after {timeout}s")

    async def followups(self) -> list[dict[str, Any]]:
        return [d async for d in self.db["followups"].find({})]

    async def close(self) -> None:
        await self.client.close()


async def assert_exactly_once(stream: NumberedStream, ledger: Ledger) -> None:
    """Every accepted event has its effect exactly once, and each customer's events in the order sent."""
    docs = await ledger.docs()
    problems = []
    for customer, sent in stream.accepted.items():
        doc = docs.get(customer) or {}
        seqs = list(doc.get("seqs", []))
        if seqs != sent:
            missing = sorted(set(sent) - set(seqs))
            doubled = sorted({s for s in seqs if seqs.count(s) > 1})
            problems.append(f"{customer}: missing={missing[:10]} doubled={doubled[:10]} in_order={seqs == sorted(seqs)}")
        elif doc.get("purchases") != len(sent):
            problems.append(f"{customer}: counter {doc.get('purchases')} != {len(sent)}")
    extra = set(docs) - set(stream.accepted)
    assert not extra, f"effects for customers never sent: {sorted(extra)[:10]}"
    assert not problems, "exactly-once violated:\n" + "\n".join(problems[:20])


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


async def records_below(bootstrap: str, topic: str, offsets: dict[int, int]) -> list[Any]:
    """Every record of ``topic`` below the given per-partition offsets (what the group has committed)."""
    wanted = {p: o for p, o in offsets.items() if o > 0}
    if not wanted:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list[Any] = []
    try:
        parts = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        remaining = dict(wanted)
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, recs in batch.items():
                for r in recs:
                    if tp.partition in remaining and r.offset < remaining[tp.partition]:
                        out.append(r)
                        if r.offset + 1 >= remaining[tp.partition]:
                            del remaining[tp.partition]
        assert not remaining, f"could not read up to the committed offsets: {remaining}"
    finally:
        await consumer.stop()
    return out


async def assert_committed_were_applied(bootstrap: str, group: str, topic: str, ledger: Ledger) -> int:
    """Nothing is committed that was not done: each event below the committed offsets has its effect."""
    offsets = await committed_offsets(bootstrap, group, topic)
    records = await records_below(bootstrap, topic, offsets)
    docs = await ledger.docs()
    applied = {e for d in docs.values() for e in d.get("applied_events", [])}
    not_done = []
    for r in records:
        try:
            event_id = json.loads(r.value)["id"]
        except (ValueError, KeyError, TypeError):
            continue  # poison: dead-lettered, no effect expected
        if event_id not in applied:
            not_done.append((r.partition, r.offset))
    assert not not_done, f"offsets committed past work that is not stored: {not_done[:10]}"
    return len(records)
