"""``Deps``, what every use case gets, and ``Outgoing``, the sends that run beside the consumer."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from guanxi_shared.clock import Clock
from opentelemetry import context as otel_context

from ..channels import ChannelProvider
from ..directory import ContactDirectory
from ..domain import Channel
from ..settings import NotificationsSettings
from ..store import NotificationStore

log = logging.getLogger(__name__)


class Outgoing:
    """Sends of recorded messages, run beside the consumer instead of inside its batch.

    The consumer commits a batch when every message of it is *recorded* (claimed, with its lease),
    which is what at-least-once needs; the sends follow here, so a batch of fresh events does not wait
    for the slowest send of the batch (its contact-detail lookup and SMTP session) before the next
    events are read. One customer's messages still go out in the order their events arrived (each
    waits for the previous one of that customer). A crash loses nothing: an unsent message is
    ``sending`` with a lease, and the dispatcher takes it over when the lease ends.
    """

    def __init__(self, limit: int = 64) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._last: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, customer_id: str, send: Callable[[], Awaitable[None]]) -> None:
        previous = self._last.get(customer_id)
        # A send outlives the batch that recorded it: it runs in a context of its own, so nothing scoped
        # to the batch (the message being handled, the batch's hand-over of events) carries into it;
        # only the trace goes on.
        trace = otel_context.get_current()

        async def run() -> None:
            otel_context.attach(trace)
            if previous is not None:
                await asyncio.wait([previous])  # its outcome is its own; only the order matters here
            async with self._slots:
                try:
                    await send()
                except Exception:
                    log.exception("sending a recorded message failed; the dispatcher retries it after its lease")

        task = asyncio.create_task(run(), context=contextvars.Context())
        self._last[customer_id] = task
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._last.get(customer_id) is t:
                del self._last[customer_id]

        task.add_done_callback(done)

    async def drain(self, timeout: float) -> None:
        """Let in-flight sends finish (shutdown); what is left is taken over after its lease."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


@dataclass
class Deps:
    """The dependency bundle of the use cases, built by ``app.build`` (or by a test)."""

    settings: NotificationsSettings
    clock: Clock
    store: NotificationStore
    directory: ContactDirectory
    channels: Mapping[Channel, ChannelProvider]
    outgoing: Outgoing = field(default_factory=Outgoing)
