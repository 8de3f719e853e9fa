"""The audit use cases on the in-memory store: capture, violation rules, erasure, verification and queries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

import pytest
from audit_testkit import access, complaint, contact_read, erased, interaction, notified, pii_read, purchase
from guanxi_audit import domain, handlers
from guanxi_audit.domain import RecordQuery
from guanxi_audit.handlers import Deps
from guanxi_audit.settings import AuditSettings
from guanxi_audit.store import InMemoryAuditStore
from guanxi_shared.clock import ManualClock
from guanxi_shared.errors import Invalid
from guanxi_shared.events import CloudEvent
from guanxi_shared.messaging import Delivery, PermanentError
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def make_deps(store: InMemoryAuditStore | None = None, **overrides: Any) -> Deps:
    return Deps(store=store or InMemoryAuditStore(), settings=AuditSettings(**overrides), clock=ManualClock(T0))


def deliveries(*events: CloudEvent, headers: dict[str, str] | None = None) -> list[Delivery]:
    return [Delivery(e, e.type, 0, offset, dict(headers or {})) for offset, e in enumerate(events)]


async def capture(deps: Deps, *events: CloudEvent) -> None:
    assert await handlers.capture(deps, deliveries(*events)) == []


def store_of(deps: Deps) -> InMemoryAuditStore:
    assert isinstance(deps.store, InMemoryAuditStore)
    return deps.store


def advance(deps: Deps, delta: timedelta) -> None:
    assert isinstance(deps.clock, ManualClock)
    deps.clock.advance(delta)


def violations(deps: Deps) -> list[tuple[str, str]]:
    return sorted((e.data["rule"], e.data.get("actor") or "") for e in store_of(deps).published)


async def test_a_batch_is_appended_once_per_event_with_its_trace_id() -> None:
    """Every event is written once to a verifiable trail (CF-2)."""
    deps = make_deps()
    buy = purchase("c-1", "o-1")
    failures = await handlers.capture(deps, deliveries(buy, buy, headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}))
    assert failures == []
    await capture(deps, buy, complaint("c-1"), interaction("c-2", agent="agent-9"))  # the purchase comes again
    records = sorted(store_of(deps).records.values(), key=lambda r: r["seq"])
    assert [(r["seq"], r["type"]) for r in records] == [
        (1, "purchase.completed"), (2, "complaint.received"), (3, "interaction.logged")]
    assert records[0]["_id"] == buy.id and records[0]["trace_id"] == TRACE and records[1]["trace_id"] is None
    assert records[2]["actor"] == "agent-9" and records[0]["recorded_at"] == T0
    verdict = await handlers.verify(deps)
    assert verdict["ok"] is True and verdict["checked"] == 3 and verdict["first_broken"] is None


class Refusing(InMemoryAuditStore):
    """Refuses any append holding the event ``refused``, or fails every append with ``outage``."""

    def __init__(self, refused: str | None = None, outage: BaseException | None = None) -> None:
        super().__init__()
        self.refused, self.outage = refused, outage

    async def append(self, captures: Sequence[domain.Capture]) -> list[dict[str, Any]]:
        if self.outage is not None:
            raise self.outage
        if any(c.event_id == self.refused for c in captures):
            raise ValueError("document too large")
        return await super().append(captures)


async def test_a_record_the_store_refuses_fails_alone_and_an_outage_fails_the_batch() -> None:
    bad, good = complaint("c-1"), interaction("c-2")
    deps = make_deps(Refusing(refused=bad.id))
    failures = await handlers.capture(deps, deliveries(good, bad))
    assert [(d.event.id, type(exc)) for d, exc in failures] == [(bad.id, PermanentError)]
    assert list(store_of(deps).records) == [good.id]

    down = OSError("store unreachable")
    deps = make_deps(Refusing(outage=down))
    failures = await handlers.capture(deps, deliveries(good, bad))
    assert [(d.event.id, exc) for d, exc in failures] == [(good.id, down), (bad.id, down)]


async def test_bulk_reads_of_personal_data_raise_one_violation_per_episode() -> None:
    """Bulk reads of personal data are detected (CF-3)."""
    deps = make_deps(bulk_pii_max_customers=2)
    for customer in ("c-1", "c-2", "c-3", "c-4", "c-1"):
        await capture(deps, pii_read(customer, "alice"))
    await capture(deps, pii_read("c-1", "bob"), pii_read("c-2", "bob"))
    assert violations(deps) == [("bulk_pii_read", "alice")]
    [event] = store_of(deps).published
    trigger = next(r for r in store_of(deps).records.values() if r["subject"] == "c-3")
    assert event.subject == "c-3" and event.causationid == trigger["_id"] == event.data["event_id"]
    assert "alice" in event.data["detail"] and "3 customers" in event.data["detail"]


async def test_refused_and_out_of_role_requests_raise_one_violation_per_actor_and_window() -> None:
    """Access outside one's role is detected (CF-3)."""
    deps = make_deps()
    await capture(deps, access("mallory", "agent", "/api/v1/customers/{id}", 403),
                  access("mallory", "agent", "/api/v1/customers/{id}", 403),
                  access("eve", "agent", "/api/v1/audit/records", 200),
                  access("ada", "auditor", "/api/v1/audit/records", 200),
                  access("bob", "agent", "/api/v1/customers/{id}", 200))
    assert violations(deps) == [("role_violation", "eve"), ("role_violation", "mallory")]
    # The window counts from the request's time: one after the window is a new episode.
    later = access("mallory", "agent", "/api/v1/customers/{id}", 403)
    window = timedelta(seconds=deps.settings.role_violation_window_seconds)
    later.data["at"] = (datetime.now(UTC) + window + timedelta(minutes=1)).isoformat()
    await capture(deps, later)
    assert violations(deps) == [("role_violation", "eve"), ("role_violation", "mallory"), ("role_violation", "mallory")]


