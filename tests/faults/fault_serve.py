"""Run a service's ``build(settings)`` under uvicorn in its own process, with optional fault hooks.

    python -P tests/faults/fault_serve.py <module>:<build> <module>:<SettingsClass>

Hooks (environment variables, all off by default) put the process in a precise bad state:

* ``FAULT_EXIT_AFTER_BATCHES=N``: ``os._exit`` right after the N-th consumed batch was handled and
  stored, before its offsets are committed (a SIGKILL at the worst moment).
* ``FAULT_EXIT_AFTER_PUBLISHES=N``: ``os._exit`` right after the N-th outbox event was confirmed by
  Kafka, before the relay clears it from the document.
* ``FAULT_HANDLER_DELAY=S``: each handler waits S seconds first, so a signal lands mid-handler.
* ``FAULT_EXIT_BEFORE_RECORDING=N`` (gateway only): ``os._exit`` when the N-th ``Idempotency-Key``
  request has its answer from the service, before the gateway records it: the effect happened, the
  answer may or may not have reached the caller, and the key is left pending.

The hooks wrap the shared classes, so they work for any service built on ``guanxi_shared``.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faststream.kafka.annotations import KafkaMessage
from guanxi_shared.messaging import Delivery, EventConsumer, EventPublisher
from guanxi_shared.runtime import serve

CRASH_CODE = 137


def _resolve(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def install_hooks() -> None:
    exit_after_batches = int(os.environ.get("FAULT_EXIT_AFTER_BATCHES", "0"))
    exit_after_publishes = int(os.environ.get("FAULT_EXIT_AFTER_PUBLISHES", "0"))
    delay = float(os.environ.get("FAULT_HANDLER_DELAY", "0"))
    exit_before_recording = int(os.environ.get("FAULT_EXIT_BEFORE_RECORDING", "0"))
    purchase_read_delay = float(os.environ.get("FAULT_PURCHASE_READ_DELAY", "0"))

    if exit_after_batches:
        consume = EventConsumer._consume
        batches = 0

        async def consume_then_die(self: EventConsumer, msg: KafkaMessage) -> None:
            nonlocal batches
            await consume(self, msg)
            batches += 1
            if batches >= exit_after_batches:
                os._exit(CRASH_CODE)  # stored, not committed

        EventConsumer._consume = consume_then_die  # type: ignore[method-assign]

    if exit_after_publishes:
        # The relay sends stored entries through ``publish_encoded`` (older entries through ``publish``).
        publish, publish_encoded = EventPublisher.publish, EventPublisher.publish_encoded
        published = 0

        def count_then_maybe_die() -> None:
            nonlocal published
            published += 1
            if published >= exit_after_publishes:
                os._exit(CRASH_CODE)  # published, outbox entry not cleared

        async def publish_then_die(self: EventPublisher, event: Any, **kw: Any) -> None:
            await publish(self, event, **kw)
            count_then_maybe_die()

        async def publish_encoded_then_die(self: EventPublisher, *args: Any) -> None:
            await publish_encoded(self, *args)
            count_then_maybe_die()

        EventPublisher.publish = publish_then_die  # type: ignore[method-assign]
        EventPublisher.publish_encoded = publish_encoded_then_die  # type: ignore[method-assign]

    if delay:
        handle_one = EventConsumer.handle_one

        async def slow_handle_one(self: EventConsumer, delivery: Delivery) -> BaseException | None:
            await asyncio.sleep(delay)
            return await handle_one(self, delivery)

        EventConsumer.handle_one = slow_handle_one  # type: ignore[method-assign]

    if exit_before_recording:
        from guanxi_gateway.store import MongoIdempotencyStore, StoredAnswer

        complete = MongoIdempotencyStore.complete
        answered = 0

        async def die_before_recording(self: MongoIdempotencyStore, rid: str, answer: StoredAnswer, now: Any) -> None:
            nonlocal answered
            answered += 1
            if answered >= exit_before_recording:
                os._exit(CRASH_CODE)  # effect done, answer passed on, not recorded
            await complete(self, rid, answer, now)

        MongoIdempotencyStore.complete = die_before_recording  # type: ignore[method-assign]


    if purchase_read_delay:
        # Widens the customer service's batch window between reading the customers and writing them:
        # the moment a second writer would do harm.
        from guanxi_customer.handlers import purchases

        read = purchases._customers_or_stubs

        async def slow_read(deps: Any, *args: Any) -> Any:
            docs = await read(deps, *args)
            await asyncio.sleep(purchase_read_delay)
            return docs

        purchases._customers_or_stubs = slow_read


def main() -> None:
    build, settings_class = _resolve(sys.argv[1]), _resolve(sys.argv[2])
    install_hooks()
    settings = settings_class()
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
