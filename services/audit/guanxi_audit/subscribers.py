"""Every topic of the catalogue → the capture use case, in the audit service's own group."""

from __future__ import annotations

from functools import partial

from guanxi_shared.messaging import BatchHandler, EventConsumer
from guanxi_shared.runtime import ServiceRuntime
from guanxi_shared.topics import ALL_TOPICS

from . import handlers
from .handlers import Deps


def subscribe(runtime: ServiceRuntime, deps: Deps) -> EventConsumer:
    # Batch handlers: one chain append per batch and per type, with the Kafka headers (trace id) at hand.
    capture: BatchHandler = partial(handlers.capture, deps)
    return runtime.consume({}, batch_handlers=dict.fromkeys(ALL_TOPICS, capture))