async def test_erasure_redacts_earlier_and_later_records_and_the_chain_still_verifies() -> None:
    """Erasure redacts the trail and leaves a verifiable trace (CI-6)."""
    deps = make_deps()
    await capture(deps, complaint("c-gone"), interaction("c-gone", summary="told us her address"), complaint("c-kept"))
    await capture(deps, erased("c-gone"))
    await capture(deps, complaint("c-gone", description="call me on 13900000000"))  # arrives after the erasure
    records = {(r["subject"], r["seq"]): r for r in store_of(deps).records.values()}
    gone = [r for (subject, _), r in sorted(records.items()) if subject == "c-gone" and r["type"] != "customer.erased"]
    assert [r["redacted"] for r in gone] == [["description"], ["summary"], ["description"]]
    assert all(r["data"].get("description", r["data"].get("summary")) == "[erased]" for r in gone)
    assert gone[0]["data"]["category"] == "delivery" and gone[0]["data"]["customer_id"] == "c-gone"
    kept = next(r for (subject, _), r in records.items() if subject == "c-kept")
    assert "13800138000" in kept["data"]["description"] and kept["redacted"] == []
    verdict = await handlers.verify(deps)
    assert verdict["ok"] is True and verdict["checked"] == 5


async def test_a_broken_chain_is_one_episode_until_a_verification_passes() -> None:
    """Altering the trail is noticed (CF-2) and reported as a violation (CF-3)."""
    deps = make_deps()
    await capture(deps, *(interaction(f"c-{i}", summary=f"call {i}") for i in range(4)))
    store = store_of(deps)
    third = next(r for r in store.records.values() if r["seq"] == 3)
    original = dict(third["data"])
    third["data"]["summary"] = "nothing happened"
    first = await handlers.verify(deps)
    assert first["ok"] is False and first["first_broken"] == {"seq": 3, "event_id": third["_id"],
                                                              "reason": "payload field 'summary' altered"}
    assert (await handlers.verify(deps))["first_broken"]["seq"] == 3  # still broken: the same episode
    assert violations(deps) == [("chain_broken", "")]
    assert store.published[0].subject == "audit" and store.published[0].data["seq"] == 3
    assert await handlers.seal_checkpoint(deps) is None  # a broken chain is never sealed

    third["data"] = original
    assert (await handlers.verify(deps))["ok"] is True
    assert await handlers.seal_checkpoint(deps) == 4
    advance(deps, timedelta(minutes=5))
    del store.records[third["_id"]]
    again = await handlers.verify(deps)
    assert again["first_broken"]["seq"] == 4 and "missing" in again["first_broken"]["reason"]
    assert violations(deps) == [("chain_broken", ""), ("chain_broken", "")]


