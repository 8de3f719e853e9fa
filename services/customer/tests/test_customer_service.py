"""The customer service on real Kafka + FerretDB, driven in-process through HTTP and events."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from customer_testkit import (
    ALICE,
    ALICE_PLAINTEXTS,
    deps_of,
    dump,
    fast_settings,
    purchase,
    running,
    send,
    store_of,
    uniq,
    unique_events,
    who,
)
from guanxi_shared.auth import Role
from guanxi_shared.clock import ManualClock
from guanxi_shared.testing import eventually

pytestmark = pytest.mark.integration

CUSTOMER_TOPICS = ("customer.registered", "customer.updated", "customer.tier_changed", "customer.consent_changed",
                   "customer.pii_accessed", "customer.erased", "customer.care_due", "customer.response_overdue",
                   "customer.commitment_overdue", "customer.churn_risk_flagged")


def assert_no_plaintext(text: str, where: str) -> None:
    for value in ALICE_PLAINTEXTS:
        assert value not in text, f"{value!r} found in clear in {where}"


async def test_registration_masked_and_clear_reads_audit_and_raw_dump(make_settings, topics, tap, span_exporter,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Encrypted at rest, masked unless the role needs it (CI-5); clear reads audited (CF-2)."""
    caplog.set_level(logging.DEBUG)
    span_exporter.clear()
    settings = fast_settings(make_settings)
    agent = who(settings)
    events = await tap(*CUSTOMER_TOPICS)
    async with running(settings, ManualClock()) as (app, client):
        bad = await client.post("/api/v1/customers", json={**ALICE, "phone": "13800000000"}, headers=agent)
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
        assert "E.164" in bad.json()["detail"]
        assert bad.json()["errors"] == [{"location": "body.phone", "message": bad.json()["detail"], "code": "phone_format"}]

        r = await client.post("/api/v1/customers", json={**ALICE, "consents": ["marketing", "care"], "industry": "services",
                                                          "tags": ["vip"]}, headers=agent)
        assert r.status_code == 201, r.text
        created = r.json()
        cid = created["id"]
        assert created["phone"] == "+86 138****5678" and created["email"] == "l***@example.com"
        assert created["birthday"] == "****-**-**" and created["masked"] is True
        await events.wait_for(lambda t: uniq(t, "customer.registered", subject=cid) == 1, what="customer.registered")
        registered = unique_events(events, "customer.registered")[0]["data"]
        assert registered["consents"] == {"service": True, "survey": False, "care": True, "marketing": True}

        # An agent sees masked values; asking to reveal without a purpose is refused.
        masked = (await client.get(f"/api/v1/customers/{cid}", headers=agent)).json()
        assert masked["phone"] == "+86 138****5678" and masked["id_number"].endswith("1234")
        refused = await client.get(f"/api/v1/customers/{cid}?reveal=true", headers=agent)
        assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
        assert uniq(events, "customer.pii_accessed") == 0

        # A supervisor asking to reveal gets clear values, and the read is audited.
        clear = (await client.get(f"/api/v1/customers/{cid}?reveal=true&purpose=verify+identity",
                                  headers=who(settings, Role.supervisor, "sam"))).json()
        assert clear["phone"] == ALICE["phone"] and clear["email"] == "li.wang@example.com" and clear["masked"] is False
        await events.wait_for(lambda t: uniq(t, "customer.pii_accessed", subject=cid) == 1, what="audit of the clear read")
        audit = unique_events(events, "customer.pii_accessed")[0]["data"]
        assert audit["actor"] == "sam" and audit["actor_role"] == "supervisor" and audit["purpose"] == "verify identity"
        assert set(audit["fields"]) == {"phone", "email", "birthday", "address", "id_number"}
        # An agent with a stated purpose may reveal too (audited with that purpose).
        agent_clear = await client.get(f"/api/v1/customers/{cid}?reveal=true&purpose=callback+request", headers=agent)
        assert agent_clear.json()["phone"] == ALICE["phone"]
        await events.wait_for(lambda t: uniq(t, "customer.pii_accessed", subject=cid) == 2, what="second audit")

        # Exact lookup through the blind index, however the value is typed.
        found = (await client.post("/api/v1/customers/lookup", json={"email": "LI.WANG@example.COM"}, headers=agent)).json()
        assert [c["id"] for c in found["items"]] == [cid]
        found = (await client.post("/api/v1/customers/lookup", json={"phone": "+86 138 1234 5678"}, headers=agent)).json()
        assert [c["id"] for c in found["items"]] == [cid]

        # A change keeps history (names only) and publishes customer.updated with field names.
        r = await client.patch(f"/api/v1/customers/{cid}", json={"email": "wang.li@example.org", "company": "Acme"},
                               headers=who(settings, subject="bob"))
        assert r.status_code == 200 and r.json()["email"] == "w***@example.org"
        await events.wait_for(lambda t: uniq(t, "customer.updated", subject=cid) == 1, what="customer.updated")
        assert unique_events(events, "customer.updated")[0]["data"]["fields"] == ["company", "email"]
        hist = (await client.get(f"/api/v1/customers/{cid}/history", headers=agent)).json()["items"]
        assert hist[0]["actor"] == "bob" and hist[0]["fields"] == ["company", "email"]
        listed = (await client.get("/api/v1/customers?q=王", headers=agent)).json()
        assert listed["items"][0]["id"] == cid and listed["items"][0]["phone"] == "+86 138****5678"
        # Paging: two customers, one per page.
        other = {**ALICE, "name": "Li Lei", "phone": "+8613900001111", "email": "lei@example.com"}
        assert (await client.post("/api/v1/customers", json=other, headers=agent)).status_code == 201
        first = (await client.get("/api/v1/customers?limit=1", headers=agent)).json()
        second = (await client.get(f"/api/v1/customers?limit=1&cursor={first['next']}", headers=agent)).json()
        assert first["next"] and second["next"] is None
        ids = {first["items"][0]["id"], second["items"][0]["id"]}
        assert cid in ids and len(ids) == 2

        # The raw dump of the whole database holds no clear personal value; nor does any event.
        await events.settle(0.5)
        assert_no_plaintext(await dump(app), "the database")
        assert "wang.li@example.org" not in await dump(app)
        assert_no_plaintext("\n".join(r.value.decode() for r in events.records), "published events")
    # Nor does any span or log line written while all this happened.
    spans = span_exporter.get_finished_spans()
    assert any(s.attributes and s.attributes.get("db.system") == "mongodb" for s in spans)
    assert_no_plaintext("\n".join(f"{s.name} {dict(s.attributes or {})} {[e.attributes for e in s.events]}" for s in spans),
                        "spans")
    assert_no_plaintext("\n".join(r.getMessage() for r in caplog.records), "logs")


