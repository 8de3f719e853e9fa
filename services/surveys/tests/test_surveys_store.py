"""The store contract: one suite, run against the in-memory fake (fast) and the Mongo store on the real engine
(integration), so the fake is never the only proof of a behaviour.

Events: the fake records what it is asked to save or announce in ``published``; the Mongo store is given a
recording publisher, both as its announcer and behind its outbox relay, so ``published`` is what would have
reached Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.testing import MongoKit, mongo_kit
from guanxi_surveys.settings import SurveysSettings
from guanxi_surveys.store import SURVEYS, Change, Doc, InMemorySurveyStore, MongoSurveyStore, SurveyStore

T0 = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)


def survey(sid: str, customer: str | None = "c-1", *, status: str = "scheduled", at: datetime = T0, **fields: Any) -> Doc:
    doc: Doc = {"_id": sid, "kind": "post_purchase", "trigger_id": f"o-{sid}", "status": status, "scheduled_for": at,
                "template_version": 1, "reminded": False, "channel": "web", "member_level": "gold"}
    doc.update(fields)
    if customer is not None:
        doc["customer_id"] = customer
    return doc


def skip(sid: str, customer: str | None = "c-1", reason: str = "cooldown") -> Doc:
    return {"_id": sid, "customer_id": customer, "kind": "post_purchase", "trigger_id": f"o-{sid}", "reason": reason,
            "at": T0}


def event(name: str, customer: str = "c-1") -> CloudEvent:
    return new_event(f"survey.{name}", customer, {"n": name}, source="tests", id=f"e-{name}")


class StoreContract:
    """What every ``SurveyStore`` does. Subclasses provide the ``store`` and ``published`` fixtures."""

    async def test_the_customer_view_keeps_the_newest_consent_and_level(self, store: SurveyStore) -> None:
        assert await store.views(["c-1"]) == {}
        await store.learn_profile("c-1", "en", "Europe/Paris")
        await store.learn_consent("c-1", True, T0)
        await store.learn_consent("c-1", False, T0 - H)  # older: ignored
        await store.learn_level("c-1", "gold", T0)
        await store.learn_level("c-1", "silver", T0 + H)
        await store.learn_level("c-2", "standard", T0)  # a customer first seen here gets a view
        views = await store.views(["c-1", "c-2", "c-3"])
        assert set(views) == {"c-1", "c-2"}
        one = views["c-1"]
        assert (one.survey_consent, one.language, one.timezone, one.member_level, one.erased) == (
            True, "en", "Europe/Paris", "silver", False)
        assert (views["c-2"].member_level, views["c-2"].survey_consent) == ("standard", None)

    async def test_levels_decided_in_code_create_unknown_views_and_update_known_ones(self, store: SurveyStore) -> None:
        await store.learn_level("c-1", "standard", T0)
        await store.learn_profile("c-3", "zh", "Asia/Shanghai")
        assert await store.level_stamps(["c-1", "c-2", "c-3"]) == {"c-1": T0, "c-3": None}
        await store.learn_levels({"c-1": ("gold", T0 + H), "c-2": ("silver", T0), "c-3": ("gold", T0)}, {"c-1", "c-3"})
        views = await store.views(["c-1", "c-2", "c-3"])
        assert {c: v.member_level for c, v in views.items()} == {"c-1": "gold", "c-2": "silver", "c-3": "gold"}
        assert await store.level_stamps(["c-1", "c-2"]) == {"c-1": T0 + H, "c-2": T0}

    async def test_a_forgotten_customer_has_no_consent_language_or_zone(self, store: SurveyStore) -> None:
        await store.learn_profile("c-1", "en", "Europe/Paris")
        await store.learn_consent("c-1", True, T0)
        await store.forget_customer("c-1", T0)
        await store.forget_customer("c-2", T0)  # never seen: still refused later
        views = await store.views(["c-1", "c-2"])
        for view in views.values():
            assert (view.erased, view.survey_consent, view.language, view.timezone) == (True, False, None, None)

    async def test_decisions_are_stored_once_and_announced_unless_another_writer_stored_them(
            self, store: SurveyStore, published: list[CloudEvent]) -> None:
        await store.record_decisions([survey("s-1")], [skip("k-1")], {"s-1": event("s1"), "k-1": event("k1")})
        assert [e.id for e in published] == ["e-s1", "e-k1"]
        # Again, with one decision stored meanwhile by another writer: its announcement is that writer's.
        # A decision stored earlier and only announced again (in the map, not among the documents) goes out.
        await store.record_decisions([survey("s-1", status="sent"), survey("s-2")], [skip("k-2", reason="no_survey_consent")],
                                     {"s-1": event("s1-again"), "s-2": event("s2"), "k-1": event("k1"), "k-2": event("k2")})
        assert [e.id for e in published] == ["e-s1", "e-k1", "e-s2", "e-k1", "e-k2"]
        surveys, skips = await store.known_triggers(["s-1", "s-2", "k-1", "k-2", "nope"])
        assert surveys == {"s-1": T0, "s-2": T0}
        assert skips == {"k-1": ("cooldown", T0), "k-2": ("no_survey_consent", T0)}
        stored = await store.get("s-1")
        assert stored is not None and stored["status"] == "scheduled"  # the first writer's decision stays

    async def test_the_cooldown_anchor_is_each_customers_latest_survey(self, store: SurveyStore) -> None:
        await store.record_decisions([survey("s-1", at=T0), survey("s-2", at=T0 + 5 * H, status="cancelled"),
                                      survey("s-3", "c-2", at=T0 - H), survey("s-4", "c-3")], [], {})
        assert await store.last_survey_times(["c-1", "c-2", "c-9"]) == {"c-1": T0 + 5 * H, "c-2": T0 - H}

    async def test_due_surveys_come_earliest_first_and_only_in_their_state(self, store: SurveyStore) -> None:
        await store.record_decisions([
            survey("s-1", at=T0 + H), survey("s-2", at=T0 - H), survey("s-3", at=T0 + 2 * H),
            survey("s-4", at=T0 - 2 * H, status="cancelled"),
            survey("r-1", status="sent", remind_at=T0 - H), survey("r-2", status="sent", remind_at=T0 - 2 * H),
            survey("r-3", status="sent", remind_at=T0 - 3 * H, reminded=True), survey("r-4", status="sent", remind_at=T0 + H),
        ], [], {})
        assert [d["_id"] for d in await store.due_to_send(T0 + H, 10)] == ["s-2", "s-1"]
        assert [d["_id"] for d in await store.due_to_send(T0 + 3 * H, 2)] == ["s-2", "s-1"]
        assert [d["_id"] for d in await store.due_to_remind(T0, 10)] == ["r-2", "r-1"]
        due = (await store.due_to_remind(T0, 1))[0]
        assert (due["customer_id"], due["kind"], due["trigger_id"], due["remind_at"]) == ("c-1", "post_purchase", "o-r-2",
                                                                                          T0 - 2 * H)

    async def test_a_change_is_made_with_its_events_only_while_its_guard_holds(
            self, store: SurveyStore, published: list[CloudEvent]) -> None:
        await store.record_decisions([survey("s-1"), survey("s-2"), survey("s-3")], [], {})
        sent = {"status": "sent", "sent_at": T0, "link_nonce": "n-1", "answers": {"comment": "x"}}
        assert await store.change(Change("s-1", {"status": "scheduled"}, sent, [event("sent-1")])) is True
        assert await store.change(Change("s-1", {"status": "scheduled"}, sent, [event("sent-1-again")])) is False
        assert await store.change(Change("nope", {"status": "scheduled"}, sent, [event("nope")])) is False
        assert [e.id for e in published] == ["e-sent-1"]
        stored = await store.get("s-1")
        assert stored is not None and "outbox" not in stored
        assert (stored["status"], stored["sent_at"], stored["answers"]) == ("sent", T0, {"comment": "x"})

        # Many at once: only those whose guard holds change, and only their events go out.
        changed = await store.change_each([
            Change("s-1", {"status": "sent", "link_nonce": "n-1"}, {"status": "completed"}, [event("done-1"), event("low-1")]),
            Change("s-2", {"status": "sent"}, {"status": "completed"}, [event("done-2")]),
            Change("s-3", {"status": "scheduled", "reminded": False}, {"status": "cancelled"}, [event("cancel-3")]),
        ])
        assert changed == 2
        assert sorted(e.id for e in published) == ["e-cancel-3", "e-done-1", "e-low-1", "e-sent-1"]
        assert [e.id for e in published if e.id in ("e-done-1", "e-low-1")] == ["e-done-1", "e-low-1"]
        assert [(await store.get(i) or {}).get("status") for i in ("s-1", "s-2", "s-3")] == ["completed", "scheduled",
                                                                                              "cancelled"]
        assert await store.change_each([]) == 0

    async def test_sent_surveys_past_their_expiry_expire(self, store: SurveyStore) -> None:
        await store.record_decisions([
            survey("s-1", status="sent", expires_at=T0 - H), survey("s-2", status="sent", expires_at=T0),
            survey("s-3", status="sent", expires_at=T0 + H), survey("s-4", status="completed", expires_at=T0 - H),
        ], [], {})
        assert await store.expire(T0) == 2
        assert await store.expire(T0) == 0
        assert [(await store.get(i) or {}).get("status") for i in ("s-1", "s-2", "s-3", "s-4")] == [
            "expired", "expired", "sent", "completed"]
        expired = await store.get("s-1")
        assert expired is not None and expired["expired_at"] == T0

    async def test_pending_surveys_of_a_customer(self, store: SurveyStore) -> None:
        await store.record_decisions([survey("s-1"), survey("s-2", status="sent"), survey("s-3", status="completed"),
                                      survey("s-4", "c-2")], [], {})
        assert sorted(d["_id"] for d in await store.pending_of("c-1")) == ["s-1", "s-2"]
        assert await store.pending_of("c-9") == []

    async def test_anonymising_detaches_surveys_and_skips_and_drops_free_text_only(self, store: SurveyStore) -> None:
        answered = survey("s-1", status="completed", csat=90, nps=10, answers={"satisfaction": 90, "comment": "mine"})
        await store.record_decisions([answered, survey("s-2"), survey("s-3", "c-2")], [skip("k-1"), skip("k-2", "c-2")], {})
        assert await store.anonymise("c-1", ["comment"], T0) == 2
        one = await store.get("s-1")
        assert one is not None and "customer_id" not in one and one["answers"] == {"satisfaction": 90}
        assert (one["csat"], one["nps"], one["anonymised_at"]) == (90, 10, T0)
        assert [d["_id"] for d in await store.page_surveys({"customer_id": "c-1"}, 10, None)] == []
        assert [d["_id"] for d in await store.page_skips({"customer_id": "c-2"}, 10, None)] == ["k-2"]
        assert [d.get("customer_id") for d in await store.page_skips({}, 10, None)] == [None, "c-2"]

    async def test_pages_go_by_id_after_the_cursor(self, store: SurveyStore) -> None:
        await store.record_decisions([survey(f"s-{i}", status="sent" if i % 2 else "scheduled") for i in (3, 1, 4, 2, 5)],
                                     [skip("k-1"), skip("k-2", "c-2")], {})
        assert [d["_id"] for d in await store.page_surveys({}, 2, None)] == ["s-1", "s-2", "s-3"]
        assert [d["_id"] for d in await store.page_surveys({}, 2, "s-3")] == ["s-4", "s-5"]
        assert [d["_id"] for d in await store.page_surveys({"status": "sent", "customer_id": "c-1"}, 5, None)] == [
            "s-1", "s-3", "s-5"]
        page = await store.page_surveys({}, 1, "s-4")
        assert [d["_id"] for d in page] == ["s-5"] and "outbox" not in page[0]
        assert [d["_id"] for d in await store.page_skips({}, 1, None)] == ["k-1", "k-2"]
        assert await store.get("nope") is None

    async def test_report_figures_count_the_surveys_sent_in_the_period_per_group(self, store: SurveyStore) -> None:
        def sent(sid: str, channel: str | None, at: datetime, csat: int | None = None, nps: int | None = None) -> Doc:
            doc = survey(sid, status="completed" if csat is not None else "sent", sent_at=at, p_month=at.strftime("%Y-%m"),
                         channel=channel)
            if channel is None:
                del doc["channel"]
            if csat is not None:
                doc.update(csat=csat, nps=nps)
            return doc

        await store.record_decisions([
            sent("s-1", "web", T0, 90, 10), sent("s-2", "web", T0 + H, 90, 10), sent("s-3", "web", T0, 50, 3),
            sent("s-4", "app", T0, 80, None), sent("s-5", "app", T0 + H), sent("s-6", None, T0, 70, 7),
            sent("s-7", "web", T0 + 30 * 24 * H, 10, 0),  # sent after the period
            sent("s-8", "web", T0 - 30 * 24 * H, 10, 0),  # before
            survey("s-9"),  # never sent
        ], [], {})
        since, until = T0 - H, T0 + 24 * H
        groups = await store.report_figures(since, until, "channel")
        assert set(groups) == {"web", "app", "unknown"}
        web, app = groups["web"], groups["app"]
        assert (web.sent, web.completed, web.csat_sum, web.csat_n, web.nps_n, web.promoters, web.detractors) == (
            3, 3, 230, 3, 3, 2, 1)
        assert (app.sent, app.completed, app.csat_sum, app.csat_n, app.nps_n) == (2, 1, 80, 1, 0)
        assert (groups["unknown"].sent, groups["unknown"].nps_scores[7]) == (1, 1)
        assert web.csat_buckets == {"0-59": 1, "60-69": 0, "70-79": 0, "80-89": 0, "90-100": 2}
        overall = await store.report_figures(since, until, None)
        assert list(overall) == ["all"] and (overall["all"].sent, overall["all"].completed) == (6, 5)
        assert {k: v.sent for k, v in (await store.report_figures(T0 - 60 * 24 * H, T0 + 60 * 24 * H, "p_month")).items()} == {
            "2026-10": 1, "2026-11": 6, "2026-12": 1}
        assert await store.report_figures(T0 + 2 * 24 * H, T0 + 3 * 24 * H, None) == {}


class TestInMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> InMemorySurveyStore:
        return InMemorySurveyStore()

    @pytest.fixture
    def published(self, store: InMemorySurveyStore) -> list[CloudEvent]:
        return store.published


class TestMongoStore(StoreContract):
    @pytest.fixture
    async def kit(self, make_settings: Callable[..., Any]) -> AsyncIterator[MongoKit]:
        async with mongo_kit(make_settings(SurveysSettings), [SURVEYS]) as kit:
            yield kit

    @pytest.fixture
    async def store(self, kit: MongoKit) -> MongoSurveyStore:
        # The announcer is the relay's publisher too: what both would send to Kafka, in one list.
        store = MongoSurveyStore(kit.db, kit.outbox, kit.publisher)
        await store.ensure_indexes()
        return store

    @pytest.fixture
    def published(self, store: MongoSurveyStore, kit: MongoKit) -> list[CloudEvent]:
        return kit.publisher.events