async def test_records_are_found_by_filters_and_paged_in_chain_order() -> None:
    deps = make_deps()
    await capture(deps, purchase("c-1", "o-1"), complaint("c-1"), pii_read("c-2", "alice"), interaction("c-1"))
    seen: list[dict[str, Any]] = []
    cursor = 0
    while True:
        items, following = await handlers.find_records(deps, RecordQuery(customer_id="c-1"), cursor, 2)
        seen += items
        if following is None:
            break
        cursor = int(following)
    assert [(i["seq"], i["type"]) for i in seen] == [(1, "purchase.completed"), (2, "complaint.received"),
                                                    (4, "interaction.logged")]
    assert all("salts" not in i and isinstance(i["time"], str) and i["digests"] for i in seen)
    assert [i["actor"] for i in (await handlers.find_records(deps, RecordQuery(actor="alice"), 0, 10))[0]] == ["alice"]
    exported = [i["seq"] async for i in handlers.export_records(deps, RecordQuery(), page=3)]
    assert exported == [1, 2, 3, 4]
    assert [i async for i in handlers.export_records(deps, RecordQuery(until=T0 - timedelta(days=3650)))] == []


def test_a_query_needs_offsets_and_an_ordered_range() -> None:
    with pytest.raises(Invalid, match="since must carry a UTC offset"):
        RecordQuery(since=datetime(2026, 1, 1))
    with pytest.raises(Invalid, match="since must be before until"):
        RecordQuery(since=T0, until=T0)
    assert Invalid.status == 422 and RecordQuery(trace_id=TRACE.upper()).equalities() == {"trace_id": TRACE}


async def test_retention_is_off_by_default() -> None:
    deps = make_deps()
    await capture(deps, interaction("c-1"))
    advance(deps, timedelta(days=3650))
    assert await handlers.archive_expired(deps) == 0 and len(store_of(deps).records) == 1


# --- the bulk-read rule and the purpose of a read ----------------------------------------------

async def pass_every_minute(deps: Deps, until: datetime) -> None:
    """Let time run to ``until`` with the periodic settling pass each minute, as ``runtime.every`` would."""
    while deps.clock.now() < until:
        advance(deps, timedelta(minutes=1))
        await handlers.settle_pii_reads(deps)


def statuses(deps: Deps) -> dict[str, int]:
    counts: dict[str, int] = {}
    for read in store_of(deps).pii_reads.values():
        counts[read["status"]] = counts.get(read["status"], 0) + 1
    return counts


async def test_a_thousand_legitimate_sends_raise_no_bulk_read_violation() -> None:
    """The notifications service reading contact details for each message it sends is not a bulk read (CF-3).

    A thousand customers in one hour, each read and then sent to; for every other one the send is
    captured before the read (topics are not ordered with each other)."""
    deps = make_deps()
    for i in range(1000):
        at = T0 + timedelta(seconds=3.6 * i)
        if at > deps.clock.now() + timedelta(minutes=1):
            await pass_every_minute(deps, at)
        read = contact_read(f"c-{i}", "service" if i % 3 else "marketing", at)
        sent = notified(f"c-{i}", "service" if i % 3 else "marketing", at + timedelta(seconds=2))
        await capture(deps, *((read, sent) if i % 2 else (sent, read)))
    await pass_every_minute(deps, deps.clock.now() + timedelta(hours=1))
    assert violations(deps) == []
    assert statuses(deps) == {"justified": 1000}
    assert await deps.store.distinct_customers_read("notifications", T0, T0 + timedelta(hours=2)) == 0