async def test_purchases_counters_tier_change_duplicates_and_unknown_customers(make_settings, topics, tap, producer) -> None:
    settings = fast_settings(make_settings)
    agent = who(settings)
    events = await tap("customer.tier_changed", "customer.registered", "purchase.completed.dlq")
    async with running(settings, ManualClock()) as (app, client):
        cid = (await client.post("/api/v1/customers", json=ALICE, headers=agent)).json()["id"]
        await send(producer, topics, "purchase.completed", cid, purchase("o-1", cid, "600.00"))
        await send(producer, topics, "purchase.completed", cid, purchase("o-1", cid, "600.00"))  # same order again
        await send(producer, topics, "purchase.completed", cid, purchase("o-2", cid, "450.50"))
        await send(producer, topics, "purchase.completed", cid, {**purchase("o-3", cid, "1"), "amount": "lots"})

        await eventually(lambda: client.get(f"/api/v1/customers/{cid}", headers=agent),
                         lambda r: r.json()["purchase_count"] >= 2, what="two purchases counted")
        await events.wait_for(lambda t: uniq(t, "customer.tier_changed", subject=cid) >= 1, what="tier change")
        await events.wait_for(lambda t: len(t.events("purchase.completed.dlq")) == 1, what="bad purchase dead-lettered")
        await events.settle(1.0)
        body = (await client.get(f"/api/v1/customers/{cid}", headers=agent)).json()
        assert body["purchase_count"] == 2 and body["total_amount"] == "1050.50"
        assert body["member_level"] == "silver" and body["tenure"] == "returning"
        changes = [e["data"] for e in unique_events(events, "customer.tier_changed")]
        assert len(changes) == 1
        assert changes[0]["previous_level"] == "standard" and changes[0]["member_level"] == "silver"
        assert changes[0]["purchase_count"] == 2 and changes[0]["total_amount"] == "1050.50"
        assert await store_of(app).purchases.count_documents({"customer_id": cid}) == 2

        # A purchase for an id nobody registered yet is kept on a stub, and merged on registration.
        await send(producer, topics, "purchase.completed", "pos-777", purchase("o-9", "pos-777", "2000"))
        stub = await eventually(lambda: store_of(app).customer("pos-777"),
                                lambda d: d is not None and d["purchase_count"] == 1, what="stub for the unknown customer")
        assert stub["status"] == "unregistered" and stub["member_level"] == "silver" and "pii" not in stub
        assert (await client.get("/api/v1/customers?status=unregistered", headers=agent)).json()["items"][0]["id"] == "pos-777"
        r = await client.post("/api/v1/customers", json={**ALICE, "id": "pos-777", "email": "pos@example.com"},
                              headers=who(settings, Role.integration, "pos"))
        assert r.status_code == 201 and r.json()["purchase_count"] == 1 and r.json()["member_level"] == "silver"
        assert (await client.post("/api/v1/customers", json={**ALICE, "id": "pos-777"}, headers=agent)).status_code == 409


