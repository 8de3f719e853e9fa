"""Fault tests run on their OWN Kafka + FerretDB (other ports, own directory): they kill the broker
and the store, which must never happen to the shared instance other tests use.

Overriding ``infra`` points every fixture of ``guanxi_shared.testing`` (``make_settings``, ``topics``,
``tap``, ``producer``) at that instance.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from guanxi_shared.testing import Infra

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from fault_harness import Ledger  # noqa: E402
from instance import Instance  # noqa: E402


@pytest.fixture(scope="session")
def fault_instance() -> Iterator[Instance]:
    inst = Instance(Path(os.environ.get("GUANXI_FAULT_DIR", ROOT / ".local" / "faults")),
                    kafka_port=int(os.environ.get("GUANXI_FAULT_KAFKA_PORT", "19092")),
                    mongo_port=int(os.environ.get("GUANXI_FAULT_MONGO_PORT", "37017")))
    inst.up()
    yield inst
    inst.down()  # disposable: nothing of it is needed after the session


@pytest.fixture(scope="session")
def infra(fault_instance: Instance) -> Infra:
    return Infra(fault_instance.bootstrap, fault_instance.mongodb_url, "fault-instance")


@pytest.fixture
def fault_env(infra: Infra, isolation: str, topics: str) -> dict[str, str]:
    """Environment of a subject process in this test's namespace."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka,
        "MONGODB_URL": infra.mongodb_url,
        "LEDGER_MONGODB_DATABASE": f"fault_ledger_{isolation}",
        "GUANXI_TOPIC_PREFIX": topics,
        "LEDGER_CONSUMER_GROUP": f"fault-ledger-{isolation}",
        "LEDGER_OUTBOX_POLL_SECONDS": "0.2",
        # FerretDB loses concurrent updates of one document made over several connections
        # (tests/faults/README.md): one connection per process is the supported local setting.
        "MONGODB_MAX_POOL_SIZE": "1",
    }


@pytest.fixture
async def ledger(infra: Infra, isolation: str) -> AsyncIterator[Ledger]:
    led = Ledger(infra.mongodb_url, f"fault_ledger_{isolation}")
    yield led
    await led.close()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path
