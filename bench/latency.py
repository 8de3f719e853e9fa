"""Latency: a complaint filed over HTTP → its acknowledgement email handed to SMTP.

The path, every service in its own process as deployed: ``POST /api/v1/complaints`` on the gateway
(publishes ``complaint.received``) → complaints service (opens the case, auto-acknowledges,
``complaint.acknowledged`` through its outbox) → notifications service (asks the customer service for
the contact details, renders ``complaint_acknowledged``, sends over SMTP) → the SMTP sink inside this
benchmark, which stamps each message on arrival and finds the complaint id in it.

Two phases:

* **capacity**, closed loop: ``LAT_WINDOW`` complaints in flight, a new one filed as soon as one's email
  arrives, for ``LAT_CAPACITY_SECONDS``; capacity = acknowledgement emails received per second.
* **latency**, open loop at ``LAT_LOAD`` × capacity for ``LAT_SECONDS``: send times are fixed in advance
  (i / rate) and each latency is measured from the *scheduled* send time, so a slow HTTP answer or a
  backlog anywhere on the path shows in the figures instead of delaying the next sends (no coordinated
  omission). A complaint whose email has not arrived ``LAT_DRAIN_SECONDS`` after the last send is lost.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from .common import create_topics, log_tails, percentile, stop_processes
from .gateway import free_port, spawn, wait_ready

CUSTOMERS = int(os.environ.get("GUANXI_BENCH_LAT_CUSTOMERS", "40"))
WINDOW = int(os.environ.get("GUANXI_BENCH_LAT_WINDOW", "48"))
CAPACITY_SECONDS = float(os.environ.get("GUANXI_BENCH_LAT_CAPACITY_SECONDS", "15"))
LOAD = float(os.environ.get("GUANXI_BENCH_LAT_LOAD", "0.5"))
SECONDS = float(os.environ.get("GUANXI_BENCH_LAT_SECONDS", "20"))
DRAIN_SECONDS = float(os.environ.get("GUANXI_BENCH_LAT_DRAIN_SECONDS", "30"))
# Upper bound of the whole benchmark: start-up, registration, both phases and both drains.
BUDGET = 120 + CAPACITY_SECONDS + SECONDS + 2 * DRAIN_SECONDS
SERVICES = ("customer", "complaints", "notifications", "gateway")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Mailbox:
    """What the SMTP sink received: complaint id → monotonic arrival time (first mail wins)."""

    arrived: dict[str, float] = field(default_factory=dict)
    arrived_wall: dict[str, float] = field(default_factory=dict)  # for comparing with the services' stored times
    mails: int = 0
    unmatched: int = 0
    waiters: dict[str, list[asyncio.Future[float]]] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, content: bytes, at: float) -> None:
        # Runs on the sink's thread. The acknowledgement names the complaint id in its subject and body
        # (both languages); any other uuid in the mail (the customer id) is simply not a complaint we filed.
        msg = email.message_from_bytes(content, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        text = f"{msg.get('subject', '')}\n{body.get_content() if body is not None else ''}"  # type: ignore[attr-defined]
        ids = set(UUID.findall(text))
        with self.lock:
            self.mails += 1
            matched = False
            for cid in ids:
                if cid in self.arrived:
                    matched = True  # a duplicate (at-least-once resend): the first arrival counts
                    continue
                self.arrived[cid] = at
                self.arrived_wall[cid] = time.time() - (time.monotonic() - at)
                matched = True
                for waiter in self.waiters.pop(cid, []):
                    if self.loop is not None:
                        self.loop.call_soon_threadsafe(_resolve, waiter, at)
            if not matched:
                self.unmatched += 1

    def wait_for(self, complaint_id: str) -> asyncio.Future[float]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        with self.lock:
            if complaint_id in self.arrived:
                future.set_result(self.arrived[complaint_id])
            else:
                self.waiters.setdefault(complaint_id, []).append(future)
        return future


def _resolve(future: asyncio.Future[float], at: float) -> None:
    if not future.done():
        future.set_result(at)


class SinkHandler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.monotonic()  # stamped before anything else: "handed to SMTP" is this moment
        self.mailbox.receive(envelope.original_content or envelope.content, at)
        return "250 Message accepted for delivery"


class LatencyBench:
    """Starts the path's services as processes plus the SMTP sink; ``capacity`` and ``open_loop`` measure."""

    def __init__(self, kafka: str, mongodb_url: str, prefix: str, suffix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="guanxi-bench-latency-"))
        self.ports = {name: free_port() for name in (*SERVICES, "smtp")}
        base = {name: f"http://127.0.0.1:{self.ports[name]}" for name in SERVICES}
        self.env = {"KAFKA_BOOTSTRAP_SERVERS": kafka, "MONGODB_URL": mongodb_url, "GUANXI_TOPIC_PREFIX": prefix,
                    "LOG_LEVEL": "WARNING",
                    "NOTIFICATIONS_SMTP_HOST": "127.0.0.1", "NOTIFICATIONS_SMTP_PORT": str(self.ports["smtp"]),
                    "NOTIFICATIONS_CUSTOMER_BASE_URL": base["customer"],
                    "GATEWAY_CUSTOMER_URL": base["customer"], "GATEWAY_COMPLAINTS_URL": base["complaints"],
                    "GATEWAY_NOTIFICATIONS_URL": base["notifications"],
                    # Rate limits protect production; here they would only measure the limiter.
                    "GATEWAY_RATE_LIMIT_PER_IDENTITY": "100000000", "GATEWAY_RATE_LIMIT_PER_IP": "100000000"}
        for name in SERVICES:
            up = name.upper()
            self.env[f"{up}_MONGODB_DATABASE"] = f"bench_lat_{name}_{suffix}"
            self.env[f"{up}_CONSUMER_GROUP"] = f"bench-lat-{name}-{suffix}"
            self.env[f"{up}_HTTP_PORT"] = str(self.ports[name])
        self.suffix = suffix
        self.mailbox = Mailbox()
        self.sink: Controller | None = None
        self.procs: list[Any] = []
        self.client: httpx.AsyncClient | None = None
        self.customers: list[str] = []
        self.filed = 0
        self.accepted: list[str] = []

    async def start(self) -> None:
        self.mailbox.loop = asyncio.get_running_loop()
        self.sink = Controller(SinkHandler(self.mailbox), hostname="127.0.0.1", port=self.ports["smtp"])
        self.sink.start()
        for name in SERVICES:
            self.procs.append(spawn([sys.executable, "-m", f"guanxi_{name}"], self.env, self.dir / f"{name}.log"))
        for name in SERVICES:
            await wait_ready(f"http://127.0.0.1:{self.ports[name]}/readyz", timeout=90)
        from guanxi_gateway.settings import GatewaySettings
        from guanxi_gateway.token import issue_token

        token = issue_token(GatewaySettings(), "bench-agent", ["agent"])
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.ports['gateway']}", timeout=60,
                                        headers={"Authorization": f"Bearer {token}"},
                                        limits=httpx.Limits(max_connections=512, max_keepalive_connections=128))
        for i in range(CUSTOMERS):
            r = await self.client.post("/api/v1/customers", json={
                "name": f"Bench Customer {i}", "phone": f"+86139{i:08d}", "email": f"c{i}.{self.suffix}@example.com",
                "consents": ["service"]})
            r.raise_for_status()
            self.customers.append(r.json()["id"])

    async def file(self) -> str | None:
        """File one complaint; its id, or None when the gateway did not accept it."""
        assert self.client is not None
        customer = self.customers[self.filed % len(self.customers)]
        self.filed += 1
        try:
            r = await self.client.post("/api/v1/complaints", json={
                "customer_id": customer, "channel": "web", "category": "billing", "severity": "normal",
                "description": f"bench complaint {self.filed}"})
        except httpx.HTTPError:
            return None
        if r.status_code != 202:
            return None
        cid = str(r.json()["id"])
        self.accepted.append(cid)
        return cid

    async def drain(self, timeout: float = DRAIN_SECONDS) -> int:
        """Wait until every accepted complaint has its email (the next phase must not inherit a backlog);
        returns how many are still missing."""
        pending = [f for f in (self.mailbox.wait_for(cid) for cid in self.accepted) if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        missing = sum(not f.done() for f in pending)
        for f in pending:
            f.cancel()
        return missing

    async def warm_up(self, count: int = 5, timeout: float = 60) -> None:
        """First complaints pay for consumer-group joins and cold connections: not measured."""
        ids = [cid for cid in await asyncio.gather(*(self.file() for _ in range(count))) if cid]
        await asyncio.wait_for(asyncio.gather(*(self.mailbox.wait_for(cid) for cid in ids)), timeout)

    async def capacity(self, seconds: float = CAPACITY_SECONDS, window: int = WINDOW) -> dict[str, Any]:
        """Closed loop: ``window`` complaints in flight; acknowledgement emails per second."""
        started = time.monotonic()
        deadline = started + seconds
        done: list[float] = []
        latencies: list[float] = []

        async def worker() -> None:
            while time.monotonic() < deadline:
                sent = time.monotonic()
                cid = await self.file()
                if cid is None:
                    continue
                try:
                    at = await asyncio.wait_for(self.mailbox.wait_for(cid), max(1.0, deadline + DRAIN_SECONDS - sent))
                except TimeoutError:
                    return
                if at <= deadline:
                    done.append(at)
                    latencies.append((at - sent) * 1000)

        await asyncio.gather(*(worker() for _ in range(window)))
        rate = len(done) / seconds
        return {"complaints_per_s": round(rate, 2), "acknowledged": len(done), "seconds": seconds, "window": window,
                "closed_loop_p50_ms": round(percentile(latencies, 50), 1),
                "closed_loop_p99_ms": round(percentile(latencies, 99), 1)}

    async def open_loop(self, rate: float, seconds: float = SECONDS) -> dict[str, Any]:
        """Fixed schedule at ``rate``/s; latency from the scheduled send time to the email's arrival."""
        count = max(1, round(rate * seconds))
        start = time.monotonic() + 0.5
        scheduled: dict[str, float] = {}
        refused = 0
        http_ms: list[float] = []

        async def send(at: float) -> None:
            nonlocal refused
            cid = await self.file()
            http_ms.append((time.monotonic() - at) * 1000)
            if cid is None:
                refused += 1
            else:
                scheduled[cid] = at

        tasks = []
        for i in range(count):
            at = start + i / rate
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(at)))
        await asyncio.gather(*tasks)
        drain_until = time.monotonic() + DRAIN_SECONDS
        waiting = {cid: self.mailbox.wait_for(cid) for cid in scheduled}
        pending = [f for f in waiting.values() if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, drain_until - time.monotonic()))
        latencies = [(f.result() - scheduled[cid]) * 1000 for cid, f in waiting.items() if f.done()]
        for f in waiting.values():
            f.cancel()
        lost = len(scheduled) - len(latencies)
        return {"rate_per_s": round(rate, 2), "seconds": seconds, "sent": count, "accepted": len(scheduled),
                "refused": refused, "received": len(latencies), "lost": lost,
                "p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
                "p99_ms": round(percentile(latencies, 99), 1), "max_ms": round(max(latencies), 1) if latencies else None,
                "http_p99_ms": round(percentile(http_ms, 99), 1)}

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        await stop_processes(self.procs)
        if self.sink is not None:
            self.sink.stop()

    def logs(self) -> dict[str, str]:
        return log_tails(self.dir)


