"""Use cases on the in-memory stores (no infrastructure): intake, commands, queues, watcher, crisis, erasure, KPIs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from guanxi_complaints import domain, handlers
from guanxi_complaints.app import make_deps
from guanxi_complaints.domain import (
    Actor,
    BadCursor,
    Case,
    CaseNotFound,
    ConcurrentChange,
    IllegalTransition,
    Intake,
    InvalidPeriod,
    InvalidQuery,
    NotPermitted,
    Status,
    StatusLinkExpired,
    StatusLinkInvalid,
)
from guanxi_complaints.settings import ComplaintsSettings
from guanxi_complaints.store import InMemoryCaseStore, InMemoryCrisisStore
from guanxi_shared.clock import ManualClock
from guanxi_shared.contracts.inbound import ComplaintChannel
from guanxi_shared.events import CloudEvent, InvalidEvent, new_event

CST = timezone(timedelta(hours=8))
RECEIVED = datetime(2026, 9, 30, 10, 0, tzinfo=CST)
ALICE = Actor("alice", team="north")
BOB = Actor("bob")
SUE = Actor("sue", supervisor=True)


def make(**overrides: Any) -> tuple[handlers.Deps, InMemoryCaseStore, InMemoryCrisisStore, ManualClock]:
    cases, crisis_store = InMemoryCaseStore(), InMemoryCrisisStore()
    clock = ManualClock(RECEIVED + timedelta(minutes=1))
    return make_deps(ComplaintsSettings(**overrides), clock, cases, crisis_store), cases, crisis_store, clock


def intake(ref: str | None = "REF-1", **kw: Any) -> Intake:
    values: dict[str, Any] = {"source": "call-centre", "customer_id": "c-1", "channel": "phone", "category": "billing",
                              "severity": "normal", "description": "charged twice", "received_at": RECEIVED,
                              "external_ref": ref, "event_id": f"ev-{ref}"}
    return Intake(**{**values, **kw})


def types(events: Sequence[CloudEvent]) -> list[str]:
    return [e.type for e in events]


async def opened(deps: handlers.Deps, ref: str = "REF-1", **kw: Any) -> Case:
    case = await handlers.open_case(deps, intake(ref, **kw))
    assert case is not None
    return case


# ---------------------------------------------------------------- intake


async def test_intake_opens_a_case_once_and_publishes_registration_and_acknowledgement() -> None:
    """Intake from a call centre (CP-1)."""
    deps, cases, _, _ = make()
    case = await handlers.open_case(deps, intake(), causation_id="cause-1")
    assert case is not None and case.status == Status.acknowledged
    assert types(cases.published) == ["complaint.registered", "complaint.acknowledged"]
    assert {e.causationid for e in cases.published} == {"cause-1"} and cases.published[0].subject == "c-1"
    assert "charged twice" not in str([e.data for e in cases.published])
    # The same (source, external_ref) again: nothing changes, nothing is published.
    assert await handlers.open_case(deps, intake()) is None
    assert len(cases.published) == 2


async def test_a_new_complaint_id_for_a_registered_reference_becomes_an_alias() -> None:
    deps, _, _, _ = make()
    case = await opened(deps)
    assert await handlers.open_case(deps, intake(complaint_id="gw-42")) is None
    assert (await handlers.get_case(deps, "gw-42")).id == case.id
    # Commands reach the case under its alias too.
    assert (await handlers.assign(deps, "gw-42", ALICE, "alice")).owner == "alice"


async def test_complaint_received_reads_the_event_and_refuses_a_subject_that_is_not_the_customer() -> None:
    """Intake of the gateway's HTTP complaints, with their channel (CP-1)."""
    deps, cases, _, _ = make()
    data = {"customer_id": "c-1", "channel": "web", "category": "billing", "severity": "normal",
            "description": "charged twice", "received_at": RECEIVED.isoformat(),
            "complaint_id": "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"}
    await handlers.on_complaint_received(deps, new_event("complaint.received", "c-1", data, source="guanxi.gateway"))
    assert (await handlers.get_case(deps, data["complaint_id"])).channel == "web"
    with pytest.raises(InvalidEvent, match="subject"):
        await handlers.on_complaint_received(deps, new_event("complaint.received", "c-2", data, source="guanxi.gateway"))
    assert len(cases.published) == 2