async def test_sixty_customers_read_by_an_agent_within_an_hour_raise_one_violation() -> None:
    """A staff member's reads count as they always did, even when a message goes to each customer too (CF-3)."""
    deps = make_deps()
    for i in range(60):
        at = T0 + timedelta(minutes=i)
        await capture(deps, pii_read(f"c-{i}", "agent-7", "agent", at), notified(f"c-{i}", "service", at))
        await pass_every_minute(deps, at)
    await pass_every_minute(deps, deps.clock.now() + timedelta(hours=1))
    assert violations(deps) == [("bulk_pii_read", "agent-7")]
    [event] = store_of(deps).published
    assert event.subject == "c-50" and "agent-7 (agent)" in event.data["detail"] and "51 customers" in event.data["detail"]
    assert datetime.fromisoformat(event.data["at"]) == T0 + timedelta(minutes=50)
    assert statuses(deps) == {"counted": 60}


async def test_service_reads_that_no_send_justifies_count_once_the_window_has_passed() -> None:
    """A service read with no matching send in the window counts toward the bulk rule, never sooner (CF-3)."""
    deps = make_deps()
    reads = [contact_read(f"c-{i}", "service", T0 + timedelta(seconds=10 * i)) for i in range(61)]
    at = {e.subject: datetime.fromisoformat(e.data["accessed_at"]) for e in reads}
    justifying = [notified(f"c-{i}", "service", at[f"c-{i}"] + timedelta(minutes=9)) for i in range(9)]
    justifying.append(notified("c-9", "service", at["c-9"] + timedelta(minutes=1), type_="notification.failed",
                               channel="email"))  # handed to the channel, which refused it: an attempt
    not_justifying = [
        notified("c-10", "service", at["c-10"], type_="notification.suppressed", channel=None),  # nothing sent
        notified("c-11", "service", at["c-11"], type_="notification.failed", channel=None),  # failed before a channel
        notified("c-12", "marketing", at["c-12"]),  # another purpose
        notified("c-13", "service", at["c-13"] + timedelta(minutes=11)),  # too late
        notified("c-14", "service", at["c-14"] - timedelta(minutes=1)),  # before the read
        notified("c-other", "service", at["c-15"]),  # another customer
    ]
    await capture(deps, *reads[:30], *justifying, *not_justifying, *reads[30:])
    await pass_every_minute(deps, T0 + timedelta(minutes=10))  # the window has not passed for any read
    assert violations(deps) == [] and statuses(deps) == {"justified": 10, "pending": 51}

    await pass_every_minute(deps, T0 + timedelta(minutes=20))
    assert violations(deps) == [("bulk_pii_read", "notifications")]
    [event] = store_of(deps).published
    last = reads[-1]
    assert event.subject == last.subject and event.data["event_id"] == last.id == event.causationid
    assert "51 customers" in event.data["detail"] and "not followed by a send within 10 min" in event.data["detail"]
    assert statuses(deps) == {"justified": 10, "counted": 51}
    # Idempotent: passes, redeliveries and a send captured after the decision change nothing.
    await capture(deps, *reads[:5], notified("c-20", "service", at["c-20"] + timedelta(minutes=2)))
    await pass_every_minute(deps, T0 + timedelta(minutes=30))
    assert len(store_of(deps).published) == 1 and statuses(deps) == {"justified": 10, "counted": 51}


async def test_the_next_read_settles_earlier_unjustified_reads_without_waiting_for_the_pass() -> None:
    """The actor's next read is a check too: lapsed reads count there, once (CF-3)."""
    deps = make_deps(bulk_pii_max_customers=2, send_justifies_read_minutes=5)
    await capture(deps, *(contact_read(f"c-{i}", "care", T0 + timedelta(seconds=i)) for i in range(3)))
    advance(deps, timedelta(minutes=4, seconds=59))
    await capture(deps, contact_read("c-3", "care", deps.clock.now()))
    assert violations(deps) == []  # not yet: the window is five minutes
    advance(deps, timedelta(seconds=3))
    await capture(deps, contact_read("c-4", "care", deps.clock.now()))
    assert violations(deps) == [("bulk_pii_read", "notifications")]
    assert await handlers.settle_pii_reads(deps) == 0  # nothing left for the pass
    assert store_of(deps).published[0].subject == "c-2"


