"""The case state machine, deadline watching, crisis rules and KPIs (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from guanxi_complaints import domain
from guanxi_complaints.domain import Case, Deadline, IllegalTransition, Intake, NotPermitted, Policy, Status, crisis, kpis
from guanxi_complaints.domain.workdays import WorkingCalendar
from hypothesis import given, settings
from hypothesis import strategies as st

CST = timezone(timedelta(hours=8))
RECEIVED = datetime(2026, 9, 30, 10, 0, tzinfo=CST)
POLICY = Policy(calendar=WorkingCalendar(), acknowledge_minutes_by_severity={"urgent": 60})


def intake(**kw: object) -> Intake:
    values: dict[str, object] = {"source": "call-centre", "customer_id": "c-1", "channel": "phone", "category": "billing",
                                 "severity": "normal", "description": "charged twice", "received_at": RECEIVED,
                                 "external_ref": "REF-1", "event_id": "ev-1"}
    values.update(kw)
    return Intake(**values)  # type: ignore[arg-type]


def opened(policy: Policy = POLICY, **kw: object) -> Case:
    return domain.open_case(intake(**kw), policy, RECEIVED + timedelta(minutes=1)).case


def test_opening_acknowledges_at_once_and_computes_the_four_deadlines() -> None:
    """Receipt 24 h, opinion 3 and answer 15 working days (CP-2)."""
    out = domain.open_case(intake(), POLICY, RECEIVED + timedelta(minutes=1))
    case = out.case
    assert [e.type for e in out.events] == ["complaint.registered", "complaint.acknowledged"]
    assert case.status == Status.acknowledged and case.acknowledged_at == RECEIVED + timedelta(minutes=1)
    assert case.deadlines[Deadline.acknowledge].due_at == RECEIVED + timedelta(hours=24)
    assert case.deadlines[Deadline.acknowledge].met_at is not None
    assert case.deadlines[Deadline.preliminary_opinion].due_at == datetime(2026, 10, 10, 18, tzinfo=CST)
    assert case.deadlines[Deadline.formal_answer].due_at == datetime(2026, 10, 27, 18, tzinfo=CST)
    assert Deadline.investigation not in case.deadlines
    assert [s.step for s in case.history] == ["received", "acknowledged"]
    assert case.history[1].actor == domain.SYSTEM_ACTOR
    assert "charged twice" not in repr([e.data for e in out.events])  # free text never leaves in events


def test_without_auto_acknowledge_the_case_waits_and_urgent_gets_one_hour() -> None:
    """An urgent complaint is acknowledged within 1 hour (CC-3)."""
    policy = Policy(calendar=POLICY.calendar, auto_acknowledge=False, acknowledge_minutes_by_severity={"urgent": 60})
    case = opened(policy, severity="urgent")
    assert case.status == Status.received
    assert case.deadlines[Deadline.acknowledge].due_at == RECEIVED + timedelta(hours=1)
    assert case.next_due_at == RECEIVED + timedelta(hours=1)


def test_case_id_is_the_complaint_id_or_stable_from_source_and_reference() -> None:
    given_id = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
    assert domain.case_id_for(intake(complaint_id=given_id)) == given_id
    assert domain.case_id_for(intake(event_id="a")) == domain.case_id_for(intake(event_id="b"))
    assert domain.case_id_for(intake(source="email")) != domain.case_id_for(intake())
    by_event = [domain.case_id_for(intake(external_ref=None, event_id=e)) for e in ("a", "b")]
    assert by_event[0] != by_event[1]


def test_full_lifecycle_records_actor_and_time_for_every_step() -> None:
    """Every lifecycle step, with who took it and when (CP-3)."""
    case = opened()
    t = RECEIVED + timedelta(hours=2)
    steps = [
        lambda c, t: domain.assign(c, "alice", "sup", t, POLICY, team="north"),
        lambda c, t: domain.give_preliminary_opinion(c, "refund likely", "alice", t, POLICY),
        lambda c, t: domain.start_investigation(c, "check billing logs", "alice", t, POLICY),
        lambda c, t: domain.resolve(c, "refunded", "alice", t, POLICY, compensation="50 CNY", apology=True,
                                    root_cause="billing_error"),
        lambda c, t: domain.close(c, "alice", t, POLICY, confirmed_by_customer=True),
        lambda c, t: domain.reopen(c, "refund not received", "alice", t, POLICY),
    ]
    types = []
    for step in steps:
        t += timedelta(hours=1)
        out = step(case, t)
        case = out.case
        types += [e.type for e in out.events]
    assert types == ["complaint.assigned", "complaint.preliminary_opinion_given", "complaint.investigation_started",
                     "complaint.resolved", "complaint.closed", "complaint.reopened"]
    assert case.status == Status.reopened and case.reopen_count == 1
    assert [(s.step, s.actor) for s in case.history][2:] == [
        ("assigned", "sup"), ("preliminary_opinion", "alice"), ("investigation_started", "alice"), ("resolved", "alice"),
        ("closed", "alice"), ("reopened", "alice")]
    assert all(s.at is not None for s in case.history)
    # Investigation: 5 working days from its start (1 Oct is a holiday: 8, 9, 10, 12, 13 Oct).
    assert case.deadlines[Deadline.investigation].due_at == datetime(2026, 10, 13, 18, tzinfo=CST)
    # Reopening asks for a new formal answer and keeps the first round for the KPIs.
    assert case.previous_deadlines[0]["name"] == "formal_answer"
    assert case.deadlines[Deadline.formal_answer].met_at is None
    assert case.first_contact_resolution is False and case.team == "north"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (lambda c, t: domain.acknowledge(c, "a", t, POLICY), "cannot acknowledge a complaint that is acknowledged"),
        (lambda c, t: domain.close(c, "a", t, POLICY), "cannot close"),
        (lambda c, t: domain.reopen(c, "why", "a", t, POLICY), "cannot reopen"),
        (lambda c, t: domain.start_investigation(c, "why", "a", t, POLICY), "cannot start an investigation"),
    ],
)
def test_illegal_transitions_are_refused_with_a_clear_reason(command, message: str) -> None:
    """Only the lifecycle's transitions are allowed (CP-3)."""
    with pytest.raises(IllegalTransition, match=message):
        command(opened(), RECEIVED + timedelta(hours=1))


