"""Run the whole platform on one machine: infrastructure, SMTP sink, five services, the gateway and the console.

    python deploy/local/stack.py run    # foreground; Ctrl-C stops everything cleanly
    python deploy/local/stack.py up     # background; returns when the gateway answers /readyz
    python deploy/local/stack.py down   # stops the services, the sink and the infrastructure
    python deploy/local/stack.py status

Process ids and logs live in .local/run/ (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import infra

SERVICES: list[tuple[str, str, int]] = [
    ("customer", "guanxi_customer", 8101),
    ("complaints", "guanxi_complaints", 8102),
    ("surveys", "guanxi_surveys", 8103),
    ("notifications", "guanxi_notifications", 8104),
    ("audit", "guanxi_audit", 8105),
    ("gateway", "guanxi_gateway", 8000),
    # The console last: it is a client of the gateway, and its readiness is the gateway's.
    ("console", "guanxi_console", 8106),
]
SMTP_PORT = int(os.environ.get("GUANXI_SMTP_PORT", "1025"))
CONSOLE_PORT = next(port for name, _, port in SERVICES if name == "console")
MAILDIR = infra.LOCAL / "mail"


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _env() -> dict[str, str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{infra.KAFKA_PORT}",
        "MONGODB_URL": f"mongodb://127.0.0.1:{infra.MONGO_PORT}",
        "NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
        "NOTIFICATIONS_SMTP_PORT": str(SMTP_PORT),
        # The customer's links open the console's pages: the survey (/s/{token}) and the complaint status
        # (/c/{token}).
        "SURVEYS_LINK_BASE_URL": f"http://127.0.0.1:{CONSOLE_PORT}/s",
        "COMPLAINTS_STATUS_LINK_BASE": f"http://127.0.0.1:{CONSOLE_PORT}/c",
    }
    return {**env, **{k: v for k, v in os.environ.items() if k in env}}


def start_services() -> None:
    if not (infra._alive(infra._read_pid("smtp-sink")) and infra._port_open(SMTP_PORT)):
        MAILDIR.mkdir(parents=True, exist_ok=True)
        infra.say(f"starting SMTP sink on 127.0.0.1:{SMTP_PORT} (mail saved in {MAILDIR})")
        infra._spawn("smtp-sink", [sys.executable, str(Path(__file__).parent / "smtp_sink.py"),
                                   "--port", str(SMTP_PORT), "--maildir", str(MAILDIR)], cwd=infra.ROOT)
    for name, module, port in SERVICES:
        pid = infra._read_pid(name)
        if infra._alive(pid):
            infra.say(f"{name} already running (pid {pid})")
            continue
        infra.say(f"starting {name} on 127.0.0.1:{port}")
        infra._spawn(name, [sys.executable, "-m", module], cwd=infra.ROOT, env=_env())
    for name, _, port in SERVICES:
        infra._wait_until(name, lambda p=port: _ready(p), timeout=90)  # type: ignore[misc]
        infra.say(f"{name} ready")


def stop_services() -> None:
    for name, _, _ in reversed(SERVICES):
        infra._stop(name)
    infra._stop("smtp-sink")


def up() -> None:
    infra.up()
    start_services()
    infra.say("Guanxi is up: gateway http://127.0.0.1:8000  (API docs http://127.0.0.1:8000/docs), "
              "console http://127.0.0.1:8106 (development sign-in)")
    infra.say(f"mail sent in local mode is saved under {MAILDIR}; `make down` stops everything")


def down() -> None:
    stop_services()
    infra.down()
    # The disposable instances of the fault tests and benchmarks (deploy/local/instance.py), if any.
    for extra in (infra.LOCAL / "faults", infra.LOCAL / "bench"):
        if (extra / "run").is_dir():
            subprocess.run([sys.executable, str(Path(__file__).parent / "infra.py"), "down"],  # noqa: S603
                           env={**os.environ, "GUANXI_LOCAL_DIR": str(extra)}, check=False)


def run() -> None:
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        up()
        infra.say("running in the foreground; press Ctrl-C to stop")
        while not stopping:
            for name, _, _ in SERVICES:
                if not infra._alive(infra._read_pid(name)):
                    infra.say(f"{name} exited; last log lines:\n{infra._tail(infra._log_file(name), 30)}")
                    stopping = True
                    break
            time.sleep(0.5)
    finally:
        infra.say("stopping…")
        down()


def status() -> int:
    code = infra.status()
    for name, _, port in SERVICES:
        ok = _ready(port)
        infra.say(f"{name}: {'ready' if ok else 'not ready'} (port {port})")
        code |= 0 if ok else 1
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "up", "down", "status"])
    args = parser.parse_args()
    try:
        if args.command == "run":
            run()
        elif args.command == "up":
            up()
        elif args.command == "down":
            down()
        else:
            return status()
    except infra.InfraError as exc:
        print(f"[stack] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
