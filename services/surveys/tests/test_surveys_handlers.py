"""Use cases of the surveys service on the in-memory store: no infrastructure, milliseconds each."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from guanxi_shared.clock import ManualClock
from guanxi_shared.errors import Conflict, Gone, Invalid, NotFound
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.topics import (
    COMPLAINT_RESOLVED,
    PURCHASE_COMPLETED,
    SURVEY_COMPLETED,
    SURVEY_LOW_SCORE,
    SURVEY_REQUESTED,
    SURVEY_SCHEDULED,
    SURVEY_SKIPPED,
)
from guanxi_surveys import domain
from guanxi_surveys.handlers import Deps, TierChange, Trigger, answers, customers, reads, scheduler, triggers
from guanxi_surveys.settings import SurveysSettings
from guanxi_surveys.store import InMemorySurveyStore

# Monday 2026-11-16 10:00 in Shanghai: three days later is a plain working Thursday morning.
T0 = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store() -> InMemorySurveyStore:
    return InMemorySurveyStore()


@pytest.fixture
def deps(store: InMemorySurveyStore, clock: ManualClock) -> Deps:
    return Deps.create(store, SurveysSettings(), clock)


def purchase(order: str, customer: str, *, at: datetime = T0, channel: str = "web", event_id: str | None = None) -> Trigger:
    event = new_event(PURCHASE_COMPLETED, customer, {"order_id": order, "customer_id": customer, "channel": channel,
                                                     "purchased_at": at.isoformat()}, source="tests", id=event_id)
    return Trigger("post_purchase", order, customer, at, channel, event)


def resolution(complaint: str, customer: str, *, at: datetime = T0) -> Trigger:
    event = new_event(COMPLAINT_RESOLVED, customer, {"complaint_id": complaint, "customer_id": customer}, source="tests")
    return Trigger("post_resolution", complaint, customer, at, "phone", event)


async def register(deps: Deps, customer: str, *, survey: bool = True, level: str = "standard", language: str = "zh") -> None:
    await customers.customer_registered(deps, customer, {"service": True, "survey": survey}, language, "Asia/Shanghai",
                                        level, T0 - timedelta(days=1))


def sent(store: InMemorySurveyStore, type_: str) -> list[CloudEvent]:
    return [e for e in store.published if e.type == type_]


def datas(store: InMemorySurveyStore, type_: str) -> list[dict[str, Any]]:
    return [e.data for e in sent(store, type_)]


def token_of(link: str) -> str:
    assert link.startswith("http://127.0.0.1:8106/s/")  # the console's survey page
    return link.rsplit("/", 1)[1]


async def requested_link(deps: Deps, store: InMemorySurveyStore, clock: ManualClock, customer: str) -> str:
    """Register ``customer``, have them buy, let the survey go out; its answer-link token."""
    await register(deps, customer, language="en")
    await triggers.schedule_surveys(deps, [purchase(f"o-{customer}", customer)])
    clock.advance(timedelta(days=3, hours=1))
    await scheduler.tick(deps)
    return token_of(next(d["link"] for d in datas(store, SURVEY_REQUESTED) if d["customer_id"] == customer))


# ---------------------------------------------------------------- triggers

async def test_a_purchase_schedules_one_survey_in_its_window_and_announces_it(deps: Deps, store: InMemorySurveyStore) -> None:
    """A survey 3 days after a purchase (SV-1)."""
    await register(deps, "c-1", level="gold")
    await triggers.schedule_surveys(deps, [purchase("o-1", "c-1")])
    [survey] = store.surveys.values()
    assert survey["scheduled_for"] == T0 + timedelta(days=3)  # Thursday 10:00 in Shanghai: working day, not quiet
    assert (survey["status"], survey["kind"], survey["channel"], survey["member_level"]) == ("scheduled", "post_purchase",
                                                                                            "web", "gold")
    [announced] = datas(store, SURVEY_SCHEDULED)
    assert announced == {"survey_id": survey["_id"], "customer_id": "c-1", "kind": "post_purchase",
                         "scheduled_for": (T0 + timedelta(days=3)).isoformat().replace("+00:00", "Z"), "trigger_id": "o-1"}


async def test_a_resolved_complaint_is_surveyed_a_day_later(deps: Deps, store: InMemorySurveyStore) -> None:
    """A survey after a complaint is resolved (SV-1)."""
    await register(deps, "c-11")
    await triggers.schedule_surveys(deps, [resolution("k-1", "c-11")])
    [survey] = store.surveys.values()
    assert (survey["kind"], survey["scheduled_for"]) == ("post_resolution", T0 + timedelta(days=1))


async def test_a_trigger_delivered_again_is_one_survey_and_the_same_announcement(deps: Deps, store: InMemorySurveyStore) -> None:
    await register(deps, "c-1")
    first = purchase("o-1", "c-1")
    await triggers.schedule_surveys(deps, [first, first])
    await triggers.schedule_surveys(deps, [purchase("o-1", "c-1", event_id=first.cause.id)])
    await triggers.schedule_surveys(deps, [purchase("o-1", "c-1")])  # the same order in a new event
    assert len(store.surveys) == 1
    assert len({e.id for e in sent(store, SURVEY_SCHEDULED)}) == 1 and len(sent(store, SURVEY_SCHEDULED)) == 3


async def test_cooldown_skips_a_second_survey_within_it_also_inside_one_batch(deps: Deps, store: InMemorySurveyStore,
                                                                              clock: ManualClock) -> None:
    await register(deps, "c-1")
    await triggers.schedule_surveys(deps, [purchase("o-1", "c-1"), purchase("o-2", "c-1", at=T0 + timedelta(days=2))])
    assert [s["trigger_id"] for s in store.surveys.values()] == ["o-1"]
    assert [(s["trigger_id"], s["reason"]) for s in store.skips.values()] == [("o-2", "cooldown")]
    assert [(d["trigger_id"], d["reason"]) for d in datas(store, SURVEY_SKIPPED)] == [("o-2", "cooldown")]
    # A later batch sees the survey already scheduled; 30 days on, the next purchase is surveyed.
    await triggers.schedule_surveys(deps, [purchase("o-3", "c-1", at=T0 + timedelta(days=20))])
    clock.advance(timedelta(days=40))
    await triggers.schedule_surveys(deps, [purchase("o-4", "c-1", at=T0 + timedelta(days=40))])
    assert [s["trigger_id"] for s in store.surveys.values()] == ["o-1", "o-4"]
    assert store.skips[domain.survey_id("post_purchase", "o-3")]["reason"] == "cooldown"


async def test_refused_erased_and_late_triggers_are_skipped_with_the_reason(deps: Deps, store: InMemorySurveyStore,
                                                                           clock: ManualClock) -> None:
    await register(deps, "c-4", survey=False)
    await register(deps, "c-3")
    await customers.customer_erased(deps, "c-3", new_event("customer.erased", "c-3", {}, source="tests"))
    clock.advance(timedelta(days=8))  # the purchase's 3-7 day window is over
    await triggers.schedule_surveys(deps, [purchase("o-40", "c-4", at=clock.now()), purchase("o-30", "c-3", at=clock.now()),
                                           purchase("o-50", "c-5")])
    assert store.surveys == {}
    skips = {s["trigger_id"]: s for s in store.skips.values()}
    assert {t: s["reason"] for t, s in skips.items()} == {"o-40": "no_survey_consent", "o-30": "customer_erased",
                                                          "o-50": "window_passed"}
    assert skips["o-30"]["customer_id"] is None and skips["o-40"]["customer_id"] == "c-4"
    # The announcement names the customer, as every event does.
    assert {d["trigger_id"]: d["customer_id"] for d in datas(store, SURVEY_SKIPPED)}["o-30"] == "c-3"


async def test_a_decision_stored_but_not_announced_is_announced_when_the_trigger_comes_again(
        deps: Deps, store: InMemorySurveyStore) -> None:
    class BrokerAway(list[CloudEvent]):
        failures = 1

        def extend(self, events: Any) -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("the broker went away")
            super().extend(events)

    store.published = BrokerAway()
    await register(deps, "c-9")
    trigger = purchase("o-9", "c-9")
    with pytest.raises(ConnectionError):
        await triggers.schedule_surveys(deps, [trigger])
    assert len(store.surveys) == 1 and store.published == []  # stored, not announced: the trigger is not committed
    await triggers.schedule_surveys(deps, [trigger])
    [announced] = sent(store, SURVEY_SCHEDULED)
    assert announced.id == domain.derived_event_id(domain.survey_id("post_purchase", "o-9"), "scheduled")
    assert len(store.surveys) == 1


# ---------------------------------------------------------------- customers

async def test_withdrawn_consent_cancels_the_pending_survey_and_blocks_new_ones(deps: Deps, store: InMemorySurveyStore) -> None:
    await register(deps, "c-2")
    await triggers.schedule_surveys(deps, [purchase("o-20", "c-2")])
    cause = new_event("customer.consent_changed", "c-2", {}, source="tests")
    await customers.consent_changed(deps, "c-2", {"service": True, "survey": False}, T0, cause)
    [survey] = store.surveys.values()
    assert (survey["status"], survey["cancel_reason"]) == ("cancelled", "consent_withdrawn")
    [skipped] = sent(store, SURVEY_SKIPPED)
    assert skipped.data["survey_id"] == survey["_id"] and skipped.causationid == cause.id  # type: ignore[attr-defined]
    await triggers.schedule_surveys(deps, [purchase("o-21", "c-2", at=T0 + timedelta(days=40))])
    assert [s["reason"] for s in store.skips.values()] == ["no_survey_consent"]
    # An older consent arriving late does not undo the withdrawal.
    await customers.consent_changed(deps, "c-2", {"survey": True}, T0 - timedelta(hours=1), cause)
    assert (await store.views(["c-2"]))["c-2"].survey_consent is False


async def test_erasure_cancels_pending_surveys_and_detaches_answers_but_keeps_scores(
        deps: Deps, store: InMemorySurveyStore, clock: ManualClock) -> None:
    """Erasure reaches the surveys (CI-6)."""
    token = await requested_link(deps, store, clock, "c-7")
    await answers.submit_answers(deps, token, {"satisfaction": 90, "recommend": 10, "comment": "thanks"})
    clock.advance(timedelta(days=30))
    await triggers.schedule_surveys(deps, [purchase("o-71", "c-7", at=clock.now())])
    await customers.customer_erased(deps, "c-7", new_event("customer.erased", "c-7", {}, source="tests"))
    answered, pending = store.surveys.values()
    assert "customer_id" not in answered and "comment" not in answered["answers"] and answered["csat"] == 90
    assert (pending["status"], pending["cancel_reason"]) == ("cancelled", "customer_erased")
    view = (await store.views(["c-7"]))["c-7"]
    assert view.erased and view.survey_consent is False and view.language is None
    assert (await reads.list_surveys(deps, "c-7", None, 50, None))["items"] == []


async def test_tier_changes_keep_the_newest_level_whatever_the_order(deps: Deps, store: InMemorySurveyStore) -> None:
    await register(deps, "c-t1")  # stamped T0 - 1 day: older than every change below
    await customers.tier_changes(deps, [TierChange("c-t1", "gold", T0 + timedelta(hours=5)),
                                        TierChange("c-t1", "silver", T0 + timedelta(hours=2)),
                                        TierChange("c-t2", "silver", T0 + timedelta(hours=1))])  # c-t2: never registered
    await customers.tier_changes(deps, [TierChange("c-t1", "standard", T0 + timedelta(hours=3)),
                                        TierChange("c-t2", "gold", T0 + timedelta(hours=4))])
    views = await store.views(["c-t1", "c-t2"])
    assert (views["c-t1"].member_level, views["c-t1"].survey_consent, views["c-t2"].member_level) == ("gold", True, "gold")
    assert store.customers["c-t1"]["level_at"] == T0 + timedelta(hours=5)


# ---------------------------------------------------------------- scheduler

async def test_a_due_survey_is_requested_once_in_the_customers_language(deps: Deps, store: InMemorySurveyStore,
                                                                         clock: ManualClock) -> None:
    await register(deps, "c-5", language="en")
    await triggers.schedule_surveys(deps, [purchase("o-50", "c-5", channel="app"), purchase("o-60", "c-6")])  # c-6: unknown
    clock.advance(timedelta(days=3, hours=1))
    assert await scheduler.tick(deps) == 2
    assert await scheduler.tick(deps) == 0
    [request] = datas(store, SURVEY_REQUESTED)
    assert (request["customer_id"], request["language"], request["reminder"], request["template"]) == (
        "c-5", "en", False, "post_purchase@v1")
    survey = store.surveys[request["survey_id"]]
    assert survey["status"] == "sent" and survey["expires_at"] == clock.now() + timedelta(days=14)
    assert survey["p_month"] == "2026-11" and survey["p_day"] == "2026-11-19"
    unknown = store.surveys[domain.survey_id("post_purchase", "o-60")]
    assert (unknown["status"], unknown["cancel_reason"]) == ("cancelled", "survey_consent_unknown")
    assert [(d["trigger_id"], d["reason"], d["survey_id"]) for d in datas(store, SURVEY_SKIPPED)] == [
        ("o-60", "survey_consent_unknown", unknown["_id"])]


async def test_the_answer_link_opens_the_page_at_the_link_base(store: InMemorySurveyStore, clock: ManualClock) -> None:
    """The emailed link is ``<SURVEYS_LINK_BASE_URL>/<token>`` (the console's /s page by default); the token
    behind it is the one the public answer route takes."""
    deps = Deps.create(store, SurveysSettings(link_base_url="https://crm.example.cn/s/"), clock)
    await register(deps, "c-8")
    await triggers.schedule_surveys(deps, [purchase("o-80", "c-8")])
    clock.advance(timedelta(days=3, hours=1))
    await scheduler.tick(deps)
    [request] = datas(store, SURVEY_REQUESTED)
    prefix, token = request["link"].rsplit("/", 1)
    assert prefix == "https://crm.example.cn/s" and "/api/" not in request["link"]
    assert (await answers.survey_form(deps, token))["survey_id"] == request["survey_id"]
    assert domain.link_url("http://127.0.0.1:8106/s", "t.o.k") == "http://127.0.0.1:8106/s/t.o.k"


async def test_the_scheduler_queries_only_when_something_can_be_due(store: InMemorySurveyStore, clock: ManualClock) -> None:
    deps = Deps.create(store, SurveysSettings(scheduler_rescan_seconds=30 * 86400), clock)  # no rescan in this test
    assert await scheduler.tick_if_due(deps) == 0  # the first pass always looks
    assert await scheduler.tick_if_due(deps) == -1
    await register(deps, "c-1")
    await triggers.schedule_surveys(deps, [purchase("o-1", "c-1")])
    clock.advance(timedelta(days=2))
    assert await scheduler.tick_if_due(deps) == -1  # noted, not due yet
    clock.advance(timedelta(days=1, hours=1))
    assert await scheduler.tick_if_due(deps) == 1  # the send time noted has come
    assert len(datas(store, SURVEY_REQUESTED)) == 1
    assert await scheduler.tick_if_due(deps) == 0  # after a pass that did work, look again
    clock.advance(timedelta(days=3))
    assert await scheduler.tick_if_due(deps) == 1  # the reminder time noted when sending
    assert [d["reminder"] for d in datas(store, SURVEY_REQUESTED)] == [False, True]


async def test_one_reminder_with_the_same_link_then_expiry(deps: Deps, store: InMemorySurveyStore, clock: ManualClock) -> None:
    token = await requested_link(deps, store, clock, "c-10")
    clock.advance(timedelta(days=3))
    assert await scheduler.tick(deps) == 1
    clock.advance(timedelta(days=1))
    assert await scheduler.tick(deps) == 0
    reminders = [d for d in datas(store, SURVEY_REQUESTED) if d["reminder"]]
    assert len(reminders) == 1 and token_of(reminders[0]["link"]) == token
    clock.advance(timedelta(days=11))
    assert await scheduler.tick(deps) == 1
    [survey] = store.surveys.values()
    assert survey["status"] == "expired"
    with pytest.raises(Gone):
        await answers.survey_form(deps, token)


async def test_an_answered_survey_gets_no_reminder(deps: Deps, store: InMemorySurveyStore, clock: ManualClock) -> None:
    token = await requested_link(deps, store, clock, "c-5")
    await answers.submit_answers(deps, token, {"satisfaction": 95, "recommend": 9})
    clock.advance(timedelta(days=4))
    await scheduler.tick(deps)
    assert [d["reminder"] for d in datas(store, SURVEY_REQUESTED)] == [False]


# ---------------------------------------------------------------- answering

async def test_a_survey_is_answered_once_through_its_link(deps: Deps, store: InMemorySurveyStore, clock: ManualClock) -> None:
    """Satisfaction and NPS kept per customer (SV-2); a low score is announced for follow-up (SV-4)."""
    token = await requested_link(deps, store, clock, "c-5")
    form = await answers.survey_form(deps, token)
    assert form["language"] == "en" and form["questions"][0]["text"].startswith("How satisfied")
    assert {q["id"] for q in form["questions"]} == {"satisfaction", "recommend", "liked_most", "comment"}

    with pytest.raises(Invalid) as bad:
        await answers.submit_answers(deps, token, {"satisfaction": 140})
    assert (bad.value.status, bad.value.title) == (422, "Invalid answers")
    assert any("recommend" in e for e in bad.value.extra["errors"])
    with pytest.raises(NotFound) as forged:
        await answers.survey_form(deps, token[:-4] + "AAAA")
    assert forged.value.title == "Survey link not valid"

    given = {"satisfaction": 40, "recommend": 5, "liked_most": "product", "comment": "arrived late"}
    assert await answers.submit_answers(deps, token, given) == {
        "survey_id": domain.survey_id("post_purchase", "o-c-5"), "status": "completed", "low_score": True}
    with pytest.raises(Conflict) as again:
        await answers.submit_answers(deps, token, given)
    assert (again.value.status, again.value.title) == (409, "Survey already answered")

    [completed] = datas(store, SURVEY_COMPLETED)
    assert (completed["csat"], completed["nps"], completed["channel"]) == (40, 5, "web")
    [low] = datas(store, SURVEY_LOW_SCORE)
    assert low["reason"] == "csat_below_60,nps_detractor" and low["trigger_id"] == "o-c-5"
    assert "arrived late" not in json.dumps([e.data for e in store.published])
    assert (await reads.list_surveys(deps, "c-5", None, 50, None))["items"][0]["csat"] == 40


async def test_a_cancelled_survey_cannot_be_answered(deps: Deps, store: InMemorySurveyStore, clock: ManualClock) -> None:
    token = await requested_link(deps, store, clock, "c-2")
    await customers.consent_changed(deps, "c-2", {"survey": False}, clock.now(), new_event("x", "c-2", {}, source="tests"))
    with pytest.raises(Gone) as closed:
        await answers.submit_answers(deps, token, {"satisfaction": 90, "recommend": 9})
    assert closed.value.title == "Survey closed"


# ---------------------------------------------------------------- reads

async def test_reports_and_kpis_from_the_surveys_sent(deps: Deps, store: InMemorySurveyStore, clock: ManualClock) -> None:
    """Reports per period, segment and channel against the target (SV-3); survey indicators (KP-1)."""
    # (customer, channel, member level, csat, nps) — c-10 never answers.
    plan = [("c-7", "web", "gold", 90, 10), ("c-8", "web", "standard", 50, 3), ("c-9", "app", "gold", 80, 8),
            ("c-10", "app", "standard", None, None)]
    for customer, channel, level, _, _ in plan:
        await register(deps, customer, level=level)
        await triggers.schedule_surveys(deps, [purchase(f"o-{customer}", customer, channel=channel)])
    clock.advance(timedelta(days=3, hours=1))
    await scheduler.tick(deps)
    links = {d["customer_id"]: token_of(d["link"]) for d in datas(store, SURVEY_REQUESTED)}
    for customer, _, _, csat, nps in plan:
        if csat is not None:
            await answers.submit_answers(deps, links[customer], {"satisfaction": csat, "recommend": nps, "comment": "thanks"})

    since, until = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    report = await reads.report(deps, since, until, "channel")
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

    levels = {g["group"]: g for g in (await reads.report(deps, since, until, "member_level"))["groups"]}
    assert (levels["gold"]["avg_csat"], levels["gold"]["meets_target"], levels["gold"]["nps"]) == (85.0, True, 50.0)
    assert (levels["standard"]["avg_csat"], levels["standard"]["nps"], levels["standard"]["response_rate"]) == (50.0, -100.0, 0.5)
    months = await reads.report(deps, since, until, "period", "month")
    assert [(g["group"], g["sent"]) for g in months["groups"]] == [("2026-11", 4)] and months["period"] == "month"

    k = await reads.kpis(deps, since, until)
    assert (k["avg_satisfaction"], k["nps"], k["response_rate"], k["satisfaction_target"]) == (73.33, 0.0, 0.75, 85)
    empty = await reads.kpis(deps, until, until + timedelta(days=1))
    assert (empty["sent"], empty["avg_satisfaction"], empty["nps"], empty["response_rate"]) == (0, None, None, None)


async def test_lists_page_by_id_and_an_unknown_survey_is_not_found(deps: Deps, store: InMemorySurveyStore) -> None:
    await register(deps, "c-1")
    await register(deps, "c-2", survey=False)
    await triggers.schedule_surveys(deps, [purchase(f"o-{i}", f"c-{i}") for i in range(1, 6)])
    first = await reads.list_surveys(deps, None, "scheduled", 2, None)
    rest = await reads.list_surveys(deps, None, "scheduled", 2, first["next"])
    ids = [s["id"] for page in (first, rest) for s in page["items"]]
    assert ids == sorted(ids) and len(ids) == 4 and first["next"] == ids[1] and rest["next"] is None
    assert [s["trigger_id"] for s in (await reads.list_skips(deps, "c-2", 50, None))["items"]] == ["o-2"]
    with pytest.raises(NotFound, match="no survey nope"):
        await reads.get_survey(deps, "nope")
    assert (await reads.get_survey(deps, ids[0]))["id"] == ids[0]
    assert {t["template"] for t in reads.templates("en")["items"]} == {"post_purchase@v1", "post_resolution@v1"}


def test_a_report_period_is_dates_in_the_business_zone_or_times_with_an_offset(deps: Deps, clock: ManualClock) -> None:
    start, end = reads.report_range(deps, "2026-11-01", "2026-12-01T00:00:00+00:00")
    assert (start, end) == (datetime(2026, 10, 31, 16, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert reads.report_range(deps, None, None) == (clock.now() - timedelta(days=30), clock.now())
    for since, until, detail in (("2026-11-01T00:00:00", None, "from: a time needs a UTC offset"),
                                 ("yesterday", None, "from: must be a date (YYYY-MM-DD) or RFC 3339 time"),
                                 ("2026-11-02", "2026-11-01", "to must be after from")):
        with pytest.raises(Invalid) as refused:
            reads.report_range(deps, since, until)
        assert (refused.value.status, refused.value.title, refused.value.detail) == (422, "Invalid request", detail)