def test_closed_case_refuses_everything_but_reopen() -> None:
    """A closed complaint can only be reopened (CP-3)."""
    t = RECEIVED + timedelta(hours=1)
    case = domain.resolve(opened(), "done", "a", t, POLICY).case
    case = domain.close(case, "a", t, POLICY).case
    for command in (lambda c: domain.assign(c, "b", "a", t, POLICY), lambda c: domain.resolve(c, "x", "a", t, POLICY),
                    lambda c: domain.give_preliminary_opinion(c, "x", "a", t, POLICY)):
        with pytest.raises(IllegalTransition):
            command(case)
    assert domain.reopen(case, "again", "a", t, POLICY).case.status == Status.reopened


def test_agents_act_only_on_their_own_or_unowned_cases() -> None:
    case = opened()
    domain.ensure_may_act(case, "bob", privileged=False)  # unowned
    owned = domain.assign(case, "alice", "alice", RECEIVED, POLICY).case
    domain.ensure_may_act(owned, "alice", privileged=False)
    domain.ensure_may_act(owned, "sue", privileged=True)
    with pytest.raises(NotPermitted, match="belongs to alice"):
        domain.ensure_may_act(owned, "bob", privileged=False)


def test_resolving_at_first_contact_counts_as_first_contact_resolution() -> None:
    """First-contact resolution (KP-1)."""
    case = domain.resolve(opened(), "explained", "a", RECEIVED + timedelta(hours=1), POLICY).case
    assert case.first_contact_resolution is True
    assert case.deadlines[Deadline.preliminary_opinion].outcome(RECEIVED) == "met"
    later = domain.give_preliminary_opinion(opened(), "x", "a", RECEIVED, POLICY).case
    assert domain.resolve(later, "done", "a", RECEIVED, POLICY).case.first_contact_resolution is False


def test_watcher_warns_then_breaches_each_deadline_exactly_once_and_escalates() -> None:
    """A missed deadline is noticed when it passes (CP-5) and escalated to a supervisor (CP-4)."""
    case = domain.assign(opened(), "alice", "sup", RECEIVED, POLICY).case
    due = case.deadlines[Deadline.preliminary_opinion].due_at
    assert case.next_check_at == due - POLICY.lead_time
    warn = domain.tick(case, due - timedelta(hours=1), POLICY)
    assert [e.type for e in warn.events] == ["complaint.deadline_approaching"]
    assert domain.tick(warn.case, due - timedelta(minutes=30), POLICY).events == []
    breach = domain.tick(warn.case, due + timedelta(seconds=1), POLICY)
    assert [e.type for e in breach.events] == ["complaint.deadline_breached", "complaint.escalated"]
    assert breach.events[1].data["reason"] == "breach:preliminary_opinion"
    again = domain.tick(breach.case, due + timedelta(hours=1), POLICY)
    assert again.events == []
    assert breach.case.deadlines[Deadline.preliminary_opinion].outcome(due) == "breached"
    assert breach.case.is_overdue(due + timedelta(seconds=1))