async def test_consent_withdrawal_and_internal_contact_details(make_settings, topics, tap) -> None:
    settings = fast_settings(make_settings)
    agent = who(settings)
    events = await tap("customer.consent_changed", "customer.pii_accessed")
    async with running(settings, ManualClock()) as (_, client):
        cid = (await client.post("/api/v1/customers", json={**ALICE, "consents": ["marketing", "survey"]},
                                 headers=agent)).json()["id"]
        notifier = who(settings, Role.service, "notifications")
        url = f"/internal/customers/{cid}/contact-details"
        ok = await client.post(url, json={"purpose": "marketing", "channels": ["email"]}, headers=notifier)
        assert ok.status_code == 200 and ok.json()["email"] == "li.wang@example.com" and ok.json()["phone"] is None

        r = await client.put(f"/api/v1/customers/{cid}/consents/marketing", json={"granted": False, "source": "sms-reply"},
                             headers=agent)
        assert r.status_code == 200 and r.json()["consents"]["marketing"]["granted"] is False
        await events.wait_for(lambda t: uniq(t, "customer.consent_changed", subject=cid) == 1, what="consent_changed")
        change = unique_events(events, "customer.consent_changed")[0]["data"]
        assert change["purpose"] == "marketing" and change["granted"] is False and change["consents"]["marketing"] is False

        # Withdrawal takes effect at once for the internal endpoint; service contact stays allowed.
        refused = await client.post(url, json={"purpose": "marketing", "channels": ["email"]}, headers=notifier)
        assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
        service = await client.post(url, json={"purpose": "service", "channels": ["sms", "email"]}, headers=notifier)
        assert service.status_code == 200
        details = service.json()
        assert details["phone"] == ALICE["phone"] and details["consents"]["marketing"] is False
        assert set(details) >= {"customer_id", "name", "email", "phone", "language", "timezone", "consents",
                                "channels_opted_out", "member_level"}
        await events.wait_for(lambda t: uniq(t, "customer.pii_accessed", subject=cid) == 2, what="internal reads audited")
        assert {e["data"]["via"] for e in unique_events(events, "customer.pii_accessed")} == {"internal"}
        assert unique_events(events, "customer.pii_accessed")[1]["data"]["actor"] == "notifications"
        # Staff cannot use the internal endpoint; unknown customers are 404.
        assert (await client.post(url, json={"purpose": "service"}, headers=agent)).status_code == 403
        assert (await client.post("/internal/customers/nobody/contact-details", json={"purpose": "service"},
                                  headers=notifier)).status_code == 404
        assert (await client.put(f"/api/v1/customers/{cid}/consents/service", json={"granted": False},
                                 headers=agent)).status_code == 422


