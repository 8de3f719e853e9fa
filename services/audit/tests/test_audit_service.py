"""The audit service on real Kafka + FerretDB: capture, verification under tampering, rules, erasure."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from audit_testkit import access, complaint, contact_read, erased, interaction, notified, pii_read, purchase, running
from guanxi_audit.domain import Capture
from guanxi_audit.settings import AuditSettings
from guanxi_shared.auth import Role
from guanxi_shared.clock import ManualClock
from guanxi_shared.testing import eventually, send_event

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


async def test_events_of_several_topics_are_captured_once_and_readable_by_auditors_only(
    make_settings, topics, producer, span_exporter
) -> None:
    settings = make_settings(AuditSettings)
    async with running(settings) as svc:
        buy = purchase("c-1", "o-1")
        await send_event(producer, topics, buy, {"traceparent": TRACEPARENT})
        await send_event(producer, topics, buy)  # redelivered by the order system
        await send_event(producer, topics, complaint("c-1"))
        await send_event(producer, topics, pii_read("c-2", "alice"))
        await send_event(producer, topics, access("bob", "agent", "/api/v1/customers/{id}", 200, "c-2"))
        await send_event(producer, topics, interaction("c-1"))  # after the duplicate on c-1's partition
        await eventually(svc.count, lambda n: n >= 5, what="five records")
        await eventually(lambda: svc.count(type="interaction.logged"), lambda n: n == 1, what="the marker")
        assert await svc.count() == 5
        assert await svc.count(_id=buy.id) == 1

        verdict = (await svc.get("/api/v1/audit/verify")).json()
        assert verdict["ok"] is True and verdict["checked"] == 5 and verdict["first_broken"] is None

        # By customer, with paging.
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"customer_id": "c-1", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await svc.get("/api/v1/audit/records", **params)).json()
            seen += page["items"]
            cursor = page["next"]
            if cursor is None:
                break
        assert {i["type"] for i in seen} == {"purchase.completed", "complaint.received", "interaction.logged"}
        assert [i["seq"] for i in seen] == sorted(i["seq"] for i in seen)
        assert all("salts" not in i for i in seen)

        by_trace = (await svc.get("/api/v1/audit/records", trace_id=TRACE)).json()["items"]
        assert [i["event_id"] for i in by_trace] == [buy.id]
        captures = [sp for sp in span_exporter.get_finished_spans() if sp.name == "audit capture"]
        assert any(format(link.context.trace_id, "032x") == TRACE for sp in captures for link in sp.links)
        by_actor = (await svc.get("/api/v1/audit/records", actor="alice")).json()["items"]
        assert [i["type"] for i in by_actor] == ["customer.pii_accessed"]
        by_type = (await svc.get("/api/v1/audit/records", type="access.recorded")).json()["items"]
        assert [i["actor"] for i in by_type] == ["bob"]
        in_range = (await svc.get("/api/v1/audit/records", since="2000-01-01T00:00:00Z",
                                  until="2001-01-01T00:00:00Z")).json()["items"]
        assert in_range == []

        export = await svc.get("/api/v1/audit/export", since="2000-01-01T00:00:00+08:00")
        assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]

        for role in (Role.agent, Role.supervisor, Role.admin):
            refused = await svc.get("/api/v1/audit/records", role=role)
            assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
        assert (await svc.get("/api/v1/audit/verify", role=Role.agent)).status_code == 403
        assert (await svc.http.get("/api/v1/audit/verify")).status_code == 401
        bad = await svc.get("/api/v1/audit/records", since="yesterday")
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


async def test_each_kind_of_tampering_is_detected_with_the_record_that_breaks(make_settings, topics, producer, tap) -> None:
    """Tampering with the trail is detected (CF-2, CF-3)."""
    settings = make_settings(AuditSettings)
    violations = await tap("audit.violation")
    async with running(settings) as svc:
        records = svc.store.records
        for i in range(5):
            await send_event(producer, topics, interaction(f"c-{i}", summary=f"call {i}"))
        await eventually(svc.count, lambda n: n == 5, what="five records")
        assert (await svc.get("/api/v1/audit/verify")).json()["ok"] is True

        async def broken_at() -> dict[str, Any]:
            verdict = (await svc.get("/api/v1/audit/verify")).json()
            assert verdict["ok"] is False
            return verdict["first_broken"]

        async def violation_recorded(n: int, captured: int) -> None:
            # The audit trail records its own violations too; wait so the tail is settled.
            await violations.wait_for(lambda t: len({e["id"] for e in t.events()}) >= n, what=f"{n} chain violations")
            await eventually(lambda: svc.count(type="audit.violation"), lambda c: c >= captured, what="violation captured")

        # 1. Edit a payload value.
        original3 = await records.find_one({"seq": 3})
        await records.update_one({"seq": 3}, {"$set": {"data.summary": "nothing happened"}})
        first = await broken_at()
        assert first["seq"] == 3 and first["event_id"] == original3["_id"]
        assert (await broken_at())["seq"] == 3  # still broken: the same episode, no second violation
        await violation_recorded(1, 1)
        await records.replace_one({"_id": original3["_id"]}, original3)
        assert (await svc.get("/api/v1/audit/verify")).json()["ok"] is True

        # 2. Delete a record in the middle.
        original2 = await records.find_one({"seq": 2})
        await records.delete_one({"seq": 2})
        first = await broken_at()
        assert first["seq"] == 3 and "missing" in first["reason"]
        await violation_recorded(2, 2)
        await records.insert_one(original2)
        assert (await svc.get("/api/v1/audit/verify")).json()["ok"] is True

        # 3. Reorder two records.
        r3, r4 = await records.find_one({"seq": 3}), await records.find_one({"seq": 4})
        await records.update_one({"_id": r3["_id"]}, {"$set": {"seq": -3}})
        await records.update_one({"_id": r4["_id"]}, {"$set": {"seq": 3}})
        await records.update_one({"_id": r3["_id"]}, {"$set": {"seq": 4}})
        first = await broken_at()
        assert first["seq"] == 3 and first["event_id"] == r4["_id"]
        await violation_recorded(3, 3)
        await records.delete_many({"_id": {"$in": [r3["_id"], r4["_id"]]}})
        await records.insert_many([r3, r4])
        assert (await svc.get("/api/v1/audit/verify")).json()["ok"] is True

        # 4. Cut the tail.
        last = await records.find_one({}, sort=[("seq", -1)])
        await eventually(svc.store.head_seq, lambda seq: seq == last["seq"], what="head hint at the tail")
        await records.delete_one({"_id": last["_id"]})
        first = await broken_at()
        assert first["seq"] == last["seq"] and "missing" in first["reason"]
        await violation_recorded(4, 3)  # the cut record was the third one

        await violations.settle(1.0)
        # At-least-once delivery may repeat an event; one event id is one violation.
        bodies = list({b["id"]: b for b in violations.events()}.values())
        assert len(bodies) == 4, [(b["data"]["detail"], b["data"]["at"]) for b in bodies]  # one per episode
        assert {b["data"]["rule"] for b in bodies} == {"chain_broken"}
        assert [b["data"]["seq"] for b in bodies] == [3, 3, 3, last["seq"]]


async def test_violation_rules_fire_once_per_episode(make_settings, topics, producer, tap) -> None:
    """Bulk reads and access outside one's role are reported (CF-3)."""
    settings = make_settings(AuditSettings, bulk_pii_max_customers=2)
    violations = await tap("audit.violation")
    async with running(settings) as svc:
        for customer in ("c-1", "c-2", "c-3", "c-4", "c-1"):
            await send_event(producer, topics, pii_read(customer, "alice"))
        await send_event(producer, topics, pii_read("c-1", "bob"))
        await send_event(producer, topics, pii_read("c-2", "bob"))
        for _ in range(2):
            await send_event(producer, topics, access("mallory", "agent", "/api/v1/customers/{id}", 403))
        await send_event(producer, topics, access("eve", "agent", "/api/v1/audit/records", 200))
        await send_event(producer, topics, access("ada", "auditor", "/api/v1/audit/records", 200))
        await violations.wait_for(lambda t: len({e["id"] for e in t.events()}) >= 3, what="three violations")
        await eventually(svc.count, lambda n: n >= 11, what="all events captured")
        await violations.settle(1.5)
        unique = {e["id"]: e for e in violations.events()}.values()  # at-least-once: the id is the identity
        found = sorted((e["data"]["rule"], e["data"]["actor"]) for e in unique)
        assert found == [("bulk_pii_read", "alice"), ("role_violation", "eve"), ("role_violation", "mallory")]
        bulk = next(e for e in violations.events() if e["data"]["rule"] == "bulk_pii_read")
        assert "alice" in bulk["data"]["detail"] and bulk["data"]["event_id"]