def test_a_late_watcher_reports_the_breach_without_a_stale_warning() -> None:
    """Every missed deadline is reported (CP-5)."""
    case = domain.assign(opened(), "alice", "sup", RECEIVED, POLICY).case
    out = domain.tick(case, datetime(2026, 11, 30, tzinfo=UTC), POLICY)
    breached = sorted(e.data["deadline"] for e in out.events if e.type == "complaint.deadline_breached")
    assert breached == ["formal_answer", "preliminary_opinion"]
    assert not [e for e in out.events if e.type == "complaint.deadline_approaching"]
    assert out.case.next_check_at is None


def test_unowned_case_escalates_once_after_the_grace_period() -> None:
    """A complaint without an owner is escalated (CP-4)."""
    case = opened()
    assert domain.tick(case, case.opened_at + timedelta(minutes=119), POLICY).events == []
    out = domain.tick(case, case.opened_at + POLICY.unowned_grace, POLICY)
    assert [(e.type, e.data["reason"]) for e in out.events] == [("complaint.escalated", "unowned")]
    assert domain.tick(out.case, case.opened_at + timedelta(hours=3), POLICY).events == []


def test_resolved_case_closes_itself_after_the_follow_up_window() -> None:
    """Closed once the follow-up window has passed (CP-3)."""
    case = domain.assign(opened(), "alice", "alice", RECEIVED, POLICY).case
    case = domain.resolve(case, "done", "alice", RECEIVED + timedelta(hours=1), POLICY).case
    assert domain.tick(case, case.resolved_at + timedelta(days=6), POLICY).events == []  # type: ignore[operator]
    out = domain.tick(case, case.resolved_at + POLICY.follow_up_window, POLICY)  # type: ignore[operator]
    assert [e.type for e in out.events] == ["complaint.closed"]
    assert out.case.status == Status.closed and out.case.history[-1].actor == domain.SYSTEM_ACTOR
    assert out.case.next_check_at is None


def test_waiting_on_the_customer_pauses_deadlines_when_configured() -> None:
    pausing = Policy(calendar=POLICY.calendar, pause_while_waiting=True)
    case = domain.assign(opened(pausing), "alice", "alice", RECEIVED, pausing).case
    case = domain.await_customer(case, "need the invoice number", "alice", RECEIVED + timedelta(hours=1), pausing).case
    assert case.next_due_at is None and not case.is_overdue(datetime(2026, 10, 11, tzinfo=CST))
    assert domain.tick(case, datetime(2026, 10, 11, tzinfo=CST), pausing).events == []
    with pytest.raises(IllegalTransition, match="already waiting"):
        domain.await_customer(case, "again", "alice", RECEIVED, pausing)
    # Answered on Monday 12 Oct: 8, 9, 10 (make-up Saturday) and 12 Oct were spent waiting.
    resumed = domain.customer_responded(case, "alice", datetime(2026, 10, 12, 10, tzinfo=CST), pausing).case
    assert resumed.deadlines[Deadline.preliminary_opinion].due_at == datetime(2026, 10, 15, 18, tzinfo=CST)
    assert resumed.deadlines[Deadline.formal_answer].due_at == datetime(2026, 11, 2, 18, tzinfo=CST)
    assert resumed.waiting_since is None and [s.step for s in resumed.history][-2:] == ["waiting_on_customer",
                                                                                       "customer_responded"]
    with pytest.raises(IllegalTransition, match="not waiting"):
        domain.customer_responded(resumed, "alice", RECEIVED, pausing)
    # Without the setting, waiting is recorded but the clock keeps running.
    running = domain.await_customer(domain.assign(opened(), "alice", "alice", RECEIVED, POLICY).case, "invoice?",
                                    "alice", RECEIVED, POLICY).case
    late = domain.tick(running, datetime(2026, 10, 11, tzinfo=CST), POLICY)
    assert "complaint.deadline_breached" in [e.type for e in late.events]


def test_erasure_removes_free_text_but_keeps_the_facts() -> None:
    """Erasure removes the personal free text of a case (CI-6)."""
    case = domain.give_preliminary_opinion(opened(), "call 13800000000", "a", RECEIVED, POLICY).case
    case = domain.reopen(domain.resolve(case, "refund to me@x.cn", "a", RECEIVED, POLICY).case, "my phone", "a",
                         RECEIVED, POLICY).case
    erased = domain.anonymise(case)
    text = repr(erased.to_doc())
    for secret in ("13800000000", "me@x.cn", "my phone", "charged twice"):
        assert secret not in text
    assert erased.status == case.status and erased.category == "billing" and erased.erased


def test_event_ids_are_deterministic_per_case_and_step() -> None:
    assert domain.event_id("c", "registered") == domain.event_id("c", "registered")
    assert domain.event_id("c", "registered") != domain.event_id("d", "registered")


# ---------------------------------------------------------------- property: any command sequence

