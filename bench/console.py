"""Console page timings: the agent's queue, its partial refresh, a complaint and a customer 360, timed in
Debian's chromium on a store holding ``GUANXI_BENCH_CONSOLE_CASES`` (2000) open complaints.

The platform as deployed, each service its own process on the benchmark instance: customer, complaints,
surveys and notifications (the 360 reads all four), the gateway and the console, with an SMTP sink for the
notifications service. The store is filled the way complaints arrive: ``GUANXI_BENCH_CONSOLE_CUSTOMERS``
(200) customers registered through the gateway, then the cases as ``complaint.received`` events produced to
Kafka in one batch (received over the last 12 hours, several categories routed to two teams, mixed
severities and channels); the complaints service opens each one (number, team, deadlines) as it would any
intake, and the benchmark waits until its KPIs count every case open. Then each roster agent takes
``GUANXI_BENCH_CONSOLE_OWNED`` (50) cases of their own team through ``POST /complaints/{id}/assign``, so that
"my open complaints" and "my team's unassigned complaints" are both full. Nothing is acknowledged (the
complaints service runs with ``COMPLAINTS_AUTO_ACKNOWLEDGE=false``, as in the browser tests), so no email goes
out and the notifications service stays idle while pages are timed.

Measuring: the agent signs in through the console's development roster in headless chromium; after the
background work has settled (the customer service has taken in every ``complaint.registered``; then the quiet
check of ``bench/quiet.py``), each page is loaded ``GUANXI_BENCH_CONSOLE_WARM_UP`` (2) times unmeasured and
``GUANXI_BENCH_CONSOLE_LOADS`` (20) times measured, pages interleaved. Per load the browser's Navigation
Timing: ``responseStart`` (first byte), ``domContentLoadedEventEnd``, ``loadEventEnd``, all from the start of
the navigation, and ``responseStart - requestStart`` (the server's time on loopback). The queue's partial
(``/queue/lists``, what htmx polls) is fetched from inside a console page with ``fetch`` and timed with
``performance.now()`` around it (until the body is read); its server time comes from its Resource Timing
entry. The two complaints API calls the queue makes are also timed directly through the gateway (httpx), to
show how much of the queue is the API's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from guanxi_shared.events import new_event
from guanxi_shared.topics import COMPLAINT_RECEIVED, COMPLAINT_REGISTERED

from . import quiet
from .common import create_topics, end_offsets, log_tails, percentile, stop_processes, wait_group_done
from .gateway import free_port, spawn, wait_ready
from .latency import Mailbox, SinkHandler

if TYPE_CHECKING:
    from playwright.async_api import Page

CASES = int(os.environ.get("GUANXI_BENCH_CONSOLE_CASES", "2000"))
CUSTOMERS = int(os.environ.get("GUANXI_BENCH_CONSOLE_CUSTOMERS", "200"))
OWNED = int(os.environ.get("GUANXI_BENCH_CONSOLE_OWNED", "50"))  # cases each roster agent takes
LOADS = int(os.environ.get("GUANXI_BENCH_CONSOLE_LOADS", "20"))
WARM_UP = int(os.environ.get("GUANXI_BENCH_CONSOLE_WARM_UP", "2"))
VIEWER = os.environ.get("GUANXI_BENCH_CONSOLE_VIEWER", "alice")
CHROMIUM = Path(os.environ.get("GUANXI_BENCH_CHROMIUM", "/usr/lib/chromium/chromium"))
# Start-up, registration, the fill, the assignments, settling and (5 pages x 22 loads) the measuring.
BUDGET = float(os.environ.get("GUANXI_BENCH_CONSOLE_BUDGET", "900"))
SERVICES = ("customer", "complaints", "surveys", "notifications")
# Intake routing of the run: two teams with two agents each on the roster (alice, bob: team-east; chen,
# dong: team-west); the other categories go to a team nobody on the roster is in.
TEAM_BY_CATEGORY = {"billing": "team-east", "product_quality": "team-east", "delivery": "team-west",
                    "installation": "team-west", "network": "team-west"}
CATEGORIES = ("billing", "product_quality", "delivery", "service_attitude", "network", "installation", "other")
SEVERITIES = (("low", 20), ("normal", 55), ("high", 20), ("urgent", 5))
CHANNELS = ("phone", "email", "chat", "social", "web", "sms", "app", "visit")
AGENTS = {"alice": "team-east", "bob": "team-east", "chen": "team-west", "dong": "team-west"}
SUPERVISOR = ("sue", "team-east")
# Read once a navigation has finished: its Navigation Timing entry (relative to its start) and what the
# page shows (the queue's rows, an error alert).
NAVIGATION_JS = """() => new Promise((resolve) => {
  const read = () => {
    const n = performance.getEntriesByType('navigation')[0];
    if (!n || n.loadEventEnd === 0) { setTimeout(read, 5); return; }
    resolve({requestStart: n.requestStart, responseStart: n.responseStart, responseEnd: n.responseEnd,
             domContentLoadedEventEnd: n.domContentLoadedEventEnd, loadEventEnd: n.loadEventEnd,
             bytes: n.decodedBodySize,
             mine: document.querySelectorAll('#list-mine tr[data-case]').length,
             unassigned: document.querySelectorAll('#list-unassigned tr[data-case]').length,
             alert: (document.querySelector('main [role=alert]') || {}).textContent || null,
             unavailable: Array.from(document.querySelectorAll('main section > p.note'), (e) => e.parentElement.id)});
  };
  read();
})"""
# The queue's partial as htmx asks for it, timed inside the page.
FETCH_JS = """async (path) => {
  performance.clearResourceTimings();
  const t0 = performance.now();
  const r = await fetch(path, {headers: {'HX-Request': 'true', 'HX-Trigger': 'queue-lists'}, credentials: 'same-origin'});
  const body = await r.text();
  const ms = performance.now() - t0;
  const e = performance.getEntriesByType('resource').filter((x) => x.name.endsWith(path)).pop();
  return {ms, status: r.status, bytes: body.length, server: e && e.responseStart > 0 ? e.responseStart - e.requestStart : null,
          rows: (body.match(/<tr data-case=/g) || []).length};
}"""


def say(msg: str) -> None:
    print(f"[bench] console: {msg}", flush=True)


def summary(values: Iterable[float | None]) -> dict[str, Any]:
    known = [v for v in values if v is not None]
    if not known:
        return {"n": 0}
    return {"p50": round(percentile(known, 50), 1), "p95": round(percentile(known, 95), 1),
            "min": round(min(known), 1), "max": round(max(known), 1), "n": len(known)}


def token(subject: str, role: str, team: str | None) -> str:
    from guanxi_gateway.settings import GatewaySettings
    from guanxi_gateway.token import issue_token

    return issue_token(GatewaySettings(), subject, [role], team=team)


class ConsoleBench:
    """The platform's processes on the benchmark instance, the store filled, chromium signed in."""

    def __init__(self, kafka: str, mongodb_url: str, prefix: str, suffix: str) -> None:
        self.kafka, self.prefix, self.suffix = kafka, prefix, suffix
        self.dir = Path(tempfile.mkdtemp(prefix="guanxi-bench-console-"))
        names = (*SERVICES, "gateway", "console", "audit", "smtp")
        self.ports = {name: free_port() for name in names}
        self.urls = {name: f"http://127.0.0.1:{self.ports[name]}" for name in names}
        common = {"KAFKA_BOOTSTRAP_SERVERS": kafka, "MONGODB_URL": mongodb_url, "GUANXI_TOPIC_PREFIX": prefix,
                  "GUANXI_ENV": "local", "LOG_LEVEL": os.environ.get("GUANXI_BENCH_SERVICE_LOG_LEVEL", "WARNING")}
        self.env: dict[str, dict[str, str]] = {}
        for name in (*SERVICES, "gateway"):
            up = name.upper()
            self.env[name] = {**common, f"{up}_MONGODB_DATABASE": f"bench_con_{name}_{suffix}",
                              f"{up}_CONSUMER_GROUP": f"bench-con-{name}-{suffix}", f"{up}_HTTP_PORT": str(self.ports[name])}
        self.env["complaints"].update({
            "COMPLAINTS_AUTO_ACKNOWLEDGE": "false", "COMPLAINTS_STATUS_LINK_BASE": self.urls["console"] + "/c",
            "COMPLAINTS_TEAM_BY_CATEGORY": json.dumps(TEAM_BY_CATEGORY), "COMPLAINTS_DEFAULT_TEAM": "team-north"})
        self.env["notifications"].update({"NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
                                          "NOTIFICATIONS_SMTP_PORT": str(self.ports["smtp"]),
                                          "NOTIFICATIONS_CUSTOMER_BASE_URL": self.urls["customer"]})
        self.env["surveys"]["SURVEYS_LINK_BASE_URL"] = self.urls["console"] + "/s"
        # No audit service: the pages timed here never call it (the gateway's route to it answers 502).
        self.env["gateway"].update({f"GATEWAY_{name.upper()}_URL": self.urls[name] for name in (*SERVICES, "audit")})
        self.env["gateway"].update({"GATEWAY_RATE_LIMIT_PER_IDENTITY": "100000000", "GATEWAY_RATE_LIMIT_PER_IP": "100000000"})
        # The console as deployed (its default settings), pointed at this gateway; it has no Kafka.
        self.env["console"] = {"GUANXI_ENV": "local", "LOG_LEVEL": common["LOG_LEVEL"], "MONGODB_URL": mongodb_url,
                               "CONSOLE_MONGODB_DATABASE": f"bench_con_console_{suffix}",
                               "CONSOLE_HTTP_PORT": str(self.ports["console"]), "CONSOLE_GATEWAY_URL": self.urls["gateway"],
                               "CONSOLE_PUBLIC_URL": self.urls["console"]}
        self.procs: list[Any] = []
        self.mailbox = Mailbox()
        self.sink: Controller | None = None
        self.customers: list[str] = []
        self.cases: list[dict[str, Any]] = []  # what was produced: id, customer, team
        self.owned: dict[str, list[str]] = {}
        self.api: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        assert self.api is not None, "start() first"
        return self.api

    async def start(self) -> None:
        self.mailbox.loop = asyncio.get_running_loop()
        self.sink = Controller(SinkHandler(self.mailbox), hostname="127.0.0.1", port=self.ports["smtp"])
        self.sink.start()
        for name in SERVICES:
            self.procs.append(spawn([sys.executable, "-m", f"guanxi_{name}"], self.env[name], self.dir / f"{name}.log"))
        for name in SERVICES:
            await wait_ready(self.urls[name] + "/readyz", timeout=120)
        self.procs.append(spawn([sys.executable, "-m", "guanxi_gateway"], self.env["gateway"], self.dir / "gateway.log"))
        await wait_ready(self.urls["gateway"] + "/readyz", timeout=90)
        self.procs.append(spawn([sys.executable, "-m", "guanxi_console"], self.env["console"], self.dir / "console.log"))
        await wait_ready(self.urls["console"] + "/readyz", timeout=90)
        self.api = httpx.AsyncClient(base_url=self.urls["gateway"], timeout=60,
                                     limits=httpx.Limits(max_connections=16, max_keepalive_connections=16))

    def _as(self, subject: str, role: str = "agent", team: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(subject, role, team)}"}

    async def register_customers(self, count: int = CUSTOMERS) -> float:
        headers = self._as("bench-intake", "agent")
        started = time.perf_counter()

        async def one(i: int) -> str:
            r = await self.client.post("/api/v1/customers", headers=headers, json={
                "name": f"基准客户 {i:04d}", "phone": f"+86139{i:08d}", "email": f"c{i}.{self.suffix}@example.com",
                "consents": ["service"]})
            r.raise_for_status()
            return str(r.json()["id"])

        self.customers = await bounded([partial(one, i) for i in range(count)], 8)
        return time.perf_counter() - started

    def plan_cases(self, count: int = CASES, seed: int = 20261124) -> list[dict[str, Any]]:
        """The complaints to file: received over the last 12 hours, categories (hence teams), severities and
        channels mixed; deterministic for a given seed."""
        rng = random.Random(seed)
        now = datetime.now(UTC)
        weights = [w for _, w in SEVERITIES]
        out = []
        for i in range(count):
            category = CATEGORIES[i % len(CATEGORIES)]
            out.append({"complaint_id": str(uuid.uuid4()), "customer_id": self.customers[i % len(self.customers)],
                        "channel": rng.choice(CHANNELS), "category": category,
                        "severity": rng.choices([s for s, _ in SEVERITIES], weights)[0],
                        "description": f"基准投诉 {i}：订单重复扣款，客户要求退款并说明原因。",
                        "received_at": (now - timedelta(seconds=rng.uniform(60, 12 * 3600))).isoformat(),
                        "external_ref": f"bench-{self.suffix}-{i}", "team": TEAM_BY_CATEGORY.get(category, "team-north")})
        self.cases = out
        return out

    async def produce(self) -> float:
        """Every planned complaint as a ``complaint.received`` event, in one batch."""
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka, enable_idempotence=True, linger_ms=20,
                                    max_batch_size=512 * 1024)
        await producer.start()
        started = time.perf_counter()
        try:
            futures = []
            for case in self.cases:
                data = {k: v for k, v in case.items() if k != "team"}
                event = new_event(COMPLAINT_RECEIVED, case["customer_id"], data, source="bench-intake")
                futures.append(await producer.send(self.prefix + COMPLAINT_RECEIVED, event.to_json(),
                                                   key=case["customer_id"].encode()))
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return time.perf_counter() - started

    async def kpis(self) -> dict[str, Any]:
        """The complaints service's own count of the cases received in the run's window (``overall``,
        ``by_owner``, ``by_team``)."""
        now = datetime.now(UTC)
        window = {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
        r = await self.client.get("/api/v1/kpis/complaints", params=window,
                                  headers=self._as(SUPERVISOR[0], "supervisor", SUPERVISOR[1]))
        r.raise_for_status()
        return dict(r.json())

    async def wait_opened(self, count: int, timeout: float = 300) -> float:
        started = time.monotonic()
        opened = 0
        while time.monotonic() - started < timeout:
            with contextlib.suppress(httpx.HTTPError):
                opened = (await self.kpis())["overall"]["counts"]["open"]
                if opened >= count:
                    return time.monotonic() - started
            await asyncio.sleep(2)  # each count reads every case of the window: not too often
        raise TimeoutError(f"the complaints service had opened {opened} of {count} cases after {timeout:.0f} s")

    async def assign(self, per_agent: int = OWNED) -> float:
        """Each roster agent takes ``per_agent`` cases of their own team (the agent's own command)."""
        started = time.perf_counter()
        calls: list[Callable[[], Awaitable[str]]] = []
        for agent, team in AGENTS.items():
            mine = [c["complaint_id"] for c in self.cases if c["team"] == team][AGENTS_ORDER[agent]::2][:per_agent]
            self.owned[agent] = mine
            headers = self._as(agent, "agent", team)
            for cid in mine:
                async def take(cid: str = cid, headers: dict[str, str] = headers, agent: str = agent) -> str:
                    r = await self.client.post(f"/api/v1/complaints/{cid}/assign", headers=headers,
                                               json={"owner": agent})
                    r.raise_for_status()
                    return cid
                calls.append(take)
        await bounded(calls, 8)
        return time.perf_counter() - started

    async def settle(self, timeout: float = 180) -> float:
        """Until the customer service has taken in every ``complaint.registered`` (its timeline and last
        contact of 2000 cases): the largest piece of background work the fill leaves."""
        started = time.monotonic()
        topic = self.prefix + COMPLAINT_REGISTERED
        # Partitions no case was keyed to have nothing to commit.
        ends = {p: end for p, end in (await end_offsets(self.kafka, topic)).items() if end > 0}
        await wait_group_done(self.kafka, self.env["customer"]["CUSTOMER_CONSUMER_GROUP"], topic, ends, timeout)
        return time.monotonic() - started

    async def api_lists(self, agent: str, loads: int) -> dict[str, Any]:
        """The queue's two complaints API calls, straight through the gateway, as the console makes them."""
        headers = self._as(agent, "agent", AGENTS[agent])
        common = {"limit": "100", "open": "true", "sort": "deadline"}
        out: dict[str, Any] = {}
        for name, extra in (("mine", {"owner": agent}), ("unassigned", {"owner": "none"}),
                            ("unassigned_team", {"owner": "none", "team": AGENTS[agent]})):
            times = []
            for i in range(loads + WARM_UP):
                t = time.perf_counter()
                r = await self.client.get("/api/v1/complaints", headers=headers, params={**common, **extra})
                r.raise_for_status()
                if i >= WARM_UP:
                    times.append((time.perf_counter() - t) * 1000)
            out[name] = {**summary(times), "items": len(r.json()["items"])}
        return out

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.aclose()
        await stop_processes(self.procs)
        if self.sink is not None:
            self.sink.stop()

    def logs(self) -> dict[str, str]:
        return log_tails(self.dir)


# Which half of a team's cases each of its two agents takes from (alternate cases: both get a spread of
# deadlines), so the two never pick the same case.
AGENTS_ORDER = {"alice": 0, "bob": 1, "chen": 0, "dong": 1}


async def bounded(calls: list[Callable[[], Awaitable[str]]], limit: int) -> list[str]:
    gate = asyncio.Semaphore(limit)

    async def run(call: Callable[[], Awaitable[str]]) -> str:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(run(c) for c in calls)))


