"""One contract for the notification store, run against the in-memory fake (fast tier) and the Mongo
store on the real engine (integration): the fake is never the only proof of a behaviour."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from guanxi_notifications.domain import Channel, InvalidCursor, Status
from guanxi_notifications.domain.delivery import OutboundMessage
from guanxi_notifications.settings import NotificationsSettings
from guanxi_notifications.store import InMemoryNotificationStore, MongoNotificationStore, NotificationStore
from guanxi_shared import topics as t
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.testing import mongo_kit

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
LEASE = timedelta(seconds=300)


def message(nid: str, customer_id: str = "c1", *, category: str = "survey", created_at: datetime = NOW,
            due_at: datetime = NOW) -> dict[str, Any]:
    return {"_id": nid, "customer_id": customer_id, "template": "survey_invitation", "category": category,
            "variables": {"link": "x"}, "due_at": due_at, "attempts": 0, "holds": 0, "created_at": created_at,
            "updated_at": created_at, "history": [{"at": created_at, "status": "pending", "reason": "requested"}]}


def outcome(nid: str, kind: str = t.NOTIFICATION_SENT) -> CloudEvent:
    # No dot in the id: it is a path segment of the outbox map (real ids are UUIDs).
    return new_event(kind, "c1", {"notification_id": nid}, source="tests", id=f"{nid}-{kind.split('.')[1]}")


def template(key: str, language: str, version: int, **extra: Any) -> dict[str, Any]:
    return {"_id": f"{key}:{language}:{version}", "key": key, "language": language, "version": version,
            "category": "service", "subject": f"v{version}", "body": "b", "required_variables": [], **extra}


def inbox_message(nid: str, customer_id: str = "c1") -> OutboundMessage:
    return OutboundMessage(nid, customer_id, Channel.inapp, customer_id, "en", f"subject {nid}", "body", "service")


class StoreContract:
    """What the handlers rely on, whichever store is behind ``NotificationStore``."""

    async def recorded_event_ids(self, store: Any) -> list[str]:
        raise NotImplementedError

    async def recorded(self, store: NotificationStore, doc: dict[str, Any], status: Status, at: datetime = NOW,
                       **fields: Any) -> None:
        """Record a message and its outcome the way the handlers do: inserted claimed, then finished."""
        claimed = await store.insert_claimed(doc, at, LEASE)
        assert claimed is not None
        assert await store.finish(doc["_id"], claimed["claim"], {"status": status.value, "updated_at": at, **fields}, [],
                                  {"at": at, "status": status.value, "reason": None}, False)

    async def test_a_message_is_recorded_claimed_once_and_not_again_for_the_same_trigger(self, store: NotificationStore) -> None:
        claimed = await store.insert_claimed(message("n1"), NOW, LEASE)
        assert claimed is not None and claimed["status"] == "sending" and claimed["lease_until"] == NOW + LEASE
        assert await store.insert_claimed(message("n1"), NOW, LEASE) is None
        stored = await store.notification("n1")
        assert stored is not None and "outbox" not in stored
        assert (stored["status"], stored["claim"], stored["variables"]) == ("sending", claimed["claim"], {"link": "x"})
        assert await store.notification("nope") is None

    async def test_only_due_open_messages_and_expired_claims_are_claimed(self, store: NotificationStore) -> None:
        earlier = NOW - 2 * LEASE
        await store.insert_claimed(message("live"), NOW, LEASE)
        await store.insert_claimed(message("crashed", due_at=NOW - timedelta(hours=2)), earlier, LEASE)
        for nid, due in (("due-later", NOW + timedelta(hours=1)), ("due-early", NOW - timedelta(hours=1)), ("due", NOW)):
            await self.recorded(store, message(nid), Status.held if nid != "due" else Status.pending, at=earlier,
                                due_at=due)
        await self.recorded(store, message("done"), Status.sent, at=earlier, due_at=NOW - LEASE)

        assert await store.due_ids(NOW) == ["crashed", "due-early", "due"]
        assert await store.due_ids(NOW, limit=1) == ["crashed"]
        assert await store.claim("live", NOW, LEASE) is None
        assert await store.claim("due-later", NOW, LEASE) is None
        assert await store.claim("done", NOW, LEASE) is None
        taken = await store.claim("crashed", NOW, LEASE)
        assert taken is not None and taken["status"] == "sending" and taken["lease_until"] == NOW + LEASE
        assert await store.claim("crashed", NOW, LEASE) is None  # ours now, until the new lease ends
        assert (await store.claim("due", NOW, LEASE) or {}).get("updated_at") == NOW

    async def test_an_outcome_is_recorded_with_its_events_only_by_the_claim_holder(self, store: Any) -> None:
        claimed = await store.insert_claimed(message("n1"), NOW, LEASE)
        fields = {"status": "sent", "reason": None, "reason_code": None, "updated_at": NOW, "sent_at": NOW,
                  "channel": "email", "address_masked": "a***@x.cn"}
        history = {"at": NOW, "status": "sent", "reason": None}
        assert not await store.finish("n1", "someone-else", fields, [outcome("n1")], history, True)
        assert await self.recorded_event_ids(store) == []
        assert await store.finish("n1", claimed["claim"], fields, [outcome("n1")], history, True)
        stored = await store.notification("n1")
        assert "claim" not in stored and "lease_until" not in stored
        assert (stored["status"], stored["attempts"], stored["channel"], stored["sent_at"]) == ("sent", 1, "email", NOW)
        assert [h["status"] for h in stored["history"]] == ["pending", "sent"]
        assert await self.recorded_event_ids(store) == ["n1-sent"]

        # While the lease runs, the outcome is written by the message's id alone.
        await store.insert_claimed(message("n2"), NOW, LEASE)
        assert await store.finish("n2", "any", {"status": "failed", "updated_at": NOW}, [outcome("n2", t.NOTIFICATION_FAILED)],
                                  {"at": NOW, "status": "failed", "reason": "x"}, False, lease_running=True)
        stored = await store.notification("n2")
        assert (stored["status"], stored["attempts"]) == ("failed", 0)
        assert sorted(await self.recorded_event_ids(store)) == ["n1-sent", "n2-failed"]

    async def test_sends_counted_against_the_cap_are_sent_in_the_window_or_being_sent(self, store: NotificationStore) -> None:
        since = NOW - timedelta(hours=24)
        await self.recorded(store, message("old"), Status.sent, sent_at=since - timedelta(hours=1))
        await self.recorded(store, message("recent"), Status.sent, sent_at=NOW - timedelta(hours=2))
        await self.recorded(store, message("failed"), Status.failed)
        await store.insert_claimed(message("sending", created_at=NOW - timedelta(minutes=1)), NOW, LEASE)
        await store.insert_claimed(message("other-category", category="care"), NOW, LEASE)
        await store.insert_claimed(message("other-customer", "c2"), NOW, LEASE)
        await store.insert_claimed(message("me"), NOW, LEASE)
        counted = await store.counted_sends("c1", "survey", since, "me")
        assert sorted(counted) == [NOW - timedelta(hours=2), NOW - timedelta(minutes=1)]

    async def test_the_delivery_log_pages_newest_first(self, store: NotificationStore) -> None:
        for n in range(5):
            await store.insert_claimed(message(f"n{n}", created_at=NOW + timedelta(minutes=n // 2)), NOW, LEASE)
        await store.insert_claimed(message("x", "c2"), NOW, LEASE)
        page, cursor = await store.list_for_customer("c1", 2, None)
        seen = [d["_id"] for d in page]
        while cursor:
            page, cursor = await store.list_for_customer("c1", 2, cursor)
            seen += [d["_id"] for d in page]
        assert seen == ["n4", "n3", "n2", "n1", "n0"]
        assert all("outbox" not in d for d in page)
        with pytest.raises(InvalidCursor):
            await store.list_for_customer("c1", 2, "not-a-cursor")

    async def test_outcomes_are_counted_by_status_category_and_reason(self, store: NotificationStore) -> None:
        for nid, status, reason in (("a", Status.sent, None), ("b", Status.suppressed, "no_consent"),
                                    ("c", Status.suppressed, "no_consent")):
            await self.recorded(store, message(nid), status, reason_code=reason)
        await store.insert_claimed(message("late", created_at=NOW + timedelta(hours=1)), NOW, LEASE)
        await store.insert_claimed(message("open", category="care"), NOW, LEASE)
        rows = await store.outcome_counts(NOW, NOW + timedelta(hours=1))
        counts = {(r["_id"]["status"], r["_id"]["category"], r["_id"].get("reason")): r["count"] for r in rows}
        assert counts == {("sent", "survey", None): 1, ("suppressed", "survey", "no_consent"): 2,
                          ("sending", "care", None): 1}

    async def test_erasure_suppresses_open_messages_and_cuts_the_log_from_the_person(self, store: NotificationStore) -> None:
        for nid, status in (("held", Status.held), ("pending", Status.pending), ("sent", Status.sent)):
            await self.recorded(store, message(nid), status, address_masked="a***@x.cn")
        await store.insert_claimed(message("theirs", "c2"), NOW, LEASE)
        await store.put_inbox(inbox_message("sent"), NOW)
        await store.put_inbox(inbox_message("theirs", "c2"), NOW)

        assert await store.cancel_open("c1", "erased", NOW) == 2
        assert await store.anonymise("c1", "erased-x", NOW) == 3
        assert (await store.list_for_customer("c1", 10, None))[0] == []
        docs, _ = await store.list_for_customer("erased-x", 10, None)
        assert sorted((d["_id"], d["status"]) for d in docs) == [("held", "suppressed"), ("pending", "suppressed"),
                                                                 ("sent", "sent")]
        assert all("variables" not in d and "address_masked" not in d for d in docs)
        held = next(d for d in docs if d["_id"] == "held")
        assert (held["reason"], held["history"][-1]["status"]) == ("erased", "suppressed")
        assert await store.list_inbox("c1", 10, False) == []
        assert len(await store.list_inbox("c2", 10, False)) == 1

    async def test_templates_are_versions_and_the_newest_unretired_one_is_used(self, store: NotificationStore) -> None:
        assert await store.seed_template(template("greet", "en", 1))
        assert not await store.seed_template(template("greet", "en", 1, subject="changed"))
        assert await store.insert_template_version(template("greet", "en", 2))
        assert not await store.insert_template_version(template("greet", "en", 2))
        assert await store.insert_template_version(template("greet", "zh", 1))
        assert (await store.latest_template("greet", "en") or {})["version"] == 2
        assert (await store.template_version("greet", "en", 1) or {})["subject"] == "v1"
        assert await store.template_version("greet", "en", 9) is None
        assert [d["version"] for d in await store.template_versions("greet", "en")] == [1, 2]
        assert [(d["key"], d["language"], d["version"]) for d in await store.list_templates()] == [
            ("greet", "en", 2), ("greet", "zh", 1)]
        assert await store.archive_template("greet", "en", NOW) == 2
        assert await store.archive_template("nothing", "en", NOW) == 0
        assert await store.latest_template("greet", "en") is None
        assert [d["language"] for d in await store.list_templates()] == ["zh"]
        assert not await store.seed_template(template("greet", "en", 1))  # retired, not absent

    async def test_what_we_learn_about_recipients(self, store: NotificationStore) -> None:
        assert await store.recipient("c1") is None
        await store.learn_profile("c1", "en", None, "gold")
        assert await store.learn_consents("c1", {"survey": False}, NOW, ["sms", "sms"])
        assert not await store.learn_consents("c1", {"survey": True}, NOW - timedelta(hours=1))
        assert await store.learn_consents("c1", {"survey": True}, NOW + timedelta(hours=1))
        doc = await store.recipient("c1")
        assert doc is not None
        assert (doc["language"], doc["member_level"], doc["consents"], doc["opted_out_upstream"]) == (
            "en", "gold", {"survey": True}, ["sms"])
        assert "timezone" not in doc
        prefs = await store.set_preferences("c1", {"opted_out": ["email"], "preferences_at": NOW})
        assert (prefs["_id"], prefs["opted_out"], prefs["language"]) == ("c1", ["email"], "en")
        await store.mark_erased("c1", NOW)
        doc = await store.recipient("c1")
        assert doc is not None and doc["erased"] is True and doc["erased_at"] == NOW
        assert "language" not in doc and "member_level" not in doc and doc["opted_out"] == ["email"]
        await store.mark_erased("c-new", NOW)
        assert (await store.recipient("c-new") or {}).get("erased") is True

    async def test_the_inbox_keeps_the_first_copy_and_marks_read_once(self, store: NotificationStore) -> None:
        await store.put_inbox(inbox_message("m1"), NOW)
        await store.put_inbox(inbox_message("m2"), NOW + timedelta(minutes=1))
        await store.put_inbox(OutboundMessage("m1", "c1", Channel.inapp, "c1", "en", "changed", "b", "service"), NOW)
        listed = await store.list_inbox("c1", 10, False)
        assert [(m["_id"], m["subject"]) for m in listed] == [("m2", "subject m2"), ("m1", "subject m1")]
        assert [m["_id"] for m in await store.list_inbox("c1", 1, False)] == ["m2"]
        read = await store.mark_read("c1", "m1", NOW + timedelta(hours=1))
        assert read is not None and read["read_at"] == NOW + timedelta(hours=1)
        again = await store.mark_read("c1", "m1", NOW + timedelta(hours=2))
        assert again is not None and again["read_at"] == NOW + timedelta(hours=1)
        assert await store.mark_read("c2", "m1", NOW) is None
        assert [m["_id"] for m in await store.list_inbox("c1", 10, True)] == ["m2"]


class TestInMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> InMemoryNotificationStore:
        return InMemoryNotificationStore()

    async def recorded_event_ids(self, store: Any) -> list[str]:
        return [e.id for e in store.published]


class TestMongoStore(StoreContract):
    @pytest.fixture
    async def store(self, make_settings: Any) -> AsyncIterator[MongoNotificationStore]:
        # The relay's loop never runs: the events stay in the documents' outbox, where the contract reads them.
        async with mongo_kit(make_settings(NotificationsSettings), ["notifications"]) as kit:
            store = MongoNotificationStore(kit.db, kit.outbox)
            await store.ensure_indexes()
            yield store

    async def recorded_event_ids(self, store: Any) -> list[str]:
        docs = [d async for d in store.notifications.find({}, {"outbox": 1})]
        entries = sorted((e for d in docs for e in (d.get("outbox") or {}).values()), key=lambda e: e["seq"])
        return [json.loads(e["value"])["id"] for e in entries]