COMMANDS = {
    "acknowledge": lambda c, t: domain.acknowledge(c, "a", t, POLICY),
    "assign": lambda c, t: domain.assign(c, "a", "a", t, POLICY),
    "opinion": lambda c, t: domain.give_preliminary_opinion(c, "o", "a", t, POLICY),
    "investigate": lambda c, t: domain.start_investigation(c, "r", "a", t, POLICY),
    "resolve": lambda c, t: domain.resolve(c, "r", "a", t, POLICY),
    "close": lambda c, t: domain.close(c, "a", t, POLICY),
    "reopen": lambda c, t: domain.reopen(c, "r", "a", t, POLICY),
    "tick": lambda c, t: domain.tick(c, t, POLICY),
    "await": lambda c, t: domain.await_customer(c, "why", "a", t, POLICY),
    "responded": lambda c, t: domain.customer_responded(c, "a", t, POLICY),
}
NEXT = {
    Status.received: {Status.acknowledged},
    Status.acknowledged: {Status.preliminary_opinion, Status.resolved},
    Status.preliminary_opinion: {Status.investigating, Status.resolved},
    Status.investigating: {Status.resolved},
    Status.resolved: {Status.closed, Status.reopened},
    Status.closed: {Status.reopened},
    Status.reopened: {Status.investigating, Status.resolved},
}


@settings(max_examples=120, deadline=None)
@given(auto=st.booleans(), script=st.lists(st.tuples(st.sampled_from(sorted(COMMANDS)),
                                                     st.integers(min_value=0, max_value=72 * 60)), max_size=15))
def test_any_command_sequence_keeps_the_lifecycle_legal(auto: bool, script: list[tuple[str, int]]) -> None:
    """No sequence of commands leaves the lifecycle (CP-3)."""
    policy = Policy(calendar=POLICY.calendar, auto_acknowledge=auto)
    case = domain.open_case(intake(), policy, RECEIVED).case
    now = RECEIVED
    seen: set[str] = set()
    for name, minutes in script:
        now += timedelta(minutes=minutes)
        before = case
        try:
            out = COMMANDS[name](case, now)
        except IllegalTransition:
            continue
        case = out.case
        if case.status != before.status:
            assert case.status in NEXT[before.status], (before.status, name, case.status)
        # Every event of a case has its own id: nothing is published twice under one id.
        for e in out.events:
            assert domain.event_id(case.id, e.key) not in seen
            seen.add(domain.event_id(case.id, e.key))
        # Ticking again at the same moment never emits more.
        assert domain.tick(case, now, policy).events == [] or name != "tick"
        if case.status in (Status.resolved, Status.closed):
            assert case.next_due_at is None
        assert len(case.history) >= len(before.history)


# ---------------------------------------------------------------- crisis and KPIs

RULE = crisis.CrisisRule(window=timedelta(minutes=60), bucket=timedelta(minutes=5), baseline_windows=4, min_count=5,
                         ratio=3.0)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_burst_over_the_baseline_spikes_and_a_steady_flow_does_not() -> None:
    """A sudden rise is told from a steady flow (CP-7)."""
    steady = [(NOW - timedelta(minutes=5 * i), 1) for i in range(60)]  # 12 per hour for 5 hours
    reading = crisis.read(steady, NOW, RULE)
    assert reading.count == 12 and reading.baseline == 12 and not reading.spiking
    burst = [*steady, (crisis.bucket_of(NOW, RULE.bucket), 30)]
    assert crisis.read(burst, NOW, RULE).spiking
    quiet_burst = [(crisis.bucket_of(NOW, RULE.bucket), 5)]
    assert crisis.read(quiet_burst, NOW, RULE).spiking and crisis.read(quiet_burst[:0], NOW, RULE).count == 0


def test_alert_ids_are_stable_per_episode() -> None:
    assert crisis.alert_id("category", "billing", 1) == crisis.alert_id("category", "billing", 1)
    assert crisis.alert_id("category", "billing", 1) != crisis.alert_id("category", "billing", 2)


def test_kpis_count_sla_resolution_and_first_contact() -> None:
    """SLA per deadline, resolution and first contact (KP-1); breaches counted (CP-5); root causes (CP-6)."""
    t = RECEIVED + timedelta(hours=1)
    fast = domain.resolve(domain.assign(opened(), "alice", "alice", t, POLICY, team="north").case, "ok", "alice", t,
                          POLICY, apology=True, root_cause="billing_error").case
    slow = domain.assign(opened(external_ref="REF-2"), "bob", "bob", t, POLICY, team="south").case
    slow = domain.tick(slow, datetime(2026, 10, 12, tzinfo=CST), POLICY).case  # preliminary opinion breached
    report = kpis.compute([fast, slow], datetime(2026, 10, 12, tzinfo=CST))
    overall = report["overall"]
    assert overall["counts"]["received"] == 2 and overall["counts"]["resolved"] == 1
    assert overall["resolution_rate"] == 0.5 and overall["first_contact_resolution"] == 1.0
    assert overall["sla"]["preliminary_opinion"] == {"met": 1, "breached": 1, "pending": 0, "compliance": 0.5}
    assert overall["sla"]["acknowledge"]["compliance"] == 1.0
    assert overall["sla"]["formal_answer"]["pending"] == 1
    assert overall["outcomes"]["root_causes"] == {"billing_error": 1}
    assert set(report["by_owner"]) == {"alice", "bob"} and set(report["by_team"]) == {"north", "south"}
    assert report["by_owner"]["bob"]["counts"]["breaches"] == 1


