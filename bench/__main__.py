"""``make bench``: ceiling, ingest, naive peer, gateway, scaling, latency and console, on one machine.

Prints a table, writes the full results to ``bench/results/<timestamp>.json`` and prints the
headline figures as one JSON object on the last line. Sizes via environment variables:
``GUANXI_BENCH_EVENTS`` (backlog of the ceiling and ingest runs, default 6000), ``GUANXI_BENCH_CUSTOMERS`` (keys, 600),
``GUANXI_BENCH_PARTITIONS`` (of purchase.completed, 6), ``GUANXI_BENCH_REPEATS`` (of the ceiling, ingest and the
gateway rounds, 5), ``GUANXI_BENCH_NAIVE_EVENTS`` (3000) and ``GUANXI_BENCH_NAIVE_REPEATS`` (3) for the naive peer,
``GUANXI_BENCH_CAP`` (seconds a run may take, 120), ``GUANXI_BENCH_HTTP_SECONDS`` (8),
``GUANXI_BENCH_SCALING_PARTITIONS`` (partition counts of the scaling runs, ``1,6,12``; each is run with
one and with two instances of each service), ``GUANXI_BENCH_SCALING_EVENTS`` (their backlog, 3000),
``GUANXI_BENCH_ONLY`` (e.g. ``ceiling,ingest,scaling``), ``GUANXI_BENCH_WARM_UP_EVENTS`` (backlog of the one unmeasured
run of the ceiling and of ingest first, 1000; 0 for none), ``GUANXI_BENCH_QUIET_WAIT`` (seconds to wait for a
quiet machine before measuring, 60; see ``bench/quiet.py``); the console's page timings have their own
(``GUANXI_BENCH_CONSOLE_CASES``, 2000 open cases, ``GUANXI_BENCH_CONSOLE_LOADS``, 20; see ``bench/console.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import platform as stdlib_platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from guanxi_shared.topics import PURCHASE_COMPLETED
from pymongo import AsyncMongoClient

from . import ceiling, console, ingest, latency, naive, quiet
from .common import ROOT, create_topics, delete_topics, fill_backlog, run_id, target
from .gateway import GatewayBench, free_port, spawn

# 6000 (was 3000): a ceiling or ingest run measured only ~2.5-3.5 s, so what is fixed per run (the join and
# the end seen by 50 ms polls, the last 500-record batch, a scheduler pass) was a visible share; twice the
# backlog halves it.
EVENTS = int(os.environ.get("GUANXI_BENCH_EVENTS", "6000"))
CUSTOMERS = int(os.environ.get("GUANXI_BENCH_CUSTOMERS", "600"))
PARTITIONS = int(os.environ.get("GUANXI_BENCH_PARTITIONS", "6"))
# Ceiling and ingest runs, and gateway rounds; the median is reported, the per-repeat ratios beside it.
REPEATS = int(os.environ.get("GUANXI_BENCH_REPEATS", "5"))
# The naive peer runs ~50 s on 3000 purchases (~60 events/s): already long enough to be steady, and 6000
# purchases or five repeats of it would add 2-6 minutes to `make bench` for a figure 15 x away from its target.
NAIVE_EVENTS = int(os.environ.get("GUANXI_BENCH_NAIVE_EVENTS", "3000"))
NAIVE_REPEATS = int(os.environ.get("GUANXI_BENCH_NAIVE_REPEATS", "3"))
# Larger than the main backlog: with two instances the clock starts once both are in the group.
SCALING_EVENTS = int(os.environ.get("GUANXI_BENCH_SCALING_EVENTS", "3000"))
SCALING_PARTITIONS = [int(p) for p in os.environ.get("GUANXI_BENCH_SCALING_PARTITIONS", "1,6,12").split(",") if p.strip()]
CAP = float(os.environ.get("GUANXI_BENCH_CAP", "120"))
# One unmeasured run of the ceiling and of ingest first, on a backlog of this size (0: none).
WARM_UP_EVENTS = int(os.environ.get("GUANXI_BENCH_WARM_UP_EVENTS", "1000"))
HTTP_SECONDS = int(os.environ.get("GUANXI_BENCH_HTTP_SECONDS", "8"))
HTTP_CONNECTIONS = int(os.environ.get("GUANXI_BENCH_HTTP_CONNECTIONS", "32"))
# Comma-separated subset of ceiling, ingest, naive, gateway, scaling, latency, console (default: all of them).
ONLY = {n.strip() for n in os.environ.get("GUANXI_BENCH_ONLY", "").split(",") if n.strip()}
# The ceiling and the naive peer publish their follow-ups here, where no service listens.
FOLLOW_UPS = "bench.follow_ups"
RESULTS = ROOT / "bench" / "results"


def fmt_runs(rows: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> str:
    """Each run's figure, marked * when other processes took more CPU than a quiet machine leaves them."""
    return "  ".join(f"{value(r):.0f}{'*' if (r.get('machine') or {}).get('disturbed') else ''}" for r in rows)