async def navigate(page: Page, url: str) -> dict[str, Any]:
    response = await page.goto(url, wait_until="load")
    timing = dict(await page.evaluate(NAVIGATION_JS))
    timing["status"] = response.status if response is not None else None
    timing["server"] = timing["responseStart"] - timing["requestStart"]
    return timing


async def measure_pages(console_url: str, pages: dict[str, str], viewer: str, loads: int,
                        warm_up: int) -> dict[str, Any]:
    """Sign in through the roster, then ``warm_up`` + ``loads`` rounds, every page once per round."""
    from playwright.async_api import async_playwright

    driver = await async_playwright().start()
    try:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                                timezone_id="Asia/Shanghai")
            context.set_default_timeout(30_000)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(console_url + "/signin")
            await page.locator(f'button[data-subject="{viewer}"]').click()
            await page.wait_for_url(re.compile(r"/queue$"))
            rows: dict[str, list[dict[str, Any]]] = {name: [] for name in (*pages, "queue_lists")}
            for i in range(warm_up + loads):
                for name, path in pages.items():
                    timing = await navigate(page, console_url + path)
                    if i >= warm_up:
                        rows[name].append(timing)
                # The partial, fetched from a console page that does not poll (the queue page would poll
                # it by itself every CONSOLE_QUEUE_REFRESH_SECONDS meanwhile).
                if page.url != console_url + "/me":
                    await page.goto(console_url + "/me")
                fetched = dict(await page.evaluate(FETCH_JS, "/queue/lists"))
                if i >= warm_up:
                    rows["queue_lists"].append(fetched)
            version = browser.version
        finally:
            await browser.close()
    finally:
        await driver.stop()
    out: dict[str, Any] = {"chromium": version, "script_errors": errors[:5]}
    for name, path in pages.items():
        r = rows[name]
        out[name] = {"path": path, "response_start": summary(x["responseStart"] for x in r),
                     "dom_content_loaded": summary(x["domContentLoadedEventEnd"] for x in r),
                     "load": summary(x["loadEventEnd"] for x in r), "server": summary(x["server"] for x in r),
                     "bytes": r[-1]["bytes"] if r else None, "statuses": sorted({x["status"] for x in r}),
                     "alerts": sorted({x["alert"].strip() for x in r if x.get("alert")}),
                     "sections_unavailable": sorted({s for x in r for s in x["unavailable"]})}
        if name.startswith("queue"):
            out[name]["rows"] = {"mine": r[-1]["mine"], "unassigned": r[-1]["unassigned"]} if r else None
    q = rows["queue_lists"]
    out["queue_lists"] = {"path": "/queue/lists", "fetch": summary(x["ms"] for x in q), "server": summary(x["server"] for x in q),
                          "bytes": q[-1]["bytes"] if q else None, "rows": q[-1]["rows"] if q else None,
                          "statuses": sorted({x["status"] for x in q})}
    return out