async def test_erasure_leaves_no_personal_value_anywhere(make_settings, topics, tap) -> None:
    """Export and erasure, no personal value left anywhere (CI-6)."""
    settings = fast_settings(make_settings)
    agent = who(settings)
    events = await tap("customer.erased", "customer.pii_accessed")
    clock = ManualClock()
    async with running(settings, clock) as (app, client):
        cid = (await client.post("/api/v1/customers", json={**ALICE, "consents": ["care"]}, headers=agent)).json()["id"]
        # Staff typed personal values into free text: erasure must remove those too.
        r = await client.post("/api/v1/interactions", json={
            "customer_id": cid, "channel": "phone", "direction": "inbound", "kind": "consultation",
            "summary": f"asked to be called back on {ALICE['phone']} or at {ALICE['address']}"}, headers=agent)
        assert r.status_code == 201, r.text
        visit = (await client.post("/api/v1/visits", json={
            "customer_id": cid, "purpose": f"deliver to {ALICE['address']}",
            "planned_for": (clock.now() + timedelta(days=1)).isoformat()}, headers=agent)).json()
        r = await client.post(f"/api/v1/visits/{visit['id']}/report", json={
            "needs": [f"invoice to {ALICE['email']}"], "commitments": [
                {"description": "send samples", "due_at": (clock.now() + timedelta(days=7)).isoformat()}]},
            headers=agent)
        assert r.status_code == 200, r.text

        exported = await client.get(f"/api/v1/customers/{cid}/export", headers=who(settings, Role.supervisor, "sam"))
        assert exported.status_code == 200
        body = exported.json()
        assert body["profile"]["phone"] == ALICE["phone"] and len(body["interactions"]) == 1 and len(body["visits"]) == 1
        assert (await client.get(f"/api/v1/customers/{cid}/export", headers=agent)).status_code == 403
        await events.wait_for(lambda t: uniq(t, "customer.pii_accessed", data__via="export") == 1, what="export audited")

        assert (await client.delete(f"/api/v1/customers/{cid}", headers=agent)).status_code == 403
        r = await client.delete(f"/api/v1/customers/{cid}?reason=customer+request", headers=who(settings, Role.supervisor, "sam"))
        assert r.status_code == 204
        await events.wait_for(lambda t: uniq(t, "customer.erased", subject=cid) == 1, what="customer.erased")
        erased = unique_events(events, "customer.erased")[0]["data"]
        assert erased["actor"] == "sam" and erased["reason"] == "customer request"

        gone = await client.get(f"/api/v1/customers/{cid}", headers=agent)
        assert gone.status_code == 410 and gone.headers["content-type"].startswith("application/problem+json")
        looked_up = await client.post("/api/v1/customers/lookup", json={"phone": ALICE["phone"]}, headers=agent)
        assert looked_up.json()["items"] == []
        internal = await client.post(f"/internal/customers/{cid}/contact-details", json={"purpose": "service"},
                                     headers=who(settings, Role.service, "notifications"))
        assert internal.status_code == 410
        again = await client.delete(f"/api/v1/customers/{cid}", headers=who(settings, Role.admin))
        assert again.status_code == 204  # idempotent
        tombstone = await store_of(app).customer(cid)
        assert tombstone is not None and tombstone["status"] == "erased" and "vault" not in tombstone and "pii" not in tombstone
        text = await dump(app)
        assert_no_plaintext(text, "the database after erasure")
        assert ALICE["name"] not in text
        pending = await store_of(app).jobs.count_documents({"data.customer_id": cid, "state": "pending"})
        assert pending == 0


async def test_care_occasion_fires_once_across_a_restart(make_settings, topics, tap) -> None:
    """Scheduled care (CR-2) and churn risk (CR-4) on real infrastructure."""
    settings = fast_settings(make_settings)
    agent = who(settings)
    events = await tap("customer.care_due")
    shanghai = ZoneInfo("Asia/Shanghai")
    start = datetime.now(UTC).replace(microsecond=0)
    birthday_day = (start.astimezone(shanghai) + timedelta(days=2)).date()
    clock = ManualClock(start)
    async with running(settings, clock) as (app, client):
        r = await client.post("/api/v1/customers", json={**ALICE, "birthday": birthday_day.replace(year=1990).isoformat(),
                                                          "consents": ["care"]}, headers=agent)
        cid = r.json()["id"]
        key = f"birthday:{cid}:{birthday_day.year}"
        job = await eventually(lambda: store_of(app).jobs.find_one({"_id": key}), what="birthday greeting planned")
        assert job["state"] == "pending"
        clock.advance(timedelta(days=3))
        await events.wait_for(lambda t: uniq(t, "customer.care_due", subject=cid, data__occasion="birthday") == 1,
                              what="birthday care_due")
    # Restart on the same database: the occasion is remembered and never fires again.
    clock.advance(timedelta(hours=1))
    flagged = await tap("customer.churn_risk_flagged")
    async with running(settings, clock) as (app, client):
        await eventually(lambda: store_of(app).jobs.count_documents({"_id": {"$regex": f"^birthday:{cid}:"}}),
                         lambda n: n == 2, what="next year's greeting planned after the restart")
        clock.advance(timedelta(hours=1))
        await events.settle(1.5)
        due = [e["data"] for e in unique_events(events, "customer.care_due") if e["data"]["occasion"] == "birthday"]
        assert len(due) == 1 and due[0]["occasion_id"] == key and due[0]["customer_id"] == cid

        # No purchase or contact for longer than the churn period: flagged once, counted in the KPI.
        clock.advance(timedelta(days=settings.churn_days + 1))
        await flagged.wait_for(lambda t: uniq(t, "customer.churn_risk_flagged", subject=cid) == 1, what="churn risk flagged")
        await events.wait_for(lambda t: uniq(t, "customer.care_due", data__occasion="churn_risk") == 1, what="churn care")
        window = {"from": start.isoformat(), "to": clock.now().isoformat()}
        kpis = (await client.get("/api/v1/kpis/customer", params=window, headers=who(settings, Role.supervisor))).json()
        assert kpis["churn"] == {"customers": 1, "at_risk": 1, "rate": 1.0}
        listed = (await client.get("/api/v1/customers?churn_risk=true", headers=who(settings))).json()["items"]
        assert [c["id"] for c in listed] == [cid]
    assert_no_plaintext(json.dumps(unique_events(events, "customer.care_due")), "care_due events")