async def test_a_complaint_from_any_channel_is_recorded_with_everything_it_came_with() -> None:
    """A complaint comes in through any channel and is recorded with its content, time, customer, channel, category,
    severity and evidence (CP-1)."""
    deps, _, _, _ = make()
    for n, channel in enumerate(ComplaintChannel):
        customer = f"c-{channel.value}"
        data = {"customer_id": customer, "channel": channel.value, "category": "delivery", "severity": "high",
                "description": f"parcel lost, told us by {channel.value}", "product": "tea-set",
                "received_at": (RECEIVED + timedelta(minutes=n)).isoformat(), "evidence": ["photo-1", "receipt-7"],
                "external_ref": f"REF-{n}"}
        await handlers.on_complaint_received(deps, new_event("complaint.received", customer, data, source="call-centre"))
        [case] = (await handlers.list_cases(deps, customer_id=customer)).items
        assert (case.customer_id, case.channel, case.category, case.severity, case.product) == (
            customer, channel.value, "delivery", "high", "tea-set")
        assert case.description == f"parcel lost, told us by {channel.value}" and case.evidence == ["photo-1", "receipt-7"]
        assert case.received_at == RECEIVED + timedelta(minutes=n) and case.source == "call-centre"
        assert case.history[0].step == "received" and case.history[0].at is not None


# ---------------------------------------------------------------- commands and refusals


async def test_lifecycle_through_the_handlers_saves_each_step_with_its_event() -> None:
    """Each lifecycle step saved with its event (CP-3)."""
    deps, cases, _, clock = make()
    case = await opened(deps)
    taken = await handlers.assign(deps, case.id, ALICE, "alice")
    assert taken.team == "general" and taken.version == 1  # the case keeps the team routing gave it
    clock.advance(timedelta(hours=2))
    await handlers.give_preliminary_opinion(deps, case.id, ALICE, "refund likely")
    await handlers.start_investigation(deps, case.id, ALICE, "check billing logs")
    await handlers.resolve(deps, case.id, ALICE, "refunded", apology=True, root_cause="billing_error")
    await handlers.close(deps, case.id, SUE, confirmed_by_customer=True)
    reopened = await handlers.reopen(deps, case.id, ALICE, "refund not received")
    assert reopened.status == Status.reopened and reopened.reopen_count == 1
    assert (await handlers.get_case(deps, case.id)).version == reopened.version == 6
    assert types(cases.published)[2:] == ["complaint.assigned", "complaint.preliminary_opinion_given",
                                          "complaint.investigation_started", "complaint.resolved", "complaint.closed",
                                          "complaint.reopened"]


async def test_waiting_on_the_customer_is_recorded_without_an_event() -> None:
    deps, cases, _, _ = make()
    case = await opened(deps)
    waiting = await handlers.await_customer(deps, case.id, ALICE, "need the invoice number")
    assert waiting.waiting_since is not None
    resumed = await handlers.customer_responded(deps, case.id, ALICE)
    assert resumed.waiting_since is None and len(cases.published) == 2


async def test_refusals_are_domain_errors_with_their_http_status() -> None:
    deps, _, _, _ = make()
    case = await opened(deps)
    with pytest.raises(CaseNotFound, match="no complaint nope") as missing:
        await handlers.acknowledge(deps, "nope", ALICE)
    assert missing.value.status == 404
    with pytest.raises(CaseNotFound, match="intake is asynchronous"):
        await handlers.get_case(deps, "nope")
    with pytest.raises(IllegalTransition, match="cannot close a complaint that is acknowledged") as illegal:
        await handlers.close(deps, case.id, ALICE)
    assert (illegal.value.status, illegal.value.title) == (409, "Illegal transition")
    await handlers.assign(deps, case.id, ALICE, "alice")
    with pytest.raises(NotPermitted, match="belongs to alice") as denied:
        await handlers.give_preliminary_opinion(deps, case.id, BOB, "x")
    assert (denied.value.status, denied.value.title) == (403, "Forbidden")
    # An agent assigns only themselves: refused before the case is even looked up.
    with pytest.raises(NotPermitted, match="agents may only take a case themselves"):
        await handlers.assign(deps, "nope", BOB, "carol")
    assert (await handlers.assign(deps, case.id, SUE, "bob")).owner == "bob"