async def run(kafka: str, mongodb_url: str, prefix: str, suffix: str, own: Iterable[int] = ()) -> dict[str, Any]:
    """The whole benchmark; the result for the JSON (``error`` and the services' logs when it failed)."""
    own = set(own)
    result: dict[str, Any] = {"cases": CASES, "customers": CUSTOMERS, "owned_per_agent": OWNED, "loads": LOADS,
                              "warm_up": WARM_UP, "viewer": VIEWER}
    if not CHROMIUM.exists():
        return {**result, "error": f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium fonts-noto-cjk)"}
    await create_topics(kafka, prefix, 1)
    bench = ConsoleBench(kafka, mongodb_url, prefix, suffix)
    result["logs"] = str(bench.dir)
    try:
        started = time.monotonic()
        await bench.start()
        fill: dict[str, Any] = {"start_s": round(time.monotonic() - started, 1)}
        fill["register_customers_s"] = round(await bench.register_customers(), 1)
        bench.plan_cases()
        fill["produce_s"] = round(await bench.produce(), 2)
        say(f"{CASES} complaint.received produced in {fill['produce_s']} s; waiting for the complaints service")
        fill["opened_s"] = round(await bench.wait_opened(CASES), 1)
        fill["assign_s"] = round(await bench.assign(), 1)
        try:
            fill["settle_s"] = round(await bench.settle(), 1)
        except TimeoutError as exc:  # measured anyway, after the quiet check; the result says so
            fill["settle_s"] = None
            fill["settle_error"] = str(exc)
        kpis = await bench.kpis()
        result["store"] = {"open": kpis["overall"]["counts"]["open"], "received": kpis["overall"]["counts"]["received"],
                           "open_by_owner": {k: v["counts"]["open"] for k, v in kpis["by_owner"].items()},
                           "open_by_team": {k: v["counts"]["open"] for k, v in kpis["by_team"].items()}}
        result["fill"] = fill
        say(f"store: {result['store']}; fill {fill}")
        owned = bench.owned[VIEWER]
        case_id = owned[len(owned) // 2]
        customer_id = next(c["customer_id"] for c in bench.cases if c["complaint_id"] == case_id)
        result["shown"] = {"complaint": case_id, "customer": customer_id,
                           "customer_cases": sum(c["customer_id"] == customer_id for c in bench.cases)}
        result["quiet"] = await asyncio.to_thread(quiet.wait_until_quiet, quiet.QUIET_WAIT, own, say)
        usage = quiet.Usage(own)
        usage.start()
        pages = {"queue": "/queue", "queue_all": "/queue?scope=all", "complaint": f"/complaints/{case_id}",
                 "customer": f"/customers/{customer_id}"}
        result["pages"] = await measure_pages(bench.urls["console"], pages, VIEWER, LOADS, WARM_UP)
        result["api"] = await bench.api_lists(VIEWER, LOADS)
        result["machine"] = usage.stop()
        result["mails"] = bench.mailbox.mails
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["service_logs"] = bench.logs()
    finally:
        await bench.stop()
    return result


def describe(result: dict[str, Any]) -> list[str]:
    """The table's lines (label, figures)."""
    pages = result.get("pages") or {}
    out = []
    for name, label in (("queue", "/queue"), ("queue_all", "/queue?scope=all"), ("complaint", "/complaints/{id}"),
                        ("customer", "/customers/{id} (360)")):
        p = pages.get(name)
        if p:
            out.append(f"  {label:<32}load p50 {p['load']['p50']:>6.0f} p95 {p['load']['p95']:>6.0f} ms; first byte "
                       f"p50 {p['response_start']['p50']:.0f} p95 {p['response_start']['p95']:.0f}; DOMContentLoaded "
                       f"p50 {p['dom_content_loaded']['p50']:.0f} p95 {p['dom_content_loaded']['p95']:.0f}; server "
                       f"p50 {p['server']['p50']:.0f} p95 {p['server']['p95']:.0f}")
    q = pages.get("queue_lists")
    if q:
        out.append(f"  {'/queue/lists (htmx partial)':<32}fetch p50 {q['fetch']['p50']:>5.0f} p95 {q['fetch']['p95']:>6.0f} ms; "
                   f"server p50 {q['server'].get('p50', float('nan')):.0f} p95 {q['server'].get('p95', float('nan')):.0f}")
    labels = {"mine": "API: my open cases", "unassigned": "API: unassigned", "unassigned_team": "API: my team's unassigned"}
    for name, a in (result.get("api") or {}).items():
        out.append(f"  {labels.get(name, name):<32}p50 {a['p50']:>9.0f} p95 {a['p95']:>6.0f} ms ({a['items']} items, "
                   f"GET /api/v1/complaints through the gateway)")
    return out


async def _standalone() -> dict[str, Any]:
    """``python -m bench.console``: this benchmark alone, on the benchmark instance, cleaned up after."""
    from .__main__ import cleanup
    from .common import run_id, target

    where = target()
    rid = run_id()
    result = await run(where.kafka, where.mongodb_url, f"{rid}.", rid, quiet.own_groups(where.run_dir))
    print(json.dumps(result, indent=2, default=str), flush=True)
    print("\n".join(describe(result)), flush=True)
    try:
        await asyncio.wait_for(cleanup(where.kafka, where.mongodb_url, f"{rid}.", rid), 60)
    except TimeoutError:
        print("cleanup took longer than 60 s; leftovers stay in the benchmark instance", file=sys.stderr)
    return result


if __name__ == "__main__":
    asyncio.run(_standalone())
