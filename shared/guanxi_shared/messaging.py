"""Kafka plumbing every service uses the same way.

* ``make_broker``: FastStream ``KafkaBroker`` with an idempotent producer (acks=all) and the
  OpenTelemetry middleware (trace context in the W3C headers).
* ``EventPublisher``: publishes CloudEvents keyed by subject (customer id) to the topic named by
  their type, carrying the current trace context.
* ``EventConsumer``: at-least-once batch consumption. Offsets are committed only after every event
  of the batch has been handled (``AckPolicy.NACK_ON_ERROR``: an infrastructure failure rewinds the
  partitions, and idempotent handlers make the redelivery harmless). A message that can never be
  handled (bad JSON, wrong contract, a handler that keeps failing on it) goes to ``<topic>.dlq``
  with the reason and the original headers after bounded attempts, and the partition keeps flowing.
  Events of one customer are handled in order; different customers run concurrently.
  A partition taken away by a rebalance is released only once the batch being handled is done
  (``DrainOnRevoke``), and partitions are assigned by range (partition n of every topic to one
  member), so two members never work on the same customer at once: the partition's owner is the
  single writer of what its events change (the customer service relies on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaConnectionError, KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from .events import CloudEvent, InvalidEvent, decode_event
from .settings import ServiceSettings
from .topics import dead_letter

log = logging.getLogger(__name__)
tracer = trace.get_tracer("guanxi.messaging")

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


def envelope_headers(event_id: str) -> dict[str, str]:
    """The headers every event message carries besides its trace context (consumers deduplicate on ``ce_id``)."""
    return {"content-type": CONTENT_TYPE, "ce_id": event_id}


class PermanentError(Exception):
    """The event can never be handled as it is (business rule refuses it): dead-letter it."""


# Errors that mean "the infrastructure is unwell", never "this message is bad": such a batch is
# not committed and is delivered again once the store or broker is back.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionFailure, KafkaError, asyncio.TimeoutError, OSError)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    # Server-side errors flagged retryable by the driver (e.g. not primary, shutdown in progress).
    if isinstance(exc, OperationFailure):
        return exc.has_error_label("RetryableWriteError") or exc.code in {6, 7, 89, 91, 189, 11600, 11602}
    return isinstance(exc, PyMongoError) and exc.has_error_label("RetryableWriteError")


def make_broker(settings: ServiceSettings, *, tracer_provider: Any = None, **overrides: Any) -> KafkaBroker:
    options: dict[str, Any] = {
        "enable_idempotence": True,  # implies acks=all: a retry never writes a duplicate
        "linger_ms": 5,  # lets concurrent publishes share a produce request
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
        "retry_backoff_ms": 200,
        "client_id": f"guanxi-{settings.service_name}",
        "graceful_timeout": 30.0,
        "middlewares": [KafkaTelemetryMiddleware(tracer_provider=tracer_provider)],
        "logger": logging.getLogger(f"guanxi.{settings.service_name}.kafka"),
    }
    options.update(overrides)
    return KafkaBroker(settings.kafka_bootstrap_servers, **options)


class EventPublisher:
    """Publishes CloudEvents; the Kafka key is the subject, so one customer's events stay in order.

    Through a producer of its own (aiokafka; idempotent, so acks=all and a retry never duplicates),
    not the broker's ``publish``: FastStream's middleware chain is a cost per event, and a service that
    publishes one event per purchase pays it on its hottest path. Every event of the service goes through this one
    producer, so a customer's events keep their order. Each publish still gets its PRODUCER span,
    and the trace context travels in the headers as before."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None  # made in start(): aiokafka needs the running loop

    async def start(self) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.kafka_bootstrap_servers, enable_idempotence=True,
                linger_ms=5, max_batch_size=256 * 1024, request_timeout_ms=30_000, retry_backoff_ms=200,
                client_id=f"guanxi-{self._settings.service_name}-events")
            await producer.start()
            self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()  # sends what is buffered first

    async def publish(self, event: CloudEvent, *, topic: str | None = None, headers: dict[str, str] | None = None) -> None:
        await self._send(self._settings.topic(topic or event.type), event.to_json(), event.subject.encode(),
                         {**envelope_headers(event.id), **(headers or {})}, event.id)

    async def publish_encoded(self, value: bytes, event_id: str, event_type: str, subject: str) -> None:
        """``publish`` of an event already encoded by ``CloudEvent.to_json`` (an outbox entry)."""
        await self._send(self._settings.topic(event_type), value, subject.encode(),
                         envelope_headers(event_id), event_id)

    async def publish_many(self, events: Iterable[CloudEvent]) -> None:
        """Publish ``events`` (in order per key) and wait for every ack, under ONE producer span whose
        context every message carries: a span per event is a cost per event for a service that announces
        one decision per purchase. Consumers' spans continue this span's trace."""
        batch = [(self._settings.topic(e.type), e.to_json(), e.subject.encode(),
                  envelope_headers(e.id)) for e in events]
        if batch:
            await self._send_batch(batch, None)

    async def dead_letter(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str], reason: str) -> None:
        await self._send(dead_letter(topic), value, key,
                         {**headers, "dlq-reason": reason[:2000], "dlq-original-topic": topic,
                          "dlq-service": self._settings.service_name, "dlq-failed-at": str(time.time())}, None)

    async def _send(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str], message_id: str | None) -> None:
        await self._send_batch([(topic, value, key, headers)], message_id)

    async def _send_batch(self, messages: Sequence[tuple[str, bytes, bytes | None, dict[str, str]]],
                          message_id: str | None) -> None:
        """Send (topic, value, key, headers) messages under one PRODUCER span whose context each carries,
        queued in order (one key's messages keep theirs), then wait for every ack."""
        producer = self._producer
        if producer is None:  # as the broker before ``start``: the relay leaves the entry for later
            raise KafkaConnectionError("the event publisher is not started")
        topics = sorted({topic for topic, _, _, _ in messages})
        attributes: dict[str, Any] = {"messaging.system": "kafka", "messaging.operation.type": "send"}
        if len(topics) == 1:
            attributes["messaging.destination.name"] = topics[0]
        if len(messages) > 1:
            attributes["messaging.batch.message_count"] = len(messages)
        if message_id is not None:
            attributes["messaging.message.id"] = message_id
        name = f"{topics[0] if len(topics) == 1 else 'events'} publish"
        with tracer.start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attributes):
            context: dict[str, str] = {}
            propagate.inject(context)  # this span's context: the consumer's span continues the trace
            sent = [await producer.send(topic, value, key=key,
                                        headers=[(k, v.encode()) for k, v in {**headers, **context}.items()])
                    for topic, value, key, headers in messages]
            await asyncio.gather(*sent)