async def test_a_case_that_keeps_changing_is_a_conflict() -> None:
    class Busy(InMemoryCaseStore):
        async def save(self, case: Case, expected_version: int, events: Sequence[CloudEvent]) -> bool:
            return False

    busy = Busy()
    deps, _, _, _ = make()
    deps.cases = busy
    await opened(deps)
    case_id = domain.case_id_for(intake())
    with pytest.raises(ConcurrentChange, match="changed concurrently") as conflict:
        await handlers.assign(deps, case_id, ALICE, "alice")
    assert (conflict.value.status, conflict.value.title) == (409, "Conflict")


# ---------------------------------------------------------------- queues and KPIs


async def test_queues_are_paged_newest_first_and_capped() -> None:
    deps, _, _, _ = make(max_page_size=2)
    ids = [(await opened(deps, f"Q-{i}", received_at=RECEIVED + timedelta(minutes=i))).id for i in range(3)]
    page1 = await handlers.list_cases(deps, customer_id="c-1", limit=50)
    assert [c.id for c in page1.items] == ids[:0:-1] and page1.next is not None
    page2 = await handlers.list_cases(deps, customer_id="c-1", limit=50, cursor=page1.next)
    assert [c.id for c in page2.items] == ids[:1] and page2.next is None
    assert (await handlers.list_cases(deps, status=Status.resolved)).items == []
    assert (await handlers.list_cases(deps, overdue=True)).items == []
    with pytest.raises(BadCursor) as bad:
        await handlers.list_cases(deps, cursor="zz")
    assert (bad.value.status, bad.value.title) == (400, "Bad cursor")


async def test_kpis_cover_the_period_and_refuse_a_bad_one() -> None:
    """Complaint indicators per period (KP-1)."""
    deps, _, _, _ = make()
    case = await opened(deps)
    await handlers.resolve(deps, case.id, ALICE, "explained")
    report = await handlers.complaint_kpis(deps, RECEIVED - timedelta(days=1), RECEIVED + timedelta(days=1))
    assert report["overall"]["counts"]["received"] == 1 and report["overall"]["first_contact_resolution"] == 1.0
    with pytest.raises(InvalidPeriod, match="UTC offset") as naive:
        await handlers.complaint_kpis(deps, datetime(2026, 9, 1), datetime(2026, 10, 1))
    assert naive.value.status == 422
    with pytest.raises(InvalidPeriod, match="at most 366 days"):
        await handlers.complaint_kpis(deps, RECEIVED, RECEIVED + timedelta(days=367))
    with pytest.raises(InvalidPeriod, match="positive"):
        await handlers.complaint_kpis(deps, RECEIVED, RECEIVED)



async def test_kpis_take_the_first_contact_window_from_settings() -> None:
    """KP-1: COMPLAINTS_FIRST_CONTACT_HOURS bounds a first-contact resolution; the resolution rate is at the period's end."""
    period = (RECEIVED - timedelta(days=1), RECEIVED + timedelta(days=1))
    for hours, expected in ((24.0, 1.0), (2.0, 0.0)):
        deps, _, _, clock = make(first_contact_hours=hours)
        case = await opened(deps)
        clock.advance(timedelta(hours=3))
        await handlers.resolve(deps, case.id, ALICE, "explained")
        report = await handlers.complaint_kpis(deps, *period)
        assert report["first_contact_hours"] == hours and report["overall"]["first_contact_resolution"] == expected
        assert report["overall"]["resolution_rate"] == 1.0
        clock.advance(timedelta(hours=1))
        await handlers.reopen(deps, case.id, ALICE, "not refunded")
        report = await handlers.complaint_kpis(deps, *period)
        assert report["overall"]["resolution_rate"] == 0.0 and report["overall"]["first_contact_resolution"] == 0.0

