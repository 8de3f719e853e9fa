"""A separate, disposable Kafka + FerretDB pair for fault-injection tests and benchmarks.

Fault tests kill the broker and the store; they must never touch the shared instance on
9092/27017 that everyone else's tests use. This module gives them their own pair on other ports,
under its own directory, by running ``infra.py`` with ``GUANXI_LOCAL_DIR`` and the port variables.
The Kafka jars and the FerretDB binary are linked from the main ``.local`` (built once there), so
an instance starts in seconds and never rebuilds anything.

    python deploy/local/instance.py up   [--dir DIR] [--kafka-port 19092] [--mongo-port 37017]
    python deploy/local/instance.py down [--dir DIR]

From Python: ``Instance(dir, kafka_port, mongo_port).up()``, ``.kill("kafka")``, ``.start("kafka")``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = Path(__file__).resolve().parent / "infra.py"
MAIN_LOCAL = Path(os.environ.get("GUANXI_MAIN_LOCAL_DIR", ROOT / ".local"))

COMPONENT_PORTS = ("kafka", "ferretdb")


@dataclass
class Instance:
    directory: Path
    kafka_port: int = 19092
    mongo_port: int = 37017
    kafka_heap: str = "-Xms128m -Xmx512m"

    @property
    def controller_port(self) -> int:
        return self.kafka_port + 1

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongodb_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "GUANXI_LOCAL_DIR": str(self.directory),
            "GUANXI_KAFKA_PORT": str(self.kafka_port),
            "GUANXI_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "GUANXI_MONGO_PORT": str(self.mongo_port),
            "GUANXI_KAFKA_HEAP": self.kafka_heap,
        }

    def provision(self) -> None:
        """Link the already-built jars and binary; refuse to build from scratch here."""
        libs, binary = MAIN_LOCAL / "kafka" / "libs", MAIN_LOCAL / "bin" / "ferretdb"
        if not (libs / ".complete").exists() or not binary.exists():
            raise RuntimeError(f"run `make infra-up` once first: {libs} or {binary} is missing")
        (self.directory / "kafka").mkdir(parents=True, exist_ok=True)
        (self.directory / "bin").mkdir(parents=True, exist_ok=True)
        for link, target in ((self.directory / "kafka" / "libs", libs), (self.directory / "bin" / "ferretdb", binary)):
            if not link.exists():
                link.symlink_to(target)

    def _infra(self, command: str) -> None:
        # -P: deploy/local/platform.py would otherwise shadow the standard library module `platform`.
        proc = subprocess.run([sys.executable, "-P", str(INFRA), command], env=self.env(),  # noqa: S603
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"infra.py {command} failed:\n{proc.stdout}\n{proc.stderr}")

    def up(self) -> None:
        self.provision()
        self._infra("up")

    def down(self) -> None:
        self._infra("down")

    def pid(self, component: str) -> int | None:
        try:
            return int((self.directory / "run" / f"{component}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def kill(self, component: str) -> None:
        """SIGKILL ``kafka`` or ``ferretdb`` of THIS instance (by its pid file), and wait until it is gone."""
        pid = self.pid(component)
        if pid is None:
            raise RuntimeError(f"{component} of {self.directory} is not running")
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z":
                return
            time.sleep(0.05)

    def start(self, component: str) -> None:
        """Start whatever is not running (``infra.py up`` is idempotent); ``component`` is for the reader."""
        assert component in COMPONENT_PORTS
        self._infra("up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=MAIN_LOCAL / "faults")
    parser.add_argument("--kafka-port", type=int, default=19092)
    parser.add_argument("--mongo-port", type=int, default=37017)
    args = parser.parse_args()
    inst = Instance(args.dir.resolve(), args.kafka_port, args.mongo_port)
    if args.command == "up":
        inst.up()
        print(f"[instance] ready: kafka {inst.bootstrap}, store {inst.mongodb_url}, dir {inst.directory}")
    else:
        inst.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
