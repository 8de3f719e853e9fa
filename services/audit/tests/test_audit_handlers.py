"""The audit use cases on the in-memory store: capture, violation rules, erasure, verification and queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from audit_testkit import access, complaint, erased, interaction, pii_read, purchase
from guanxi_audit import domain, handlers
from guanxi_audit.domain import RecordQuery
from guanxi_audit.handlers import Deps
from guanxi_audit.settings import AuditSettings
from guanxi_audit.store import InMemoryAuditStore
from guanxi_shared.clock import ManualClock
from guanxi_shared.errors import Invalid
from guanxi_shared.events import CloudEvent
from guanxi_shared.messaging import Delivery, PermanentError

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
