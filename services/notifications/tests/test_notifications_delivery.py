"""Delivery on real channels: email through a real SMTP server, SMS through a signed webhook, the
delivery log, deduplication on the triggering event, retries and permanent failures."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from guanxi_notifications.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER
from guanxi_notifications.domain import Category, NotificationSpec
from guanxi_shared import topics as t
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
    webhook_server,
)

pytestmark = pytest.mark.integration


async def test_acknowledgement_email_arrives_in_the_customers_language_and_a_redelivery_sends_once(
    make_settings, topics, tap, producer, smtp  # noqa: F811
) -> None:
    settings = service_settings(make_settings, smtp)
    customers = FakeCustomerService(settings.internal_secret.get_secret_value())
    customers.add("c-zh", name="李雷", email="lilei@example.cn", language="zh")
    customers.add("c-en", name="Ann Lee", email="ann@example.com", language="en")
    sent = await tap(t.NOTIFICATION_SENT)
    async with running(settings, ManualClock(DAYTIME), customers) as svc:
        # The acknowledgement of a numbered case, with the customer's status link.
        numbered = complaint_step("c-zh", "CMP-1", number="TS-2026-000001", status_link="http://127.0.0.1:8106/c/t.s")
        zh_event = await publish(producer, topics, t.COMPLAINT_ACKNOWLEDGED, "c-zh", numbered)
        # The same event delivered again (a producer retry, a consumer rewind) must not mail twice.
        await publish(producer, topics, t.COMPLAINT_ACKNOWLEDGED, "c-zh", numbered, event_id=zh_event)
        # A case older than case numbers: its id stands in.
        await publish(producer, topics, t.COMPLAINT_ACKNOWLEDGED, "c-en", complaint_step("c-en", "CMP-2"))

        await eventually(lambda: _count(smtp), lambda n: n >= 2, what="two emails")
        await sent.wait_for(lambda tp: len(tp.records) >= 2, what="two notification.sent")
        await sent.settle(1.5)

        assert len(smtp.to("lilei@example.cn")) == 1 and len(smtp.to("ann@example.com")) == 1
        zh = smtp.to("lilei@example.cn")[0]
        assert zh["Subject"] == "您的投诉已受理（编号 TS-2026-000001）" and zh["Content-Language"] == "zh"
        assert "尊敬的李雷" in zh.get_content() and "编号 TS-2026-000001，参考号 CMP-1" in zh.get_content()
        assert "http://127.0.0.1:8106/c/t.s" in zh.get_content()
        en = smtp.to("ann@example.com")[0]
        assert en["Subject"] == "We have received your complaint (CMP-2)"
        assert en.get_content().startswith("Dear Ann Lee,")

        # The outbox relay is at-least-once (flush and poll may both publish): consumers dedupe on the id.
        events = list({e["id"]: e for e in sent.events(t.NOTIFICATION_SENT)}.values())
        assert len(events) == 2
        zh_sent = next(e for e in events if e["subject"] == "c-zh")
        assert zh_sent["causationid"] == zh_event
        assert zh_sent["data"]["channel"] == "email" and zh_sent["data"]["address_masked"] == "l***@example.cn"
        assert zh_sent["data"]["template"] == "complaint_acknowledged" and zh_sent["data"]["language"] == "zh"

        # Contact details were asked for at sending time, by this service, for the stated purpose.
        assert [(c[1], c[3]) for c in customers.calls if c[0] == "c-zh"] == [("service", "notifications")]

        items = await svc.notifications_of("c-zh")
        assert [i["status"] for i in items] == ["sent"]
        assert items[0]["address_masked"] == "l***@example.cn" and items[0]["template_version"] == 1
        # The log and the events keep masked addresses only.
        raw = json.dumps(await svc.db["notifications"].find_one({"customer_id": "c-zh"}), default=str)
        assert "lilei@example.cn" not in raw and "lilei@example.cn" not in json.dumps(events)


async def test_sms_goes_to_a_signed_webhook_and_a_5xx_is_retried(make_settings, topics, tap, producer, smtp) -> None:  # noqa: F811
    async with webhook_server(fail_first=1) as provider:
        settings = service_settings(make_settings, smtp, sms_webhook_url=provider.url)
        secret = settings.webhook_secret.get_secret_value()
        customers = FakeCustomerService(settings.internal_secret.get_secret_value())
        customers.add("c-sms", name="王芳", phone="+8613812345678", email="wf@example.cn")
        sent = await tap(t.NOTIFICATION_SENT)
        async with running(settings, ManualClock(DAYTIME), customers) as svc:
            r = await svc.http.put("/api/v1/notifications/preferences/c-sms", headers=svc.headers(),
                                   json={"preferred_channels": ["sms", "email"]})
            assert r.status_code == 200 and r.json()["preferred_channels"] == ["sms", "email"]
            await publish(producer, topics, t.COMPLAINT_RESOLVED, "c-sms",
                          complaint_step("c-sms", "CMP-9", "resolved", resolution="退款已处理", compensation="50元代金券"))
            await sent.wait_for(lambda tp: len(tp.records) >= 1, what="notification.sent")

        assert len(provider.requests) == 2  # the 500, then the retry that succeeded
        (first_headers, first_body), (headers, body) = provider.requests
        assert headers["idempotency-key"] == first_headers["idempotency-key"]
        expected = hmac.new(secret.encode(), headers[TIMESTAMP_HEADER.lower()].encode() + b"." + body, hashlib.sha256)
        assert headers[SIGNATURE_HEADER.lower()] == "sha256=" + expected.hexdigest()
        payload = json.loads(body)
        assert payload["to"] == "+8613812345678" and payload["channel"] == "sms"
        assert "退款已处理" in payload["body"] and "50元代金券" in payload["body"]
        assert first_body == body
        data = sent.events(t.NOTIFICATION_SENT)[0]["data"]
        assert data["channel"] == "sms" and data["address_masked"] == "+86*******5678"
        assert smtp.messages == []  # SMS was preferred and worked: no email as well


async def test_a_permanent_failure_is_recorded_and_published(make_settings, topics, tap, producer, smtp) -> None:  # noqa: F811
    settings = service_settings(make_settings, smtp)
    customers = FakeCustomerService(settings.internal_secret.get_secret_value())
    customers.add("c-bounce", name="Bo", email="bounce@example.com", language="en")
    failed = await tap(t.NOTIFICATION_FAILED)
    async with running(settings, ManualClock(DAYTIME), customers) as svc:
        await publish(producer, topics, t.COMPLAINT_ACKNOWLEDGED, "c-bounce", complaint_step("c-bounce", "CMP-5"))
        await failed.wait_for(lambda tp: len(tp.records) >= 1, what="notification.failed")
        data = failed.events(t.NOTIFICATION_FAILED)[0]["data"]
        assert data["reason"].startswith("permanent: recipient refused (550)")
        assert data["channel"] == "email" and data["address_masked"] == "b***@example.com" and data["attempts"] == 1
        items = await svc.notifications_of("c-bounce")
        assert items[0]["status"] == "failed" and "550" in items[0]["reason"]
        assert smtp.messages == []


async def test_a_transient_failure_is_retried_later_with_backoff(make_settings, topics, tap, producer, smtp) -> None:  # noqa: F811
    settings = service_settings(make_settings, smtp, retry_backoff_seconds=[120.0])
    customers = FakeCustomerService(settings.internal_secret.get_secret_value())
    customers.add("c-down", name="Dee", email="dee@example.com", language="en")
    customers.unavailable.add("c-down")  # the customer service answers 503 for now
    clock = ManualClock(DAYTIME)
    async with running(settings, clock, customers) as svc:
        await publish(producer, topics, t.COMPLAINT_ACKNOWLEDGED, "c-down", complaint_step("c-down", "CMP-8"))
        # An unknown customer is a permanent failure, not an endless retry.
        await publish(producer, topics, t.COMPLAINT_ACKNOWLEDGED, "c-nobody", complaint_step("c-nobody", "CMP-0"))
        pending = await eventually(lambda: svc.notifications_of("c-down"),
                                   lambda xs: bool(xs) and xs[0]["attempts"] == 1, what="first failed attempt")
        assert pending[0]["status"] == "pending" and pending[0]["reason"].startswith("contact_details_unavailable")
        assert pending[0]["next_attempt_at"] == (DAYTIME + timedelta(seconds=120)).isoformat()
        unknown = await eventually(lambda: svc.notifications_of("c-nobody"),
                                   lambda xs: bool(xs) and xs[0]["status"] == "failed", what="unknown customer")
        assert unknown[0]["reason"].startswith("unknown_customer")

        customers.unavailable.clear()
        await sent_nothing(smtp)
        clock.advance(timedelta(seconds=120))
        await eventually(lambda: _count(smtp), lambda n: n >= 1, what="email after the retry")
        items = await svc.notifications_of("c-down")
        assert items[0]["status"] == "sent" and items[0]["attempts"] == 2
        assert [h["status"] for h in items[0]["history"]] == ["pending", "pending", "sent"]


async def test_a_message_claimed_by_a_crashed_sender_is_sent_once_after_its_lease(
    make_settings, topics, tap, producer, smtp  # noqa: F811
) -> None:
    settings = service_settings(make_settings, smtp, sending_lease_seconds=300)
    customers = FakeCustomerService(settings.internal_secret.get_secret_value())
    customers.add("c-crash", name="Cy", email="cy@example.com", language="en")
    clock = ManualClock(DAYTIME)
    sent = await tap(t.NOTIFICATION_SENT)
    async with running(settings, clock, customers) as svc:
        # Another instance claimed this trigger's message and died before recording the outcome.
        spec = NotificationSpec("c-crash", "complaint_acknowledged", Category.service, {"complaint_id": "CMP-X",
                                "category": None, "resolution": None, "compensation": None}, "evt-crash",
                                t.COMPLAINT_ACKNOWLEDGED)
        await svc.db["notifications"].insert_one({
            "_id": spec.notification_id, "customer_id": "c-crash", "template": spec.template, "category": "service",
            "variables": spec.variables, "trigger_event_id": "evt-crash", "trigger_type": spec.trigger_type,
            "status": "sending", "claim": "crashed-instance", "lease_until": DAYTIME + timedelta(seconds=300),
            "due_at": DAYTIME, "attempts": 0, "holds": 0, "created_at": DAYTIME, "updated_at": DAYTIME, "history": []})
        # The trigger is redelivered while the claim is still fresh: nothing is sent twice concurrently.
        await publish(producer, topics, t.COMPLAINT_ACKNOWLEDGED, "c-crash", complaint_step("c-crash", "CMP-X"),
                      event_id="evt-crash")
        await sent.settle(1.5)
        assert smtp.messages == [] and sent.records == []
        clock.advance(timedelta(seconds=301))
        await eventually(lambda: _count(smtp), lambda n: n == 1, what="email after the lease expired")
        await sent.wait_for(lambda tp: len(tp.records) >= 1)
        await sent.settle(0.5)
        assert len(smtp.messages) == 1
        assert smtp.messages[0]["Message-ID"] == f"<{spec.notification_id}@notifications.guanxi>"


async def sent_nothing(collector) -> None:
    assert collector.messages == []


async def _count(collector) -> int:
    return len(collector.messages)
