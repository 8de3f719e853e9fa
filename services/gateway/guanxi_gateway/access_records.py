"""Access records: one ``access.recorded`` event per request the gateway handled, for the audit service.

Every proxied request makes one, so they take the cheapest path that keeps each record its own event:
serialised at once (with the trace context of the request they record), queued, and handed to Kafka
at most ``flush_seconds`` later as one ready-made batch per partition (aiokafka ``create_batch`` /
``send_batch``) by a producer of their own, idempotent with acks=all like every other producer.

Sending each record with ``producer.send`` costs a coroutine, a future and a partitioner call per
record, and the broker a produce request every ``linger_ms``, on the gateway's busiest path (figures
in bench/README.md). The key is the record's subject
(the customer, else the actor), so one customer's records keep their order. A batch Kafka refuses
is logged with the ids of its records; the request it records has already been answered.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from guanxi_shared.contracts.audit import AccessRecorded
from guanxi_shared.events import new_event
from guanxi_shared.messaging import envelope_headers
from guanxi_shared.topics import ACCESS_RECORDED
from opentelemetry import propagate

from .handlers import SOURCE
from .settings import GatewaySettings

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class _Record:
    event_id: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class _Batch:
    builder: Any  # aiokafka BatchBuilder
    event_ids: list[str] = field(default_factory=list)

    def add(self, record: _Record) -> bool:
        """False when the batch is full (the record is not in it)."""
        if self.builder.append(key=record.key, value=record.value, timestamp=None, headers=record.headers) is None:
            return False
        self.event_ids.append(record.event_id)
        return True


class AccessRecorder:
    """Publishes access records after the answer, without making the caller wait for Kafka."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings
        self._topic = settings.topic(ACCESS_RECORDED)
        self._flush_seconds = settings.access_record_flush_ms / 1000
        self._producer: AIOKafkaProducer | None = None  # made in start(): aiokafka needs the running loop
        self._partitioner = DefaultPartitioner()
        self._queue: list[_Record] = []
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._closing = False
        self._in_flight: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=self._settings.kafka_bootstrap_servers,
                                          enable_idempotence=True, client_id="guanxi-gateway-access")
        await self._producer.start()
        self._sender = asyncio.get_running_loop().create_task(self._send_queued(), name="access-records")
        self._wake.set()  # records of requests served before start

    def __call__(self, record: AccessRecorded, subject: str) -> None:
        event = new_event(ACCESS_RECORDED, subject, record.model_dump(mode="json", exclude_none=True), source=SOURCE)
        carrier = envelope_headers(event.id)
        propagate.inject(carrier)  # the trace of the request being recorded, not of the later flush
        headers = [(k, v.encode()) for k, v in carrier.items()]
        self._queue.append(_Record(event.id, subject.encode(), event.to_json(), headers))
        if not self._wake.is_set():
            self._wake.set()

    async def _send_queued(self) -> None:
        while not self._closing:
            await self._wake.wait()
            if not self._closing:
                # Gather what the next few milliseconds bring: a batch per partition, not a send per record.
                await asyncio.sleep(self._flush_seconds)
            self._wake.clear()
            try:
                await self._hand_over()
            except Exception:  # the sender must outlive any one bad hand-over, or records would pile up unsent
                log.exception("handing access records to Kafka failed")

    async def _hand_over(self) -> None:
        producer = self._producer
        if producer is None or not self._queue:
            return  # not started (yet): what is queued goes out after start
        records, self._queue = self._queue, []
        try:
            # Known metadata answers at once; asking each time follows partitions added to the topic.
            partitions = sorted(await producer.partitions_for(self._topic))
        except Exception:
            log.exception("access records %s could not be published", ", ".join(r.event_id for r in records))
            return
        batches: dict[int, _Batch] = {}
        for record in records:
            partition = self._partitioner(record.key, partitions, partitions)
            batch = batches.get(partition)
            if batch is None or not batch.add(record):
                if batch is not None:  # full: send it and go on with a fresh one for this partition
                    await self._send(batch, partition)
                batch = batches[partition] = _Batch(producer.create_batch())
                batch.add(record)
        for partition, batch in batches.items():
            await self._send(batch, partition)

    async def _send(self, batch: _Batch, partition: int) -> None:
        assert self._producer is not None
        try:
            delivery = await self._producer.send_batch(batch.builder, self._topic, partition=partition)
        except Exception:
            log.exception("access records %s could not be published", ", ".join(batch.event_ids))
            return
        self._in_flight.add(delivery)
        delivery.add_done_callback(lambda done: self._delivered(batch.event_ids, done))

    def _delivered(self, event_ids: list[str], delivery: asyncio.Future[Any]) -> None:
        self._in_flight.discard(delivery)
        if not delivery.cancelled() and delivery.exception() is not None:
            log.error("access records %s could not be published: %s", ", ".join(event_ids), delivery.exception())

    async def drain(self) -> None:
        """Hand over what is queued and wait until Kafka has confirmed it (tests, shutdown)."""
        await self._hand_over()
        if self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    async def stop(self) -> None:
        try:
            if self._sender is not None:
                # Not cancelled: a hand-over in progress holds records taken off the queue.
                self._closing = True
                self._wake.set()
                await self._sender
            await self.drain()
        finally:
            if self._producer is not None:
                await self._producer.stop()
