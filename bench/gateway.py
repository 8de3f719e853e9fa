"""Gateway: authenticated ``GET /api/v1/customers/{id}`` through the real gateway and customer service,
against the plain way of writing that endpoint (one FastAPI app: token check, the same store, masking),
and, as a second reference, a FastAPI app answering the path from memory; all under uvicorn on loopback.

The load tool is ``wrk`` when installed (``apt-get install -y wrk``), else a bounded httpx loop.
Each server runs in its own process; the load generator runs in another.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from .common import ROOT, percentile

# The plain way of writing the same endpoint, as a FastAPI tutorial would: one app, no Guanxi code.
# It does the same work per request as the real path: checks the caller's bearer token (pyjwt,
# same secret, issuer and audience), reads the customer document from the same FerretDB database
# with the same PyMongo async client settings the services get (one connection in local mode),
# opens the sealed personal fields (AES-GCM data key wrapped by the master key) and returns the
# masked profile. Only the split into gateway + service, and what our framework adds, are missing.
BASELINE_STORE = """
import base64, json, os
from typing import Any

import jwt
import phonenumbers
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI, Header, HTTPException
from pymongo import AsyncMongoClient

SECRET, ISSUER, AUDIENCE = os.environ["PLAIN_JWT_SECRET"], os.environ["PLAIN_JWT_ISSUER"], os.environ["PLAIN_JWT_AUDIENCE"]
KEYS = {k: base64.b64decode(v) for k, v in json.loads(os.environ["PLAIN_MASTER_KEYS"]).items()}
client = AsyncMongoClient(os.environ["MONGODB_URL"], maxPoolSize=int(os.environ["PLAIN_MAX_POOL_SIZE"]),
                          serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, tz_aware=True, appname="plain")
customers = client[os.environ["PLAIN_DATABASE"]]["customers"]
PLAIN = ("name", "kind", "gender", "occupation", "company", "industry", "size", "preferences", "tags", "language",
         "timezone")
PII = ("phone", "email", "address", "birthday", "id_number")
app = FastAPI()


def _open(key: bytes, sealed: str, aad: str) -> bytes:
    raw = base64.b64decode(sealed)
    return AESGCM(key).decrypt(raw[:12], raw[12:], aad.encode())


def mask(field: str, value: str) -> str:
    if field == "phone":
        p = phonenumbers.parse(value, None)
        n = str(p.national_number)
        return f"+{p.country_code} " + n[:3] + "*" * (len(n) - 7) + n[-4:]
    if field == "email":
        local, _, dom = value.rpartition("@")
        return f"{local[0]}***@{dom}"
    if field == "birthday":
        return "****-**-**"
    if field == "id_number":
        return "*" * max(len(value) - 4, 4) + value[-4:] if len(value) > 8 else "*" * len(value)
    return value[:3] + "***" if len(value) > 6 else "***"


@app.get("/api/v1/customers/{customer_id}")
async def customer(customer_id: str, authorization: str = Header("")) -> dict[str, Any]:
    scheme, _, token = authorization.partition(" ")
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER,
                            options={"require": ["exp", "sub", "iss", "aud"]})
    except jwt.PyJWTError:
        raise HTTPException(401, "invalid token")
    if scheme.lower() != "bearer" or not {"agent", "supervisor", "admin"} & set(claims.get("roles", [])):
        raise HTTPException(403, "forbidden")
    doc = await customers.find_one({"_id": customer_id})
    if doc is None:
        raise HTTPException(404, "no such customer")
    dek = _open(KEYS[doc["vault"]["kek_id"]], doc["vault"]["wrapped"], f"dek:{customer_id}")
    out: dict[str, Any] = {"id": doc["_id"], "status": doc.get("status", "registered")}
    out.update({f: doc.get(f) for f in PLAIN})
    for f in PII:
        sealed = (doc.get("pii") or {}).get(f)
        out[f] = None if sealed is None else mask(f, _open(dek, sealed, f"{customer_id}:{f}").decode())
    out.update({"masked": True, "member_level": doc.get("member_level"), "tenure": doc.get("tenure"),
                "purchase_count": doc.get("purchase_count", 0), "total_amount": doc.get("total_amount", "0"),
                "last_purchase_at": doc.get("last_purchase_at"), "last_contact_at": doc.get("last_contact_at"),
                "churn_risk": bool(doc.get("churn_risk")),
                "consents": {p: {"granted": bool(c.get("granted")), "at": c.get("at"), "source": c.get("source")}
                             for p, c in (doc.get("consents") or {}).items()},
                "channels_opted_out": doc.get("channels_opted_out", []), "created_at": doc.get("created_at"),
                "updated_at": doc.get("updated_at"), "registered_at": doc.get("registered_at")})
    return out