async def test_contacts_response_clocks_visits_timeline_and_kpis(make_settings, topics, tap, producer) -> None:
    """Call-centre, order and service events feed the profile (CI-1) and its 360° view (CI-2); response clocks (CC-3)."""
    settings = fast_settings(make_settings)
    agent = who(settings)
    events = await tap("customer.response_overdue", "customer.commitment_overdue", "customer.care_due")
    start = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(start)
    async with running(settings, clock) as (app, client):
        cid = (await client.post("/api/v1/customers", json=ALICE, headers=agent)).json()["id"]
        t0 = start - timedelta(minutes=5)
        # A consultation answered in 4 minutes (on time), and an urgent call nobody answers.
        await send(producer, topics, "interaction.logged", cid, {
            "interaction_id": "i-1", "customer_id": cid, "channel": "chat", "direction": "inbound", "kind": "consultation",
            "occurred_at": t0.isoformat(), "summary": "asks about delivery", "agent_id": "bot"})
        await send(producer, topics, "interaction.logged", cid, {
            "interaction_id": "i-2", "customer_id": cid, "channel": "chat", "direction": "outbound",
            "occurred_at": (t0 + timedelta(minutes=4)).isoformat(), "summary": "answered", "agent_id": "amy",
            "outcome": "resolved"})
        await send(producer, topics, "interaction.logged", cid, {
            "interaction_id": "i-3", "customer_id": cid, "channel": "phone", "direction": "inbound", "urgent": True,
            "occurred_at": start.isoformat(), "summary": "urgent: broken device", "agent_id": "ben"})
        await send(producer, topics, "purchase.completed", cid, purchase("o-1", cid, "99.00", at=t0 - timedelta(days=1)))
        await send(producer, topics, "complaint.registered", cid, {
            "complaint_id": "c-1", "customer_id": cid, "status": "received", "actor": "gateway", "at": start.isoformat(),
            "channel": "phone", "category": "delivery", "severity": "high"}, source="guanxi.complaints")
        await send(producer, topics, "complaint.resolved", cid, {
            "complaint_id": "c-1", "customer_id": cid, "status": "resolved", "actor": "amy",
            "at": (start + timedelta(minutes=1)).isoformat(), "resolution": "refund"}, source="guanxi.complaints")
        await send(producer, topics, "survey.completed", cid, {
            "survey_id": "s-1", "customer_id": cid, "kind": "post_purchase", "csat": 90, "nps": 9,
            "completed_at": start.isoformat()}, source="guanxi.surveys")
        answered = await eventually(lambda: store_of(app).interactions.find_one({"_id": "i-1"}),
                                    lambda d: d is not None and d.get("state") == "answered", what="consultation answered")
        assert answered["on_time"] is True and answered["answered_by"] == "amy"

        # The answer can be recorded before the question (HTTP and Kafka intake interleave).
        other = (await client.post("/api/v1/customers", json={**ALICE, "email": "x@example.com"}, headers=agent)).json()["id"]
        contact = {"customer_id": other, "channel": "email", "summary": "reply about invoice"}
        r = await client.post("/api/v1/interactions", json={**contact, "direction": "outbound", "agent_id": "cara",
                                                            "occurred_at": (start + timedelta(minutes=1)).isoformat()},
                              headers=agent)
        assert r.status_code == 201
        r = await client.post("/api/v1/interactions", json={**contact, "direction": "inbound", "interaction_id": "i-9",
                                                            "occurred_at": start.isoformat()}, headers=agent)
        assert r.status_code == 201 and r.json()["due_at"]
        early = await store_of(app).interactions.find_one({"_id": "i-9"})
        assert early is not None and early["state"] == "answered" and early["answered_by"] == "cara"
        assert await store_of(app).jobs.find_one({"_id": "response:i-9"}) is None

        visit = (await client.post("/api/v1/visits", json={"customer_id": cid, "purpose": "quarterly review",
                                                            "planned_for": start.isoformat()}, headers=agent)).json()
        await client.post(f"/api/v1/visits/{visit['id']}/report", json={
            "needs": ["bulk pricing"], "issues": ["late delivery"],
            "commitments": [{"description": "send quote", "due_at": (start + timedelta(minutes=30)).isoformat()},
                            {"description": "call back", "due_at": (start + timedelta(minutes=30)).isoformat()}]},
            headers=agent)
        r = await client.post(f"/api/v1/visits/{visit['id']}/commitments/2/fulfil", headers=agent)
        assert r.json()["report"]["commitments"]["2"]["status"] == "fulfilled"

        await eventually(lambda: store_of(app).jobs.find_one({"_id": "response:i-3"}), what="response clock for i-3")
        clock.advance(timedelta(hours=2))
        await events.wait_for(lambda t: uniq(t, "customer.response_overdue", data__interaction_id="i-3") == 1, what="overdue")
        await events.wait_for(lambda t: uniq(t, "customer.commitment_overdue", data__commitment_id="1") == 1, what="commitment")
        await events.wait_for(lambda t: uniq(t, "customer.care_due", data__occasion="commitment") == 1, what="commitment care")
        await events.settle(0.5)
        assert uniq(events, "customer.response_overdue") == 1 and uniq(events, "customer.commitment_overdue") == 1

        timeline = await eventually(lambda: client.get(f"/api/v1/customers/{cid}/timeline", headers=agent),
                                    lambda r: {"contact", "purchase", "complaint", "survey", "visit"}
                                    <= {i["type"] for i in r.json()["items"]}
                                    and {"resolved"} == {i["status"] for i in r.json()["items"] if i["type"] == "complaint"},
                                    what="360° timeline")
        items = timeline.json()["items"]
        complaint = next(i for i in items if i["type"] == "complaint")
        assert complaint["status"] == "resolved" and complaint["category"] == "delivery"
        assert next(i for i in items if i["type"] == "survey")["csat"] == 90
        assert timeline.json()["customer"]["phone"] == "+86 138****5678"

        window = {"from": (start - timedelta(days=1)).isoformat(), "to": (start + timedelta(days=1)).isoformat()}
        assert (await client.get("/api/v1/kpis/customer", params=window, headers=agent)).status_code == 403
        kpis = (await client.get("/api/v1/kpis/customer", params=window, headers=who(settings, Role.supervisor))).json()
        rt = kpis["response_timeliness"]
        assert rt["on_time"] == 2 and rt["overdue_unanswered"] == 1 and rt["timeliness_rate"] == 0.6667
        assert rt["per_handler"]["amy"]["on_time"] == 1 and rt["per_handler"]["ben"]["overdue_unanswered"] == 1
        assert rt["per_handler"]["cara"]["timeliness_rate"] == 1.0
        assert kpis["counts"]["contacts"] == 5 and kpis["counts"]["registered"] == 2 and kpis["churn"]["customers"] == 2