# ---------------------------------------------------------------- KP-1: what the indicators mean (docs/kpis.md)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
PERIOD_END = RECEIVED + 30 * DAY


def overall(cases: list[Case], end: datetime = PERIOD_END, hours: float = 24) -> dict[str, Any]:
    return kpis.compute(cases, end + DAY, end=end, first_contact=timedelta(hours=hours))["overall"]


def test_an_auto_acknowledged_case_resolved_after_three_days_is_not_first_contact() -> None:
    """KP-1: automatic acknowledgement is not a contact; a formal answer 3 days later is no first-contact one."""
    late = domain.resolve(opened(), "explained", "alice", RECEIVED + 3 * DAY, POLICY).case
    assert late.first_contact_resolution is True  # the case flag still says "straight from acknowledged"
    assert kpis.first_contact_resolved(late) is False
    assert overall([late])["first_contact_resolution"] == 0.0 and overall([late])["counts"]["first_contact"] == 0
    soon = domain.resolve(opened(), "explained", "alice", RECEIVED + 2 * HOUR, POLICY).case
    assert kpis.first_contact_resolved(soon) is True and overall([late, soon])["first_contact_resolution"] == 0.5
    assert kpis.first_contact_resolved(domain.resolve(opened(), "ok", "alice", RECEIVED + 24 * HOUR, POLICY).case)
    # The window is a setting (COMPLAINTS_FIRST_CONTACT_HOURS).
    assert overall([soon], hours=1)["first_contact_resolution"] == 0.0
    assert overall([late], hours=80)["counts"]["first_contact"] == 1


def test_a_preliminary_opinion_or_a_reopening_is_not_first_contact() -> None:
    """KP-1: a case that needed a preliminary opinion, or was reopened, was not solved at the first contact."""
    t = RECEIVED + HOUR
    opinion = domain.give_preliminary_opinion(opened(), "looking", "alice", t, POLICY).case
    assert not kpis.first_contact_resolved(domain.resolve(opinion, "ok", "alice", t, POLICY).case)
    answered = domain.resolve(opened(), "ok", "alice", t, POLICY).case
    again = domain.resolve(domain.reopen(answered, "no", "alice", t, POLICY).case, "ok", "alice", t, POLICY).case
    assert kpis.first_contact_resolved(answered) and not kpis.first_contact_resolved(again)


def test_a_reassigned_case_is_not_first_contact() -> None:
    """KP-1: only the first owner resolves at the first contact: not after a reassignment, not someone else."""
    t = RECEIVED + timedelta(minutes=10)
    alice = domain.assign(opened(), "alice", "alice", t, POLICY).case
    moved = domain.assign(alice, "bob", "sue", t + HOUR, POLICY).case
    assert kpis.owners_named(moved) == ["alice", "bob"]
    assert not kpis.first_contact_resolved(domain.resolve(moved, "ok", "bob", t + 2 * HOUR, POLICY).case)
    assert not kpis.first_contact_resolved(domain.resolve(alice, "ok", "sue", t + 2 * HOUR, POLICY).case)
    retaken = domain.assign(alice, "alice", "alice", t + HOUR, POLICY, team="north").case  # same owner again
    by_alice = domain.resolve(retaken, "ok", "alice", t + 2 * HOUR, POLICY).case
    assert kpis.first_contact_resolved(by_alice)
    # Reassigned after the answer: the answer was still the first owner's.
    assert kpis.first_contact_resolved(domain.assign(by_alice, "bob", "sue", t + 3 * HOUR, POLICY).case)
    # Erasure keeps the facts of a single-owner case; an erased reassignment note no longer names anyone.
    assert kpis.first_contact_resolved(domain.anonymise(domain.resolve(alice, "ok", "alice", t + HOUR, POLICY).case))
    assert kpis.owners_named(domain.anonymise(moved)) == [None, "bob"]
    assert not kpis.first_contact_resolved(domain.anonymise(by_alice))  # two assignments, the first unknown now