async def test_a_read_captured_late_still_waits_a_window_for_its_send() -> None:
    """When the audit catches up after an outage, a service read is not decided before its send can be captured
    (CF-3)."""
    deps = make_deps(bulk_pii_max_customers=1)
    advance(deps, timedelta(hours=2))  # the reads happened two hours ago
    await capture(deps, *(contact_read(f"c-{i}", "survey", T0 + timedelta(minutes=i)) for i in range(3)))
    await handlers.settle_pii_reads(deps)
    assert violations(deps) == []
    await capture(deps, *(notified(f"c-{i}", "survey", T0 + timedelta(minutes=i, seconds=5)) for i in range(3)))
    advance(deps, timedelta(minutes=11))
    assert await handlers.settle_pii_reads(deps) == 0
    assert violations(deps) == [] and statuses(deps) == {"justified": 3}


CUSTOMERS = [f"c-{i}" for i in range(6)]
PURPOSES = ["service", "marketing"]
reads_st = st.lists(st.tuples(st.sampled_from(CUSTOMERS), st.sampled_from(PURPOSES), st.integers(0, 5400)),
                    min_size=1, max_size=30)
sends_st = st.lists(st.tuples(st.sampled_from(CUSTOMERS), st.sampled_from(PURPOSES), st.integers(-120, 6000),
                              st.sampled_from(["notification.sent", "notification.failed", "notification.suppressed"]),
                              st.booleans()), max_size=30)


def expected_bulk_violations(reads: list[CloudEvent], justified: set[str], limit: int, window: timedelta) -> list[str]:
    """Today's rule over the reads that count, checked oldest first, one violation per episode (the oracle)."""
    counted = sorted(((datetime.fromisoformat(e.data["accessed_at"]), e.id, e.subject) for e in reads
                      if e.id not in justified), key=lambda r: r[:2])
    opened: list[str] = []
    until: datetime | None = None
    for n, (at, _, _) in enumerate(counted):
        if len({c for a, _, c in counted[:n + 1] if a >= at - window}) <= limit:
            continue
        if until is None or until < at:
            opened.append(str(uuid.uuid5(handlers.VIOLATION_NS, f"bulk_pii_read:notifications:{at.isoformat()}")))
        until = at + window if until is None or until < at else max(until, at + window)
    return opened


@settings(max_examples=60, deadline=None)
@given(reads_st, sends_st, st.randoms(use_true_random=False), st.integers(1, 5))
def test_the_outcome_does_not_depend_on_the_order_events_are_captured_in(
    read_specs: list[tuple[str, str, int]], send_specs: list[tuple[str, str, int, str, bool]], rnd: Random, page: int,
) -> None:
    """Whatever the interleaving of reads, sends, redeliveries and settling passes, a service read is justified
    exactly when a message of its customer and purpose went out within ten minutes after it, and the reads
    left count as staff reads always did (CF-3)."""
    reads = [contact_read(c, p, T0 + timedelta(seconds=s)) for c, p, s in read_specs]
    sends = [notified(c, p, T0 + timedelta(seconds=s), type_=t, channel="sms" if ch else None, n=n)
             for n, (c, p, s, t, ch) in enumerate(send_specs)]
    justified = {r.id for r in reads if any(
        s.subject == r.subject and s.data["category"] == r.data["purpose"]
        and (s.type == "notification.sent" or (s.type == "notification.failed" and "channel" in s.data))
        and timedelta(0) <= datetime.fromisoformat(s.data["at"]) - datetime.fromisoformat(r.data["accessed_at"])
        <= timedelta(minutes=10) for s in sends)}
    events = [*reads, *sends, *rnd.sample(reads, k=len(reads) // 3)]  # some delivered twice
    rnd.shuffle(events)

    async def run() -> tuple[dict[str, str], list[str]]:
        deps = make_deps(bulk_pii_max_customers=2, bulk_pii_window_seconds=1800)
        for event in events:  # the clock stays before every decision: passes in between decide nothing
            await capture(deps, event)
            if rnd.random() < 0.3:
                await handlers.settle_pii_reads(deps, limit=page)
        advance(deps, timedelta(days=1))
        while await handlers.settle_pii_reads(deps, limit=page):
            pass
        store = store_of(deps)
        return {k: r["status"] for k, r in store.pii_reads.items()}, [e.id for e in store.published]

    status, published = asyncio.run(run())
    assert status == {r.id: "justified" if r.id in justified else "counted" for r in reads}
    assert published == expected_bulk_violations(reads, justified, 2, timedelta(seconds=1800))
