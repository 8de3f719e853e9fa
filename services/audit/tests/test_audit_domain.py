"""Pure rules of the audit trail: hash chain, verification and checkpoints, so that altering the trail cannot go
unnoticed (CF-2); redaction after an erasure that keeps it verifiable (CI-6); violation rules (CF-3)."""

from __future__ import annotations

import copy
from collections.abc import Sequence, Set
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from guanxi_audit import domain
from guanxi_audit.settings import DEFAULT_PERSONAL_FIELDS
from guanxi_shared.events import new_event
from hypothesis import given, settings
from hypothesis import strategies as st

KEY = "test-checkpoint-key"
T0 = datetime(2026, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)
MARKER = "[erased]"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("abcxyz", min_size=1, max_size=5), inner, max_size=3),
    max_leaves=8,
)
payloads = st.dictionaries(st.sampled_from(["amount", "summary", "actor", "fields", "status", "x"]), json_values,
                           max_size=5)


def capture(subject: str, data: dict[str, Any], i: int = 0, type_: str = "interaction.logged") -> domain.Capture:
    event = new_event(type_, subject, data, source="tests", time=T0 + timedelta(seconds=i))
    return domain.Capture.of(event, "ab" * 16, T0 + timedelta(seconds=i))


def chain(n: int, subject: str = "c-1") -> list[dict[str, Any]]:
    caps = [capture(subject, {"summary": f"call {i}", "amount": str(i), "actor": "alice"}, i) for i in range(n)]
    return domain.seal_chain(caps, 0, domain.GENESIS_HASH)


def verify(records: list[dict[str, Any]], checkpoints: Sequence[dict[str, Any]] = (), head: int | None = None,
           erased: Set[str] = frozenset()) -> domain.Break | None:
    v = domain.ChainVerifier(KEY, checkpoints, erased_subjects=erased, personal_fields=DEFAULT_PERSONAL_FIELDS,
                             marker=MARKER)
    for r in sorted(records, key=lambda r: r["seq"]):
        if not v.check(r):
            break
    return v.finish(head if head is not None else max((r["seq"] for r in records), default=0))


@settings(max_examples=60, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=6))
def test_any_chain_of_payloads_verifies(datas: list[dict[str, Any]]) -> None:
    records = domain.seal_chain([capture("c", d, i) for i, d in enumerate(datas)], 0, domain.GENESIS_HASH)
    assert [r["seq"] for r in records] == list(range(1, len(datas) + 1))
    assert verify(records) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(payloads.filter(bool), min_size=1, max_size=5), st.data())
def test_changing_any_stored_value_breaks_the_chain_at_that_record(datas: list[dict[str, Any]], data: st.DataObject) -> None:
    records = domain.seal_chain([capture("c", d, i) for i, d in enumerate(datas)], 0, domain.GENESIS_HASH)
    victim = data.draw(st.integers(0, len(records) - 1))
    record = records[victim]
    name = data.draw(st.sampled_from([*sorted(record["data"]), "type", "subject", "actor", "time", "trace_id"]))
    if name in record["data"]:
        record["data"][name] = {"tampered": record["data"][name]}
    elif name == "time":
        record["time"] = record["time"] + timedelta(milliseconds=1)
    else:
        record[name] = f"{record[name]}-tampered"
    broken = verify(records)
    assert broken is not None and broken.seq == record["seq"] and broken.event_id == record["_id"]


def test_deleting_a_record_is_reported_at_the_next_one() -> None:
    records = chain(5)
    del records[2]
    broken = verify(records, head=5)
    assert broken is not None and broken.seq == 4 and "missing" in broken.reason


def test_swapping_two_records_is_reported_at_the_first_swapped_position() -> None:
    records = chain(5)
    records[1]["seq"], records[2]["seq"] = 3, 2
    broken = verify(records)
    assert broken is not None and broken.seq == 2 and broken.event_id == records[2]["_id"]


def test_cutting_the_tail_is_reported_from_the_head() -> None:
    records = chain(4)
    broken = verify(records[:3], head=4)
    assert broken is not None and broken.seq == 4 and "end" in broken.reason