def paired(numerators: list[dict[str, Any]], denominators: list[dict[str, Any]]) -> list[float | None]:
    """Per repeat, one variant's figure over the other's in the same repeat (None when that one measured 0)."""
    by_repeat = {r.get("repeat"): r["eps"] for r in denominators}
    return [round(r["eps"] / by_repeat[r.get("repeat")], 3) if by_repeat.get(r.get("repeat")) else None
            for r in numerators if r.get("repeat") in by_repeat]


def spread(values: list[float | None]) -> dict[str, Any]:
    known = [v for v in values if v is not None]
    return {"values": values, "min": min(known) if known else None, "max": max(known) if known else None}


def others(machine: dict[str, Any]) -> str:
    if "others_cpu" not in machine:
        return "others' CPU not measured"
    top = ", ".join(f"{p['command'][:40]} {p['cores']:.2f}" for p in machine["top_others"][:2] if p["cores"] >= 0.05)
    return (f"{'DISTURBED: ' if machine['disturbed'] else ''}other processes {machine['others_cpu']:.2f} CPU"
            f"{' (' + top + ')' if top else ''}")


def warn_busy(figures: dict[str, Any]) -> None:
    print(f"[bench] WARNING: the machine was not quiet before measuring ({'; '.join(figures['reasons'])}, still after "
          f"{figures['waited_s']:.0f} s): the figures may be low and uneven. Busiest processes over the last "
          f"{figures['seconds']:.0f} s sample:", flush=True)
    for i, p in enumerate(figures["top"], 1):
        print(f"[bench]   {i}. {p['cores'] * 100:3.0f} % of a CPU  pid {p['pid']}  {p['command']}"
              f"{'  (the benchmark)' if p['ours'] else ''}", flush=True)


def wanted(variant: str) -> bool:
    return not ONLY or variant in ONLY


def say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


async def committed(admin: AIOKafkaAdminClient, group: str, topic: str) -> int:
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError:  # a fresh broker creates its offsets topic on first use
        return 0
    return sum(max(m.offset, 0) for tp, m in offsets.items() if tp.topic == topic)


async def joined(admin: AIOKafkaAdminClient, group: str, members: int = 1) -> bool:
    """The group has ``members`` members with partitions assigned (consumption can start)."""
    try:
        responses = await admin.describe_consumer_groups([group])
    except KafkaError:
        return False
    return any(g["state"] == "Stable" and len(g["members"]) >= members
               for r in responses for g in r.to_object()["groups"] if g["group"] == group)


