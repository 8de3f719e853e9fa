"""What every benchmark shares: where the infrastructure is, the backlog, and consumer-group lag."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from guanxi_shared.events import new_event
from guanxi_shared.topics import CATALOGUE, PURCHASE_COMPLETED

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from instance import Instance  # noqa: E402


@dataclass(frozen=True)
class Target:
    kafka: str
    mongodb_url: str
    origin: str
    run_dir: Path | None = None  # the benchmark instance's pid files (its processes count as the benchmark's own)


def target() -> Target:
    """Its own Kafka + FerretDB (other ports) unless both addresses are given: a benchmark on the shared
    instance would slow everyone's tests and be disturbed by them."""
    kafka, mongo = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URL")
    if kafka and mongo:
        return Target(kafka, mongo, "environment")
    inst = Instance(Path(os.environ.get("GUANXI_BENCH_DIR", ROOT / ".local" / "bench")),
                    kafka_port=int(os.environ.get("GUANXI_BENCH_KAFKA_PORT", "29092")),
                    mongo_port=int(os.environ.get("GUANXI_BENCH_MONGO_PORT", "47017")),
                    kafka_heap="-Xms256m -Xmx768m")
    inst.up()
    return Target(inst.bootstrap, inst.mongodb_url, f"own instance in {inst.directory}", inst.directory / "run")


def run_id() -> str:
    return "b" + uuid.uuid4().hex[:8]


async def create_topics(bootstrap: str, prefix: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        wanted = [NewTopic(prefix + t.name, num_partitions=partitions if t.name == PURCHASE_COMPLETED else t.partitions,
                           replication_factor=1) for t in CATALOGUE]
        wanted += [NewTopic(prefix + t.dlq, num_partitions=1, replication_factor=1) for t in CATALOGUE]
        await admin.create_topics(wanted)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def purchase(customer: str, n: int) -> bytes:
    data = {"order_id": f"{customer}:{n}", "customer_id": customer, "amount": "99.50", "currency": "CNY",
            "items": [{"sku": "TEA-1", "name": "Tea", "quantity": 1, "unit_price": "99.50"}],
            "channel": "web", "purchased_at": datetime.now(UTC).isoformat()}
    return new_event(PURCHASE_COMPLETED, customer, data, source="bench-orders").to_json()


async def fill_backlog(bootstrap: str, topic: str, events: int, customers: int) -> float:
    """Write ``events`` purchases spread over ``customers`` keys; returns seconds taken."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=20,
                                max_batch_size=512 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        for i in range(events):
            customer = f"cust-{i % customers:05d}"
            futures.append(await producer.send(topic, purchase(customer, i // customers), key=customer.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        if not parts:
            await consumer._client.force_metadata_update()
            parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        ends = await consumer.end_offsets(parts)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def wait_group_done(bootstrap: str, group: str, topic: str, ends: dict[int, int], timeout: float,
                          progress: Callable[[], Awaitable[None]] | None = None) -> float:
    """Wait until ``group`` has committed every offset of ``topic``; returns the monotonic time it happened.

    The services commit only after the effects are stored (at-least-once), so a committed end
    offset means every effect of the backlog is in the store.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            offsets = await admin.list_consumer_group_offsets(group)
            done = {tp.partition: m.offset for tp, m in offsets.items() if tp.topic == topic}
            if all(done.get(p, -1) >= end for p, end in ends.items()):
                return time.monotonic()
            if time.monotonic() > deadline:
                lag = sum(end - max(done.get(p, 0), 0) for p, end in ends.items())
                raise TimeoutError(f"group {group} still {lag} behind after {timeout}s")
            if progress:
                await progress()
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


Doc = dict[str, Any]


async def stop_processes(procs: list[Any]) -> None:
    """Terminate a benchmark's service processes, then wait for each (killed after 30 s)."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            await asyncio.to_thread(p.wait, 30)
        except Exception:
            p.kill()


def log_tails(directory: Path) -> dict[str, str]:
    """The last lines of each process log of a run (reported when a run fails)."""
    return {p.name: p.read_text(errors="replace")[-2000:] for p in directory.glob("*.log")}
