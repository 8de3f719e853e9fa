"""The surveys service on real Kafka + FerretDB, driven in-process with a manual clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from guanxi_shared.auth import Identity, Role, sign_internal
from guanxi_shared.clock import ManualClock
from guanxi_shared.events import new_event
from guanxi_shared.testing import EventTap, eventually, send_event, serving
from guanxi_shared.topics import (
    COMPLAINT_RESOLVED,
    CUSTOMER_CONSENT_CHANGED,
    CUSTOMER_ERASED,
    CUSTOMER_REGISTERED,
    CUSTOMER_TIER_CHANGED,
    PURCHASE_COMPLETED,
    SURVEY_COMPLETED,
    SURVEY_LOW_SCORE,
    SURVEY_REQUESTED,
    SURVEY_SCHEDULED,
    SURVEY_SKIPPED,
)
from guanxi_surveys.app import build
from guanxi_surveys.settings import SurveysSettings
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration

# Monday 2026-11-16 10:00 in Shanghai: three days later is a plain working Thursday morning.
T0 = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)


class Kit:
    def __init__(self, settings: SurveysSettings, producer: AIOKafkaProducer, prefix: str) -> None:
        self.settings = settings
        self.producer = producer
        self.prefix = prefix
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
        self.db = self.mongo[settings.mongodb_database]

    def headers(self, role: Role = Role.agent) -> dict[str, str]:
        token = sign_internal(Identity(subject="alice", roles=[role]), self.settings.internal_secret.get_secret_value())
        return {"X-Guanxi-Identity": token}

    async def send(self, type_: str, customer: str, data: dict[str, Any], event_id: str | None = None) -> str:
        return await send_event(self.producer, self.prefix, new_event(type_, customer, data, source="tests", id=event_id))

    async def register(self, customer: str, *, survey: bool = True, level: str = "standard", language: str = "zh") -> None:
        await self.send(CUSTOMER_REGISTERED, customer, {
            "customer_id": customer, "consents": {"service": True, "survey": survey}, "member_level": level,
            "language": language, "timezone": "Asia/Shanghai", "registered_at": (T0 - timedelta(days=1)).isoformat()})
        await eventually(lambda: self.db["customers"].find_one({"_id": customer, "survey_consent": {"$exists": True}}),
                         what=f"{customer} known to the surveys service")

    async def purchase(self, order: str, customer: str, *, channel: str = "web", at: datetime = T0,
                       event_id: str | None = None) -> str:
        return await self.send(PURCHASE_COMPLETED, customer, {
            "order_id": order, "customer_id": customer, "amount": "199.00", "currency": "CNY",
            "items": [{"sku": "TEA-1", "name": "Oolong", "quantity": 1, "unit_price": "199.00"}],
            "channel": channel, "purchased_at": at.isoformat()}, event_id)

    async def surveys_of(self, client: httpx.AsyncClient, customer: str) -> list[dict[str, Any]]:
        r = await client.get("/api/v1/surveys", params={"customer_id": customer}, headers=self.headers())
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


@pytest.fixture
async def kit(make_settings, topics, producer) -> AsyncIterator[Kit]:  # type: ignore[no-untyped-def]
    settings = make_settings(SurveysSettings, scheduler_interval_seconds=0.1)
    k = Kit(settings, producer, topics)
    yield k
    await k.mongo.drop_database(settings.mongodb_database)
    await k.mongo.close()


def running(settings: SurveysSettings, clock: ManualClock) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return serving(build(settings, clock))


def datas(t: EventTap, topic: str) -> list[dict[str, Any]]:
    return [e["data"] for e in t.events(topic)]


def token_of(link: str) -> str:
    assert link.startswith("http://127.0.0.1:8106/s/")  # the console's survey page
    return link.rsplit("/", 1)[1]


async def test_a_decision_stored_but_not_announced_is_announced_when_the_trigger_comes_again(kit: Kit, tap, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Decisions are announced from memory after they are stored, before the trigger's offset is
    # committed. When the announcement fails (Kafka away, or a crash), the trigger is not committed: it
    # comes again, finds its decision stored and announces that one, with the same event id.
    from aiokafka.errors import KafkaConnectionError
    from guanxi_shared.messaging import EventPublisher

    failures = {"left": 1}
    publish_many = EventPublisher.publish_many

    async def failing_once(self, events):  # type: ignore[no-untyped-def]
        events = list(events)
        if failures["left"] and any(e.type == SURVEY_SCHEDULED for e in events):
            failures["left"] -= 1
            raise KafkaConnectionError("the broker went away")
        await publish_many(self, events)

    monkeypatch.setattr(EventPublisher, "publish_many", failing_once)
    seen = await tap(SURVEY_SCHEDULED)
    async with running(kit.settings, ManualClock(T0)) as client:
        await kit.register("c-9")
        await kit.purchase("o-9", "c-9")
        await seen.wait_for(lambda t: len(t.events(SURVEY_SCHEDULED)) >= 1, what="the decision announced after the failure")
        assert failures["left"] == 0
        assert [e["data"]["trigger_id"] for e in seen.events(SURVEY_SCHEDULED)] == ["o-9"]
        assert len(await kit.surveys_of(client, "c-9")) == 1


async def test_purchase_schedules_one_survey_in_window_duplicates_none_and_cooldown_skips(kit: Kit, tap) -> None:  # type: ignore[no-untyped-def]
    """A survey in the 3–7 day window after a purchase (SV-1)."""
    clock = ManualClock(T0)
    seen = await tap(SURVEY_SCHEDULED, SURVEY_SKIPPED)
    async with running(kit.settings, clock) as client:
        await kit.register("c-1")
        first = await kit.purchase("o-1", "c-1")
        await kit.purchase("o-1", "c-1", event_id=first)  # the same event again
        await kit.purchase("o-1", "c-1")  # the same order in a new event
        await kit.purchase("o-2", "c-1", at=T0 + timedelta(days=2))  # another order within the cooldown
        await seen.wait_for(lambda t: len(t.events(SURVEY_SKIPPED)) >= 1, what="the cooldown skip")
        await seen.settle(0.5)

        # A trigger delivered again announces its stored decision again, under the same event id (it
        # cannot know the first announcement went out): one decision each, whatever the copies.
        scheduled = {e["id"]: e["data"] for e in seen.events(SURVEY_SCHEDULED)}
        assert [d["trigger_id"] for d in scheduled.values()] == ["o-1"]
        skipped = {e["id"]: e["data"] for e in seen.events(SURVEY_SKIPPED)}
        assert [(s["trigger_id"], s["reason"]) for s in skipped.values()] == [("o-2", "cooldown")]

        items = await kit.surveys_of(client, "c-1")
        assert len(items) == 1
        survey = items[0]
        when = datetime.fromisoformat(survey["scheduled_for"])
        assert T0 + timedelta(days=3) <= when <= T0 + timedelta(days=7)
        assert when == T0 + timedelta(days=3)  # Thursday 10:00 in Shanghai: working day, not quiet
        assert survey["status"] == "scheduled" and survey["kind"] == "post_purchase" and survey["channel"] == "web"

        r = await client.get("/api/v1/surveys/skips", params={"customer_id": "c-1"}, headers=kit.headers())
        assert [(s["trigger_id"], s["reason"]) for s in r.json()["items"]] == [("o-2", "cooldown")]
        r = await client.get("/api/v1/surveys", params={"customer_id": "c-1"})
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")


async def test_consent_withdrawn_or_erased_means_no_survey(kit: Kit, tap) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(T0)
    seen = await tap(SURVEY_SCHEDULED, SURVEY_SKIPPED, SURVEY_REQUESTED)
    async with running(kit.settings, clock) as client:
        await kit.register("c-2")
        await kit.register("c-3")
        await kit.register("c-4", survey=False)
        await kit.purchase("o-20", "c-2")
        await kit.purchase("o-30", "c-3")
        await kit.purchase("o-40", "c-4")
        await kit.register("c-11")
        await kit.send(COMPLAINT_RESOLVED, "c-11", {
            "complaint_id": "k-1", "customer_id": "c-11", "status": "resolved", "actor": "bob", "at": T0.isoformat(),
            "channel": "phone", "resolution": "refunded"})
        await seen.wait_for(lambda t: len(t.events(SURVEY_SCHEDULED)) >= 3 and len(t.events(SURVEY_SKIPPED)) >= 1,
                            what="three surveys scheduled, one skipped")
        resolution = [d for d in datas(seen, SURVEY_SCHEDULED) if d["kind"] == "post_resolution"]
        assert [(d["customer_id"], d["trigger_id"]) for d in resolution] == [("c-11", "k-1")]
        # One day after the resolution (Tuesday 10:00 in Shanghai), inside the 1–3 day window.
        assert datetime.fromisoformat(resolution[0]["scheduled_for"]) == T0 + timedelta(days=1)
        assert [(s["trigger_id"], s["reason"]) for s in datas(seen, SURVEY_SKIPPED)] == [("o-40", "no_survey_consent")]

        # Withdrawing survey consent cancels the pending survey and blocks new ones.
        await kit.send(CUSTOMER_CONSENT_CHANGED, "c-2", {
            "customer_id": "c-2", "purpose": "survey", "granted": False, "consents": {"service": True, "survey": False},
            "changed_at": T0.isoformat()})
        await kit.purchase("o-21", "c-2", at=T0 + timedelta(days=40))
        # Erasure cancels too, and nothing is scheduled for the erased customer afterwards.
        await kit.send(CUSTOMER_ERASED, "c-3", {"customer_id": "c-3", "erased_at": T0.isoformat(), "actor": "dpo"})
        await kit.purchase("o-31", "c-3", at=T0 + timedelta(days=40))
        await seen.wait_for(lambda t: len(t.events(SURVEY_SKIPPED)) >= 5, what="cancellations and skips")
        reasons = {(s["trigger_id"], s["reason"]) for s in datas(seen, SURVEY_SKIPPED)}
        assert reasons == {("o-40", "no_survey_consent"), ("o-20", "consent_withdrawn"), ("o-21", "no_survey_consent"),
                           ("o-30", "customer_erased"), ("o-31", "customer_erased")}
        assert [s["status"] for s in await kit.surveys_of(client, "c-2")] == ["cancelled"]
        assert await kit.surveys_of(client, "c-3") == []  # detached from the erased customer

        # Nothing goes out to them when the time comes; the complaint survey does.
        clock.advance(timedelta(days=8))
        await seen.wait_for(lambda t: len(t.events(SURVEY_REQUESTED)) >= 1, what="the post-resolution survey")
        await seen.settle(0.5)
        assert [d["customer_id"] for d in datas(seen, SURVEY_REQUESTED)] == ["c-11"]


async def test_due_survey_is_requested_once_across_a_restart_and_answered_once(kit: Kit, tap) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(T0)
    seen = await tap(SURVEY_SCHEDULED, SURVEY_REQUESTED, SURVEY_COMPLETED, SURVEY_LOW_SCORE, SURVEY_SKIPPED)
    async with running(kit.settings, clock):
        await kit.register("c-5", language="en")
        await kit.purchase("o-50", "c-5", channel="app")
        await kit.purchase("o-60", "c-6")  # c-6 is never registered: survey consent unknown
        await seen.wait_for(lambda t: len(t.events(SURVEY_SCHEDULED)) >= 2, what="two surveys scheduled")
        clock.advance(timedelta(days=3, hours=1))
        await seen.wait_for(lambda t: len(t.events(SURVEY_REQUESTED)) >= 1 and len(t.events(SURVEY_SKIPPED)) >= 1,
                            what="the survey requested")
    assert [(s["trigger_id"], s["reason"]) for s in datas(seen, SURVEY_SKIPPED)] == [("o-60", "survey_consent_unknown")]

    # A new instance on the same store and topics must not send it again.
    async with running(kit.settings, clock) as client:
        await seen.settle(1.5)
        # The relay is at-least-once: a stop between publishing and clearing republishes the same
        # entry (same event id, same content). Sending again would make a new link: never allowed.
        copies = seen.events(SURVEY_REQUESTED)
        assert len({e["id"] for e in copies}) == 1
        assert all(e["data"] == copies[0]["data"] for e in copies), "the survey was sent twice"
        request = copies[0]["data"]
        assert request["customer_id"] == "c-5" and request["language"] == "en" and request["reminder"] is False
        token = token_of(request["link"])

        form = await client.get(f"/api/v1/surveys/answer/{token}")
        assert form.status_code == 200, form.text
        body = form.json()
        assert body["language"] == "en" and body["questions"][0]["text"].startswith("How satisfied")
        assert {q["id"] for q in body["questions"]} == {"satisfaction", "recommend", "liked_most", "comment"}

        bad = await client.post(f"/api/v1/surveys/answer/{token}", json={"answers": {"satisfaction": 140}})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
        assert any("recommend" in e for e in bad.json()["errors"])
        forged = await client.get(f"/api/v1/surveys/answer/{token[:-4]}AAAA")
        assert forged.status_code == 404

        answers = {"satisfaction": 40, "recommend": 5, "liked_most": "product", "comment": "arrived late"}
        ok = await client.post(f"/api/v1/surveys/answer/{token}", json={"answers": answers})
        assert ok.status_code == 200 and ok.json()["low_score"] is True
        again = await client.post(f"/api/v1/surveys/answer/{token}", json={"answers": answers})
        assert again.status_code == 409 and again.json()["title"] == "Survey already answered"

        await seen.wait_for(lambda t: len(t.events(SURVEY_LOW_SCORE)) >= 1 and len(t.events(SURVEY_COMPLETED)) >= 1,
                            what="completed and low score")
        await seen.settle(0.5)
        completed = datas(seen, SURVEY_COMPLETED)
        assert len(completed) == 1 and (completed[0]["csat"], completed[0]["nps"], completed[0]["channel"]) == (40, 5, "app")
        low = datas(seen, SURVEY_LOW_SCORE)
        assert len(low) == 1 and low[0]["reason"] == "csat_below_60,nps_detractor" and low[0]["trigger_id"] == "o-50"
        # No personal data and no free text leave in events.
        assert "arrived late" not in json.dumps(seen.events())

        items = await kit.surveys_of(client, "c-5")
        assert items[0]["status"] == "completed" and items[0]["csat"] == 40

        # Completed surveys get no reminder (a reminder is a new request; a republished copy of the first,
        # same id, is the relay's at-least-once and deduplicated downstream).
        clock.advance(timedelta(days=4))
        await seen.settle(0.5)
        requests = seen.events(SURVEY_REQUESTED)
        assert len({e["id"] for e in requests}) == 1 and not any(e["data"]["reminder"] for e in requests)


async def test_reports_reminder_expiry_and_erasure(kit: Kit, tap) -> None:  # type: ignore[no-untyped-def]
    """Reports per channel and segment (SV-3); erasure (CI-6)."""
    clock = ManualClock(T0)
    seen = await tap(SURVEY_SCHEDULED, SURVEY_REQUESTED)
    # (customer, channel, member level, csat, nps) — c-10 never answers.
    plan = [("c-7", "web", "gold", 90, 10), ("c-8", "web", "standard", 50, 3), ("c-9", "app", "gold", 80, 8),
            ("c-10", "app", "standard", None, None)]
    async with running(kit.settings, clock) as client:
        for customer, _, level, _, _ in plan:
            await kit.register(customer, level=level)
        for customer, channel, _, _, _ in plan:
            await kit.purchase(f"o-{customer}", customer, channel=channel)
        await seen.wait_for(lambda t: len(t.events(SURVEY_SCHEDULED)) >= 4, what="four surveys scheduled")
        clock.advance(timedelta(days=3, hours=1))
        await seen.wait_for(lambda t: len(t.events(SURVEY_REQUESTED)) >= 4, what="four surveys requested")
        links = {d["customer_id"]: token_of(d["link"]) for d in datas(seen, SURVEY_REQUESTED)}
        for customer, _, _, csat, nps in plan:
            if csat is not None:
                r = await client.post(f"/api/v1/surveys/answer/{links[customer]}",
                                      json={"answers": {"satisfaction": csat, "recommend": nps, "comment": "thanks"}})
                assert r.status_code == 200, r.text

        boss = kit.headers(Role.supervisor)
        window = {"from": "2026-11-01", "to": "2026-12-01"}
        r = await client.get("/api/v1/surveys/reports", params={**window, "group_by": "channel"}, headers=boss)
        assert r.status_code == 200, r.text
        report = r.json()
        overall = report["overall"]
        # Hand-computed: 4 sent, 3 answered; CSAT (90+50+80)/3; NPS 1 promoter − 1 detractor of 3.
        assert (overall["sent"], overall["completed"], overall["response_rate"]) == (4, 3, 0.75)
        assert overall["avg_csat"] == 73.33 and overall["csat_target"] == 85 and overall["meets_target"] is False
        assert overall["nps"] == 0.0
        groups = {g["group"]: g for g in report["groups"]}
        web, app = groups["web"], groups["app"]
        assert (web["sent"], web["completed"], web["avg_csat"], web["nps"], web["response_rate"]) == (2, 2, 70.0, 0.0, 1.0)
        assert (app["sent"], app["completed"], app["avg_csat"], app["nps"], app["response_rate"]) == (2, 1, 80.0, 0.0, 0.5)
        assert web["distribution"]["csat"] == {"0-59": 1, "60-69": 0, "70-79": 0, "80-89": 0, "90-100": 1}
        assert web["distribution"]["nps"]["10"] == 1 and web["distribution"]["nps"]["3"] == 1
        assert app["distribution"]["nps"]["8"] == 1 and sum(app["distribution"]["nps"].values()) == 1

        r = await client.get("/api/v1/surveys/reports", params={**window, "group_by": "member_level"}, headers=boss)
        levels = {g["group"]: g for g in r.json()["groups"]}
        # gold: 90 and 80 → 85.0 (meets the target); one promoter, one passive → NPS 50.
        assert (levels["gold"]["avg_csat"], levels["gold"]["meets_target"], levels["gold"]["nps"]) == (85.0, True, 50.0)
        standard = levels["standard"]
        assert (standard["avg_csat"], standard["nps"], standard["response_rate"]) == (50.0, -100.0, 0.5)

        r = await client.get("/api/v1/surveys/reports", params={**window, "group_by": "period", "period": "month"}, headers=boss)
        assert [(g["group"], g["sent"]) for g in r.json()["groups"]] == [("2026-11", 4)]

        r = await client.get("/api/v1/kpis/surveys", params=window, headers=boss)
        k = r.json()
        assert (k["avg_satisfaction"], k["nps"], k["response_rate"], k["satisfaction_target"]) == (73.33, 0.0, 0.75, 85)
        r = await client.get("/api/v1/surveys/reports", params=window, headers=kit.headers(Role.agent))
        assert r.status_code == 403

        # One reminder for the unanswered survey, with the same link; then it expires.
        clock.advance(timedelta(days=3))
        await seen.wait_for(lambda t: any(d["reminder"] for d in datas(t, SURVEY_REQUESTED)), what="the reminder")
        clock.advance(timedelta(days=1))
        await seen.settle(0.5)
        reminders = [d for d in datas(seen, SURVEY_REQUESTED) if d["reminder"]]
        assert len(reminders) == 1 and reminders[0]["customer_id"] == "c-10"
        assert token_of(reminders[0]["link"]) == links["c-10"]
        clock.advance(timedelta(days=11))
        await eventually(lambda: kit.surveys_of(client, "c-10"), lambda items: items[0]["status"] == "expired",
                         what="expiry")
        r = await client.get(f"/api/v1/surveys/answer/{links['c-10']}")
        assert r.status_code == 410

        # Erasure anonymises answers: no customer id, no free text; the figures stay.
        await kit.send(CUSTOMER_ERASED, "c-7", {"customer_id": "c-7", "erased_at": T0.isoformat(), "actor": "dpo"})
        await eventually(lambda: kit.db["surveys"].find_one({"trigger_id": "o-c-7"}),
                         lambda d: d is not None and "customer_id" not in d, what="anonymised answers")
        doc = await kit.db["surveys"].find_one({"trigger_id": "o-c-7"})
        assert doc is not None and "comment" not in doc["answers"] and doc["csat"] == 90
        r = await client.get("/api/v1/kpis/surveys", params=window, headers=boss)
        assert r.json()["avg_satisfaction"] == 73.33


async def test_tier_changes_keep_the_newest_level_whatever_the_order(kit: Kit, tap) -> None:  # type: ignore[no-untyped-def]
    """Tier changes are taken in batches: the newest change per customer wins, in whatever order they come
    (a registration crossing them too); a customer first seen in a tier change gets a view; a bad one is
    dead-lettered and the rest still land."""
    dlq = await tap(CUSTOMER_TIER_CHANGED + ".dlq")

    def change(customer: str, level: str, hours: int) -> dict[str, Any]:
        return {"customer_id": customer, "member_level": level, "previous_level": "standard", "tenure": "returning",
                "previous_tenure": "new", "purchase_count": 3, "total_amount": "300.00",
                "changed_at": (T0 + timedelta(hours=hours)).isoformat()}

    async with running(kit.settings, ManualClock(T0)):
        await kit.register("c-t1", level="standard")  # stamped T0 - 1 day: older than every change below
        await kit.send(CUSTOMER_TIER_CHANGED, "c-t1", change("c-t1", "gold", 5))
        await kit.send(CUSTOMER_TIER_CHANGED, "c-t1", change("c-t1", "silver", 2))  # older, arrives later
        await kit.send(CUSTOMER_TIER_CHANGED, "c-t2", change("c-t2", "silver", 1))  # never registered here
        await kit.send(CUSTOMER_TIER_CHANGED, "c-t3", {"customer_id": "c-t3"})  # invalid
        await eventually(lambda: kit.db["customers"].find_one({"_id": "c-t2"}), lambda d: d is not None,
                         what="c-t2's view")
        await dlq.wait_for(lambda t: len(t.records) >= 1, what="the invalid change dead-lettered")
        await eventually(lambda: kit.db["customers"].find_one({"_id": "c-t1"}),
                         lambda d: d is not None and d.get("member_level") == "gold", what="c-t1 at gold")
        await kit.send(CUSTOMER_TIER_CHANGED, "c-t1", change("c-t1", "standard", 3))  # still older than gold's
        await kit.send(CUSTOMER_TIER_CHANGED, "c-t2", change("c-t2", "gold", 4))
        await eventually(lambda: kit.db["customers"].find_one({"_id": "c-t2"}),
                         lambda d: d is not None and d.get("member_level") == "gold", what="c-t2 at gold")
        t1 = await kit.db["customers"].find_one({"_id": "c-t1"})
        assert t1 is not None and t1["member_level"] == "gold" and t1["survey_consent"] is True
        assert t1["level_at"] == T0 + timedelta(hours=5)
        assert "dlq-reason" in dict((k, v) for k, v in dlq.records[0].headers)
