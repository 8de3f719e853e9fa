"""Use cases on the in-memory store, directory and channels (fast tier: no infrastructure): protection
against harassment (CR-3: consent per purpose, opt-out at once, caps, quiet hours, service messages never
held), managed bilingual templates (CC-4), retries, erasure and the delivery log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from guanxi_notifications.domain import (
    Category,
    Channel,
    InboxMessageNotFound,
    InvalidCursor,
    NotificationNotFound,
    Status,
    TemplateExists,
    TemplateNotFound,
)
from guanxi_notifications.domain.delivery import PermanentDeliveryError, TransientDeliveryError
from guanxi_notifications.domain.templating import MissingVariables, TemplateInvalid
from guanxi_notifications.handlers import customers, reading, sending, templates
from guanxi_shared import topics as t
from guanxi_shared.errors import Invalid
from guanxi_shared.events import InvalidEvent
from nx_fakes import DAYTIME, MORNING, NIGHT, World, complaint_step, event, make_world, survey_requested

PROMO = {"key": "spring_offer", "language": "zh", "subject": "春季优惠 {{ discount }}",
         "body": "尊敬的{{ name }}：本周享 {{ discount }} 优惠。", "required_variables": ["discount"]}


async def only(world: World, customer_id: str) -> dict:
    items = (await reading.notifications_of(world.deps, customer_id, 50, None))["items"]
    assert len(items) == 1, items
    return items[0]


async def request(world: World, customer_id: str, data: dict, *, event_id: str | None = None) -> str:
    trigger = event(t.NOTIFICATION_REQUESTED, customer_id, {"customer_id": customer_id, **data}, event_id=event_id)
    await sending.on_notification_requested(world.deps, trigger)
    await world.settle()
    return trigger.id


async def test_a_trigger_becomes_one_email_in_the_customers_language_and_a_redelivery_sends_nothing_more() -> None:
    world = await make_world()
    world.customer("c-zh", name="李雷", email="lilei@example.cn", language="zh")
    trigger = event(t.COMPLAINT_ACKNOWLEDGED, "c-zh", complaint_step("c-zh", "CMP-1"))
    await sending.on_complaint_step(world.deps, trigger)
    await world.settle()
    await sending.on_complaint_step(world.deps, trigger)  # redelivered
    await world.settle()

    [mail] = world.email.sent
    assert (mail.address, mail.language, mail.subject) == ("lilei@example.cn", "zh", "您的投诉已受理（编号 CMP-1）")
    assert "尊敬的李雷" in mail.body and mail.category == "service"
    [sent] = world.events()
    assert sent.type == t.NOTIFICATION_SENT and sent.causationid == trigger.id and sent.subject == "c-zh"
    assert sent.data["channel"] == "email" and sent.data["address_masked"] == "l***@example.cn"
    assert sent.data["template"] == "complaint_acknowledged" and sent.data["attempts"] == 1
    assert world.directory.calls == [("c-zh", "service", ["email", "sms", "inapp"])]
    item = await only(world, "c-zh")
    assert (item["status"], item["template_version"], item["attempts"]) == ("sent", 1, 1)
    assert [h["status"] for h in item["history"]] == ["pending", "sent"]
    assert await reading.notification(world.deps, item["id"]) == item
    with pytest.raises(NotificationNotFound):
        await reading.notification(world.deps, "nope")


async def test_the_acknowledgement_email_carries_the_case_number_and_the_status_link() -> None:
    world = await make_world()
    world.customer("c-zh", name="李雷", email="lilei@example.cn", language="zh")
    world.customer("c-en", name="Ann Lee", email="ann@example.com", language="en")
    link = "http://127.0.0.1:8106/c/eyJjIjoiQ01QLTEifQ.sig"
    await sending.on_complaint_step(world.deps, event(t.COMPLAINT_ACKNOWLEDGED, "c-zh", complaint_step(
        "c-zh", "CMP-1", number="TS-2026-000123", status_link=link)))
    await sending.on_complaint_step(world.deps, event(t.COMPLAINT_ACKNOWLEDGED, "c-en", complaint_step(
        "c-en", "CMP-2", number="TS-2026-000124", status_link=link)))
    # A later step of the same case shows the number too; it carries no link.
    await sending.on_complaint_step(world.deps, event(t.COMPLAINT_RESOLVED, "c-en", complaint_step(
        "c-en", "CMP-2", "resolved", number="TS-2026-000124", resolution="refunded")))
    await world.settle()

    mails = {m.subject: m for m in world.email.sent}
    assert set(mails) == {"您的投诉已受理（编号 TS-2026-000123）", "We have received your complaint (TS-2026-000124)",
                          "Your complaint has been resolved (TS-2026-000124)"}
    zh, en = mails["您的投诉已受理（编号 TS-2026-000123）"], mails["We have received your complaint (TS-2026-000124)"]
    resolved = mails["Your complaint has been resolved (TS-2026-000124)"]
    assert "编号 TS-2026-000123" in zh.body and "参考号 CMP-1" in zh.body and f"查看处理进度：{link}" in zh.body
    assert "case number TS-2026-000124, reference CMP-2" in en.body and link in en.body
    assert "Your complaint (TS-2026-000124) has been resolved" in resolved.body and link not in resolved.body


async def test_opt_outs_suppress_a_requested_channel_and_a_service_message_falls_back_to_the_inbox() -> None:
    world = await make_world()
    world.customer("c-opt", email="opt@example.com")
    view = await customers.set_preferences(world.deps, "c-opt", [Channel.email, Channel.email], [Channel.inapp], "alice")
    assert (view["opted_out"], view["preferred_channels"]) == (["email"], ["inapp"])
    assert (await customers.preferences(world.deps, "c-opt"))["opted_out"] == ["email"]
    await request(world, "c-opt", {"template": "complaint_acknowledged", "category": "service",
                                   "variables": {"complaint_id": "CMP-3"}, "channel": "email"})
    await sending.on_complaint_step(world.deps, event(t.COMPLAINT_ACKNOWLEDGED, "c-opt", complaint_step("c-opt", "CMP-4")))
    await world.settle()

    assert world.email.sent == [] and world.sms.sent == []
    assert [(e.data["status"], e.data.get("reason")) for e in world.events(t.NOTIFICATION_SUPPRESSED)] == [
        ("suppressed", "opted_out:email")]
    inbox = await reading.inbox(world.deps, "c-opt", 50, unread_only=True)
    [message] = inbox["items"]
    assert "CMP-4" in message["body"] and message["read_at"] is None
    read = await reading.mark_read(world.deps, "c-opt", message["id"])
    assert read["read_at"] == DAYTIME.isoformat()
    assert (await reading.inbox(world.deps, "c-opt", 50, unread_only=True))["items"] == []
    with pytest.raises(InboxMessageNotFound):
        await reading.mark_read(world.deps, "c-other", message["id"])


async def test_the_customer_services_opt_out_counts_at_once() -> None:
    world = await make_world()
    world.customer("c-up", email="up@example.com", opted_out=["email", "inapp"])
    await request(world, "c-up", {"template": "care_birthday", "category": "care"})
    assert (await only(world, "c-up"))["reason"] == "opted_out:email,inapp"


async def test_consent_known_here_is_refused_without_asking_for_contact_details_and_the_directory_decides_the_rest() -> None:
    world = await make_world()
    world.customer("c-local", email="lc@example.com")
    world.customer("c-nocon", email="nm@example.com", consents={"service": True, "marketing": False})
    await customers.on_consent_changed(world.deps, event(t.CUSTOMER_CONSENT_CHANGED, "c-local", {
        "customer_id": "c-local", "purpose": "survey", "granted": False,
        "consents": {"service": True, "survey": False}, "changed_at": DAYTIME.isoformat()}))
    await sending.on_survey_requested(world.deps, event(t.SURVEY_REQUESTED, "c-local", survey_requested("c-local", "S-1")))
    await sending.on_care_due(world.deps, event(t.CUSTOMER_CARE_DUE, "c-nocon", {
        "customer_id": "c-nocon", "occasion_id": "churn:c-nocon:1", "occasion": "churn_risk", "due_at": DAYTIME.isoformat()}))
    await world.settle()

    assert (await only(world, "c-local"))["reason"] == "no_consent:survey"
    assert world.directory.calls_for("c-local") == 0
    nocon = await only(world, "c-nocon")
    assert (nocon["category"], nocon["reason"]) == ("marketing", "no_consent:marketing")
    assert world.email.sent == []


async def test_an_older_consent_picture_does_not_undo_a_newer_one() -> None:
    world = await make_world()
    await customers.learn_consent(world.deps, "c1", {"survey": False}, ["sms"], DAYTIME)
    await customers.learn_consent(world.deps, "c1", {"survey": True}, [], DAYTIME - timedelta(hours=1))
    await customers.on_customer_registered(world.deps, event(t.CUSTOMER_REGISTERED, "c1", {
        "customer_id": "c1", "consents": {"survey": True}, "language": "en", "timezone": "Europe/London",
        "registered_at": (DAYTIME - timedelta(days=1)).isoformat()}))
    view = await customers.preferences(world.deps, "c1")
    assert view["consents"] == {"survey": False} and view["opted_out_in_customer_service"] == ["sms"]
    assert (view["language"], view["timezone"], view["erased"]) == ("en", "Europe/London", False)


async def test_quiet_hours_hold_a_survey_until_morning_but_never_a_service_message() -> None:
    world = await make_world(NIGHT)
    world.customer("c-night", email="nia@example.com")
    await sending.on_survey_requested(world.deps, event(t.SURVEY_REQUESTED, "c-night", survey_requested("c-night", "S-9")))
    await sending.on_complaint_step(world.deps, event(t.COMPLAINT_ACKNOWLEDGED, "c-night", complaint_step("c-night", "CMP-N")))
    await world.settle()

    [held] = world.events(t.NOTIFICATION_SUPPRESSED)
    assert (held.data["status"], held.data["reason"]) == ("held", "quiet_hours")
    assert datetime.fromisoformat(held.data["held_until"]) == MORNING
    assert [m.subject for m in world.email.sent] == ["We have received your complaint (CMP-N)"]
    assert world.directory.calls_for("c-night") == 1  # no contact details read for a held message
    survey = next(i for i in (await reading.notifications_of(world.deps, "c-night", 50, None))["items"]
                  if i["template"] == "survey_invitation")
    assert survey["status"] == "held" and survey["next_attempt_at"] == MORNING.isoformat()

    world.clock.set(MORNING - timedelta(minutes=1))
    assert await sending.dispatch_due(world.deps) == 0
    world.clock.set(MORNING)
    assert await sending.dispatch_due(world.deps) == 1
    assert [m.subject for m in world.email.sent][-1] == "How did we do?"
    assert "https://guanxi.example/s/S-9" in world.email.sent[-1].body
    survey = next(i for i in (await reading.notifications_of(world.deps, "c-night", 50, None))["items"]
                  if i["template"] == "survey_invitation")
    assert survey["status"] == "sent" and [h["status"] for h in survey["history"]] == ["pending", "held", "sent"]


async def test_the_frequency_cap_holds_the_extra_survey_until_the_first_leaves_the_window() -> None:
    world = await make_world(cap_survey=1, cap_window_hours=24)
    world.customer("c-cap", email="cap@example.com")
    await sending.on_survey_requested(world.deps, event(t.SURVEY_REQUESTED, "c-cap", survey_requested("c-cap", "S-1")))
    await world.settle()
    world.clock.advance(timedelta(hours=2))
    await sending.on_survey_requested(world.deps, event(t.SURVEY_REQUESTED, "c-cap", survey_requested("c-cap", "S-2")))
    await sending.on_complaint_step(world.deps, event(t.COMPLAINT_ACKNOWLEDGED, "c-cap", complaint_step("c-cap", "CMP-C")))
    await world.settle()

    newest = (await reading.notifications_of(world.deps, "c-cap", 50, None))["items"]
    held = next(i for i in newest if i["status"] == "held")
    assert held["reason"] == "frequency_cap" and held["held_until"] == (DAYTIME + timedelta(hours=24)).isoformat()
    assert len(world.email.sent) == 2  # the first survey, and the service message (never capped)
    world.clock.set(DAYTIME + timedelta(hours=24, seconds=1))
    await sending.dispatch_due(world.deps)
    assert "https://guanxi.example/s/S-2" in world.email.sent[-1].body


async def test_an_outage_of_the_directory_is_retried_with_backoff_and_an_unknown_customer_fails() -> None:
    world = await make_world(retry_backoff_seconds=[120.0])
    world.customer("c-down", email="dee@example.com")
    world.directory.unavailable.add("c-down")
    await request(world, "c-down", {"template": "complaint_acknowledged", "category": "service",
                                    "variables": {"complaint_id": "CMP-8"}})
    await request(world, "c-nobody", {"template": "complaint_acknowledged", "category": "service",
                                      "variables": {"complaint_id": "CMP-0"}})
    pending = await only(world, "c-down")
    assert (pending["status"], pending["attempts"]) == ("pending", 1)
    assert pending["reason"].startswith("contact_details_unavailable")
    assert pending["next_attempt_at"] == (DAYTIME + timedelta(seconds=120)).isoformat()
    assert (await only(world, "c-nobody"))["reason"].startswith("unknown_customer")
    assert [e.type for e in world.events()] == [t.NOTIFICATION_FAILED]  # a retry announces nothing yet

    world.directory.unavailable.clear()
    assert await sending.dispatch_due(world.deps) == 0
    world.clock.advance(timedelta(seconds=120))
    assert await sending.dispatch_due(world.deps) == 1
    done = await only(world, "c-down")
    assert (done["status"], done["attempts"]) == ("sent", 2)
    assert [h["status"] for h in done["history"]] == ["pending", "pending", "sent"]


async def test_a_refused_address_fails_at_once_and_a_busy_channel_is_given_up_after_the_last_attempt() -> None:
    world = await make_world(max_attempts=2, retry_backoff_seconds=[60.0])
    world.customer("c-bounce", email="bounce@example.com")
    world.customer("c-busy", email="busy@example.com")
    world.email.failures = [PermanentDeliveryError("recipient refused (550)")]
    await request(world, "c-bounce", {"template": "care_birthday", "category": "care"})
    world.email.failures = [TransientDeliveryError("SMTP 451"), TransientDeliveryError("SMTP 451")]
    await request(world, "c-busy", {"template": "care_birthday", "category": "care"})
    world.clock.advance(timedelta(seconds=60))
    await sending.dispatch_due(world.deps)

    bounced = await only(world, "c-bounce")
    assert (bounced["status"], bounced["reason"], bounced["attempts"]) == ("failed", "permanent: recipient refused (550)", 1)
    assert bounced["address_masked"] == "b***@example.com"
    busy = await only(world, "c-busy")
    assert (busy["status"], busy["attempts"]) == ("failed", 2)
    assert busy["reason"] == "gave_up after 2 attempts: transient: SMTP 451"
    assert world.email.sent == [] and len(world.events(t.NOTIFICATION_FAILED)) == 2


async def test_template_problems_fail_the_message_with_a_clear_reason_and_a_missing_language_falls_back() -> None:
    world = await make_world()
    world.customer("c-t", name="周杰", email="zj@example.cn", language="en")
    await templates.write_template(world.deps, PROMO["key"], PROMO["language"], *_text(), "root", first=True)
    await request(world, "c-t", {"template": "no_such_template", "category": "service"})
    await request(world, "c-t", {"template": "spring_offer", "category": "marketing", "variables": {}})
    await request(world, "c-t", {"template": "spring_offer", "category": "marketing", "variables": {"discount": "八折"}})

    reasons = sorted(i["reason"] or "" for i in (await reading.notifications_of(world.deps, "c-t", 50, None))["items"])
    assert reasons == ["", "template_error: missing template variables: discount", "template_missing: no_such_template"]
    [mail] = world.email.sent
    assert (mail.language, mail.subject) == ("zh", "春季优惠 八折")  # no English version: the Chinese one


async def test_erasure_stops_held_messages_anonymises_the_log_and_suppresses_later_ones() -> None:
    """Erasure reaches the notifications (CI-6)."""
    world = await make_world(NIGHT)
    world.customer("c-gone", email="gone@example.com")
    await sending.on_complaint_step(world.deps, event(t.COMPLAINT_ACKNOWLEDGED, "c-gone", complaint_step("c-gone", "CMP-G")))
    await sending.on_survey_requested(world.deps, event(t.SURVEY_REQUESTED, "c-gone", survey_requested("c-gone", "S-G")))
    await request(world, "c-gone", {"template": "complaint_acknowledged", "category": "service",
                                    "variables": {"complaint_id": "CMP-G"}, "channel": "inapp"})
    assert len((await reading.inbox(world.deps, "c-gone", 50, unread_only=False))["items"]) == 1

    await customers.on_customer_erased(world.deps, event(t.CUSTOMER_ERASED, "c-gone", {
        "customer_id": "c-gone", "erased_at": NIGHT.isoformat(), "actor": "dpo"}))
    assert (await reading.notifications_of(world.deps, "c-gone", 50, None))["items"] == []
    docs = list(world.store.notifications.values())
    assert all(d["customer_id"].startswith("erased-") and "address_masked" not in d and "variables" not in d for d in docs)
    assert sorted(d["status"] for d in docs) == ["sent", "sent", "suppressed"]
    assert (await reading.inbox(world.deps, "c-gone", 50, unread_only=False))["items"] == []
    assert (await customers.preferences(world.deps, "c-gone"))["erased"] is True

    await sending.on_complaint_step(world.deps, event(t.COMPLAINT_RESOLVED, "c-gone",
                                                      complaint_step("c-gone", "CMP-G", "resolved", resolution="done")))
    await world.settle()
    assert ((await only(world, "c-gone"))["status"], (await only(world, "c-gone"))["reason"]) == ("suppressed", "erased")
    world.clock.set(MORNING + timedelta(minutes=5))
    await sending.dispatch_due(world.deps)
    assert len(world.email.sent) == 1 and world.directory.calls_for("c-gone") == 2


async def test_a_message_claimed_by_a_crashed_sender_is_sent_once_after_its_lease() -> None:
    world = await make_world(sending_lease_seconds=300)
    world.customer("c-crash", email="cy@example.com")
    trigger = event(t.COMPLAINT_ACKNOWLEDGED, "c-crash", complaint_step("c-crash", "CMP-X"), event_id="evt-crash")
    # Another instance recorded (and claimed) this trigger's message, then died before sending it.
    claimed = await world.store.insert_claimed(
        {"_id": "n-crash", "customer_id": "c-crash", "template": "complaint_acknowledged", "category": "service",
         "variables": {"complaint_id": "CMP-X"}, "trigger_event_id": "evt-crash", "trigger_type": trigger.type,
         "due_at": DAYTIME, "attempts": 0, "holds": 0, "created_at": DAYTIME, "updated_at": DAYTIME, "history": []},
        DAYTIME, timedelta(seconds=300))
    assert claimed is not None
    assert await sending.dispatch(world.deps, "n-crash") is None  # its lease still runs
    assert await sending.dispatch_due(world.deps) == 0
    world.clock.advance(timedelta(seconds=301))
    assert await sending.dispatch_due(world.deps) == 1
    assert await sending.dispatch_due(world.deps) == 0
    assert len(world.email.sent) == 1 and world.email.sent[0].notification_id == "n-crash"


async def test_events_that_ask_for_nothing_or_name_an_unknown_channel() -> None:
    world = await make_world()
    await sending.on_care_due(world.deps, event(t.CUSTOMER_CARE_DUE, "c1", {
        "customer_id": "c1", "occasion_id": "visit:1", "occasion": "commitment", "due_at": DAYTIME.isoformat()}))
    assert world.store.notifications == {}
    with pytest.raises(InvalidEvent, match="unknown channel 'fax'"):
        await sending.on_notification_requested(world.deps, event(t.NOTIFICATION_REQUESTED, "c1", {
            "customer_id": "c1", "template": "care_birthday", "category": "care", "channel": "fax"}))
    with pytest.raises(InvalidEvent):
        await sending.on_complaint_step(world.deps, event(t.COMPLAINT_ACKNOWLEDGED, "c1", {"customer_id": "c1"}))


def _text(subject: str = str(PROMO["subject"])) -> tuple:
    return Category.marketing, subject, PROMO["body"], list(PROMO["required_variables"]), None


async def test_templates_are_versioned_previewed_and_retired() -> None:
    world = await make_world()
    deps = world.deps
    with pytest.raises(TemplateInvalid, match="undeclared variables: discount"):
        await templates.write_template(deps, "spring_offer", "zh", _text()[0], PROMO["subject"], PROMO["body"], [], None,
                                       "root", first=True)
    first = await templates.write_template(deps, "spring_offer", "zh", *_text(), "root", first=True)
    assert (first["version"], first["created_by"], first["id"]) == (1, "root", "spring_offer:zh:1")
    with pytest.raises(TemplateExists):
        await templates.write_template(deps, "spring_offer", "zh", *_text(), "root", first=True)
    with pytest.raises(TemplateNotFound):
        await templates.write_template(deps, "spring_offer", "en", *_text(), "root", first=False)
    second = await templates.write_template(deps, "spring_offer", "zh", *_text("春季特惠 {{ discount }}"), "root", first=False)
    assert second["version"] == 2
    assert [v["version"] for v in (await templates.template_versions(deps, "spring_offer", "zh"))["items"]] == [1, 2]
    assert (await templates.template(deps, "spring_offer", "zh"))["version"] == 2

    with pytest.raises(MissingVariables) as missing:
        await templates.preview_template(deps, "spring_offer", "zh", {})
    assert missing.value.extra == {"missing": ["discount"]}
    old = await templates.preview_template(deps, "spring_offer", "zh", {"discount": "八折", "name": "周杰"}, version=1)
    assert (old["subject"], old["version"]) == ("春季优惠 八折", 1)
    assert templates.preview_draft("Hi {{ name }}", "{{ x }}", ["x"], {"x": "1", "name": "A"}) == {"subject": "Hi A", "body": "1"}

    # The seed never overwrites an admin's version.
    await templates.write_template(deps, "care_birthday", "en", *_text(), "root", first=False)
    await templates.seed_templates(deps)
    assert (await templates.template(deps, "care_birthday", "en"))["version"] == 2
    # A default still in an older seed's text (e.g. before case numbers) gets the current text as a new version, once.
    seeded = await deps.store.latest_template("complaint_acknowledged", "en")
    assert seeded is not None and seeded["created_by"] == "seed"
    old_text = {**seeded, "_id": "complaint_acknowledged:en:2", "version": 2, "body": "Dear {{ name }}, ({{ complaint_id }})"}
    await deps.store.insert_template_version(old_text)
    await templates.seed_templates(deps)
    await templates.seed_templates(deps)
    current = await templates.template(deps, "complaint_acknowledged", "en")
    assert current["version"] == 3 and "case_number" in current["body"]

    await templates.retire_template(deps, "spring_offer", "zh")
    with pytest.raises(TemplateNotFound, match="no template spring_offer"):
        await templates.template(deps, "spring_offer", "zh")
    with pytest.raises(TemplateNotFound):
        await templates.retire_template(deps, "nothing", "zh")
    keys = {(i["key"], i["language"]) for i in (await templates.list_templates(deps))["items"]}
    assert ("complaint_acknowledged", "zh") in keys and ("spring_offer", "zh") not in keys
    again = await templates.write_template(deps, "spring_offer", "zh", *_text(), "root", first=True)
    assert again["version"] == 3  # a retired template is created anew, after its old versions


async def test_kpis_count_outcomes_by_category_and_reason() -> None:
    world = await make_world()
    world.customer("c-k", email="k@example.com", consents={"service": True, "marketing": False})
    await request(world, "c-k", {"template": "complaint_acknowledged", "category": "service",
                                 "variables": {"complaint_id": "CMP-K"}})
    await request(world, "c-k", {"template": "care_winback", "category": "marketing"})
    hour = timedelta(hours=1)
    body = await reading.kpis(world.deps, DAYTIME - hour, DAYTIME + hour)
    assert (body["sent"], body["suppressed"], body["failed"], body["total"]) == (1, 1, 0, 2)
    assert body["reasons"] == {"suppressed:no_consent": 1}
    assert body["by_category"] == {"service": {"sent": 1}, "marketing": {"suppressed": 1}}
    assert (await reading.kpis(world.deps, DAYTIME + hour, DAYTIME + 2 * hour))["total"] == 0
    with pytest.raises(Invalid, match="to must be after from"):
        await reading.kpis(world.deps, DAYTIME, DAYTIME)


async def test_the_delivery_log_pages_with_a_cursor() -> None:
    world = await make_world()
    world.customer("c-p", email="p@example.com")
    for _ in range(3):
        await request(world, "c-p", {"template": "care_birthday", "category": "service"})
        world.clock.advance(timedelta(minutes=1))
    first = await reading.notifications_of(world.deps, "c-p", 2, None)
    second = await reading.notifications_of(world.deps, "c-p", 2, first["next"])
    assert [len(first["items"]), len(second["items"]), second["next"]] == [2, 1, None]
    created = [i["created_at"] for i in first["items"] + second["items"]]
    assert created == sorted(created, reverse=True) and len(set(created)) == 3
    with pytest.raises(InvalidCursor):
        await reading.notifications_of(world.deps, "c-p", 2, "garbage")
    assert first["items"][0]["status"] == Status.sent.value
    assert datetime.fromisoformat(created[0]) == DAYTIME + timedelta(minutes=2)
    assert datetime.fromisoformat(created[-1]).tzinfo == UTC