def test_rehashing_a_rewritten_chain_is_caught_by_the_checkpoint() -> None:
    records = chain(4)
    checkpoint = domain.make_checkpoint(KEY, 4, records[-1]["hash"], T0)
    assert verify(records, [checkpoint]) is None
    # The attacker rewrites record 2 and re-seals everything after it: links hold, the seal does not.
    forged_caps = [capture("c-1", {"summary": "nothing happened"}, 1)]
    forged = domain.seal_chain(forged_caps, 1, records[0]["hash"])
    rest = records[2:]
    prev = forged[0]["hash"]
    for r in rest:
        r["prev_hash"] = prev
        r["hash"] = domain.record_hash(r)
        prev = r["hash"]
    broken = verify([records[0], *forged, *rest], [checkpoint])
    assert broken is not None and broken.seq == 4 and "checkpoint" in broken.reason


def test_a_checkpoint_without_the_key_is_refused() -> None:
    records = chain(2)
    forged = domain.make_checkpoint("not-the-key", 2, records[-1]["hash"], T0)
    broken = verify(records, [forged])
    assert broken is not None and "HMAC" in broken.reason


def test_redaction_after_erasure_keeps_the_chain_verifiable() -> None:
    records = chain(3, subject="c-9")
    record = records[1]
    redaction = domain.redaction(record, DEFAULT_PERSONAL_FIELDS, MARKER)
    assert redaction is not None
    assert redaction.fields == ("summary",) and redaction.marker == MARKER
    redacted = copy.deepcopy(record)
    redacted["data"]["summary"] = MARKER
    del redacted["salts"]["summary"]
    redacted["redacted"] = ["summary"]
    assert redaction.apply(record) == redacted
    records[1] = redacted
    assert verify(records, erased={"c-9"}) is None
    assert domain.redaction(redacted, DEFAULT_PERSONAL_FIELDS, MARKER) is None  # idempotent
    # Without an erasure of that customer the same change is tampering.
    broken = verify(records)
    assert broken is not None and broken.seq == 2


def test_redaction_cannot_hide_a_non_personal_field() -> None:
    records = chain(2, subject="c-9")
    records[0]["data"]["amount"] = MARKER
    records[0]["redacted"] = ["amount"]
    del records[0]["salts"]["amount"]
    broken = verify(records, erased={"c-9"})
    assert broken is not None and broken.seq == 1 and "redaction" in broken.reason


def test_nested_personal_values_are_redacted_with_their_field() -> None:
    assert domain.is_personal("contact_info", {"phone": "+8613800000000"}, set(DEFAULT_PERSONAL_FIELDS))
    assert not domain.is_personal("items", [{"sku": "S1", "quantity": 1}], {"phone"})


def test_canonical_form_is_key_order_free_and_millisecond_precise() -> None:
    assert domain.canonical({"b": 1, "a": [T0]}) == domain.canonical({"a": [T0.replace(microsecond=123999)], "b": 1})
    assert domain.canonical({"a": T0}) == b'{"a":"2026-05-01T08:00:00.123+00:00"}'


def test_trace_id_comes_from_traceparent() -> None:
    assert domain.trace_id_of({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}) == \
        "4bf92f3577b34da6a3ce929d0e0e4736"
    assert domain.trace_id_of({}) is None
    assert domain.trace_id_of({"traceparent": "garbage"}) is None


def test_access_outside_role() -> None:
    paths = {"/api/v1/audit": ["auditor"]}
    assert domain.access_violation("agent", "/api/v1/customers/{id}", 403, paths) is not None
    assert domain.access_violation("agent", "/api/v1/audit/records", 200, paths) is not None
    assert domain.access_violation("auditor", "/api/v1/audit/records", 200, paths) is None
    assert domain.access_violation("agent", "/api/v1/auditing", 200, paths) is None
    assert domain.access_violation("agent", "/api/v1/customers/{id}", 200, paths) is None


def test_actor_is_read_from_the_usual_payload_fields() -> None:
    assert domain.actor_of({"actor": "alice"}) == "alice"
    assert domain.actor_of({"agent_id": "bob"}) == "bob"
    assert domain.actor_of({"customer_id": "c"}) is None


