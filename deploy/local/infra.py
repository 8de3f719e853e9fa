"""Local infrastructure without Docker: Apache Kafka (KRaft, single node) and FerretDB (SQLite).

Everything lives under ``.local/`` at the repository root (git-ignored):

    .local/kafka/libs        broker jars copied from Maven Central (first run only)
    .local/kafka/data        KRaft log directory, formatted once
    .local/bin/ferretdb      FerretDB built with Go from the module proxy, patched (first run, or a patch changed)
    .local/build/ferretdb    the module source copied and patched while it builds (removed after)
    .local/ferretdb/data     one SQLite file per database
    .local/run/*.pid|*.log   process ids and logs

Commands (idempotent): ``provision``, ``up``, ``down``, ``status``, ``topics``.
``up`` starts what is not running, waits until each answers, creates the topic catalogue,
and reports a process that died with the tail of its log.

FerretDB's source is fixed before it is built by the patches in ``deploy/local/ferretdb/patches/``
(unified diffs against the module version pinned in ``deploy/local/ferretdb/go.mod``, applied with
``git apply`` in file-name order; each one's header says what it fixes and why, and the README there
lists them). A patch that no longer applies stops the build, naming it.

Only the standard library is used for processes; topic creation uses aiokafka from the
workspace environment, because the catalogue lives in ``guanxi_shared.topics``.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LOCAL = Path(os.environ.get("GUANXI_LOCAL_DIR", ROOT / ".local"))
RUN = LOCAL / "run"

KAFKA_HOST = "127.0.0.1"
KAFKA_PORT = int(os.environ.get("GUANXI_KAFKA_PORT", "9092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("GUANXI_KAFKA_CONTROLLER_PORT", str(KAFKA_PORT + 1)))
KAFKA_HEAP = os.environ.get("GUANXI_KAFKA_HEAP", "-Xms256m -Xmx768m")
_TEST_TOPIC = re.compile(r"^t[0-9a-f]{10}\.")
MONGO_PORT = int(os.environ.get("GUANXI_MONGO_PORT", "27017"))


def say(msg: str) -> None:
    print(f"[infra] {msg}", flush=True)


class InfraError(RuntimeError):
    pass


# --------------------------------------------------------------------------- processes


def _pid_file(name: str) -> Path:
    return RUN / f"{name}.pid"


def _log_file(name: str) -> Path:
    return RUN / f"{name}.log"


def _read_pid(name: str) -> int | None:
    try:
        return int(_pid_file(name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _spawn(name: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> int:
    RUN.mkdir(parents=True, exist_ok=True)
    log = open(_log_file(name), "ab")
    proc = subprocess.Popen(  # noqa: S603 - fixed argv built here
        argv,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # survives the parent; stopped by `down`
    )
    _pid_file(name).write_text(str(proc.pid))
    return proc.pid


def _wait_until(name: str, check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not _alive(_read_pid(name)):
            raise InfraError(f"{name} exited during start-up; last log lines:\n{_tail(_log_file(name))}")
        time.sleep(0.2)
    raise InfraError(f"{name} did not answer within {timeout:.0f}s; last log lines:\n{_tail(_log_file(name))}")


def _stop(name: str, timeout: float = 30) -> None:
    pid = _read_pid(name)
    if not _alive(pid):
        _pid_file(name).unlink(missing_ok=True)
        return
    assert pid is not None
    say(f"stopping {name} (pid {pid})")
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        say(f"{name} ignored SIGTERM for {timeout:.0f}s; killing")
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _pid_file(name).unlink(missing_ok=True)


# --------------------------------------------------------------------------- Kafka


def kafka_dir() -> Path:
    return LOCAL / "kafka"


def provision_kafka() -> None:
    libs = kafka_dir() / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return
    if not shutil.which("mvn") or not shutil.which("java"):
        raise InfraError("Kafka needs Java 17+ and Maven on PATH (mvn, java)")
    say("first run: downloading the Apache Kafka jars from Maven Central (about a minute)…")
    libs.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603
        [
            "mvn", "-q", "-B", "-f", str(HERE / "kafka" / "pom.xml"),
            "dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
        ],
        check=True,
    )
    marker.write_text("ok\n")


def _kafka_config() -> Path:
    cfg = kafka_dir() / "server.properties"
    data = kafka_dir() / "data"
    text = (HERE / "kafka" / "server.properties").read_text()
    text = (
        text.replace("@DATA@", str(data))
        .replace("@PORT@", str(KAFKA_PORT))
        .replace("@CONTROLLER_PORT@", str(KAFKA_CONTROLLER_PORT))
    )
    cfg.write_text(text)
    return cfg


def _java_cmd(main: str, *args: str) -> list[str]:
    libs = kafka_dir() / "libs"
    return [
        "java", *KAFKA_HEAP.split(), "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={HERE / 'kafka' / 'log4j2.yaml'}",
        f"-Dkafka.logs.dir={RUN}",
        "-cp", f"{libs}/*", main, *args,
    ]


def start_kafka() -> None:
    provision_kafka()
    pid = _read_pid("kafka")
    if _alive(pid):
        if not _port_open(KAFKA_PORT):
            # Still starting (loading its logs can take a while): wait for it, never start a second one.
            say(f"kafka (pid {pid}) is starting; waiting for it")
            _wait_until("kafka", lambda: _port_open(KAFKA_PORT), timeout=600)
        say(f"kafka already running (pid {pid}) on {KAFKA_HOST}:{KAFKA_PORT}")
        return
    if pid is not None and not _alive(pid):
        say(f"kafka (pid {pid}) had died; last log lines:\n{_tail(_log_file('kafka'), 20)}")
    if _port_open(KAFKA_PORT):
        say(f"something already answers on {KAFKA_PORT}; using it as Kafka")
        return
    cfg = _kafka_config()
    data = kafka_dir() / "data"
    if not (data / "meta.properties").exists():
        say("formatting KRaft storage (once)")
        data.mkdir(parents=True, exist_ok=True)
        subprocess.run(  # noqa: S603
            _java_cmd("kafka.tools.StorageTool", "format", "-t", uuid.uuid4().hex[:22], "-c", str(cfg)),
            check=True, stdout=subprocess.DEVNULL,
        )
    say(f"starting kafka on {KAFKA_HOST}:{KAFKA_PORT}")
    _spawn("kafka", _java_cmd("kafka.Kafka", str(cfg)), cwd=kafka_dir())
    _wait_until("kafka", lambda: _port_open(KAFKA_PORT), timeout=120)


# --------------------------------------------------------------------------- FerretDB


def ferretdb_bin() -> Path:
    return LOCAL / "bin" / "ferretdb"


FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
# Fixes to FerretDB's source, as patches against the module the proxy serves; each states what it
# fixes and why. They are applied in file-name order; the build stamp records their hashes.
FERRETDB_PATCHES = HERE / "ferretdb" / "patches"


def ferretdb_version() -> str:
    """The FerretDB version deploy/local/ferretdb/go.mod requires."""
    gomod = (HERE / "ferretdb" / "go.mod").read_text()
    version = re.search(rf"^require {re.escape(FERRETDB_MODULE)} (v\S+)$", gomod, re.M)
    if version is None:
        raise InfraError(f"deploy/local/ferretdb/go.mod does not require {FERRETDB_MODULE}")
    return version.group(1)


def ferretdb_patches() -> list[Path]:
    """The patch files, in the order they are applied (file-name order)."""
    return sorted(FERRETDB_PATCHES.glob("*.patch"), key=lambda p: p.name)


def ferretdb_module_source(env: dict[str, str] | None = None) -> Path:
    """The pristine FerretDB module (read-only, in the Go module cache), downloaded if absent."""
    info = subprocess.run(  # noqa: S603
        ["go", "mod", "download", "-json", f"{FERRETDB_MODULE}@{ferretdb_version()}"],
        cwd=HERE / "ferretdb", env=env, check=True, capture_output=True, text=True,
    )
    return Path(json.loads(info.stdout)["Dir"])


def copy_module_source(source: Path, dest: Path) -> None:
    """Copy the module to a writable place (the module cache is read-only)."""
    shutil.copytree(source, dest)
    for path in dest.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    dest.chmod(dest.stat().st_mode | 0o200)


def apply_ferretdb_patches(module: Path) -> None:
    """Apply every patch to the copy of the module in ``module``, or fail naming the one that does not apply."""
    module = module.resolve()
    # Outside any repository, so that git apply patches these plain files: inside one (.local/ is in
    # this checkout), it would take the paths as relative to that work tree and skip them silently.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(module.parent)}
    for patch in ferretdb_patches():
        for check in (["--check"], []):
            done = subprocess.run(  # noqa: S603
                ["git", "apply", "--verbose", *check, str(patch)],
                cwd=module, env=env, capture_output=True, text=True,
            )
            if done.returncode != 0 or "Skipped patch" in done.stderr:
                raise InfraError(
                    f"FerretDB patch {os.path.relpath(patch, ROOT)} does not apply to {FERRETDB_MODULE} "
                    f"{ferretdb_version()}:\n{done.stderr.strip()}"
                )


def _ferretdb_stamp() -> str:
    files = [HERE / "ferretdb" / name for name in ("main.go", "go.mod", "go.sum")] + ferretdb_patches()
    return "".join(f"{p.relative_to(HERE)}: {hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in files)


def provision_ferretdb() -> None:
    binary = ferretdb_bin()
    stamp = binary.with_name("ferretdb.fixes")
    if binary.exists() and stamp.exists() and stamp.read_text() == _ferretdb_stamp():
        return
    if not shutil.which("go") or not shutil.which("git"):
        raise InfraError("FerretDB is built with Go and patched with git apply; put `go` and `git` on PATH")
    say(f"building FerretDB {ferretdb_version()} with Go from the module proxy, with the patches in "
        f"{FERRETDB_PATCHES.relative_to(ROOT)} (first run: a few minutes)…")
    binary.parent.mkdir(parents=True, exist_ok=True)
    src = HERE / "ferretdb"
    env = {**os.environ, "CGO_ENABLED": "0"}
    # The module as the proxy serves it (checked against go.sum), copied and patched in a build directory.
    build = LOCAL / "build" / "ferretdb"
    shutil.rmtree(build, ignore_errors=True)
    copy_module_source(ferretdb_module_source(env), build / "module")
    apply_ferretdb_patches(build / "module")
    for name in ("main.go", "go.sum"):
        shutil.copy2(src / name, build / name)
    (build / "go.mod").write_text((src / "go.mod").read_text() + f"\nreplace {FERRETDB_MODULE} => ./module\n")
    subprocess.run(["go", "build", "-trimpath", "-o", str(binary), "."], cwd=build, check=True, env=env)  # noqa: S603
    stamp.write_text(_ferretdb_stamp())
    shutil.rmtree(build, ignore_errors=True)


def start_ferretdb() -> None:
    provision_ferretdb()
    pid = _read_pid("ferretdb")
    if _alive(pid):
        if not _port_open(MONGO_PORT):
            say(f"ferretdb (pid {pid}) is starting; waiting for it")
            _wait_until("ferretdb", lambda: _port_open(MONGO_PORT), timeout=300)
        say(f"ferretdb already running (pid {pid}) on 127.0.0.1:{MONGO_PORT}")
        return
    if pid is not None and not _alive(pid):
        say(f"ferretdb (pid {pid}) had died; last log lines:\n{_tail(_log_file('ferretdb'), 20)}")
    if _port_open(MONGO_PORT):
        say(f"something already answers on {MONGO_PORT}; using it as the store")
        return
    data = LOCAL / "ferretdb" / "data"
    data.mkdir(parents=True, exist_ok=True)
    say(f"starting ferretdb on 127.0.0.1:{MONGO_PORT}")
    _spawn(
        "ferretdb",
        [str(ferretdb_bin()), f"--listen-addr=127.0.0.1:{MONGO_PORT}", f"--sqlite-dir={data}",
         # Go's profiler for the store, when asked for (go tool pprof http://<addr>/debug/pprof/profile).
         *([f"--debug-addr={addr}"] if (addr := os.environ.get("GUANXI_FERRETDB_DEBUG_ADDR")) else [])],
        cwd=LOCAL,
    )
    _wait_until("ferretdb", lambda: _port_open(MONGO_PORT), timeout=60)


# --------------------------------------------------------------------------- topics


async def _ensure_topics(bootstrap: str, prefix: str = "") -> int:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaConnectionError
    from guanxi_shared.topics import CATALOGUE

    deadline = time.monotonic() + 90
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            break
        except KafkaConnectionError:
            await admin.close()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        wanted = []
        for topic in CATALOGUE:
            for name, parts in ((topic.name, topic.partitions), (topic.dlq, 1)):
                if prefix + name not in existing:
                    wanted.append(NewTopic(prefix + name, num_partitions=parts, replication_factor=1))
        if wanted:
            await admin.create_topics(wanted)
        return len(wanted)
    finally:
        await admin.close()


async def _purge_test_topics(bootstrap: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        leftovers = [t for t in await admin.list_topics() if _TEST_TOPIC.match(t)]
        for start in range(0, len(leftovers), 500):
            await admin.delete_topics(leftovers[start:start + 500])
        return len(leftovers)
    finally:
        await admin.close()


def purge_test_topics() -> None:
    """Delete per-test topics (``t<10 hex>.<name>``) left by interrupted test runs.

    Only `make test` calls this, before the suite: another test run going on at the same time
    against the same broker would lose its topics.
    """
    removed = asyncio.run(_purge_test_topics(f"{KAFKA_HOST}:{KAFKA_PORT}"))
    if removed:
        say(f"removed {removed} topics left over by earlier test runs")


def ensure_topics() -> None:
    created = asyncio.run(_ensure_topics(f"{KAFKA_HOST}:{KAFKA_PORT}"))
    say(f"topic catalogue ready ({created} created)")


# --------------------------------------------------------------------------- commands


def up() -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    with open(RUN / "infra.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        start_ferretdb()
        start_kafka()
        ensure_topics()
    say(f"ready: kafka {KAFKA_HOST}:{KAFKA_PORT}, store mongodb://127.0.0.1:{MONGO_PORT}")


def down() -> None:
    _stop("kafka")
    _stop("ferretdb")


def status() -> int:
    code = 0
    for name, port in (("kafka", KAFKA_PORT), ("ferretdb", MONGO_PORT)):
        pid = _read_pid(name)
        if _alive(pid) and _port_open(port):
            say(f"{name}: running (pid {pid}, port {port})")
        elif pid is not None and not _alive(pid):
            say(f"{name}: CRASHED (pid {pid}); last log lines:\n{_tail(_log_file(name), 20)}")
            code = 1
        else:
            say(f"{name}: stopped")
            code = 1
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["provision", "up", "down", "status", "topics", "purge-test-topics"])
    args = parser.parse_args()
    try:
        if args.command == "provision":
            provision_ferretdb()
            provision_kafka()
        elif args.command == "up":
            up()
        elif args.command == "down":
            down()
        elif args.command == "status":
            return status()
        elif args.command == "topics":
            ensure_topics()
        elif args.command == "purge-test-topics":
            purge_test_topics()
    except (InfraError, subprocess.CalledProcessError) as exc:
        print(f"[infra] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