LEGITIMATE_SENDS = 300  # 1,000 in the fast tier (test_audit_handlers); fewer here to keep FerretDB quick


async def read_statuses(svc: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    async for doc in svc.store.pii_reads.find({}, {"status": 1}):
        counts[doc["status"]] = counts.get(doc["status"], 0) + 1
    return counts


async def test_legitimate_sends_raise_no_bulk_read_violation(make_settings, topics, producer, tap) -> None:
    """The notifications service reading contact details for the messages it sends is not a bulk read (CF-3):
    hundreds of customers read and sent to within an hour, over Kafka, raise nothing, also once the window
    has passed and the periodic pass has settled the reads (two reads without a send show that it ran)."""
    settings = make_settings(AuditSettings, bulk_pii_settle_interval_seconds=0.3)
    violations = await tap("audit.violation")
    start = datetime.now(UTC) - timedelta(hours=1)
    clock = ManualClock(start)
    async with running(settings, clock) as svc:
        for i in range(LEGITIMATE_SENDS):
            at = start + timedelta(seconds=3600 * i / LEGITIMATE_SENDS)
            category = "service" if i % 3 else "marketing"
            read, sent = contact_read(f"c-{i}", category, at), notified(f"c-{i}", category, at + timedelta(seconds=2))
            for event in (read, sent) if i % 2 else (sent, read):  # the two topics are not ordered with each other
                await send_event(producer, topics, event)
        for customer in ("c-unsent-1", "c-unsent-2"):
            await send_event(producer, topics, contact_read(customer, "care", start + timedelta(minutes=30)))
        await eventually(partial(read_statuses, svc), lambda s: s == {"justified": LEGITIMATE_SENDS, "pending": 2}, timeout=120,
                         what="every read justified by its send")
        clock.advance(timedelta(hours=2))
        await eventually(partial(read_statuses, svc), lambda s: s == {"justified": LEGITIMATE_SENDS, "counted": 2},
                         what="the periodic pass counting the two unsent reads")
        await violations.settle(1.5)
        assert violations.events() == []
        assert await svc.store.episodes.count_documents({}) == 0


async def test_sixty_customers_read_by_an_agent_within_an_hour_raise_one_violation(
    make_settings, topics, producer, tap
) -> None:
    """Staff reads count as before, even when each customer is also sent a message (CF-3)."""
    settings = make_settings(AuditSettings)
    violations = await tap("audit.violation")
    start = datetime.now(UTC) - timedelta(hours=1)
    async with running(settings) as svc:
        for i in range(60):
            at = start + timedelta(minutes=i)
            await send_event(producer, topics, pii_read(f"c-{i}", "agent-7", "agent", at))
            await send_event(producer, topics, notified(f"c-{i}", "service", at + timedelta(seconds=2)))
        await violations.wait_for(lambda t: bool(t.events()), what="the bulk-read violation")
        await eventually(lambda: svc.count(type="customer.pii_accessed"), lambda n: n == 60, what="all reads captured")
        await violations.settle(1.5)
        unique = list({e["id"]: e for e in violations.events()}.values())  # at-least-once: the id is the identity
        assert [(e["data"]["rule"], e["data"]["actor"]) for e in unique] == [("bulk_pii_read", "agent-7")]
        assert "51 customers" in unique[0]["data"]["detail"] and unique[0]["subject"] == "c-50"
        assert await read_statuses(svc) == {"counted": 60}


async def test_erasure_redacts_personal_values_and_the_chain_still_verifies(make_settings, topics, producer) -> None:
    """Erasure leaves a trace an auditor can follow (CI-6)."""
    settings = make_settings(AuditSettings)
    async with running(settings) as svc:
        await send_event(producer, topics, complaint("c-gone"))
        await send_event(producer, topics, interaction("c-gone", summary="told us her address"))
        await send_event(producer, topics, complaint("c-kept"))
        await send_event(producer, topics, erased("c-gone"))
        await eventually(lambda: svc.count(type="customer.erased"), what="erasure captured")

        async def gone() -> list[dict[str, Any]]:
            return (await svc.get("/api/v1/audit/records", customer_id="c-gone")).json()["items"]

        items = await eventually(gone, lambda items: len(items) == 3 and all(
            i["type"] == "customer.erased" or i["redacted"] for i in items), what="redacted records")
        by_type = {i["type"]: i for i in items}
        assert by_type["complaint.received"]["data"]["description"] == "[erased]"
        assert by_type["complaint.received"]["data"]["customer_id"] == "c-gone"  # the trail still says whose
        assert by_type["complaint.received"]["data"]["category"] == "delivery"
        assert by_type["interaction.logged"]["data"]["summary"] == "[erased]"
        kept = (await svc.get("/api/v1/audit/records", customer_id="c-kept")).json()["items"]
        assert "13800138000" in kept[0]["data"]["description"] and kept[0]["redacted"] == []
        raw = json.dumps([d async for d in svc.store.records.find({"subject": "c-gone"})], default=str)
        assert "13800138000" not in raw and "her address" not in raw
        verdict = (await svc.get("/api/v1/audit/verify")).json()
        assert verdict["ok"] is True and verdict["checked"] == 4


async def test_two_instances_capturing_at_once_never_fork_the_chain(make_settings, topics, producer) -> None:
    settings = make_settings(AuditSettings, batch_max_records=5)
    async with running(settings) as one, running(settings) as two:
        events = [interaction(f"c-{i % 7}", summary=f"call {i}") for i in range(40)]
        await asyncio.gather(*(send_event(producer, topics, e) for e in events))
        # Both instances also append the same events directly, racing the consumers for each seq.
        caps = [Capture.of(e, None, e.time) for e in events[:20]]
        await asyncio.gather(one.store.append(caps), two.store.append(list(reversed(caps))))
        await eventually(one.count, lambda n: n >= 40, what="forty records")
        seqs = sorted([d["seq"] async for d in one.store.records.find({}, {"seq": 1})])
        assert seqs == list(range(1, 41))
        for instance in (one, two):
            verdict = (await instance.get("/api/v1/audit/verify")).json()
            assert verdict["ok"] is True and verdict["checked"] == 40
