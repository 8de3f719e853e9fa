"""Envelope, contracts and upcasting: pure, no infrastructure."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from guanxi_shared.contracts.inbound import ComplaintReceived, PurchaseCompleted
from guanxi_shared.events import CloudEvent, InvalidEvent, decode_event, new_event, parse_data, register_upcaster
from guanxi_shared.topics import ALL_TOPICS, CATALOGUE
from hypothesis import given
from hypothesis import strategies as st


def test_envelope_round_trips_with_extensions() -> None:
    event = new_event("purchase.completed", "c-1", {"order_id": "o"}, source="orders", correlationid="corr")
    decoded = decode_event(event.to_json())
    assert decoded == event
    body = json.loads(event.to_json())
    assert body["specversion"] == "1.0" and body["dataversion"] == 1 and body["correlationid"] == "corr"
    assert "causationid" not in body  # absent attributes are omitted, not null


def test_unknown_attributes_and_fields_are_ignored_not_rejected() -> None:
    raw = json.loads(new_event("complaint.received", "c", {}, source="cc").to_json())
    raw["someextension"] = "x"
    assert decode_event(json.dumps(raw)).type == "complaint.received"
    data = {"customer_id": "c", "channel": "phone", "category": "billing", "severity": "high", "description": "d",
            "received_at": "2026-09-30T10:00:00+08:00", "future_field": 1}
    assert parse_data(CloudEvent(source="cc", type="complaint.received", subject="c", data=data), ComplaintReceived)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"specversion":"1.0","source":"s","type":"t"}', "subject"),
        (b'{"specversion":"0.3","source":"s","type":"t","subject":"c"}', "specversion"),
        (b'{"source":"s","type":"t","subject":"c","time":"2026-01-01T00:00:00"}', "UTC offset"),
    ],
)
def test_bad_envelopes_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode_event(raw)


def test_contract_errors_name_the_field() -> None:
    event = CloudEvent(source="o", type="purchase.completed", subject="c", data={"order_id": "o"})
    with pytest.raises(InvalidEvent, match="amount"):
        parse_data(event, PurchaseCompleted)


def test_upcaster_turns_old_payloads_into_the_current_shape() -> None:
    register_upcaster(
        "test.upcast_demo", 1, lambda d: {k: v for k, v in d.items() if k != "full_name"} | {"name": d["full_name"]}
    )
    old = new_event("test.upcast_demo", "c", {"full_name": "Li"}, source="s", dataversion=1)
    current = decode_event(old.to_json())
    assert current.dataversion == 2 and current.data == {"name": "Li"}


@given(amount=st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_any_non_negative_decimal_amount_is_accepted(amount: object) -> None:
    data = {"order_id": "o", "customer_id": "c", "amount": str(amount), "currency": "CNY", "items": [],
            "channel": "web", "purchased_at": datetime.now(UTC).isoformat()}
    assert PurchaseCompleted.model_validate(data).amount == str(amount)


def test_catalogue_names_are_unique_domain_dot_past_tense() -> None:
    assert len(ALL_TOPICS) == len(set(ALL_TOPICS))
    for topic in CATALOGUE:
        domain, _, event = topic.name.partition(".")
        assert domain and event and topic.dlq == topic.name + ".dlq"


async def test_a_rebalance_waits_for_the_batch_in_hand() -> None:
    """The partition is released only after the running batch is done: its next owner never works on the
    same customers at the same time (the single-writer rule the customer service's batch path relies on)."""
    import asyncio

    from guanxi_shared.messaging import DrainOnRevoke

    listener = DrainOnRevoke()
    await asyncio.wait_for(listener.on_partitions_revoked(set()), 1)  # idle: released at once
    listener.begin()
    revoked = asyncio.create_task(listener.on_partitions_revoked(set()))
    await asyncio.sleep(0.2)
    assert not revoked.done(), "released while a batch was still being handled"
    listener.end()
    await asyncio.wait_for(revoked, 1)
    assert listener.drained == 1