"""

# A second reference: the same path answered from memory, no token, no store. It shows the ceiling
# of the HTTP stack itself (uvicorn + FastAPI on this machine), not a fair peer of the real path.
BASELINE_MEMORY = """
from fastapi import FastAPI
app = FastAPI()
PROFILE = {"id": "c1", "name": "Wang Fang", "phone": "+86*******5678", "email": "w***@example.com",
           "member_level": "gold", "tenure": "loyal", "purchase_count": 12, "total_amount": "1299.00"}
@app.get("/api/v1/customers/{customer_id}")
async def customer(customer_id: str) -> dict:
    return {**PROFILE, "id": customer_id}
"""


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
    """Starts customer service, gateway and both baselines once; ``measure`` runs one interleaved round.

    ``baseline`` (the ratio's denominator) is the plain FastAPI app reading the same store;
    ``memory`` is the from-memory reference, reported beside it.
    """

    VARIANTS = ("gateway", "baseline", "memory")

    def __init__(self, kafka: str, mongodb_url: str, prefix: str, suffix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="guanxi-bench-"))
        self.ports = {"customer": free_port(), "gateway": free_port(), "baseline": free_port(), "memory": free_port()}
        self.database = f"bench_gw_customer_{suffix}"
        self.env = {"KAFKA_BOOTSTRAP_SERVERS": kafka, "MONGODB_URL": mongodb_url, "GUANXI_TOPIC_PREFIX": prefix,
                    "CUSTOMER_MONGODB_DATABASE": self.database, "CUSTOMER_HTTP_PORT": str(self.ports["customer"]),
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
        self.rounds = 0

    def _plain_env(self) -> dict[str, str]:
        from guanxi_customer.settings import CustomerSettings
        from guanxi_gateway.settings import GatewaySettings
        from guanxi_shared.store import pool_size

        gateway, customer = GatewaySettings(), CustomerSettings(**{"mongodb_url": self.env["MONGODB_URL"]})
        # The customer service reads a profile through its read pool (ServiceRuntime.read_db); the plain
        # app gets a pool of the same size (it has no writes, so it needs no narrower one).
        pool = max(pool_size(customer), customer.mongodb_read_pool_size)
        return {"PLAIN_JWT_SECRET": gateway.jwt_secret.get_secret_value(), "PLAIN_JWT_ISSUER": gateway.jwt_issuer,
                "PLAIN_JWT_AUDIENCE": gateway.jwt_audience, "PLAIN_DATABASE": self.database,
                "PLAIN_MASTER_KEYS": json.dumps({k: v.get_secret_value() for k, v in customer.master_keys.items()}),
                "PLAIN_MAX_POOL_SIZE": str(pool)}

    async def start(self) -> None:
        (self.dir / "plain_store.py").write_text(BASELINE_STORE)
        (self.dir / "plain_memory.py").write_text(BASELINE_MEMORY)
        py = sys.executable
        self.procs.append(spawn([py, "-m", "guanxi_customer"], self.env, self.dir / "customer.log"))
        self.procs.append(spawn([py, "-m", "guanxi_gateway"], self.env, self.dir / "gateway.log"))
        for name, module, extra in (("baseline", "plain_store", self._plain_env()), ("memory", "plain_memory", {})):
            self.procs.append(spawn([py, "-m", "uvicorn", "--app-dir", str(self.dir), f"{module}:app", "--port",
                                     str(self.ports[name]), "--log-level", "warning", "--no-access-log"],
                                    {**self.env, **extra}, self.dir / f"{name}.log"))
        for name, port in self.ports.items():
            await wait_ready(f"http://127.0.0.1:{port}/{'healthz' if name in ('customer', 'gateway') else 'docs'}")
        await wait_ready(f"http://127.0.0.1:{self.ports['gateway']}/readyz")
        from guanxi_gateway.settings import GatewaySettings
        from guanxi_gateway.token import issue_token

        self.token = issue_token(GatewaySettings(), "bench-agent", ["agent"])
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(headers=headers, timeout=60) as client:
            gateway = f"http://127.0.0.1:{self.ports['gateway']}/api/v1/customers"
            r = await client.post(gateway, json={"name": "Wang Fang", "phone": "+8613812345678",
                                                 "email": "wang.fang@example.com", "address": "上海市黄浦区南京东路 1 号",
                                                 "consents": ["service"]})
            r.raise_for_status()
            self.customer_id = r.json()["id"]
            real = await client.get(f"{gateway}/{self.customer_id}")
            plain = await client.get(f"http://127.0.0.1:{self.ports['baseline']}/api/v1/customers/{self.customer_id}")
            real.raise_for_status()
            plain.raise_for_status()
            # The comparison is fair only if both answer the same thing.
            if real.json() != plain.json():
                raise AssertionError(f"baseline answers differently:\n{real.json()}\n{plain.json()}")
        # Warm-up, the same for all: connection pools filled, first-use imports and caches done.
        await self.measure(2, 8)
        self.rounds = 0

    async def measure(self, seconds: int, connections: int) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        out = {}
        # Interleaved, order reversed every round: a drift of the shared machine hits all alike.
        order = self.VARIANTS if self.rounds % 2 == 0 else tuple(reversed(self.VARIANTS))
        self.rounds += 1
        for name in order:
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

    def pids(self) -> dict[str, int]:
        return dict(zip(("customer", "gateway", "baseline", "memory"), (p.pid for p in self.procs), strict=True))


async def _main() -> None:
    """``python -m bench.gateway``: only the gateway rounds (same settings as ``make bench``), for profiling.
    ``GUANXI_BENCH_HOLD=1`` keeps the processes up after the rounds until Ctrl-C (attach py-spy, run wrk)."""
    from .common import create_topics, delete_topics, run_id, target

    where = target()
    rid = run_id()
    await create_topics(where.kafka, f"{rid}.", 1)
    bench = GatewayBench(where.kafka, where.mongodb_url, f"{rid}.", rid)
    try:
        await bench.start()
        print(f"pids {bench.pids()} ports {bench.ports} customer {bench.customer_id}", flush=True)
        print(f"token {bench.token}", flush=True)
        for _ in range(int(os.environ.get("GUANXI_BENCH_REPEATS", "2"))):
            result = await bench.measure(int(os.environ.get("GUANXI_BENCH_HTTP_SECONDS", "8")),
                                         int(os.environ.get("GUANXI_BENCH_HTTP_CONNECTIONS", "32")))
            print("  ".join(f"{n} {r['rps']:.0f} rps p99 {r['p99_ms']:.1f} ms err {r['errors']}"
                            for n, r in result.items()), flush=True)
        if os.environ.get("GUANXI_BENCH_HOLD"):
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            await stop.wait()
    finally:
        bench.stop()
        await delete_topics(where.kafka, f"{rid}.")


if __name__ == "__main__":
    asyncio.run(_main())