def test_a_reopened_case_still_open_at_the_period_end_is_not_resolved() -> None:
    """KP-1: the resolution rate counts a formal answer standing at the period's end, not one taken back."""
    answered = domain.resolve(opened(), "ok", "alice", RECEIVED + HOUR, POLICY).case
    reopened = domain.reopen(answered, "no", "alice", RECEIVED + 2 * DAY, POLICY).case
    report = overall([reopened], end=RECEIVED + 5 * DAY)
    assert report["resolution_rate"] == 0.0 and report["counts"]["resolved"] == 1 and report["counts"]["resolved_at_end"] == 0
    assert overall([reopened], end=RECEIVED + DAY)["resolution_rate"] == 1.0  # reopened after that period's end
    again = domain.resolve(reopened, "refunded", "alice", RECEIVED + 3 * DAY, POLICY).case
    closed = domain.close(answered, "sue", RECEIVED + DAY, POLICY).case
    assert overall([again, closed, opened(external_ref="REF-2")], end=RECEIVED + 5 * DAY)["resolution_rate"] == 0.6667


# Random case histories: what each command did, kept by the test itself, beside the case it built.
OWNERS = ("alice", "bob", "carol")
ACTORS = ("owner", "alice", "bob", "sue")  # "owner": whoever owns the case then
COMMAND_NAMES = ("acknowledge", "assign", "opinion", "investigate", "resolve", "reopen", "close", "wait")
delays = st.one_of(st.sampled_from([0, 60, 24 * 60, 24 * 60 + 1, 3 * 24 * 60]), st.integers(0, 4 * 24 * 60))
histories = st.lists(st.tuples(st.integers(0, 10 * 24 * 60), st.booleans(),  # receipt (minutes), auto-acknowledge
                               st.lists(st.tuples(st.sampled_from(COMMAND_NAMES), st.sampled_from(OWNERS),
                                                  st.sampled_from(ACTORS), delays), max_size=9)),
                     min_size=1, max_size=6)


@dataclass
class Done:
    """One command the case accepted: what, by whom, when, and the owner and status it left."""

    command: str
    actor: str
    at: datetime
    owner: str | None
    status: Status


def command(case: Case, name: str, owner: str, actor: str, at: datetime, policy: Policy) -> domain.Outcome:
    if name == "acknowledge":
        return domain.acknowledge(case, actor, at, policy)
    if name == "assign":
        return domain.assign(case, owner, actor, at, policy)
    if name == "opinion":
        return domain.give_preliminary_opinion(case, "looking", actor, at, policy)
    if name == "investigate":
        return domain.start_investigation(case, "why", actor, at, policy)
    if name == "resolve":
        return domain.resolve(case, "answer", actor, at, policy)
    if name == "reopen":
        return domain.reopen(case, "not solved", actor, at, policy)
    if name == "close":
        return domain.close(case, actor, at, policy)
    if case.waiting_since is None:
        return domain.await_customer(case, "details?", actor, at, policy)
    return domain.customer_responded(case, actor, at, policy)


def play(n: int, receipt: int, auto: bool, script: list[tuple[str, str, str, int]]) -> tuple[Case, list[Done]]:
    policy = Policy(calendar=POLICY.calendar, auto_acknowledge=auto)
    received = RECEIVED + timedelta(minutes=receipt)
    case = domain.open_case(intake(external_ref=f"REF-{n}", received_at=received), policy, received).case
    done: list[Done] = []
    at = received
    for name, owner, who, delay in script:
        at += timedelta(minutes=delay)
        actor = (case.owner or "alice") if who == "owner" else who
        try:
            case = command(case, name, owner, actor, at, policy).case
        except IllegalTransition:
            continue
        done.append(Done(name, actor, at, owner if name == "assign" else case.owner, case.status))
    return case, done


def reference_first_contact(received: datetime, done: list[Done], within: timedelta) -> bool:
    """By hand: no reopening ever; before the first answer, no opinion or investigation and one owner at most;
    the answer by that owner (or by anyone when nobody owned the case), within the window of receipt."""
    if any(d.command == "reopen" for d in done):
        return False
    owners: list[str] = []
    for d in done:
        if d.command in ("opinion", "investigate"):
            return False
        if d.command == "assign":
            owners.append(d.owner or "")
        if d.command == "resolve":
            return len(set(owners)) <= 1 and d.actor in (owners or [d.actor]) and d.at - received <= within
    return False


def reference_resolved_at(done: list[Done], end: datetime) -> bool:
    """By hand: the status the case was in at the period's end is resolved or closed."""
    status = Status.received
    for d in done:
        if d.at < end:
            status = d.status
    return status in (Status.resolved, Status.closed)


