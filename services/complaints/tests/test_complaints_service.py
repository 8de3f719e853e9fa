"""The complaints service in-process on real Kafka + FerretDB: intake, lifecycle, watcher, crisis, erasure."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from guanxi_complaints import domain, handlers
from guanxi_complaints.app import build
from guanxi_complaints.domain import Actor, Intake
from guanxi_complaints.settings import ComplaintsSettings
from guanxi_complaints.store import MongoCaseStore
from guanxi_shared.auth import Identity, Role, sign_internal
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import new_event
from guanxi_shared.testing import eventually, send_event, serving

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
RECEIVED = datetime(2026, 9, 30, 10, 0, tzinfo=CST)
PROBLEM = "application/problem+json"
LIFECYCLE = ("complaint.registered", "complaint.acknowledged", "complaint.assigned", "complaint.preliminary_opinion_given",
             "complaint.investigation_started", "complaint.resolved", "complaint.closed", "complaint.reopened")


def complaint(customer: str, **kw: Any) -> dict[str, Any]:
    return {"customer_id": customer, "channel": "phone", "category": "billing", "severity": "normal",
            "description": "charged twice for one order", "received_at": RECEIVED.isoformat(), **kw}


def who(settings: ComplaintsSettings, subject: str, *roles: Role, team: str | None = None) -> dict[str, str]:
    token = sign_internal(Identity(subject=subject, roles=list(roles) or [Role.agent], team=team),
                          settings.internal_secret.get_secret_value())
    return {"X-Guanxi-Identity": token}


def distinct(tap: Any, suffix: str, **match: Any) -> int:
    """How many different events (by id) matched: the relay publishes at least once."""
    return len({e["id"] for e in tap.events(suffix) if all(_get(e, k) == v for k, v in match.items())})


def _get(obj: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("__"):
        obj = obj.get(part) if isinstance(obj, dict) else None  # type: ignore[assignment]
    return obj


async def send(producer: Any, topics: str, type_: str, customer: str, data: dict[str, Any], source: str = "call-centre",
               event_id: str | None = None) -> None:
    await send_event(producer, topics, new_event(type_, customer, data, source=source, id=event_id))


async def test_intake_from_kafka_and_gateway_is_idempotent_and_rejects_bad_input(make_settings, topics, tap,
                                                                                 producer) -> None:
    """Intake from the gateway and a call centre (CP-1)."""
    settings = make_settings(ComplaintsSettings)
    clock = ManualClock(RECEIVED + timedelta(minutes=1))
    out = await tap("complaint.registered", "complaint.acknowledged", "complaint.received.dlq")
    gateway_id = str(uuid.uuid4())
    async with serving(build(settings, clock)) as client:
        agent = who(settings, "alice")
        missing = await client.get(f"/api/v1/complaints/{gateway_id}", headers=agent)
        assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM

        # The gateway's event carries complaint_id; a call centre only its own reference, sent twice.
        await send(producer, topics, "complaint.received", "c-1", complaint("c-1", complaint_id=gateway_id, channel="web"),
                   source="guanxi.gateway")
        await send(producer, topics, "complaint.received", "c-1", complaint("c-1", external_ref="REF-77"))
        await send(producer, topics, "complaint.received", "c-1", complaint("c-1", external_ref="REF-77"))
        # The same complaint_id again from the gateway (a retried publish) is one complaint too.
        await send(producer, topics, "complaint.received", "c-1", complaint("c-1", complaint_id=gateway_id, channel="web"),
                   source="guanxi.gateway")
        # A retried gateway request with the caller's reference gets a new complaint_id: an alias.
        alias_id = str(uuid.uuid4())
        await send(producer, topics, "complaint.received", "c-1", complaint("c-1", complaint_id=alias_id,
                                                                            external_ref="REF-77"), source="call-centre")
        bad = complaint("c-1", external_ref="REF-78")
        del bad["severity"]
        await send(producer, topics, "complaint.received", "c-1", bad)
        await send(producer, topics, "complaint.received", "c-1", complaint("c-2", external_ref="REF-79"))

        await out.wait_for(lambda t: len(t.events("complaint.received.dlq")) >= 2, what="two dead letters")
        await out.wait_for(lambda t: len(t.events("complaint.acknowledged")) >= 2, what="two acknowledgements")
        await out.settle(1.0)
        # The relay publishes at least once (the same id again after a race); consumers dedupe on the id.
        assert len({e["id"] for e in out.events("complaint.registered")}) == 2
        assert len({e["id"] for e in out.events("complaint.acknowledged")}) == 2
        reasons = sorted(dict(r.headers)["dlq-reason"].decode() for r in out.records if r.topic.endswith(".dlq"))
        assert any("severity" in r for r in reasons) and any("subject" in r for r in reasons), reasons

        case = (await client.get(f"/api/v1/complaints/{gateway_id}", headers=agent)).json()
        assert case["status"] == "acknowledged"
        assert case["deadlines"] == {"acknowledge": "2026-10-01T10:00:00+08:00",
                                     "preliminary_opinion": "2026-10-10T18:00:00+08:00",
                                     "investigation": None, "formal_answer": "2026-10-27T18:00:00+08:00"}
        ref_id = domain.case_id_for(Intake(source="call-centre", customer_id="c-1", channel="phone", category="billing",
                                           severity="normal", description="x", received_at=RECEIVED, external_ref="REF-77"))
        assert (await client.get(f"/api/v1/complaints/{ref_id}", headers=agent)).json()["external_ref"] == "REF-77"
        assert (await client.get(f"/api/v1/complaints/{alias_id}", headers=agent)).json()["id"] == ref_id
        listed = (await client.get("/api/v1/complaints", params={"customer_id": "c-1"}, headers=agent)).json()
        assert sorted(c["id"] for c in listed["items"]) == sorted([gateway_id, ref_id]) and listed["next"] is None

        ack = next(e for e in out.events("complaint.acknowledged") if e["data"]["complaint_id"] == gateway_id)
        assert ack["subject"] == "c-1" and ack["data"]["actor"] == "system" and ack["data"]["channel"] == "web"
        published = out.events("complaint.registered") + out.events("complaint.acknowledged")
        assert "charged twice" not in json.dumps(published)  # the free text stays in the case store


async def test_full_lifecycle_over_http_with_roles_and_illegal_transitions(make_settings, topics, tap) -> None:
    """The whole lifecycle with who and when (CP-3); outcome, apology and root cause recorded (CP-6)."""
    settings = make_settings(ComplaintsSettings)
    clock = ManualClock(RECEIVED + timedelta(minutes=1))
    out = await tap(*LIFECYCLE)
    app = build(settings, clock)
    async with serving(app) as client:
        deps: handlers.Deps = app.state.deps
        intake = Intake(source="call-centre", customer_id="c-9", channel="phone", category="billing", severity="normal",
                        description="charged twice", received_at=RECEIVED, external_ref="REF-1", event_id="ev-1")
        case = await handlers.open_case(deps, intake)
        other = await handlers.open_case(deps, Intake(**{**intake.__dict__, "external_ref": "REF-2", "event_id": "ev-2"}))
        assert case is not None and other is not None
        base = f"/api/v1/complaints/{case.id}"
        alice, bob = who(settings, "alice", team="north"), who(settings, "bob")
        sup = who(settings, "sue", Role.supervisor)

        assert (await client.get(base)).status_code == 401
        assert (await client.get(base, headers=who(settings, "audrey", Role.auditor))).status_code == 403
        taken = await client.post(f"{base}/assign", json={"owner": "alice"}, headers=alice)
        # The case keeps the team routing gave it (alice is in team north); a supervisor may move a case.
        assert taken.status_code == 200 and taken.json()["owner"] == "alice" and taken.json()["team"] == "general"
        assert (await client.post(f"{base}/assign", json={"owner": "alice", "team": "north"}, headers=alice)).status_code == 403
        moved = await client.post(f"/api/v1/complaints/{other.id}/assign", json={"owner": "bob", "team": "north"}, headers=sup)
        assert moved.status_code == 200 and (moved.json()["owner"], moved.json()["team"]) == ("bob", "north")
        # Object-level rule: bob is an agent and the case is alice's.
        denied = await client.post(f"{base}/preliminary-opinion", json={"opinion": "x"}, headers=bob)
        assert denied.status_code == 403 and denied.headers["content-type"] == PROBLEM
        assert (await client.post(f"{base}/assign", json={"owner": "bob"}, headers=bob)).status_code == 403

        illegal = await client.post(f"{base}/close", json={}, headers=alice)
        assert illegal.status_code == 409 and illegal.headers["content-type"] == PROBLEM
        assert "cannot close a complaint that is acknowledged" in illegal.json()["detail"]
        invalid = await client.post(f"{base}/preliminary-opinion", json={}, headers=alice)
        assert invalid.status_code == 422 and invalid.headers["content-type"] == PROBLEM
        assert (await client.post("/api/v1/complaints/nope/acknowledge", headers=alice)).status_code == 404

        clock.advance(timedelta(hours=2))
        r = await client.post(f"{base}/preliminary-opinion", json={"opinion": "refund likely"}, headers=alice)
        assert r.status_code == 200 and r.json()["status"] == "preliminary_opinion"
        r = await client.post(f"{base}/investigation", json={"reason": "check billing logs"}, headers=alice)
        assert r.json()["deadlines"]["investigation"] == "2026-10-13T18:00:00+08:00"
        r = await client.post(f"{base}/resolve", headers=alice, json={
            "resolution": "refunded", "compensation": "50 CNY voucher", "apology": True, "root_cause": "billing_error"})
        assert r.json()["status"] == "resolved" and r.json()["root_cause"] == "billing_error"
        r = await client.post(f"{base}/close", json={"confirmed_by_customer": True}, headers=sup)
        assert r.json()["status"] == "closed" and r.json()["confirmed_by_customer"] is True
        r = await client.post(f"{base}/reopen", json={"reason": "refund not received"}, headers=alice)
        body = r.json()
        assert body["status"] == "reopened" and body["reopen_count"] == 1
        assert [(h["step"], h["actor"]) for h in body["history"]] == [
            ("received", "call-centre"), ("acknowledged", "system"), ("assigned", "alice"), ("preliminary_opinion", "alice"),
            ("investigation_started", "alice"), ("resolved", "alice"), ("closed", "sue"), ("reopened", "alice")]

        await out.wait_for(lambda t: any(e["data"]["complaint_id"] == case.id for e in t.events("complaint.reopened")),
                           what="complaint.reopened")
        await out.settle(0.5)
        # Deduplicated on the event id, as every consumer does (the relay publishes at least once).
        mine = list({e["id"]: e for e in out.events() if e["data"].get("complaint_id") == case.id}.values())
        assert sorted(e["type"] for e in mine) == sorted(LIFECYCLE)
        resolved = next(e for e in mine if e["type"] == "complaint.resolved")["data"]
        assert resolved["apology"] is True and resolved["actor"] == "alice" and resolved["owner"] == "alice"

        # Queues: by status and owner, paged.
        q = (await client.get("/api/v1/complaints", params={"status": "reopened", "owner": "alice"}, headers=sup)).json()
        assert [c["id"] for c in q["items"]] == [case.id]
        page1 = (await client.get("/api/v1/complaints", params={"limit": 1}, headers=sup)).json()
        page2 = (await client.get("/api/v1/complaints", params={"limit": 1, "cursor": page1["next"]}, headers=sup)).json()
        assert {page1["items"][0]["id"], page2["items"][0]["id"]} == {case.id, other.id} and page2["next"] is None
        bad_cursor = await client.get("/api/v1/complaints", params={"cursor": "zz"}, headers=sup)
        assert bad_cursor.status_code == 400 and bad_cursor.headers["content-type"] == PROBLEM

        period = {"from": "2026-09-01T00:00:00+08:00", "to": "2026-11-01T00:00:00+08:00"}
        assert (await client.get("/api/v1/kpis/complaints", params=period, headers=alice)).status_code == 403
        k = (await client.get("/api/v1/kpis/complaints", params=period, headers=sup)).json()
        assert k["overall"]["counts"]["received"] == 2 and k["overall"]["counts"]["reopened"] == 1
        assert k["overall"]["sla"]["acknowledge"]["compliance"] == 1.0
        assert k["by_team"]["north"]["counts"]["received"] == 1 and k["by_team"]["general"]["counts"]["received"] == 1
        assert "alice" in k["by_owner"]


async def test_watcher_breach_is_published_exactly_once_across_restarts(make_settings, topics, tap) -> None:
    """A breach is noticed and escalated, once (CP-5)."""
    settings = make_settings(ComplaintsSettings, watcher_interval_seconds=0.1, deadline_lead_minutes=240)
    clock = ManualClock(RECEIVED + timedelta(minutes=1))
    out = await tap("complaint.deadline_approaching", "complaint.deadline_breached", "complaint.escalated")
    due = datetime(2026, 10, 10, 18, 0, tzinfo=CST)  # preliminary opinion
    app = build(settings, clock)
    async with serving(app):
        deps: handlers.Deps = app.state.deps
        case = await handlers.open_case(deps, Intake(source="call-centre", customer_id="c-5", channel="phone",
                                                     category="billing", severity="normal", description="late",
                                                     received_at=RECEIVED, external_ref="REF-5"))
        assert case is not None
        await handlers.run_command(deps, case.id, Actor("alice"),
                                   lambda c, now: domain.assign(c, "alice", "alice", now, deps.policy))
        clock.set(due - timedelta(hours=1))
        await out.wait_for(lambda t: distinct(t, "complaint.deadline_approaching", data__complaint_id=case.id) == 1,
                           what="approaching")

    # While the service is down the deadline passes; the next instance finds the breach.
    clock.set(due + timedelta(minutes=1))
    async with serving(build(settings, clock)) as client:
        await out.wait_for(lambda t: distinct(t, "complaint.deadline_breached", data__complaint_id=case.id) == 1,
                           what="breached")
        await out.wait_for(lambda t: distinct(t, "complaint.escalated", data__reason="breach:preliminary_opinion") == 1,
                           what="escalated")
        body = (await client.get(f"/api/v1/complaints/{case.id}", headers=who(settings, "alice"))).json()
        assert body["sla"]["preliminary_opinion"]["breached"] is True and body["overdue"] is True
        overdue = (await client.get("/api/v1/complaints", params={"overdue": "true"}, headers=who(settings, "alice"))).json()
        assert [c["id"] for c in overdue["items"]] == [case.id]

    clock.advance(timedelta(hours=1))
    async with serving(build(settings, clock)):
        await out.settle(1.5)  # the watcher runs every 0.1 s: more than ten passes
    breached = list({e["id"]: e for e in out.events("complaint.deadline_breached") if e["data"]["complaint_id"] == case.id}
                    .values())
    assert len(breached) == 1 and breached[0]["data"]["deadline"] == "preliminary_opinion"
    assert breached[0]["data"]["due_at"].startswith("2026-10-10T10:00:00")  # 18:00 +08:00 in UTC
    assert distinct(out, "complaint.deadline_approaching", data__complaint_id=case.id) == 1
    assert distinct(out, "complaint.escalated", data__complaint_id=case.id) == 1  # owned: no "unowned" escalation


async def test_burst_of_complaints_raises_one_crisis_alert_and_low_scores_too(make_settings, topics, tap, producer) -> None:
    """Crisis alerts on real Kafka (CP-7); low scores open follow-up complaints (SV-4)."""
    settings = make_settings(ComplaintsSettings, crisis_min_count=5, crisis_ratio=3.0, low_score_run=3,
                             low_score_opens_case=True)
    clock = ManualClock(RECEIVED)
    out = await tap("crisis.alert", "complaint.registered")
    async with serving(build(settings, clock)):
        for i in range(8):
            await send(producer, topics, "complaint.received", f"c-{i}",
                       complaint(f"c-{i}", external_ref=f"B-{i}", category="delivery", channel="app", product="tea-set"))
        await out.wait_for(lambda t: len(t.events("complaint.registered")) >= 8, what="eight cases")
        await out.wait_for(lambda t: len(t.events("crisis.alert")) >= 3, what="alerts per category, channel, product")
        # Three low scores (one delivered twice) are a run; each opens a follow-up case.
        for i in range(3):
            data = {"survey_id": f"s-{i}", "customer_id": f"c-{i}", "kind": "post_resolution", "csat": 10, "nps": 1,
                    "reason": "csat below 60", "at": RECEIVED.isoformat()}
            await send(producer, topics, "survey.low_score", f"c-{i}", data, source="guanxi.surveys", event_id=f"ls-{i}")
            if i == 0:
                await send(producer, topics, "survey.low_score", f"c-{i}", data, source="guanxi.surveys", event_id="ls-0")
        await out.wait_for(lambda t: distinct(t, "crisis.alert", data__dimension="satisfaction") == 1, what="low-score alert")
        await out.wait_for(lambda t: distinct(t, "complaint.registered") >= 11, what="follow-up cases")
        await out.settle(1.0)
    alerts = [e["data"] for e in {e["id"]: e for e in out.events("crisis.alert")}.values()]
    assert sorted((a["dimension"], a["value"]) for a in alerts) == [
        ("category", "delivery"), ("channel", "app"), ("product", "tea-set"), ("satisfaction", "low_score")]
    category = next(a for a in alerts if a["dimension"] == "category")
    assert category["count"] == 5 and category["threshold"] == 5.0 and len(category["sample_complaint_ids"]) == 5
    assert next(a for a in alerts if a["dimension"] == "satisfaction")["count"] == 3
    follow_ups = {e["id"] for e in out.events("complaint.registered") if e["data"]["category"] == "low_satisfaction"}
    assert len(follow_ups) == 3


async def test_customer_erasure_anonymises_the_free_text_of_their_cases(make_settings, topics, producer) -> None:
    """Erasure reaches the complaints store (CI-6)."""
    settings = make_settings(ComplaintsSettings)
    clock = ManualClock(RECEIVED)
    app = build(settings, clock)
    async with serving(app) as client:
        deps: handlers.Deps = app.state.deps
        case = await handlers.open_case(deps, Intake(source="web", customer_id="c-e", channel="web", category="service",
                                                     severity="low", description="call me on 13800000000",
                                                     received_at=RECEIVED, external_ref="E-1"))
        assert case is not None
        await send(producer, topics, "customer.erased", "c-e",
                   {"customer_id": "c-e", "erased_at": RECEIVED.isoformat(), "actor": "dpo"}, source="guanxi.customer")
        store = deps.cases
        assert isinstance(store, MongoCaseStore)
        doc = await eventually(lambda: store.cases.find_one({"_id": case.id}), lambda d: d and d.get("erased"),
                               what="case anonymised")
        assert "13800000000" not in json.dumps(doc, default=str)
        body = (await client.get(f"/api/v1/complaints/{case.id}", headers=who(settings, "alice"))).json()
        assert body["description"] == "[erased]" and body["category"] == "service"


async def test_case_numbers_queues_and_the_customers_status_link_over_http(make_settings, topics, tap, producer) -> None:
    """What the agent console asks of the API: case numbers, queue filters and order, teams, the status link."""
    settings = make_settings(ComplaintsSettings, team_by_category={"delivery": "logistics"}, status_link_days=30)
    clock = ManualClock(RECEIVED + timedelta(minutes=1))
    out = await tap("complaint.acknowledged")
    async with serving(build(settings, clock)) as client:
        agent, sup = who(settings, "alice"), who(settings, "sue", Role.supervisor)
        ids = [str(uuid.uuid4()) for _ in range(3)]
        for n, extra in enumerate(({"severity": "urgent"}, {"category": "delivery", "channel": "web"}, {"severity": "low"})):
            await send(producer, topics, "complaint.received", "c-1", complaint(
                "c-1", complaint_id=ids[n], received_at=(RECEIVED + timedelta(minutes=n)).isoformat(), **extra),
                source="guanxi.gateway")
        await send(producer, topics, "complaint.received", "c-1", complaint("c-1", complaint_id=ids[0]),
                   source="guanxi.gateway")  # a retried publish: the same case, its first number
        await out.wait_for(lambda t: len({e["data"]["complaint_id"] for e in t.events("complaint.acknowledged")}) >= 3,
                           what="three acknowledgements")

        # Numbers in the order of intake, in the events and the views; a case is found by its number too.
        acks = {e["data"]["complaint_id"]: e["data"] for e in out.events("complaint.acknowledged")}
        assert [acks[i]["number"] for i in ids] == ["TS-2026-000001", "TS-2026-000002", "TS-2026-000003"]
        first = (await client.get(f"/api/v1/complaints/{ids[0]}", headers=agent)).json()
        assert (first["number"], first["team"], first["next_deadline"], first["next_due_at"]) == (
            "TS-2026-000001", "general", "preliminary_opinion", "2026-10-10T18:00:00+08:00")
        assert first["sla"]["acknowledge"]["outcome"] == "met" and first["overdue"] is False
        assert (await client.get("/api/v1/complaints/TS-2026-000002", headers=agent)).json()["id"] == ids[1]
        assert (await client.get("/api/v1/complaints/TS-2026-000009", headers=agent)).status_code == 404
        found = (await client.get("/api/v1/complaints", params={"number": "TS-2026-000003"}, headers=agent)).json()
        assert [(c["id"], c["number"]) for c in found["items"]] == [(ids[2], "TS-2026-000003")]

        # Queue filters: several values (repeated or comma-separated), open, unassigned, team.
        taken = await client.post(f"/api/v1/complaints/{ids[1]}/assign", json={"owner": "alice"}, headers=agent)
        assert taken.json()["team"] == "logistics"  # routed by category at intake, kept when taken

        async def queue(params: Any) -> list[str]:
            r = await client.get("/api/v1/complaints", params=params, headers=sup)
            assert r.status_code == 200, r.text
            return [c["id"] for c in r.json()["items"]]

        assert await queue([("severity", "urgent"), ("severity", "low")]) == [ids[2], ids[0]]
        assert await queue({"severity": "urgent,low", "channel": "phone"}) == [ids[2], ids[0]]
        assert await queue({"owner": "none", "open": "true"}) == [ids[2], ids[0]]
        assert await queue({"owner": "alice"}) == await queue({"team": "logistics"}) == [ids[1]]
        assert await queue({"status": "acknowledged,resolved", "category": "delivery"}) == [ids[1]]
        for bad in ({"status": "lost"}, {"severity": "extreme"}, {"channel": "fax"}, {"sort": "priority"}):
            refused = await client.get("/api/v1/complaints", params=bad, headers=sup)
            assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM
            [name] = bad
            assert refused.json()["detail"].startswith(f"query.{name}: unknown value")
            message = refused.json()["detail"][len(f"query.{name}: "):]
            assert refused.json()["errors"] == [{"location": f"query.{name}", "message": message}]

        # Nearest open deadline first, paged; a case without one (resolved) comes last.
        await client.post(f"/api/v1/complaints/{ids[2]}/resolve", json={"resolution": "refunded"}, headers=sup)
        assert await queue({"open": "false"}) == [ids[2]]
        views = [(await client.get(f"/api/v1/complaints/{i}", headers=sup)).json() for i in ids[:2]]
        expected = [v["id"] for v in sorted(views, key=lambda v: (datetime.fromisoformat(v["next_due_at"]), v["id"]))]
        page1 = (await client.get("/api/v1/complaints", params={"sort": "deadline", "limit": 2}, headers=sup)).json()
        page2 = (await client.get("/api/v1/complaints", params={"sort": "deadline", "limit": 2, "cursor": page1["next"]},
                                  headers=sup)).json()
        assert [c["id"] for c in page1["items"] + page2["items"]] == [*expected, ids[2]] and page2["next"] is None

        # The customer's status link (the acknowledgement's): public, non-personal, 404 when forged, 410 when expired.
        link = acks[ids[0]]["status_link"]
        assert link.startswith("http://127.0.0.1:8106/c/")
        token = link.rsplit("/", 1)[1]
        status = await client.get(f"/api/v1/complaints/status/{token}")  # no identity at all
        assert status.status_code == 200, status.text
        assert status.json() == {"number": "TS-2026-000001", "status": "acknowledged",
                                 "received_at": "2026-09-30T10:00:00+08:00", "acknowledged_at": "2026-09-30T10:01:00+08:00",
                                 "resolved_at": None, "closed_at": None, "next_deadline": "preliminary_opinion",
                                 "next_due_at": "2026-10-10T18:00:00+08:00", "breached": False}
        assert ids[0] not in status.text and "c-1" not in status.text and "charged twice" not in status.text
        forged = await client.get(f"/api/v1/complaints/status/{token[:-1]}{'A' if token[-1] != 'A' else 'B'}")
        assert forged.status_code == 404 and forged.headers["content-type"] == PROBLEM
        clock.set(datetime(2026, 10, 11, 9, 0, tzinfo=CST))  # the preliminary opinion is late
        assert (await client.get(f"/api/v1/complaints/status/{token}")).json()["breached"] is True
        clock.set(RECEIVED + timedelta(days=30, minutes=1))
        expired = await client.get(f"/api/v1/complaints/status/{token}")
        assert expired.status_code == 410 and expired.headers["content-type"] == PROBLEM
