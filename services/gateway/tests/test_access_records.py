"""Access records on a real broker: batched per partition, yet each record its own event, in order per
subject, carrying the trace of the request it records, and none left behind when the gateway stops."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest
from guanxi_gateway.access_records import AccessRecorder
from guanxi_gateway.settings import GatewaySettings
from guanxi_shared.contracts.audit import AccessRecorded
from guanxi_shared.testing import EventTap, create_topics, delete_topics
from guanxi_shared.topics import ACCESS_RECORDED
from opentelemetry import trace

pytestmark = pytest.mark.integration

tracer = trace.get_tracer(__name__)


async def test_records_are_batched_yet_each_arrives_once_in_order_with_its_trace(make_settings, infra, span_exporter) -> None:
    settings = make_settings(GatewaySettings, access_record_flush_ms=200)
    topic = settings.topic(ACCESS_RECORDED)
    await create_topics(infra.kafka, [topic], partitions=3)
    recorder = AccessRecorder(settings)
    tap = EventTap(infra.kafka, [topic])
    await tap.start()
    traces: dict[str, str] = {}
    try:
        await recorder.start()
        for n in range(300):
            subject = f"cust-{n % 7}"
            with tracer.start_as_current_span("request") as span:
                recorder(AccessRecorded(actor="alice", role="agent", method="GET", path="/api/v1/customers/{customer_id}",
                                        status=200, request_id=f"r{n}", customer_id=subject, at=datetime.now(UTC)), subject)
                traces[f"r{n}"] = format(span.get_span_context().trace_id, "032x")
        # Stopped within the flush window: what is queued still goes out before the producer closes.
        await recorder.stop()
        await tap.wait_for(lambda t: len(t.records) >= 300, what="300 access records")
        await tap.settle(1.0)
    finally:
        await tap.stop()
        await delete_topics(infra.kafka, [topic])

    assert len(tap.records) == 300  # each once
    order: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for record, event in zip(tap.records, tap.events(), strict=True):
        request_id = event["data"]["request_id"]
        assert record.key == event["subject"].encode()
        assert dict(record.headers)["ce_id"] == event["id"].encode()
        assert dict(record.headers)["traceparent"].decode().split("-")[1] == traces[request_id]
        order[event["subject"]].append(int(request_id[1:]))
        partitions[event["subject"]].add(record.partition)
    assert all(seq == sorted(seq) for seq in order.values()), order  # per-customer order kept
    assert all(len(p) == 1 for p in partitions.values())
    assert len({p for ps in partitions.values() for p in ps}) > 1  # really spread over partitions