async def test_master_key_rotation_rewraps_data_keys(make_settings, topics) -> None:
    k1, k2 = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    clock = ManualClock()
    old = fast_settings(make_settings, master_keys={"k1": k1}, master_key_id="k1")
    async with running(old, clock) as (_, client):
        cid = (await client.post("/api/v1/customers", json=ALICE, headers=who(old))).json()["id"]

    rotating = fast_settings(make_settings, master_keys={"k1": k1, "k2": k2}, master_key_id="k2")
    async with running(rotating, clock) as (app, client):
        assert (await client.post("/api/v1/customers/keys:rewrap", headers=who(rotating))).status_code == 403
        r = await client.post("/api/v1/customers/keys:rewrap", headers=who(rotating, Role.admin, "root"))
        assert r.json() == {"rewrapped": 1, "current_key_id": "k2"}
        doc = await store_of(app).customer(cid)
        assert doc is not None and doc["vault"]["kek_id"] == "k2"

    # The old master key can now be retired: every data key opens under the new one.
    new = fast_settings(make_settings, master_keys={"k2": k2}, master_key_id="k2")
    async with running(new, clock) as (_, client):
        r = await client.get(f"/api/v1/customers/{cid}?reveal=true", headers=who(new, Role.supervisor, "sam"))
        assert r.status_code == 200 and r.json()["phone"] == ALICE["phone"]