@settings(max_examples=150, deadline=None)
@given(cases=histories, end_after=st.integers(0, 20 * 24 * 60), hours=st.sampled_from([1, 24, 72]))
def test_first_contact_and_resolution_rate_match_a_hand_computed_reference(
        cases: list[tuple[int, bool, list[tuple[str, str, str, int]]]], end_after: int, hours: int) -> None:
    """KP-1 property: over random histories (receipt, optional acknowledgement, opinions, investigations, owner
    changes, answers at any delay, reopenings, new answers, closing), FCR and the resolution rate are what a
    hand-written reference computes from the commands themselves."""
    end = RECEIVED + timedelta(days=10, minutes=1 + end_after)
    within = timedelta(hours=hours)
    played = [play(n, receipt, auto, script) for n, (receipt, auto, script) in enumerate(cases)]
    now = max([end] + [d.at for _, done in played for d in done]) + HOUR
    first_contact = resolved = standing = 0
    for case, done in played:
        fcr = reference_first_contact(case.received_at, done, within)
        stands = reference_resolved_at(done, end)
        assert kpis.first_contact_resolved(case, within) is fcr, (done, case.history)
        assert kpis.answer_stands(case, end) is stands, (done, case.history)
        first_contact += fcr
        resolved += any(d.command == "resolve" for d in done)
        standing += stands
    report = kpis.compute([case for case, _ in played], now, end=end, first_contact=within)["overall"]
    assert (report["counts"]["first_contact"], report["counts"]["resolved"], report["counts"]["resolved_at_end"]) == (
        first_contact, resolved, standing)
    assert report["first_contact_resolution"] == (round(first_contact / resolved, 4) if resolved else None)
    assert report["resolution_rate"] == round(standing / len(played), 4)


bucket_counts = st.lists(st.tuples(st.integers(min_value=0, max_value=12 * 5 - 1), st.integers(min_value=0, max_value=50)),
                         max_size=40)


@settings(max_examples=150, deadline=None)
@given(history=bucket_counts, burst=st.integers(min_value=1, max_value=100))
def test_more_complaints_now_never_lower_the_reading(history: list[tuple[int, int]], burst: int) -> None:
    """The crisis reading rises with the complaints (CP-7)."""
    counts = [(crisis.bucket_of(NOW, RULE.bucket) - RULE.bucket * i, n) for i, n in history]
    before = crisis.read(counts, NOW, RULE)
    after = crisis.read([*counts, (crisis.bucket_of(NOW, RULE.bucket), burst)], NOW, RULE)
    assert after.count == before.count + burst and after.baseline == before.baseline
    assert before.threshold >= RULE.min_count and (after.spiking or not before.spiking)
    # Counts older than the window and its baseline never matter.
    ancient = (NOW - RULE.lookback - RULE.window, 1000)
    assert crisis.read([*counts, ancient], NOW, RULE) == before


# ---------------------------------------------------------------- case numbers, teams, queues, status links


def test_case_numbers_are_the_year_and_a_six_digit_sequence() -> None:
    assert domain.case_number(2026, 123) == "TS-2026-000123"
    assert domain.case_number(2027, 1_234_567) == "TS-2027-1234567"  # a busy year grows a digit, never wraps
    assert domain.is_case_number("TS-2026-000123") and not domain.is_case_number("TS-26-123")
    assert not domain.is_case_number("1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed")
    # The year of the local day of receipt: 31 Dec 16:30 UTC is already New Year's Day in Shanghai.
    assert POLICY.number_year(datetime(2026, 12, 31, 16, 30, tzinfo=UTC)) == 2027
    assert POLICY.number_year(datetime(2026, 12, 31, 15, 59, tzinfo=UTC)) == 2026


def test_the_number_is_on_the_case_and_in_every_step_event() -> None:
    out = domain.open_case(intake(), POLICY, RECEIVED, number="TS-2026-000007")
    assert out.case.number == "TS-2026-000007"
    assert [e.data["number"] for e in out.events] == ["TS-2026-000007", "TS-2026-000007"]
    assigned = domain.assign(out.case, "alice", "alice", RECEIVED, POLICY)
    assert assigned.events[0].data["number"] == "TS-2026-000007"
    late = domain.tick(assigned.case, RECEIVED + timedelta(days=30), POLICY)
    assert {e.data["number"] for e in late.events} == {"TS-2026-000007"}
    assert domain.open_case(intake(), POLICY, RECEIVED).case.number is None  # e.g. the store contract's cases