def test_keys_a_document_store_refuses_are_made_storable() -> None:
    assert domain.storable({"a.b": {"$x": [{"c.d": 1}]}}) == {"a\uff0eb": {"\uff04x": [{"c\uff0ed": 1}]}}
    cap = capture("c", {"$weird.key": 1})
    assert domain.seal_chain([cap], 0, domain.GENESIS_HASH)[0]["data"] == {"\uff04weird\uff0ekey": 1}


# --- the purpose of a read ---------------------------------------------------------------------

ROLES = ["service", "agent", "supervisor", "admin", "integration"]
minutes_st = st.integers(-30, 90).map(lambda m: timedelta(minutes=m))


def read_of(role: str, via: str, at: timedelta, captured: timedelta, window: timedelta,
            customer: str = "c-1", purpose: str = "service") -> domain.PiiRead:
    return domain.PiiRead.of("e-1", customer, None, actor="x", role=role, via=via, customer_id=customer,
                             purpose=purpose, accessed_at=T0 + at, captured_at=T0 + captured, window=window)


@given(st.sampled_from(ROLES), st.sampled_from(["api", "internal", "export"]), minutes_st, minutes_st,
       st.integers(1, 60).map(lambda m: timedelta(minutes=m)), minutes_st)
def test_only_a_service_reading_for_a_message_waits_and_it_is_never_decided_early(
    role: str, via: str, at: timedelta, captured: timedelta, window: timedelta, now: timedelta,
) -> None:
    """Staff reads count at once as before; a service's internal read waits a whole window, after the read and
    after its capture, before it counts (CF-3)."""
    read = read_of(role, via, at, captured, window)
    status = domain.settle(read, [], T0 + now, window)
    if role != "service" or via != "internal":
        assert read.status is domain.ReadStatus.counted and read.decide_by is None and status is read.status
        return
    assert read.status is domain.ReadStatus.pending and read.decide_by is not None
    assert read.decide_by >= domain.as_utc_ms(T0 + at) + window and read.decide_by >= domain.as_utc_ms(T0 + captured) + window
    assert status is (domain.ReadStatus.lapsed if T0 + now >= read.decide_by else domain.ReadStatus.pending)


sends_st = st.lists(st.tuples(st.sampled_from(["c-1", "c-2"]), st.sampled_from(["service", "care", "marketing"]),
                              st.integers(-20, 40)), max_size=6)


@given(sends_st, st.sampled_from(["service", "care"]), st.integers(1, 30), st.booleans())
def test_a_send_justifies_a_read_of_its_customer_and_purpose_within_the_window_in_any_order(
    specs: list[tuple[str, str, int]], purpose: str, window_minutes: int, decided: bool,
) -> None:
    """A read is justified exactly by a message to its customer for its purpose sent within the window after it,
    whatever order the sends come in; a decision once taken stays (CF-3)."""
    window = timedelta(minutes=window_minutes)
    read = read_of("service", "internal", timedelta(0), timedelta(0), window, purpose=purpose)
    sends = [domain.Send(f"n-{i}", c, p, domain.as_utc_ms(T0 + timedelta(minutes=m))) for i, (c, p, m) in enumerate(specs)]
    now = T0 + (2 * window if decided else window / 2)
    expected = any(c == "c-1" and p == purpose and 0 <= m <= window_minutes for c, p, m in specs)
    status = domain.settle(read, sends, now, window)
    assert status is (domain.ReadStatus.justified if expected else
                      domain.ReadStatus.lapsed if decided else domain.ReadStatus.pending)
    assert domain.settle(read, list(reversed(sends)), now, window) is status
    for final in (domain.ReadStatus.counted, domain.ReadStatus.lapsed, domain.ReadStatus.justified):
        assert domain.settle(replace(read, status=final), sends, now, window) is final
    assert domain.justifying_send("notification.sent", None) and domain.justifying_send("notification.failed", "sms")
    assert not domain.justifying_send("notification.failed", None)
    assert not domain.justifying_send("notification.suppressed", "sms")