# ---------------------------------------------------------------- watcher


async def test_the_watcher_warns_breaches_and_escalates_once() -> None:
    """A breach noticed when it passes (CP-5), escalated (CP-4)."""
    deps, cases, _, clock = make()
    case = await opened(deps)
    await handlers.assign(deps, case.id, ALICE, "alice")
    due = datetime(2026, 10, 10, 18, 0, tzinfo=CST)  # preliminary opinion
    clock.set(due - timedelta(hours=1))
    assert await handlers.watch_once(deps) == 1
    assert await handlers.watch_once(deps) == 0
    clock.set(due + timedelta(minutes=1))
    assert await handlers.watch_once(deps) == 1
    assert await handlers.watch_once(deps) == 0
    watched = [e for e in cases.published if e.type.startswith(("complaint.deadline", "complaint.escalated"))]
    assert types(watched) == ["complaint.deadline_approaching", "complaint.deadline_breached", "complaint.escalated"]
    assert watched[2].data["reason"] == "breach:preliminary_opinion"
    assert (await handlers.list_cases(deps, overdue=True)).items[0].id == case.id


# ---------------------------------------------------------------- crisis early warning


async def test_a_burst_raises_one_alert_per_dimension_and_episode() -> None:
    """A rise by category, product or channel raises an alert (CP-7)."""
    deps, _, crisis_store, clock = make(crisis_min_count=3, crisis_window_minutes=60)
    for i in range(5):
        await opened(deps, f"B-{i}", category="delivery", channel="app", product="tea-set", customer_id=f"c-{i}")
    alerts = [e.data for e in crisis_store.published]
    assert sorted((a["dimension"], a["value"]) for a in alerts) == [
        ("category", "delivery"), ("channel", "app"), ("product", "tea-set")]
    assert all(a["count"] == 3 and len(a["sample_complaint_ids"]) == 3 for a in alerts)
    assert crisis_store.published[0].subject == "c-2"  # the customer whose complaint tipped it over
    # Quiet again: the watcher ends the episodes, and the next burst is a new episode with a new alert.
    clock.advance(timedelta(hours=2))
    await handlers.watch_once(deps)
    assert await crisis_store.active_episodes() == []
    for i in range(3):
        await opened(deps, f"C-{i}", category="delivery", customer_id=f"d-{i}")
    later = [e for e in crisis_store.published[3:] if e.data["dimension"] == "category"]
    assert len(later) == 1 and later[0].id != crisis_store.published[0].id


async def test_low_scores_count_once_per_survey_and_may_open_follow_up_cases() -> None:
    """A run of low scores raises an alert (CP-7); low scores open follow-up complaints (SV-4)."""
    deps, cases, crisis_store, _ = make(low_score_run=3, low_score_opens_case=True)

    def low_score(i: int) -> CloudEvent:
        data = {"survey_id": f"s-{i}", "customer_id": f"c-{i}", "kind": "post_resolution", "csat": 10, "nps": 1,
                "reason": "csat below 60", "at": RECEIVED.isoformat()}
        return new_event("survey.low_score", f"c-{i}", data, source="guanxi.surveys", id=f"ls-{i}")

    for event in (low_score(0), low_score(0), low_score(1), low_score(2)):
        await handlers.on_survey_low_score(deps, event)
    assert [(e.data["dimension"], e.data["count"]) for e in crisis_store.published] == [("satisfaction", 3)]
    follow_ups = [e for e in cases.published if e.type == "complaint.registered"]
    assert len(follow_ups) == 3 and {e.data["category"] for e in follow_ups} == {"low_satisfaction"}


# ---------------------------------------------------------------- erasure