def test_intake_routes_the_case_to_a_team_and_assignment_keeps_it() -> None:
    policy = Policy(calendar=POLICY.calendar, team_by_category={"billing": "finance"}, default_team="front-desk")
    billing, delivery = opened(policy), opened(policy, category="delivery")
    assert (billing.team, delivery.team) == ("finance", "front-desk")
    assert opened().team == domain.DEFAULT_TEAM == "general"
    taken = domain.assign(billing, "alice", "alice", RECEIVED, policy).case
    assert (taken.owner, taken.team) == ("alice", "finance")
    moved = domain.assign(taken, "bob", "sue", RECEIVED, policy, team="escalations")
    assert moved.case.team == "escalations" and moved.events[0].data["team"] == "escalations"
    assert moved.case.history[-1].note == "from alice; team finance → escalations"
    # Only a supervisor moves a case to another team; naming its own team is no move.
    domain.ensure_may_move(domain.Actor("sue", supervisor=True), taken, "escalations")
    domain.ensure_may_move(domain.Actor("alice"), taken, "finance")
    domain.ensure_may_move(domain.Actor("alice"), taken, None)
    with pytest.raises(NotPermitted, match="only a supervisor moves it"):
        domain.ensure_may_move(domain.Actor("alice", team="north"), taken, "north")


def test_next_deadline_names_the_nearest_open_one() -> None:
    case = opened()
    assert case.next_deadline() == "preliminary_opinion" and case.next_due_at == datetime(2026, 10, 10, 18, tzinfo=CST)
    waiting = domain.open_case(intake(), Policy(calendar=POLICY.calendar, auto_acknowledge=False), RECEIVED).case
    assert waiting.next_deadline() == "acknowledge"
    resolved = domain.resolve(case, "done", "a", RECEIVED, POLICY).case
    assert resolved.next_deadline() is None and resolved.next_due_at is None


def test_queue_parameters_take_several_values_and_name_the_bad_one() -> None:
    q = domain.queue
    assert q.values("status", ["received,reopened", " acknowledged "], q.STATUSES) == {"received", "reopened",
                                                                                       "acknowledged"}
    assert q.values("status", None, q.STATUSES) is None and q.values("category", [","]) is None
    assert q.values("category", "any thing") == {"any thing"}  # categories are free: not checked
    assert q.values("channel", "survey,web", q.CHANNELS) == {"survey", "web"}
    with pytest.raises(domain.InvalidQuery) as bad:
        q.values("severity", ["high", "extreme"], q.SEVERITIES)
    assert bad.value.status == 422 and bad.value.detail.startswith("query.severity: unknown value 'extreme'")
    assert bad.value.extra["errors"] == [{"location": "query.severity", "message": bad.value.detail[len("query.severity: "):]}]
    assert q.statuses(None, True) == {"received", "acknowledged", "preliminary_opinion", "investigating", "reopened"}
    assert q.statuses(None, False) == {"resolved", "closed"}
    assert q.statuses("closed,reopened", True) == {"reopened"}
    assert q.order(None) == domain.Order.received and q.order("deadline") == domain.Order.deadline
    with pytest.raises(domain.InvalidQuery, match=r"query\.sort"):
        q.order("priority")
    assert q.owner("none") == q.Owner(None, unowned=True) and q.owner("alice") == q.Owner("alice")
    assert q.owner(None) is None and q.owner(" ") is None


LINKS = domain.StatusLinks(secret="a-secret-of-at-least-thirty-two-bytes",  # noqa: S106 - a test key
                           base_url="http://127.0.0.1:8106/c/", valid_for=timedelta(days=30))


def test_status_links_are_signed_expiring_and_name_one_case() -> None:
    url = LINKS.url("case-1", RECEIVED)
    assert url.startswith("http://127.0.0.1:8106/c/") and "case-1" not in url
    token = url.rsplit("/", 1)[1]
    assert LINKS.read(token, RECEIVED + timedelta(days=29)) == "case-1"
    with pytest.raises(domain.StatusLinkExpired) as expired:
        LINKS.read(token, RECEIVED + timedelta(days=30))
    assert expired.value.status == 410
    payload, signature = token.split(".")
    other = LINKS.token("case-2", RECEIVED).split(".")
    forged = [f"{other[0]}.{signature}", f"{payload}.{other[1]}", payload, "", "x.y", "ü.ü", f"{payload}.{signature}x",
              domain.StatusLinks("another-secret", "", timedelta(days=30)).token("case-1", RECEIVED)]
    for bad in forged:
        with pytest.raises(domain.StatusLinkInvalid) as invalid:
            LINKS.read(bad, RECEIVED)
        assert invalid.value.status == 404


def test_the_acknowledgement_carries_the_status_link_when_there_is_one() -> None:
    out = domain.open_case(intake(), Policy(calendar=POLICY.calendar, status_links=LINKS), RECEIVED)
    registered, acknowledged = (e.data for e in out.events)
    assert "status_link" not in registered
    assert LINKS.read(acknowledged["status_link"].rsplit("/", 1)[1], RECEIVED) == out.case.id
    assert "status_link" not in domain.open_case(intake(), POLICY, RECEIVED).events[1].data
