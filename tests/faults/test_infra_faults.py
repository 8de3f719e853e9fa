"""The broker or the store dies under load and comes back: no manual step, nothing lost, nothing doubled.

These kill the components of the fault instance only (its own ports and directory, see conftest).
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from fault_harness import NumberedStream, ServiceProcess, assert_committed_were_applied, assert_exactly_once
from guanxi_shared.topics import PURCHASE_COMPLETED

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def test_kafka_broker_killed_and_restarted_under_load(infra, fault_instance, topics, fault_env, ledger, logs) -> None:
    stream = NumberedStream(infra.kafka, topics + PURCHASE_COMPLETED, customers=10)
    service = ServiceProcess(fault_env, log_path=logs / "ledger.log").start()
    try:
        await service.ready()
        sending = asyncio.create_task(stream.run(150, rate=60))
        await ledger.wait_applied(30)
        await asyncio.to_thread(fault_instance.kill, "kafka")
        await asyncio.sleep(2)  # the outage: producers retry, the consumer cannot poll or commit
        await asyncio.to_thread(fault_instance.start, "kafka")
        await sending  # the producer recovered by itself
        await ledger.wait_applied(stream.total, timeout=120)
        await assert_exactly_once(stream, ledger)
        assert service.proc is not None and service.proc.poll() is None, "the service must survive the outage"
    finally:
        service.stop()


async def test_store_killed_and_restarted_under_load(infra, fault_instance, topics, fault_env, ledger, logs) -> None:
    stream = NumberedStream(infra.kafka, topics + PURCHASE_COMPLETED, customers=10)
    service = ServiceProcess(fault_env, log_path=logs / "ledger.log").start()
    try:
        await service.ready()
        sending = asyncio.create_task(stream.run(150, rate=60))
        await ledger.wait_applied(30)
        await asyncio.to_thread(fault_instance.kill, "ferretdb")
        await asyncio.sleep(3)  # handlers fail on the store; their batches must stay uncommitted
        # Freeze the service, bring the store back, and compare what is committed with what is stored.
        service.signal(signal.SIGSTOP)
        try:
            await asyncio.to_thread(fault_instance.start, "ferretdb")
            await assert_committed_were_applied(infra.kafka, fault_env["LEDGER_CONSUMER_GROUP"],
                                                topics + PURCHASE_COMPLETED, ledger)
        finally:
            service.signal(signal.SIGCONT)
        await sending
        await ledger.wait_applied(stream.total, timeout=120)
        await assert_exactly_once(stream, ledger)
        assert service.proc is not None and service.proc.poll() is None, "the service must survive the outage"
    finally:
        service.stop()
