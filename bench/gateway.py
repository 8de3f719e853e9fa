"""Gateway: authenticated ``GET /api/v1/customers/{id}`` through the real gateway and customer service,
against a plain FastAPI app answering the same path from memory, both under uvicorn on loopback.

The load tool is ``wrk`` when installed (``apt-get install -y wrk``), else a bounded httpx loop.
Each server runs in its own process; the load generator runs in another.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from .common import ROOT, percentile

BASELINE = '''
from fastapi import FastAPI
app = FastAPI()
PROFILE = {"id": "c1", "name": "Wang Fang", "phone": "+86*******5678", "email": "w***@example.com",
           "member_level": "gold", "tenure": "loyal", "purchase_count": 12, "total_amount": "1299.00"}
@app.get("/api/v1/customers/{customer_id}")
async def customer(customer_id: str) -> dict:
    return {**PROFILE, "id": customer_id}
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=open(log, "ab"),  # noqa: S603
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


async def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url, timeout=2)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def run_wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 30).stdout  # noqa: S603
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    factor = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * factor[p99.group(2)] if p99 else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p99_ms": p99_ms, "errors": int(non2xx.group(1)) if non2xx else 0, "tool": "wrk"}


async def run_httpx(url: str, headers: dict[str, str], seconds: int, connections: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(headers=headers, limits=httpx.Limits(max_connections=connections)) as client:
        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                t = time.perf_counter()
                r = await client.get(url)
                latencies.append((time.perf_counter() - t) * 1000)
                errors += r.status_code >= 400
        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - start
    return {"rps": len(latencies) / elapsed, "p99_ms": percentile(latencies, 99), "errors": errors, "tool": "httpx"}


class GatewayBench:
    """Starts customer service, gateway and baseline once; ``measure`` runs one interleaved round."""

    def __init__(self, kafka: str, mongodb_url: str, prefix: str, suffix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="guanxi-bench-"))
        self.ports = {"customer": free_port(), "gateway": free_port(), "baseline": free_port()}
        self.env = {"KAFKA_BOOTSTRAP_SERVERS": kafka, "MONGODB_URL": mongodb_url, "GUANXI_TOPIC_PREFIX": prefix,
                    "CUSTOMER_MONGODB_DATABASE": f"bench_gw_customer_{suffix}", "CUSTOMER_HTTP_PORT": str(self.ports["customer"]),
                    "CUSTOMER_CONSUMER_GROUP": f"bench-gw-customer-{suffix}",
                    "GATEWAY_MONGODB_DATABASE": f"bench_gw_gateway_{suffix}", "GATEWAY_HTTP_PORT": str(self.ports["gateway"]),
                    "GATEWAY_CONSUMER_GROUP": f"bench-gw-gateway-{suffix}",
                    "GATEWAY_CUSTOMER_URL": f"http://127.0.0.1:{self.ports['customer']}",
                    # Rate limits protect production; here they would only measure the limiter.
                    "GATEWAY_RATE_LIMIT_PER_IDENTITY": "100000000", "GATEWAY_RATE_LIMIT_PER_IP": "100000000",
                    "LOG_LEVEL": "WARNING"}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.customer_id = ""
        self.token = ""

    async def start(self) -> None:
        (self.dir / "baseline.py").write_text(BASELINE)
        py = sys.executable
        self.procs.append(spawn([py, "-m", "guanxi_customer"], self.env, self.dir / "customer.log"))
        self.procs.append(spawn([py, "-m", "guanxi_gateway"], self.env, self.dir / "gateway.log"))
        self.procs.append(spawn([py, "-m", "uvicorn", "--app-dir", str(self.dir), "baseline:app", "--port",
                                 str(self.ports["baseline"]), "--log-level", "warning", "--no-access-log"],
                                self.env, self.dir / "baseline.log"))
        for name, port in self.ports.items():
            await wait_ready(f"http://127.0.0.1:{port}/{'healthz' if name != 'baseline' else 'docs'}")
        await wait_ready(f"http://127.0.0.1:{self.ports['gateway']}/readyz")
        from guanxi_gateway.settings import GatewaySettings
        from guanxi_gateway.token import issue_token

        self.token = issue_token(GatewaySettings(), "bench-agent", ["agent"])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.ports['gateway']}",
                                     headers={"Authorization": f"Bearer {self.token}"}, timeout=60) as client:
            r = await client.post("/api/v1/customers", json={"name": "Wang Fang", "phone": "+8613812345678",
                                                             "email": "wang.fang@example.com", "consents": ["service"]})
            r.raise_for_status()
            self.customer_id = r.json()["id"]
            check = await client.get(f"/api/v1/customers/{self.customer_id}")
            check.raise_for_status()

    async def measure(self, seconds: int, connections: int) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        out = {}
        for name in ("gateway", "baseline"):
            url = f"http://127.0.0.1:{self.ports[name]}/api/v1/customers/{self.customer_id}"
            if shutil.which("wrk"):
                out[name] = await asyncio.to_thread(run_wrk, url, headers, seconds, connections)
            else:
                out[name] = await run_httpx(url, headers, seconds, connections)
        return out

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()

    def logs(self) -> str:
        return json.dumps({p.name: p.read_text()[-2000:] for p in self.dir.glob("*.log")})