async def test_a_backlog_of_purchases_takes_the_batch_path_and_decides_like_one_by_one(make_settings, topics, tap,
                                                                                        producer) -> None:
    """A backlog arrives as one batch: counters, levels and tier changes must come out as if each purchase
    had been applied alone, in order, exactly once, with each follow-up continuing its own purchase's trace."""
    from decimal import Decimal

    from guanxi_customer import domain
    from guanxi_shared.events import new_event

    settings = fast_settings(make_settings)
    amounts = ["120.00", "700.00", "35.50", "2400.00", "15.00", "980.00"]
    customers = [f"pos-{n}" for n in range(5)]
    sent: list[tuple[str, str, str, str]] = []  # (customer, order, amount, trace id)
    for i, amount in enumerate(amounts):
        for c, cid in enumerate(customers):
            order = f"o-{c}-{i}"
            trace_id = f"{c:04x}{i:04x}" + "ab" * 12
            sent.append((cid, order, amount, trace_id))
    sent.insert(7, sent[3])  # an order delivered twice inside the backlog
    sent.append((customers[1], "o-0-0", "9.99", "cd" * 16))  # an order id already used for another customer
    for cid, order, amount, trace_id in sent:
        event = new_event("purchase.completed", cid, purchase(order, cid, amount), source="pos")
        await producer.send_and_wait(topics + "purchase.completed", event.to_json(), key=cid.encode(),
                                     headers=[("traceparent", f"00-{trace_id}-{'1' * 16}-01".encode())])

    events = await tap("customer.tier_changed", "purchase.completed.dlq")
    async with running(settings, ManualClock()) as (app, _client):
        store = store_of(app)
        await eventually(lambda: store.customers.count_documents({"purchase_count": len(amounts)}),
                         lambda n: n == len(customers), what="every purchase counted")
        await events.wait_for(lambda t: len(t.events("purchase.completed.dlq")) == 1, what="the conflicting order dead-lettered")

        # The oracle: the same rules applied one purchase at a time.
        expected_changes: dict[str, str] = {}  # event id -> trace id of the purchase that caused it
        for cid in customers:
            level, tenure, count, total = settings.base_level, domain.Tenure.new.value, 0, Decimal(0)
            own = [(o, a, t) for c, o, a, t in dict.fromkeys(sent) if c == cid and o.startswith(f"o-{cid[-1]}-")]
            for order, amount, trace_id in own:
                count, total = count + 1, total + Decimal(amount)
                new_level = domain.member_level(count, total, settings.tier_rules, settings.base_level)
                new_tenure = domain.tenure(count, settings.returning_min_purchases, settings.loyal_min_purchases).value
                if (new_level, new_tenure) != (level, tenure):
                    expected_changes[domain.derived_id(f"order:{order}", "tier_changed")] = trace_id
                level, tenure = new_level, new_tenure
            doc = await store.customer(cid)
            assert doc is not None
            assert (doc["purchase_count"], Decimal(doc["total_amount"]), doc["member_level"], doc["tenure"]) == (
                count, total, level, tenure)
            assert sorted(doc["applied_events"]) == sorted(f"order:o-{cid[-1]}-{i}" for i in range(len(amounts)))
        assert await store.purchases.count_documents({}) == len(amounts) * len(customers)
        assert (await store.purchases.find_one({"_id": "o-0-0"}))["customer_id"] == customers[0]

        await events.wait_for(lambda t: uniq(t, "customer.tier_changed") >= len(expected_changes), what="tier changes")
        await events.settle(1.0)
        published = {e["id"] for e in events.events("customer.tier_changed")}
        assert published == set(expected_changes)
        for record in events.records:
            if record.topic.endswith("customer.tier_changed"):
                headers = {k: v.decode() for k, v in record.headers or ()}
                cause = expected_changes[json.loads(record.value)["id"]]
                assert headers["traceparent"].split("-")[1] == cause, "the follow-up continues its purchase's trace"

        async def outboxes() -> list[dict[str, object]]:
            return [d.get("outbox") or {} async for d in store.customers.find({"_id": {"$in": customers}})]

        # Every entry that went out is cleared, by a later batch's write or by the relay once quiet.
        await eventually(outboxes, lambda o: not any(o), what="outboxes cleared")
        # Published straight after the write; the entries are cleared once the relay is quiet.
        await eventually(lambda: store.customers.count_documents({"outbox": {"$exists": True, "$ne": {}}}),
                         lambda n: n == 0, what="outbox entries cleared")


