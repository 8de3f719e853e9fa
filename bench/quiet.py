"""Is the machine quiet enough to measure on, and who else used the CPU during a run (Linux ``/proc``).

On two shared cores a throughput figure is only as good as the CPU the benchmark had to itself: one
``make bench`` run on a machine where other work ran gave ingest/ceiling ratios of 0.61–0.93 between
repeats. Before measuring, :func:`wait_until_quiet` samples the machine for ``SAMPLE_SECONDS`` and, while
it is busy, samples again for up to ``GUANXI_BENCH_QUIET_WAIT`` seconds (60); then the benchmark goes on
either way and records what it found. Busy means either of

* idle below ``GUANXI_BENCH_QUIET_IDLE`` % (85) of all CPUs over the sample (``/proc/stat``), or
* more than ``GUANXI_BENCH_QUIET_LOAD`` (0.5) runnable tasks per CPU on average over the sample
  (``procs_running`` of ``/proc/stat``, read every 0.1 s, the reader itself not counted).

The second is what the load average counts, without its one-minute memory: ``/proc/loadavg`` is recorded
too, but after the benchmark's own Kafka has just started (or its warm-up has just run) it stays high for a
minute while the machine is already idle, so it does not decide. :class:`Usage` measures, around each run,
how much CPU processes other than the benchmark's own used (the benchmark process and its children, and the
Kafka and FerretDB of the benchmark instance, by their process groups).

``python -m bench.quiet`` prints one sample as JSON (``--wait`` waits as the benchmark does).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUIET_WAIT = float(os.environ.get("GUANXI_BENCH_QUIET_WAIT", "60"))
MIN_IDLE_PCT = float(os.environ.get("GUANXI_BENCH_QUIET_IDLE", "85"))
MAX_RUNNABLE_PER_CPU = float(os.environ.get("GUANXI_BENCH_QUIET_LOAD", "0.5"))
SAMPLE_SECONDS = 2.0
PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgrp: int
    ticks: int  # its own CPU (utime + stime)
    child_ticks: int  # CPU of its children that have exited and been waited for (cutime + cstime)
    comm: str


@dataclass(frozen=True)
class Snapshot:
    at: float
    cpus: dict[str, Ticks]  # "cpu" (all of them) and "cpu0", "cpu1"...
    procs: dict[int, Proc]


@dataclass(frozen=True)
class Ticks:
    """Clock ticks since boot of one CPU line of ``/proc/stat``."""

    idle: int  # idle + iowait
    work: int  # user + nice + system: what processes ran (guest time is within user)
    total: int  # everything, with irq, softirq and steal


def cpu_ticks() -> dict[str, Ticks]:
    out = {}
    for line in (PROC / "stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break  # the cpu lines come first
        name, *fields = line.split()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        out[name] = Ticks(idle + iowait, user + nice + system, user + nice + system + idle + iowait + irq + softirq + steal)
    return out


def runnable() -> int:
    for line in (PROC / "stat").read_text().splitlines():
        if line.startswith("procs_running "):
            return int(line.split()[1])
    return 0


def processes() -> dict[int, Proc]:
    out = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        # "pid (comm) state ppid pgrp ..." where comm may hold spaces and parentheses
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2:].split()  # rest[i] is field i + 3 of proc(5)
        out[int(entry.name)] = Proc(int(entry.name), int(rest[1]), int(rest[2]), int(rest[11]) + int(rest[12]),
                                    int(rest[13]) + int(rest[14]), comm)
    return out


def snapshot() -> Snapshot:
    return Snapshot(time.monotonic(), cpu_ticks(), processes())


def loadavg() -> list[float]:
    return [float(v) for v in (PROC / "loadavg").read_text().split()[:3]]


def command_line(pid: int, comm: str, width: int = 90) -> str:
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return comm
    args = [a.decode(errors="replace") for a in argv if a]
    if args and Path(args[0]).name == "java":  # the main class and its arguments, not the JVM options
        rest, skip = [], False
        for a in args[1:]:
            if skip or a.startswith("-"):
                skip = a in ("-cp", "-classpath", "--class-path", "-jar") if not skip else False
                continue
            rest.append(a)
        args = ["java", *rest]
    text = " ".join(args) or comm
    return text if len(text) <= width else text[:width - 1] + "…"


def own_groups(run_dir: Path | None) -> set[int]:
    """Process groups of a local instance's Kafka and FerretDB (``infra.py`` starts each in a session of its own)."""
    if run_dir is None or not run_dir.is_dir():
        return set()
    groups = set()
    for pid_file in run_dir.glob("*.pid"):
        try:
            groups.add(int(pid_file.read_text().strip()))
        except (OSError, ValueError):
            continue
    return groups