async def run(kafka: str, mongodb_url: str, prefix: str, suffix: str) -> dict[str, Any]:
    """Capacity, then the open-loop run at ``LOAD`` × capacity; the full result for the JSON.

    ``prefix`` must be this benchmark's own topic prefix (its topics are created here): the customer
    service would otherwise also consume the ingest benchmarks' purchase backlog meanwhile."""
    await create_topics(kafka, prefix, 3)
    bench = LatencyBench(kafka, mongodb_url, prefix, suffix)
    result: dict[str, Any] = {"path": "HTTP POST /api/v1/complaints via the gateway → complaints → notifications → SMTP",
                              "customers": CUSTOMERS, "load": LOAD, "window": WINDOW, "capacity_s": CAPACITY_SECONDS,
                              "open_loop_s": SECONDS, "drain_s": DRAIN_SECONDS, "logs": str(bench.dir)}
    try:
        await bench.start()
        await bench.warm_up()
        result["capacity"] = await bench.capacity()
        result["capacity"]["missing_after_drain"] = await bench.drain()
        rate = LOAD * result["capacity"]["complaints_per_s"]
        if rate <= 0:
            raise RuntimeError("no acknowledgement email arrived in the capacity phase")
        result["open_loop"] = await bench.open_loop(rate)
        result["mails"] = bench.mailbox.mails
        result["unmatched_mails"] = bench.mailbox.unmatched
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["service_logs"] = bench.logs()
    finally:
        await bench.stop()
    return result


async def _standalone() -> dict[str, Any]:
    """``python -m bench.latency``: this benchmark alone, on the benchmark instance, cleaned up after."""
    import json

    from .__main__ import cleanup
    from .common import run_id, target

    where = target()
    rid = run_id()
    result = await run(where.kafka, where.mongodb_url, f"{rid}.", rid)
    print(json.dumps(result, indent=2), flush=True)
    try:
        # Best effort: dropping what this run created must not hold back the result.
        await asyncio.wait_for(cleanup(where.kafka, where.mongodb_url, f"{rid}.", rid), 60)
    except TimeoutError:
        print("cleanup took longer than 60 s; leftovers stay in the benchmark instance", file=sys.stderr)
    return result


if __name__ == "__main__":
    asyncio.run(_standalone())