async def test_erasure_anonymises_every_case_of_the_customer_only() -> None:
    """Erasure reaches the customer's complaints (CI-6)."""
    deps, cases, _, _ = make()
    mine = await opened(deps, "E-1", description="call me on 13800000000")
    other = await opened(deps, "E-2", customer_id="c-2")
    erased = new_event("customer.erased", "c-1", {"customer_id": "c-1", "erased_at": RECEIVED.isoformat(), "actor": "dpo"},
                       source="guanxi.customer")
    await handlers.on_customer_erased(deps, erased)
    await handlers.on_customer_erased(deps, erased)  # a redelivery changes nothing more
    gone = await handlers.get_case(deps, mine.id)
    assert gone.erased and gone.description == "[erased]" and gone.category == "billing" and gone.version == 1
    assert (await handlers.get_case(deps, other.id)).description == "charged twice"
    assert len(cases.published) == 4  # erasure publishes nothing


# ---------------------------------------------------------------- case numbers, queues, teams, status links


async def test_intake_numbers_cases_by_year_of_receipt_and_a_replay_keeps_its_number() -> None:
    deps, cases, _, _ = make()
    first, second = await opened(deps, "N-1"), await opened(deps, "N-2")
    assert (first.number, second.number) == ("TS-2026-000001", "TS-2026-000002")
    # A replayed intake keeps the case's first number; it takes one it does not use (a gap, never a reuse).
    assert await handlers.open_case(deps, intake("N-1")) is None
    assert (await handlers.get_case(deps, first.id)).number == "TS-2026-000001"
    assert (await opened(deps, "N-3")).number == "TS-2026-000004"
    # The year of receipt in the service's time zone: New Year's Day in Shanghai starts the next year's sequence.
    assert (await opened(deps, "N-4", received_at=datetime(2026, 12, 31, 16, 30, tzinfo=UTC))).number == "TS-2027-000001"
    # A case is found by its number, for reading and for commands; unknown numbers are not found.
    assert (await handlers.get_case(deps, "TS-2026-000002")).id == second.id
    assert (await handlers.assign(deps, "TS-2026-000002", ALICE, "alice")).id == second.id
    with pytest.raises(CaseNotFound):
        await handlers.get_case(deps, "TS-2026-000003")
    # Every step event carries the number.
    assert {(e.data["complaint_id"], e.data["number"]) for e in cases.published if e.data["complaint_id"] == second.id} == {
        (second.id, "TS-2026-000002")}
    assert types([e for e in cases.published if e.data["complaint_id"] == second.id]) == [
        "complaint.registered", "complaint.acknowledged", "complaint.assigned"]


async def test_queues_filter_on_several_values_owner_team_and_number() -> None:
    deps, _, _, _ = make(team_by_category={"delivery": "logistics"})
    a = await opened(deps, "F-1", severity="urgent", channel="web")
    b = await opened(deps, "F-2", category="delivery", received_at=RECEIVED + timedelta(minutes=1))
    c = await opened(deps, "F-3", severity="low", received_at=RECEIVED + timedelta(minutes=2))
    await handlers.assign(deps, b.id, ALICE, "alice")
    await handlers.resolve(deps, c.id, SUE, "refunded")

    async def ids(**kw: Any) -> list[str]:
        return [x.id for x in (await handlers.list_cases(deps, **kw)).items]

    assert await ids(status="acknowledged,resolved") == [c.id, b.id, a.id]
    assert await ids(status=["acknowledged", "resolved"]) == [c.id, b.id, a.id]
    assert await ids(status=["resolved"], open_=True) == []
    assert await ids(open_=True) == [b.id, a.id] and await ids(open_=False) == [c.id]
    assert await ids(severity="urgent,low") == [c.id, a.id]
    assert await ids(channel=["web"]) == [a.id] and await ids(category="delivery") == [b.id]
    assert await ids(owner="none") == [c.id, a.id] and await ids(owner="alice") == [b.id]
    assert await ids(team="logistics") == [b.id] and await ids(team="general", owner="none", open_=True) == [a.id]
    assert a.number is not None and await ids(number=a.number) == [a.id]
    for bad, parameter in (({"status": "acknowledged,lost"}, "status"), ({"severity": "extreme"}, "severity"),
                           ({"channel": ["fax"]}, "channel"), ({"sort": "priority"}, "sort")):
        with pytest.raises(InvalidQuery, match=rf"^query\.{parameter}: unknown value") as refused:
            await ids(**bad)
        assert refused.value.status == 422