def ours(procs: dict[int, Proc], groups: Iterable[int] = (), root: int | None = None) -> set[int]:
    """This process, its descendants, and every process of ``groups``."""
    root = os.getpid() if root is None else root
    groups = set(groups)
    mine: set[int] = set()
    for pid, proc in procs.items():
        p: Proc | None = proc
        for _ in range(64):  # up the parents
            if p is None:
                break
            if p.pid == root or p.pgrp in groups:
                mine.add(pid)
                break
            p = procs.get(p.ppid)
    return mine


def compare(before: Snapshot, after: Snapshot, groups: Iterable[int] = (), top: int = 3) -> dict[str, Any]:
    """Idle share of every CPU; the busiest processes; CPU (in cores) used by everything that is not ours.

    The busiest are ranked by their own CPU in the interval (a process that started in between by all of
    it). The total for the others is what the CPUs ran for processes (``/proc/stat``) less what ours used,
    with the children they waited for (the benchmark's service processes end with the run), and less the
    kernel threads (children of kthreadd, pid 2), which work for everyone: so processes of others that
    came and went between the two looks count too.
    """
    elapsed = max(after.at - before.at, 1e-6)

    def cores(ticks: float) -> float:
        return ticks / TICKS_PER_SECOND / elapsed

    idle = {}
    for name, now in after.cpus.items():
        then = before.cpus.get(name, now)
        idle[name] = 100.0 * (now.idle - then.idle) / (now.total - then.total) if now.total > then.total else 100.0
    everyone = {**before.procs, **after.procs}
    mine = ours(everyone, groups)
    kernel = {pid for pid, proc in everyone.items() if pid == 2 or proc.ppid == 2}
    own: dict[int, int] = {}
    children: dict[int, int] = {}
    for pid, proc in after.procs.items():
        start = before.procs.get(pid)
        same = start is not None and start.comm == proc.comm  # else a new process (or a reused pid)
        own[pid] = proc.ticks - (start.ticks if same and start else 0)
        children[pid] = proc.child_ticks - (start.child_ticks if same and start else 0)
    work = after.cpus["cpu"].work - before.cpus["cpu"].work if "cpu" in after.cpus and "cpu" in before.cpus else 0
    not_others = sum(own[p] + children[p] for p in own if p in mine) + sum(own[p] for p in own if p in kernel)

    def rows(pids: Iterable[int], label: bool) -> list[dict[str, Any]]:
        ranked = sorted((p for p in pids if own[p] > 0), key=lambda p: own[p], reverse=True)[:top]
        return [{"pid": p, "cores": round(cores(own[p]), 2), **({"ours": p in mine} if label else {}),
                 "command": command_line(p, after.procs[p].comm)} for p in ranked]

    return {
        "seconds": round(elapsed, 2),
        "idle_pct": round(idle.get("cpu", 100.0), 1),
        "idle_pct_per_cpu": [round(idle[k], 1) for k in sorted((k for k in idle if k != "cpu"), key=lambda k: int(k[3:]))],
        "others_cpu": round(max(cores(work - not_others), 0.0), 2),
        "kernel_cpu": round(cores(sum(own[p] for p in own if p in kernel)), 2),
        "top": rows((p for p in own if p not in kernel), label=True),
        "top_others": rows((p for p in own if p not in mine and p not in kernel), label=False),
    }


def sample(seconds: float = SAMPLE_SECONDS, groups: Iterable[int] = ()) -> dict[str, Any]:
    """One look at the machine over ``seconds``: idle, runnable tasks, load average, busiest processes."""
    cpus = os.cpu_count() or 1
    before = snapshot()
    counts = []
    while time.monotonic() - before.at < seconds:
        counts.append(max(runnable() - 1, 0))  # the reader itself is running
        time.sleep(random.uniform(0.05, 0.15))  # not in step with other processes' periodic wake-ups
    after = snapshot()
    figures = compare(before, after, groups)
    per_cpu = sum(counts) / len(counts) / cpus if counts else 0.0
    reasons = []
    if figures["idle_pct"] < MIN_IDLE_PCT:
        reasons.append(f"idle {figures['idle_pct']:.0f} % < {MIN_IDLE_PCT:.0f} %")
    if per_cpu > MAX_RUNNABLE_PER_CPU:
        reasons.append(f"{per_cpu:.2f} runnable tasks per CPU > {MAX_RUNNABLE_PER_CPU}")
    return {"quiet": not reasons, "reasons": reasons, "cpus": cpus, **figures,
            "runnable_per_cpu": round(per_cpu, 2), "loadavg": loadavg(),
            "thresholds": {"min_idle_pct": MIN_IDLE_PCT, "max_runnable_per_cpu": MAX_RUNNABLE_PER_CPU}}