@dataclass
class Delivery:
    """One decoded event and where it came from."""

    event: CloudEvent
    topic: str
    partition: int
    offset: int
    headers: dict[str, str] = field(default_factory=dict)
    value: bytes = b""
    key: bytes | None = None

    @property
    def trace_context(self) -> otel_context.Context:
        return propagate.extract(self.headers)


EventHandler = Callable[[CloudEvent], Awaitable[None]]
BatchHandler = Callable[[list[Delivery]], Awaitable[list[tuple[Delivery, BaseException]]]]


@dataclass
class ConsumerStats:
    handled: int = 0
    dead_lettered: int = 0
    retried: int = 0
    batches: int = 0


class BatchCompanion(Protocol):
    """What a consumer keeps in step with its batches (``OutboxRelay``): kept off the store while one is
    at work (``holding``), and waited for before a partition is given away (``settle``)."""

    def holding(self) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def settle(self) -> None: ...


class DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Holds a rebalance until the batch in hand has been handled.

    aiokafka calls ``on_partitions_revoked`` from its coordinator task, while a handler may still be
    writing; returning at once would let the partition's next owner start on the same customers from
    the last committed offset, two writers at a time. Waiting here (bounded by the rebalance timeout,
    i.e. ``max_poll_interval_ms``) keeps one. The batch's own commit may then fail with the rebalance;
    the next owner gets those records again and idempotent handlers absorb them."""

    def __init__(self, settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0
        self.drained = 0  # revocations that had to wait for a batch (observable in tests and logs)
        # Also awaited before releasing: follow-ups of finished batches still going out (``OutboxRelay.settle``),
        # so the next owner's events for a customer cannot overtake them.
        self._settle = settle

    def begin(self) -> None:
        self._busy += 1
        self._idle.clear()

    def end(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self._idle.set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not self._idle.is_set():
            self.drained += 1
            log.info("rebalance: waiting for the batch in hand before releasing %d partitions", len(revoked))
            await self._idle.wait()
        if self._settle is not None:
            await self._settle()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


class EventConsumer:
    """Registers one batch subscriber for ``handlers`` (event type → handler) on ``broker``."""

    def __init__(
        self,
        broker: KafkaBroker,
        settings: ServiceSettings,
        publisher: EventPublisher,
        handlers: dict[str, EventHandler],
        *,
        group_id: str | None = None,
        batch_handlers: dict[str, BatchHandler] | None = None,
        concurrency: int = 64,
        auto_offset_reset: Literal["latest", "earliest", "none"] = "earliest",
        retry_backoff: float = 0.2,
        relay: BatchCompanion | None = None,
    ) -> None:
        self.settings = settings
        # The outbox relay of the service, kept off the store during each batch and waited for before a
        # partition is given away (its follow-ups still going out must not be overtaken by the next owner's).
        self._relay = relay
        self.publisher = publisher
        self.handlers = handlers
        self.batch_handlers = batch_handlers or {}
        self.stats = ConsumerStats()
        self._semaphore = asyncio.Semaphore(concurrency)
        self._retry_backoff = retry_backoff
        self.rebalance = DrainOnRevoke(relay.settle if relay is not None else None)
        topics = sorted(set(handlers) | set(self.batch_handlers))
        self._by_topic = {settings.topic(t): t for t in topics}
        subscriber = broker.subscriber(
            *list(self._by_topic),
            group_id=group_id or settings.consumer_group,
            batch=True,
            max_records=settings.batch_max_records,
            batch_timeout_ms=20,
            auto_offset_reset=auto_offset_reset,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            max_poll_interval_ms=300_000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            listener=self.rebalance,
            # Range, not round-robin: partition n of every subscribed topic goes to the same member, and
            # topics of equal partition count put one customer's key on the same n. So a customer's events
            # on different topics (a complaint's steps) are handled by one member: one writer per customer.
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        subscriber(self._consume)

    # FastStream calls this with the raw batch; decoding is ours so a bad record cannot fail the batch.
    async def _consume(self, msg: KafkaMessage) -> None:
        self.rebalance.begin()
        try:
            async with self._relay.holding() if self._relay is not None else contextlib.nullcontext():
                await self._consume_batch(msg)
        finally:
            self.rebalance.end()

    async def _consume_batch(self, msg: KafkaMessage) -> None:
        records = self._records(msg.raw_message)
        self.stats.batches += 1
        deliveries: list[Delivery] = []
        for record in records:
            headers = {k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v)) for k, v in (record.headers or ())}
            value = record.value or b""
            logical = self._by_topic.get(record.topic, record.topic)
            try:
                event = decode_event(value)
                if event.type != logical:
                    raise InvalidEvent(f"event type {event.type!r} published on topic {logical!r}")
            except InvalidEvent as exc:
                await self._dead_letter(record.topic, value, record.key, headers, str(exc))
                continue
            deliveries.append(Delivery(event, record.topic, record.partition, record.offset, headers, value, record.key))
        if not deliveries:
            return

        failures: list[tuple[Delivery, BaseException]] = []
        by_type: dict[str, list[Delivery]] = defaultdict(list)
        for d in deliveries:
            by_type[d.event.type].append(d)
        for event_type, batch in by_type.items():
            if event_type in self.batch_handlers:
                failures += await self.batch_handlers[event_type](batch)
            else:
                failures += await self.handle_per_customer(batch)
        # Failures left after bounded retries: transient ones keep the batch uncommitted.
        transient = [f for _, f in failures if is_transient(f)]
        if transient:
            await asyncio.sleep(1.0)  # do not spin while the store or broker is down
            raise transient[0]
        for delivery, failure in failures:
            reason = f"{type(failure).__name__}: {failure}"
            await self._dead_letter(delivery.topic, delivery.value, delivery.key, delivery.headers, reason)
        self.stats.handled += len(deliveries) - len(failures)

    @staticmethod
    def _records(raw: Any) -> tuple[Any, ...]:
        """The batch's Kafka records: aiokafka gives a tuple of them; FastStream's in-memory test broker
        (``TestKafkaBroker``, the subscriber-wiring tests) gives a list holding one such record."""
        if isinstance(raw, tuple):
            return raw
        if isinstance(raw, list):
            return tuple(r for item in raw for r in (item if isinstance(item, list | tuple) else (item,)))
        return (raw,)

    async def handle_per_customer(self, batch: Sequence[Delivery]) -> list[tuple[Delivery, BaseException]]:
        """One handler call per event, with retries: in order per customer, customers concurrently.
        Batch handlers hand back here what their bulk path did not settle."""
        groups: dict[str, list[Delivery]] = defaultdict(list)
        for d in batch:
            groups[d.event.subject].append(d)

        async def run_group(items: list[Delivery]) -> list[tuple[Delivery, BaseException]]:
            out = []
            async with self._semaphore:
                for d in items:
                    error = await self.handle_one(d)
                    if error is not None:
                        out.append((d, error))
                        if is_transient(error):
                            break  # keep this customer's order: the rest comes again with the batch
            return out

        results = await asyncio.gather(*(run_group(g) for g in groups.values()))
        return [f for r in results for f in r]

    async def handle_one(self, delivery: Delivery) -> BaseException | None:
        """Run the handler with bounded retries inside a span continuing the producer's trace."""
        handler = self.handlers[delivery.event.type]
        attempts = self.settings.max_delivery_attempts
        last: BaseException | None = None
        for attempt in range(1, attempts + 1):
            with tracer.start_as_current_span(
                f"{delivery.event.type} process",
                context=delivery.trace_context,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": delivery.topic,
                    "messaging.kafka.destination.partition": delivery.partition,
                    "messaging.kafka.message.offset": delivery.offset,
                    "messaging.message.id": delivery.event.id,
                    "messaging.consumer.group.name": self.settings.consumer_group,
                    "guanxi.customer_id": delivery.event.subject,
                    "guanxi.attempt": attempt,
                },
            ) as span:
                try:
                    await handler(delivery.event)
                    return None
                except (InvalidEvent, PermanentError) as exc:
                    span.record_exception(exc)
                    return exc
                except Exception as exc:
                    span.record_exception(exc)
                    last = exc
                    if attempt < attempts:
                        self.stats.retried += 1
                        log.warning("handler for %s failed (attempt %d/%d): %r", delivery.event.type, attempt, attempts, exc)
                        await asyncio.sleep(self._retry_backoff * attempt)
        return last

    async def _dead_letter(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str], reason: str) -> None:
        self.stats.dead_lettered += 1
        log.error("dead-lettering a message from %s: %s", topic, reason)
        await self.publisher.dead_letter(topic, value, key, headers, reason)