async def test_registration_with_an_idempotency_key_registers_one_customer_per_caller_and_key(make_settings, topics,
                                                                                              tap) -> None:
    settings = fast_settings(make_settings)
    events = await tap("customer.registered")
    async with running(settings, ManualClock()) as (app, client):
        customers = store_of(app).customers
        alice = {**who(settings), "Idempotency-Key": "signup-1"}
        first = await client.post("/api/v1/customers", json=ALICE, headers=alice)
        assert first.status_code == 201, first.text
        # The retry of a caller who never saw the answer (or of a gateway that died before recording it).
        again = await client.post("/api/v1/customers", json=ALICE, headers=alice)
        assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
        assert await customers.count_documents({}) == 1

        # Duplicates racing each other: one insert wins, the other answers with the same customer.
        racing = {**who(settings), "Idempotency-Key": "signup-2"}
        bob_body = {**ALICE, "name": "Bob", "email": "bob@example.com"}
        answers = await asyncio.gather(*(client.post("/api/v1/customers", json=bob_body, headers=racing) for _ in range(3)))
        assert [a.status_code for a in answers] == [201, 201, 201], [a.text for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1
        assert await customers.count_documents({}) == 2

        # The same key for a different customer is refused; another caller's same key is their own.
        reused = await client.post("/api/v1/customers", json={**ALICE, "name": "Someone else"}, headers=alice)
        assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["detail"]
        other = await client.post("/api/v1/customers", json=ALICE,
                                  headers={**who(settings, subject="bob"), "Idempotency-Key": "signup-1"})
        assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
        assert await customers.count_documents({}) == 3
        await events.wait_for(lambda t: len(unique_events(t, "customer.registered")) == 3, what="three registrations")
        await events.settle(0.5)
        assert len(unique_events(events, "customer.registered")) == 3


async def test_the_batch_path_hands_back_purchases_whose_customer_changed_meanwhile(make_settings, monkeypatch) -> None:
    """The batch path writes purchase state guarded by the purchase count it read (and "not erased").
    When another write comes between its read and its write (a zombie consumer, an erasure), its write
    misses, and the purchases of that customer are handed back to be decided one by one, as the
    consumer does: nothing counted twice or lost, nothing written onto an erased customer."""
    from decimal import Decimal

    from guanxi_customer import handlers
    from guanxi_customer.handlers import purchases
    from guanxi_shared.events import new_event
    from opentelemetry import context as otel_context

    settings = fast_settings(make_settings)
    async with running(settings, ManualClock()) as (app, _client):
        deps, store = deps_of(app), store_of(app)
        read_customers = purchases._customers_or_stubs
        meanwhile: dict[str, object] = {"write": lambda: asyncio.sleep(0)}

        async def stale_read(d, ids, found):  # type: ignore[no-untyped-def]
            docs = await read_customers(d, ids, found)
            await meanwhile["write"]()  # type: ignore[operator]
            return docs

        monkeypatch.setattr(purchases, "_customers_or_stubs", stale_read)

        def batch(cid: str, orders: list[tuple[str, str]]) -> list[tuple[object, otel_context.Context]]:
            return [(new_event("purchase.completed", cid, purchase(o, cid, a), source="pos"), otel_context.get_current())
                    for o, a in orders]

        # A second writer (a consumer that lost its partition without knowing) records and folds an order
        # between the batch's read and its write; the batch's write then overwrites its counters.
        async def zombie() -> None:
            await store.purchases.insert_one({"_id": "z-1", "customer_id": "race-1", "amount": "50.00",
                                              "purchased_at": datetime.now(UTC)})
            await store.customers.update_one({"_id": "race-1"}, {
                "$inc": {"purchase_count": 1}, "$set": {"total_amount": "51.00"},
                "$addToSet": {"applied_events": "order:z-1"}})

        await handlers.on_purchases(deps, batch("race-1", [("z-0", "1.00")]))  # type: ignore[arg-type]
        meanwhile["write"] = zombie
        raced = batch("race-1", [("r-1", "100.00"), ("r-2", "20.00")])
        left = await handlers.on_purchases(deps, raced)  # type: ignore[arg-type]
        assert [e.id for e in left] == [e.id for e, _ in raced]  # type: ignore[attr-defined]
        meanwhile["write"] = lambda: asyncio.sleep(0)
        for event in left:
            await handlers.on_purchase(deps, event)
        doc = await store.customer("race-1")
        assert doc is not None
        # Every order counted exactly once.
        assert doc["purchase_count"] == 4
        assert Decimal(doc["total_amount"]) == Decimal("171.00")
        assert sorted(doc["applied_events"]) == ["order:r-1", "order:r-2", "order:z-0", "order:z-1"]

        # An erasure between the read and the write: the tombstone keeps no trace of the purchase.
        async def erasure() -> None:
            await handlers.erase(deps, "race-2", "dpo", "request")

        await handlers.on_purchases(deps, batch("race-2", [("e-0", "10.00")]))  # type: ignore[arg-type]
        erased_before = await store.customer("race-2")
        meanwhile["write"] = erasure
        # Enough to cross a tier threshold, so a tier change would have gone into the outbox.
        left = await handlers.on_purchases(deps, batch("race-2", [("e-1", "5000.00"), ("e-2", "5000.00")]))  # type: ignore[arg-type]
        assert len(left) == 2
        for event in left:
            await handlers.on_purchase(deps, event)
        tomb = await store.customer("race-2")
        assert tomb is not None and tomb["status"] == "erased"
        assert erased_before is not None
        assert (tomb["purchase_count"], tomb["total_amount"]) == (erased_before["purchase_count"], erased_before["total_amount"])
        assert sorted(tomb["applied_events"]) == ["order:e-0"]
        assert all(json.loads(e["value"])["type"] != "customer.tier_changed" for e in (tomb.get("outbox") or {}).values())
