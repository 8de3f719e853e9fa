"""Protection against harassment (CR-3) on real Kafka + FerretDB + SMTP: opt-out, consent, quiet hours,
frequency caps (holds released later by the clock), and erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from guanxi_shared import topics as t
from guanxi_shared.auth import Role
from guanxi_shared.clock import ManualClock
from guanxi_shared.testing import eventually
from nx_support import (
    DAYTIME,
    FakeCustomerService,
    complaint_step,
    publish,
    running,
    service_settings,
    smtp,  # noqa: F401 - pytest fixture
    survey_requested,
)

pytestmark = pytest.mark.integration

# 22:00 in Shanghai: quiet hours until 09:00 local = 01:00 UTC next day.
NIGHT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
MORNING = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


async def test_opt_out_and_missing_consent_suppress_with_a_recorded_reason(
    make_settings, topics, tap, producer, smtp  # noqa: F811
) -> None:
    settings = service_settings(make_settings, smtp)
    customers = FakeCustomerService(settings.internal_secret.get_secret_value())
    customers.add("c-opt", name="Opt Out", email="opt@example.com", language="en")
    customers.add("c-nocon", name="No Marketing", email="nm@example.com",
                  consents={"service": True, "survey": True, "care": True, "marketing": False})
    customers.add("c-local", name="Local Consent", email="lc@example.com")
    suppressed = await tap(t.NOTIFICATION_SUPPRESSED)
    async with running(settings, ManualClock(DAYTIME), customers) as svc:
        # Opt-out of email, recorded through the API, honoured from the very next message.
        r = await svc.http.put("/api/v1/notifications/preferences/c-opt", headers=svc.headers(), json={"opted_out": ["email"]})
        assert r.status_code == 200 and r.json()["opted_out"] == ["email"]
        await publish(producer, topics, t.NOTIFICATION_REQUESTED, "c-opt",
                      {"customer_id": "c-opt", "template": "complaint_acknowledged", "category": "service",
                       "variables": {"complaint_id": "CMP-3"}, "channel": "email"})
        # Without an explicit channel, a service message still reaches the customer in the app.
        await publish(producer, topics, t.COMPLAINT_ACKNOWLEDGED, "c-opt", complaint_step("c-opt", "CMP-4"))
        # No consent for marketing, known only to the customer service (it answers 403).
        await publish(producer, topics, t.CUSTOMER_CARE_DUE, "c-nocon",
                      {"customer_id": "c-nocon", "occasion_id": "churn:c-nocon:1", "occasion": "churn_risk",
                       "due_at": DAYTIME.isoformat()})
        # Consent withdrawn for surveys, learned from the customer service's event: no PII read at all.
        await publish(producer, topics, t.CUSTOMER_CONSENT_CHANGED, "c-local",
                      {"customer_id": "c-local", "purpose": "survey", "granted": False,
                       "consents": {"service": True, "survey": False, "care": True, "marketing": True},
                       "changed_at": DAYTIME.isoformat()})
        await eventually(lambda: svc.http.get("/api/v1/notifications/preferences/c-local", headers=svc.headers()),
                         lambda resp: (resp.json().get("consents") or {}).get("survey") is False, what="consent learned")
        await publish(producer, topics, t.SURVEY_REQUESTED, "c-local", survey_requested("c-local", "S-1"))

        await suppressed.wait_for(lambda tp: len({e["id"] for e in tp.events()}) >= 3, what="three suppressions")
        reasons = {e["subject"]: e["data"]["reason"] for e in suppressed.events()}
        assert reasons == {"c-opt": "opted_out:email", "c-nocon": "no_consent:marketing", "c-local": "no_consent:survey"}
        assert all(e["data"]["status"] == "suppressed" for e in suppressed.events())

        inbox = await eventually(lambda: svc.http.get("/api/v1/notifications/inbox/c-opt", headers=svc.headers()),
                                 lambda resp: len(resp.json()["items"]) == 1, what="in-app message")
        assert "CMP-4" in inbox.json()["items"][0]["body"]
        items = await svc.notifications_of("c-opt")
        assert sorted((i["status"], i["channel"], i["reason"]) for i in items) == [
            ("sent", "inapp", None), ("suppressed", None, "opted_out:email")]
        nocon = await svc.notifications_of("c-nocon")
        assert nocon[0]["category"] == "marketing" and nocon[0]["reason"] == "no_consent:marketing"
        assert customers.calls_for("c-local") == 0
        assert smtp.messages == []

        kpis = await svc.http.get("/api/v1/kpis/notifications", headers=svc.headers(Role.supervisor),
                                  params={"from": (DAYTIME - timedelta(hours=1)).isoformat(),
                                          "to": (DAYTIME + timedelta(hours=1)).isoformat()})
        assert kpis.status_code == 200, kpis.text
        body = kpis.json()
        assert (body["sent"], body["suppressed"], body["failed"]) == (1, 3, 0)
        assert body["reasons"] == {"suppressed:opted_out": 1, "suppressed:no_consent": 2}
        assert body["by_category"]["service"] == {"sent": 1, "suppressed": 1}


async def test_quiet_hours_hold_a_survey_until_morning_but_never_a_service_message(
    make_settings, topics, tap, producer, smtp  # noqa: F811
) -> None:
    settings = service_settings(make_settings, smtp)
    customers = FakeCustomerService(settings.internal_secret.get_secret_value())
    customers.add("c-night", name="Nia", email="nia@example.com", language="en")
    clock = ManualClock(NIGHT)
    held = await tap(t.NOTIFICATION_SUPPRESSED)
    async with running(settings, clock, customers) as svc:
        await publish(producer, topics, t.SURVEY_REQUESTED, "c-night", survey_requested("c-night", "S-9"))
        await held.wait_for(lambda tp: len(tp.records) >= 1, what="hold recorded")
        data = held.events()[0]["data"]
        assert (data["status"], data["reason"]) == ("held", "quiet_hours")
        assert datetime.fromisoformat(data["held_until"]) == MORNING
        # A complaint update is service: quiet hours do not apply to it.
        await publish(producer, topics, t.COMPLAINT_ACKNOWLEDGED, "c-night", complaint_step("c-night", "CMP-N"))
        await eventually(lambda: _count(smtp), lambda n: n == 1, what="the service email at night")
        assert smtp.messages[0]["Subject"] == "We have received your complaint (CMP-N)"
        survey = next(i for i in await svc.notifications_of("c-night") if i["template"] == "survey_invitation")
        assert survey["status"] == "held" and survey["next_attempt_at"] == MORNING.isoformat()
        assert customers.calls_for("c-night") == 1  # no contact details read for a held message

        clock.set(MORNING - timedelta(minutes=1))
        await held.settle(0.5)
        assert len(smtp.messages) == 1  # still quiet at 08:59
        clock.set(MORNING)
        await eventually(lambda: _count(smtp), lambda n: n == 2, what="the survey released at 09:00")
        assert smtp.messages[1]["Subject"] == "How did we do?"
        assert "https://guanxi.example/s/S-9" in smtp.messages[1].get_content()
        # The email is out before its outcome is stored: wait for the log to say so.
        items = await eventually(lambda: svc.notifications_of("c-night"),
                                 lambda xs: any(i["template"] == "survey_invitation" and i["status"] == "sent" for i in xs),
                                 what="the survey logged as sent")
        survey = next(i for i in items if i["template"] == "survey_invitation")
        assert [h["status"] for h in survey["history"]] == ["pending", "held", "sent"]


async def test_frequency_cap_counts_surveys_holds_the_extra_one_and_releases_it_later(
    make_settings, topics, tap, producer, smtp  # noqa: F811
) -> None:
    settings = service_settings(make_settings, smtp, cap_survey=1, cap_window_hours=24)
    customers = FakeCustomerService(settings.internal_secret.get_secret_value())
    customers.add("c-cap", name="Cap", email="cap@example.com", language="en")
    clock = ManualClock(DAYTIME)
    async with running(settings, clock, customers) as svc:
        await publish(producer, topics, t.SURVEY_REQUESTED, "c-cap", survey_requested("c-cap", "S-1"))
        await eventually(lambda: _count(smtp), lambda n: n == 1, what="first survey")
        logged = await eventually(lambda: svc.notifications_of("c-cap"), lambda xs: bool(xs) and xs[0].get("sent_at"),
                                  what="the first survey logged as sent")
        first_sent = datetime.fromisoformat(logged[0]["sent_at"])
        clock.advance(timedelta(hours=2))
        await publish(producer, topics, t.SURVEY_REQUESTED, "c-cap", survey_requested("c-cap", "S-2"))
        items = await eventually(lambda: svc.notifications_of("c-cap"), lambda xs: len(xs) == 2 and xs[0]["status"] == "held",
                                 what="second survey held")
        assert items[0]["reason"] == "frequency_cap"
        assert datetime.fromisoformat(items[0]["held_until"]) == first_sent + timedelta(hours=24)
        # Service messages are never capped.
        await publish(producer, topics, t.COMPLAINT_ACKNOWLEDGED, "c-cap", complaint_step("c-cap", "CMP-C"))
        await eventually(lambda: _count(smtp), lambda n: n == 2, what="service email despite the cap")

        clock.set(first_sent + timedelta(hours=24, seconds=1))  # 11:00 local: not quiet
        await eventually(lambda: _count(smtp), lambda n: n == 3, what="held survey released")
        assert "https://guanxi.example/s/S-2" in smtp.messages[2].get_content()


async def test_erasure_stops_held_messages_and_anonymises_the_log(make_settings, topics, tap, producer, smtp) -> None:  # noqa: F811
    settings = service_settings(make_settings, smtp)
    customers = FakeCustomerService(settings.internal_secret.get_secret_value())
    customers.add("c-gone", name="Gone", email="gone@example.com", language="en")
    clock = ManualClock(NIGHT)
    sent = await tap(t.NOTIFICATION_SENT)
    async with running(settings, clock, customers) as svc:
        await publish(producer, topics, t.COMPLAINT_ACKNOWLEDGED, "c-gone", complaint_step("c-gone", "CMP-G"))
        await publish(producer, topics, t.SURVEY_REQUESTED, "c-gone", survey_requested("c-gone", "S-G"))
        await eventually(lambda: svc.notifications_of("c-gone"),
                         lambda xs: sorted(i["status"] for i in xs) == ["held", "sent"], what="one sent, one held")

        await publish(producer, topics, t.CUSTOMER_ERASED, "c-gone",
                      {"customer_id": "c-gone", "erased_at": NIGHT.isoformat(), "actor": "dpo"})
        await eventually(lambda: svc.notifications_of("c-gone"), lambda xs: xs == [], what="log detached from the customer")
        docs = [d async for d in svc.db["notifications"].find({})]
        assert len(docs) == 2 and all(d["customer_id"].startswith("erased-") for d in docs)
        assert all("address_masked" not in d and "variables" not in d for d in docs)
        assert sorted(d["status"] for d in docs) == ["sent", "suppressed"]

        # Nothing more goes out: not the held survey in the morning, not a new message.
        customers.erased.add("c-gone")
        await publish(producer, topics, t.COMPLAINT_RESOLVED, "c-gone",
                      complaint_step("c-gone", "CMP-G", "resolved", resolution="done"))
        later = await eventually(lambda: svc.notifications_of("c-gone"), lambda xs: len(xs) == 1, what="later message")
        assert (later[0]["status"], later[0]["reason"]) == ("suppressed", "erased")
        clock.set(MORNING + timedelta(minutes=5))
        await sent.settle(1.5)  # the dispatcher runs every 0.1 s: plenty of passes
        assert len(smtp.messages) == 1
        assert {e["data"]["template"] for e in sent.events()} == {"complaint_acknowledged"}
        assert customers.calls_for("c-gone") == 1


async def _count(collector) -> int:
    return len(collector.messages)
