"""A service process dies or is stopped mid-stream: every accepted purchase has its effect exactly once."""

from __future__ import annotations

import asyncio
import signal

import pytest
from fault_harness import (
    CRASH_CODE,
    NumberedStream,
    ServiceProcess,
    assert_committed_were_applied,
    assert_exactly_once,
)
from guanxi_shared.topics import PURCHASE_COMPLETED

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def test_sigkill_after_storing_before_committing_then_restart(infra, topics, fault_env, ledger, logs) -> None:
    stream = NumberedStream(infra.kafka, topics + PURCHASE_COMPLETED, customers=12)
    await stream.run(150)  # a backlog, so the first batches are big
    service = ServiceProcess(fault_env, log_path=logs / "ledger.log")
    # Dies right after the 3rd batch is stored, before FastStream commits its offsets.
    service.start(FAULT_EXIT_AFTER_BATCHES="3")
    try:
        assert await service.wait_exit() == CRASH_CODE
        # Whatever the dead process had committed must be stored (it never commits ahead of the store)...
        await assert_committed_were_applied(infra.kafka, fault_env["LEDGER_CONSUMER_GROUP"], topics + PURCHASE_COMPLETED, ledger)
        # ...and its stored-but-uncommitted batch comes again after the restart, absorbed by the guard.
        service.start()
        await service.ready()
        await stream.run(60, start=150)
        await ledger.wait_applied(stream.total)
        await assert_exactly_once(stream, ledger)
    finally:
        service.stop()


async def test_sigterm_while_handlers_run_commits_only_finished_work(infra, topics, fault_env, ledger, logs) -> None:
    stream = NumberedStream(infra.kafka, topics + PURCHASE_COMPLETED, customers=12)
    service = ServiceProcess(fault_env, log_path=logs / "ledger.log")
    # Slow handlers: the SIGTERM lands while a batch is being handled.
    service.start(FAULT_HANDLER_DELAY="0.05")
    try:
        await service.ready()
        sending = asyncio.create_task(stream.run(200, rate=200))
        await ledger.wait_applied(30)
        service.signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its orderly shutdown; the runtime logs the clean stop.
        assert await service.wait_exit() in (0, -signal.SIGTERM)
        assert "ledger stopped" in (logs / "ledger.log").read_text()
        await sending
        done_before_restart = await ledger.applied_total()
        assert 0 < done_before_restart < stream.total, "the stop must have happened mid-stream"
        checked = await assert_committed_were_applied(infra.kafka, fault_env["LEDGER_CONSUMER_GROUP"],
                                                      topics + PURCHASE_COMPLETED, ledger)
        assert checked > 0
        service.start()
        await service.ready()
        await ledger.wait_applied(stream.total)
        await assert_exactly_once(stream, ledger)
    finally:
        service.stop()