async def measure(kafka: str, groups: list[str], topic: str, total: int, started: float,
                  members: int = 1) -> dict[str, Any]:
    """Time from the moment each group has joined (its consumers are assigned partitions) until it has
    committed the whole backlog (= every effect stored: the services commit only after storing).
    Counting from the join, not from the launch, keeps process start-up (imports, connections) out of
    the figure for every variant alike. With ``members`` > 1 (scale-out) the clock starts once that
    many members share the group, and counts only what was committed after that moment: the first
    instance's head start and the join's rebalance stay out of the figure. A group that has not
    finished within CAP seconds is reported as stalled with how far it got, and left out of the rate
    rather than hanging the whole run."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    joined_at: dict[str, float] = {}
    finished: dict[str, float] = {}
    progress: dict[str, int] = {}
    at_join: dict[str, int] = {}
    try:
        while len(finished) < len(groups) and time.monotonic() - started < CAP:
            for g in groups:
                # A group that finished before ever looking stable keeps the launch as its start.
                if g not in joined_at and g not in finished and await joined(admin, g, members):
                    joined_at[g] = time.monotonic()
                    at_join[g] = await committed(admin, g, topic) if members > 1 else 0
                if g not in finished:
                    progress[g] = await committed(admin, g, topic)
                    if progress[g] >= total:
                        finished[g] = time.monotonic()
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    # A group that joined and finished between two polls counts from the launch (the pessimistic choice).
    since = {g: joined_at.get(g, started) for g in groups}
    stalled = {g: progress.get(g, 0) for g in groups if g not in finished}
    # A group whose first instance had already committed the whole backlog when the last one joined has
    # no rate after the join to report (it is not a rate of 0): it is named apart and left out of the minimum.
    done_before_join = sorted(g for g in finished if at_join.get(g, 0) >= total)
    rates = {g: (total - at_join.get(g, 0)) / (finished[g] - since[g]) for g in finished if g not in done_before_join}
    # A group cut off at CAP still shows its rate so far; one that stored nothing does not count.
    rates.update({g: n / (started + CAP - since[g]) for g, n in stalled.items() if n > 0})
    return {"eps": min(rates.values()) if rates else 0.0, "per_group": rates, "committed_at_start": at_join,
            "done_before_join": done_before_join,
            "seconds": {g: finished[g] - since[g] for g in finished},
            "startup_seconds": {g: since[g] - started for g in groups}, "stalled": stalled, "events": total}


async def run_ceiling(kafka: str, mongo: str, prefix: str, suffix: str, events: int = EVENTS) -> dict[str, Any]:
    stop = asyncio.Event()
    started = time.monotonic()
    group = f"bench-ceiling-{suffix}"
    task = asyncio.create_task(ceiling.run(kafka, mongo, f"bench_ceiling_{suffix}", prefix + PURCHASE_COMPLETED,
                                           prefix + FOLLOW_UPS, group, stop))
    try:
        return await measure(kafka, [group], prefix + PURCHASE_COMPLETED, events, started)
    finally:
        stop.set()
        await task


async def run_naive(kafka: str, mongo: str, prefix: str, suffix: str, events: int = NAIVE_EVENTS) -> dict[str, Any]:
    group = f"bench-naive-{suffix}"
    started = time.monotonic()
    broker, client = naive.build(kafka, mongo, f"bench_naive_{suffix}", prefix + PURCHASE_COMPLETED,
                                 prefix + FOLLOW_UPS, group)
    await broker.start()
    try:
        return await measure(kafka, [group], prefix + PURCHASE_COMPLETED, events, started)
    finally:
        await broker.stop()
        await client.close()


async def run_ingest(kafka: str, mongo: str, prefix: str, suffix: str, events: int = EVENTS,
                     instances: int = 1) -> dict[str, Any]:
    """The real services as separate processes (as deployed: each its own process and group);
    ``instances`` processes of each service share its group (scale-out)."""
    customer, surveys = ingest.settings_for(kafka, mongo, prefix, suffix)
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka, "MONGODB_URL": mongo, "GUANXI_TOPIC_PREFIX": prefix,
           "LOG_LEVEL": os.environ.get("GUANXI_BENCH_SERVICE_LOG_LEVEL", "WARNING"),
           "CUSTOMER_MONGODB_DATABASE": customer.mongodb_database, "CUSTOMER_CONSUMER_GROUP": customer.consumer_group,
           "CUSTOMER_HTTP_PORT": str(free_port()),
           "SURVEYS_MONGODB_DATABASE": surveys.mongodb_database, "SURVEYS_CONSUMER_GROUP": surveys.consumer_group,
           "SURVEYS_HTTP_PORT": str(free_port())}
    logs = Path(tempfile.mkdtemp(prefix="guanxi-bench-ingest-"))
    started = time.monotonic()
    procs = [spawn([sys.executable, "-m", f"guanxi_{name}"],
                   {**env, "CUSTOMER_HTTP_PORT": str(free_port()), "SURVEYS_HTTP_PORT": str(free_port())},
                   logs / f"{name}{i}.log")
             for name in ("customer", "surveys") for i in range(instances)]
    try:
        result = await measure(kafka, [customer.consumer_group, surveys.consumer_group], prefix + PURCHASE_COMPLETED, events,
                               started, members=instances)
        result["logs"] = str(logs)
        return result
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                await asyncio.to_thread(p.wait, 30)
            except subprocess.TimeoutExpired:
                p.kill()


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": sys.version.split()[0], "machine": stdlib_platform.machine(),
                           "cpus": os.cpu_count(), "kernel": stdlib_platform.release()}
    with contextlib.suppress(OSError):
        out["cpu"] = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name")), "?")
    for pkg in ("faststream", "aiokafka", "pymongo", "fastapi", "uvicorn", "pydantic", "opentelemetry-sdk"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[pkg] = importlib.metadata.version(pkg)
    libs = ROOT / ".local" / "kafka" / "libs"
    out["kafka"] = next((p.name[len("kafka_2.13-"):-4] for p in libs.glob("kafka_2.13-*.jar")), "?") if libs.exists() else "?"
    # The local store is our own small build of the FerretDB module (deploy/local/ferretdb), which has no --version.
    go_mod = ROOT / "deploy" / "local" / "ferretdb" / "go.mod"
    required = re.search(r"github\.com/FerretDB/FerretDB (\S+)", go_mod.read_text()) if go_mod.exists() else None
    out["ferretdb"] = f"{required.group(1)} (local build with infra.FERRETDB_FIXES)" if required else "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out["wrk"] = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5).stdout.split("\n")[0]
    return out


async def main() -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("aiokafka", "faststream", "guanxi"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("OTEL_SDK_DISABLED", "false")
    began = time.monotonic()
    where = target()
    # The benchmark instance's Kafka and FerretDB are ours (their CPU is part of what is measured).
    own = quiet.own_groups(where.run_dir)
    rid = run_id()
    prefix = f"{rid}."
    say(f"infrastructure: {where.origin} (kafka {where.kafka}, store {where.mongodb_url}); run {rid}")
    await create_topics(where.kafka, prefix, PARTITIONS)
    say(f"backlog of every run: {EVENTS} purchases over {CUSTOMERS} customers ({NAIVE_EVENTS} for the naive peer), "
        f"{PARTITIONS} partitions; {REPEATS} repeats ({min(NAIVE_REPEATS, REPEATS)} of the naive peer)")

    # Each is called with the size of the backlog it finds: measure() waits until that many are committed.
    variants: dict[str, Callable[[str, str, str, str, int], Awaitable[dict[str, Any]]]] = {
        "ceiling": run_ceiling, "ingest": run_ingest, "naive": run_naive}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    missing_effects: list[str] = []
    order = [name for name in variants if wanted(name)]
    warm: list[str] = [name for name in ("ceiling", "ingest") if name in order]
    if warm and WARM_UP_EVENTS > 0:
        # Not counted: a freshly started broker and store (JIT, caches, first files) made the first repeat
        # of whatever ran first the slowest of its three (seen: 0.76 then 0.80 and 0.84 of the ceiling).
        for name in warm:
            warm_prefix = f"{prefix}w{name[0]}."
            await create_topics(where.kafka, warm_prefix, PARTITIONS)
            await fill_backlog(where.kafka, warm_prefix + PURCHASE_COMPLETED, WARM_UP_EVENTS, CUSTOMERS)
            with contextlib.suppress(TimeoutError):
                # Told the backlog's size: it used to wait for EVENTS commits on a backlog of WARM_UP_EVENTS,
                # i.e. sat out the whole cap (2 x 120 s of every `make bench` until session 6).
                await asyncio.wait_for(variants[name](where.kafka, where.mongodb_url, warm_prefix, f"{rid}_warm_{name}",
                                                      WARM_UP_EVENTS),
                                       timeout=CAP + 60)
        say(f"warm-up (not counted): {', '.join(warm)} on {WARM_UP_EVENTS} purchases each")
    # Right before measuring (after the warm-up, whose load is ours): wait a bounded time for a quiet machine,
    # then measure either way and record what was found.
    machine: dict[str, Any] = {"cpus": os.cpu_count(),
                               "quiet": await asyncio.to_thread(quiet.wait_until_quiet, quiet.QUIET_WAIT, own, say)}
    say(f"machine before measuring: {quiet.describe(machine['quiet'])}")
    if machine["quiet"].get("quiet") is False:
        warn_busy(machine["quiet"])
    for repeat in range(REPEATS):
        for name in order if repeat % 2 == 0 else list(reversed(order)):
            if name == "naive" and repeat >= NAIVE_REPEATS:
                continue
            events = NAIVE_EVENTS if name == "naive" else EVENTS
            suffix = f"{rid}_{name}_{repeat}"
            # Every run gets topics of its own and the same backlog (same shape) in them: with one set of
            # topics for all runs, a later ingest run also found the tier changes and surveys of the earlier
            # ones waiting on the services' other topics, and spent its time on those.
            run_prefix = f"{prefix}{name[0]}{repeat}."
            await create_topics(where.kafka, run_prefix, PARTITIONS)
            fill_s = await fill_backlog(where.kafka, run_prefix + PURCHASE_COMPLETED, events, CUSTOMERS)
            usage = quiet.Usage(own)
            usage.start()
            try:
                # A hard cap: a service that stalls (or hangs while stopping) must not hang the benchmark.
                result = await asyncio.wait_for(variants[name](where.kafka, where.mongodb_url, run_prefix, suffix, events),
                                                timeout=CAP + 60)
            except TimeoutError:
                result = {"eps": 0.0, "per_group": {}, "stalled": {"(timed out)": 0}, "seconds": {}, "events": events}
            result["machine"] = usage.stop()
            result["repeat"] = repeat + 1
            result["fill_s"] = round(fill_s, 2)
            result["stored"] = await stored_effects(where.mongodb_url, name, suffix)
            if any(n != events for n in result["stored"].values()):
                missing_effects.append(f"{name} repeat {repeat + 1}: {result['stored']}")
            runs[name].append(result)
            say(f"repeat {repeat + 1}/{REPEATS} {name:<8} {result['eps']:8.1f} events/s  "
                f"({result['per_group']}; stalled: {result['stalled']}; stored: {result['stored']}; "
                f"{others(result['machine'])})")

    gateway: dict[str, Any] = {"rounds": []}
    if wanted("gateway"):
        gw = GatewayBench(where.kafka, where.mongodb_url, prefix, rid)
        try:
            await gw.start()
            for repeat in range(REPEATS):
                usage = quiet.Usage(own)
                usage.start()
                round_ = await gw.measure(HTTP_SECONDS, HTTP_CONNECTIONS)
                round_["machine"] = usage.stop()
                gateway["rounds"].append(round_)
                g, b, m = round_["gateway"], round_["baseline"], round_["memory"]
                say(f"repeat {repeat + 1}/{REPEATS} gateway {g['rps']:.0f} rps (p99 {g['p99_ms']:.1f} ms), "
                    f"plain store baseline {b['rps']:.0f} rps (p99 {b['p99_ms']:.1f} ms), "
                    f"from memory {m['rps']:.0f} rps (p99 {m['p99_ms']:.1f} ms); {others(round_['machine'])}")
        except Exception as exc:
            gateway["error"] = f"{type(exc).__name__}: {exc}"
            gateway["logs"] = gw.logs()
            say(f"gateway benchmark failed: {gateway['error']}")
        finally:
            gw.stop()

    scaling: list[dict[str, Any]] = []
    if wanted("scaling"):
        # The same backlog on topics of 1, 6, 12... partitions, consumed by one and by two instances of
        # each service (same groups): how throughput grows with partitions and with a second instance.
        for parts in SCALING_PARTITIONS:
            sp = f"{prefix}s{parts}."
            await create_topics(where.kafka, sp, parts)
            await fill_backlog(where.kafka, sp + PURCHASE_COMPLETED, SCALING_EVENTS, CUSTOMERS)
            for instances in (1, 2):
                usage = quiet.Usage(own)
                usage.start()
                try:
                    r = await asyncio.wait_for(run_ingest(where.kafka, where.mongodb_url, sp,
                                                          f"{rid}_scale{parts}x{instances}", instances=instances,
                                                          events=SCALING_EVENTS),
                                               timeout=CAP + 60)
                except TimeoutError:
                    r = {"eps": 0.0, "per_group": {}, "stalled": {"(timed out)": 0}}
                scaling.append({"partitions": parts, "instances": instances, "events": SCALING_EVENTS, "eps": r["eps"],
                                "per_group": r["per_group"], "committed_at_start": r.get("committed_at_start"),
                                "done_before_join": r.get("done_before_join", []), "stalled": r["stalled"],
                                "machine": usage.stop()})
                say(f"scaling: {parts:>2} partitions, {instances} instance(s) of each service: {r['eps']:.1f} events/s "
                    f"({r['per_group']}; committed before all had joined: {r.get('committed_at_start')}; "
                    f"done before all had joined: {r.get('done_before_join', [])}; stalled: {r['stalled']}; "
                    f"{others(scaling[-1]['machine'])})")

    lat: dict[str, Any] = {"measured": False, "reason": "not selected (GUANXI_BENCH_ONLY)"}
    if wanted("latency"):
        say("latency: complaint over HTTP → acknowledgement email (closed-loop capacity, then open loop)")
        usage = quiet.Usage(own)
        usage.start()
        try:
            lat = await asyncio.wait_for(latency.run(where.kafka, where.mongodb_url, f"{prefix}lat.", rid),
                                         timeout=latency.BUDGET)
        except TimeoutError:
            lat = {"error": f"timed out after {latency.BUDGET:.0f} s"}
        lat["machine"] = usage.stop()
        say(f"latency: capacity {lat.get('capacity')}; open loop {lat.get('open_loop')}; error {lat.get('error')}; "
            f"{others(lat['machine'])}")
    ack = lat.get("open_loop") or {}

    con: dict[str, Any] = {"measured": False, "reason": "not selected (GUANXI_BENCH_ONLY)"}
    if wanted("console"):
        say(f"console: {console.CASES} open complaints in the store, then page timings in chromium "
            f"({console.WARM_UP} + {console.LOADS} loads of each page)")
        try:
            con = await asyncio.wait_for(console.run(where.kafka, where.mongodb_url, f"{prefix}con.", rid, own),
                                         timeout=console.BUDGET)
        except TimeoutError:
            con = {"cases": console.CASES, "error": f"timed out after {console.BUDGET:.0f} s"}
        if con.get("error"):
            say(f"console benchmark failed: {con['error']} (logs: {con.get('logs')})")
        else:
            say(f"console: store {con['store']}; {others(con.get('machine') or {})}")
    con_queue = ((con.get("pages") or {}).get("queue") or {}).get("load") or {}

    def best(name: str) -> float:
        return max(r["eps"] for r in runs[name]) if runs[name] else float("nan")

    def median(values: list[float]) -> float:
        s = sorted(values)
        if not s:
            return float("nan")
        mid = len(s) // 2
        return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2

    ceiling_eps, ingest_eps, naive_eps = (median([r["eps"] for r in runs[n]]) for n in ("ceiling", "ingest", "naive"))
    gw_rps = median([r["gateway"]["rps"] for r in gateway["rounds"]]) if gateway["rounds"] else None
    base_rps = median([r["baseline"]["rps"] for r in gateway["rounds"]]) if gateway["rounds"] else None
    headline = {
        "ingest_eps": round(ingest_eps, 1),
        "ceiling_eps": round(ceiling_eps, 1),
        "naive_eps": round(naive_eps, 1),
        "ingest_ratio": round(ingest_eps / ceiling_eps, 3) if ceiling_eps else None,
        "ingest_vs_naive": round(ingest_eps / naive_eps, 2) if naive_eps else None,
        "ack_p99_ms": ack.get("p99_ms"),
        "gateway_rps": round(gw_rps, 1) if gw_rps else None,
        "gateway_ratio": round(gw_rps / base_rps, 3) if gw_rps and base_rps else None,
        # The queue page with CASES open cases: p95 of the browser's loadEventEnd.
        "console_queue_p95_ms": con_queue.get("p95"),
    }
    # Each repeat's ingest against the ceiling run next to it (and each gateway round against its baseline):
    # the spread shows how far one run can be trusted.
    ratios = {"ingest_ceiling": spread(paired(runs["ingest"], runs["ceiling"])),
              "gateway_baseline": spread([round(r["gateway"]["rps"] / r["baseline"]["rps"], 3) if r["baseline"]["rps"] else None
                                          for r in gateway["rounds"]])}
    headline.update({"ingest_ratio_min": ratios["ingest_ceiling"]["min"], "ingest_ratio_max": ratios["ingest_ceiling"]["max"],
                     "gateway_ratio_min": ratios["gateway_baseline"]["min"],
                     "gateway_ratio_max": ratios["gateway_baseline"]["max"],
                     "quiet": machine["quiet"].get("quiet")})
    measured = [(f"{name} repeat {r['repeat']}", r.get("machine") or {}) for name in runs for r in runs[name]]
    measured += [(f"gateway round {i + 1}", r.get("machine") or {}) for i, r in enumerate(gateway["rounds"])]
    measured += [(f"scaling {r['partitions']} x {r['instances']}", r.get("machine") or {}) for r in scaling]
    if lat.get("machine"):
        measured.append(("latency", lat["machine"]))
    if con.get("machine"):
        measured.append(("console", con["machine"]))
    machine["disturbed"] = [label for label, m in measured if m.get("disturbed")]
    busiest = max(((m["others_cpu"], label) for label, m in measured if "others_cpu" in m), default=None)
    machine["others_cpu_max"] = {"cpu": busiest[0], "during": busiest[1]} if busiest else None
    machine["wall_s"] = round(time.monotonic() - began, 1)
    full = {"run": rid, "at": datetime.now(UTC).isoformat(), "infrastructure": where.origin,
            "settings": {"events": EVENTS, "customers": CUSTOMERS, "partitions": PARTITIONS, "repeats": REPEATS,
                         "naive_events": NAIVE_EVENTS, "naive_repeats": min(NAIVE_REPEATS, REPEATS),
                         "warm_up_events": WARM_UP_EVENTS, "cap_s": CAP, "http_seconds": HTTP_SECONDS,
                         "http_connections": HTTP_CONNECTIONS, "batch_max_records": 500,
                         "quiet_wait_s": quiet.QUIET_WAIT},
            "versions": versions(), "machine": machine, "runs": runs, "ratios": ratios, "gateway": gateway,
            "best": {n: best(n) for n in runs},
            "scaling": scaling,
            "latency": lat,
            "console": con,
            "missing_effects": missing_effects,
            "headline": headline}

    print()
    print(f"{'benchmark':<34}{'median':>12}{'runs (* = disturbed)':>36}")
    for name, label in (("ceiling", "ceiling (raw aiokafka, bulk_write)"), ("ingest", "ingest (customer + surveys)"),
                        ("naive", "naive FastStream peer")):
        print(f"{label:<34}{headline[name + '_eps']:>9} e/s{fmt_runs(runs[name], lambda r: r['eps']):>36}")
    if gateway["rounds"]:
        print(f"{'gateway GET /customers/{id}':<34}{gw_rps:>9.0f} rps"
              f"{fmt_runs(gateway['rounds'], lambda r: r['gateway']['rps']):>36}")
        print(f"{'plain FastAPI + store baseline':<34}{base_rps:>9.0f} rps"
              f"{fmt_runs(gateway['rounds'], lambda r: r['baseline']['rps']):>36}")
        mem_rps = median([r["memory"]["rps"] for r in gateway["rounds"]])
        print(f"{'(FastAPI from memory, reference)':<34}{mem_rps:>9.0f} rps"
              f"{fmt_runs(gateway['rounds'], lambda r: r['memory']['rps']):>36}")
    for key, label, median_ratio in (("ingest_ceiling", "ingest / ceiling, per repeat", headline["ingest_ratio"]),
                                     ("gateway_baseline", "gateway / baseline, per round", headline["gateway_ratio"])):
        row = ratios[key]
        if row["values"]:
            values = "  ".join("—" if v is None else f"{v:.2f}" for v in row["values"])
            print(f"{label:<34}{median_ratio!s:>9}    {values:>36}   min {row['min']}, max {row['max']}")
    for row in scaling:
        label = f"ingest, {row['partitions']} partitions, {row['instances']} inst."
        early = "  (" + ", ".join(g.split("-")[1] for g in row["done_before_join"]) + " done before the join)" \
            if row.get("done_before_join") else ""
        print(f"{label:<34}{row['eps']:>9.1f} e/s{early}")
    if ack:
        detail = f"p50 {ack['p50_ms']:.0f}, p95 {ack['p95_ms']:.0f} at {ack['rate_per_s']}/s, lost {ack['lost']}"
        print(f"{'complaint ack email p99':<34}{ack['p99_ms']:>9.0f} ms{detail:>42}")
    if con_queue:
        store = con.get("store") or {}
        print(f"{'console /queue load p95':<34}{con_queue['p95']:>9.0f} ms   with {store.get('open')} open cases, "
              f"{con['loads']} loads per page after {con['warm_up']} (chromium {con['pages'].get('chromium')})")
        for line in console.describe(con):
            print(line)
    elif con.get("error"):
        print(f"console page timings: failed ({con['error']})")
    print(f"ratios: ingest/ceiling {headline['ingest_ratio']} (per repeat {headline['ingest_ratio_min']}–"
          f"{headline['ingest_ratio_max']}), ingest/naive {headline['ingest_vs_naive']}, "
          f"gateway/baseline {headline['gateway_ratio']} (per round {headline['gateway_ratio_min']}–"
          f"{headline['gateway_ratio_max']})")
    print(f"machine before measuring: {quiet.describe(machine['quiet'])}")
    if machine["others_cpu_max"]:
        top = machine["others_cpu_max"]
        print(f"other processes during the runs: at most {top['cpu']:.2f} CPU ({top['during']}); disturbed (> "
              f"{(100 - quiet.MIN_IDLE_PCT) / 100 * (os.cpu_count() or 1):.2f} CPU): {', '.join(machine['disturbed']) or 'none'}")
    if machine["quiet"].get("quiet") is False:
        warn_busy(machine["quiet"])
    say(f"took {machine['wall_s'] / 60:.1f} min")
    for line in missing_effects:
        print(f"INVALID RUN: committed without storing every purchase's documents: {line}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(full, indent=2, default=str))
    say(f"full results: {path.relative_to(ROOT)}")
    try:
        # Best effort: dropping what this run created must not hold back the result.
        await asyncio.wait_for(cleanup(where.kafka, where.mongodb_url, prefix, rid), timeout=30)
    except TimeoutError:
        say("cleanup took longer than 30 s; leftovers stay in the benchmark instance")
    if missing_effects:
        # The last line stays the headline; the exit status says the figures cannot be used.
        return {**headline, "missing_effects": len(missing_effects)}
    return headline


# Where each throughput variant stores one document per purchase: the figure counts a committed offset as
# done, so every run is checked to have stored them all (the naive peer once committed without working).
EFFECTS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "ceiling": [("bench_ceiling_{}", ("purchases",)), ("bench_ceiling_{}", ("surveys",))],
    "naive": [("bench_naive_{}", ("purchases",)), ("bench_naive_{}", ("surveys",))],
    "ingest": [("bench_customer_{}", ("purchases",)), ("bench_surveys_{}", ("surveys", "skips"))],
}


async def stored_effects(mongodb_url: str, variant: str, suffix: str) -> dict[str, int]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    try:
        out = {}
        for database, collections in EFFECTS[variant]:
            db = client[database.format(suffix)]
            out["+".join(collections)] = sum([await db[c].count_documents({}) for c in collections])
        return out
    finally:
        await client.close()


async def cleanup(kafka: str, mongodb_url: str, prefix: str, rid: str) -> None:
    with contextlib.suppress(Exception):
        await delete_topics(kafka, prefix)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    try:
        for name in await client.list_database_names():
            if rid in name:
                await client.drop_database(name)
    except Exception as exc:
        say(f"cleanup of databases failed: {exc}")
    finally:
        await client.close()


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # A benchmark stopped with SIGTERM must still stop the service processes it started (the ``finally``
    # blocks): Python's default is to die at once, and orphaned services went on consuming and took CPU
    # from the next run (seen: a later run at half speed).
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    headline = asyncio.run(main())
    print(json.dumps(headline))
    if headline.get("missing_effects"):
        sys.exit(1)