async def test_the_deadline_queue_puts_the_nearest_first_and_pages_through_both_halves() -> None:
    deps, _, _, _ = make(auto_acknowledge=False)
    # Not acknowledged yet: the acknowledge deadline (24 h; urgent 1 h) is each case's nearest.
    late = await opened(deps, "D-1", received_at=RECEIVED - timedelta(hours=20))  # due in 4 h
    urgent = await opened(deps, "D-2", severity="urgent")  # due in 1 h
    normal = await opened(deps, "D-3", received_at=RECEIVED + timedelta(minutes=5))  # due in 24 h 5 min
    done = [await opened(deps, f"D-{n}", received_at=RECEIVED + timedelta(minutes=n)) for n in (10, 20)]
    for case in done:
        await handlers.acknowledge(deps, case.id, SUE)
        await handlers.resolve(deps, case.id, SUE, "refunded")
    expected = [urgent.id, late.id, normal.id, done[1].id, done[0].id]  # no open deadline: newest receipt first

    pages, cursor = [], None
    while True:
        page = await handlers.list_cases(deps, sort="deadline", limit=2, cursor=cursor)
        pages.append([c.id for c in page.items])
        if (cursor := page.next) is None:
            break
    assert pages == [expected[:2], expected[2:4], expected[4:]]
    assert [c.id for c in (await handlers.list_cases(deps, sort="deadline", open_=True)).items] == expected[:3]
    assert [c.id for c in (await handlers.list_cases(deps, sort="received")).items] == [
        done[1].id, done[0].id, normal.id, urgent.id, late.id]
    with pytest.raises(BadCursor):  # a cursor of one order is no cursor of the other
        await handlers.list_cases(deps, limit=2, cursor=(await handlers.list_cases(deps, sort="deadline", limit=2)).next)


async def test_a_case_keeps_its_team_when_taken_and_a_supervisor_may_move_it() -> None:
    deps, cases, _, _ = make(team_by_category={"billing": "finance"})
    case = await opened(deps)
    assert case.team == "finance"
    assert (await handlers.assign(deps, case.id, ALICE, "alice")).team == "finance"  # alice is in team north
    with pytest.raises(NotPermitted, match="only a supervisor moves it"):
        await handlers.assign(deps, case.id, ALICE, "alice", team="north")
    moved = await handlers.assign(deps, case.id, SUE, "bob", team="escalations")
    assert (moved.owner, moved.team) == ("bob", "escalations")
    assert cases.published[-1].data["team"] == "escalations" and cases.published[-1].data["previous_owner"] == "alice"


async def test_the_status_link_of_the_acknowledgement_opens_the_case_until_it_expires() -> None:
    deps, cases, _, clock = make(status_link_days=30)
    case = await opened(deps)
    [ack] = [e for e in cases.published if e.type == "complaint.acknowledged"]
    assert ack.data["status_link"].startswith("http://127.0.0.1:8106/c/")
    token = ack.data["status_link"].rsplit("/", 1)[1]
    assert (await handlers.status_page(deps, token)).id == case.id
    links = deps.policy.status_links
    assert links is not None
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "nonsense", links.token("no-such-case", clock.now())):
        with pytest.raises(StatusLinkInvalid):
            await handlers.status_page(deps, bad)
    clock.advance(timedelta(days=30))
    with pytest.raises(StatusLinkExpired):
        await handlers.status_page(deps, token)


def test_settings_read_the_routing_map_and_refuse_the_development_link_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPLAINTS_TEAM_BY_CATEGORY", '{"billing": "finance"}')
    monkeypatch.setenv("COMPLAINTS_DEFAULT_TEAM", "front-desk")
    settings = ComplaintsSettings()
    assert (settings.team_by_category, settings.default_team) == ({"billing": "finance"}, "front-desk")
    assert settings.status_link_base == "http://127.0.0.1:8106/c"
    secret = "x" * 48
    with pytest.raises(ValueError, match="COMPLAINTS_STATUS_LINK_SECRET must be set outside local mode"):
        ComplaintsSettings(environment="production", internal_secret=secret)
    ComplaintsSettings(environment="production", internal_secret=secret, status_link_secret="y" * 48)