def wait_until_quiet(max_wait: float = QUIET_WAIT, groups: Iterable[int] = (),
                     say: Callable[[str], None] = print) -> dict[str, Any]:
    """Sample until the machine is quiet or ``max_wait`` seconds have passed; the last sample, with
    ``waited_s`` and (when it had to wait) the first busy sample's figures as ``at_first``."""
    groups = set(groups)
    started = time.monotonic()
    try:
        first = last = sample(groups=groups)
        while not last["quiet"] and time.monotonic() - started < max_wait:
            if last is first:
                say(f"machine busy ({'; '.join(first['reasons'])}; busiest: {busiest(first)}); "
                    f"waiting up to {max_wait:.0f} s for it to calm down (GUANXI_BENCH_QUIET_WAIT)")
            last = sample(groups=groups)
    except (OSError, ValueError, IndexError) as exc:  # no /proc (not Linux) or an unexpected format
        return {"quiet": None, "error": f"{type(exc).__name__}: {exc}", "waited_s": round(time.monotonic() - started, 1)}
    out = {**last, "waited_s": round(time.monotonic() - started, 1)}
    if last is not first:
        out["at_first"] = {k: first[k] for k in ("idle_pct", "runnable_per_cpu", "loadavg", "reasons", "top")}
    return out


def busiest(figures: dict[str, Any]) -> str:
    return ", ".join(f"{p['command']} (pid {p['pid']}{', the benchmark' if p.get('ours') else ''}) "
                     f"{100 * p['cores']:.0f} % of a CPU" for p in figures.get("top", [])) or "nothing"


def describe(figures: dict[str, Any]) -> str:
    if figures.get("quiet") is None:
        return f"not checked ({figures.get('error')})"
    load = " ".join(f"{v:.2f}" for v in figures["loadavg"])
    return (f"{'quiet' if figures['quiet'] else 'BUSY'}: idle {figures['idle_pct']:.0f} % "
            f"(per CPU {', '.join(f'{v:.0f}' for v in figures['idle_pct_per_cpu'])}), "
            f"{figures['runnable_per_cpu']:.2f} runnable per CPU, load average {load}, after {figures['waited_s']:.0f} s")


class Usage:
    """CPU used by processes other than the benchmark's own between :meth:`start` and :meth:`stop`
    (a few milliseconds each: one read of every ``/proc/<pid>/stat``)."""

    def __init__(self, groups: Iterable[int] = (), cpus: int | None = None) -> None:
        self.groups = set(groups)
        self.cpus = cpus or os.cpu_count() or 1
        self.before: Snapshot | None = None

    def start(self) -> None:
        try:
            self.before = snapshot()
        except OSError:
            self.before = None

    def stop(self) -> dict[str, Any]:
        if self.before is None:
            return {}
        try:
            figures = compare(self.before, snapshot(), self.groups)
        except OSError:
            return {}
        # Disturbed: others took more of the machine than a quiet one leaves to them.
        limit = (100 - MIN_IDLE_PCT) / 100 * self.cpus
        return {"others_cpu": figures["others_cpu"], "disturbed": figures["others_cpu"] > limit,
                "idle_pct": figures["idle_pct"], "top_others": figures["top_others"]}


def main(argv: list[str]) -> int:
    run_dir = Path(os.environ.get("GUANXI_BENCH_DIR", Path(__file__).resolve().parents[1] / ".local" / "bench")) / "run"
    groups = own_groups(run_dir)
    figures = wait_until_quiet(groups=groups) if "--wait" in argv else {**sample(groups=groups), "waited_s": 0.0}
    print(describe(figures))
    if figures.get("quiet") is False:
        print(f"busiest: {busiest(figures)}")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
