"""The console's pure rules: deadline states and countdowns, allowed actions, the queue, survey forms, sessions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from guanxi_console import domain
from guanxi_console.domain import FormProblems, QueueFilter, Session, customers, status

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def case(**over: Any) -> dict[str, Any]:
    due = {"acknowledge": NOW + timedelta(hours=2), "preliminary_opinion": NOW + timedelta(days=3),
           "formal_answer": NOW + timedelta(days=20)}
    base: dict[str, Any] = {
        "id": "c1", "status": "received", "owner": None, "severity": "normal", "channel": "web",
        "deadlines": {**{k: v.isoformat() for k, v in due.items()}, "investigation": None},
        "sla": {k: {"due_at": v.isoformat(), "met_at": None, "breached": False} for k, v in due.items()},
    }
    base.update(over)
    return base


def test_deadlines_come_in_their_fixed_order_with_their_state() -> None:
    c = case()
    c["sla"]["acknowledge"]["met_at"] = (NOW - timedelta(minutes=5)).isoformat()
    views = domain.deadline_views(c, NOW)
    assert [v.name for v in views] == ["acknowledge", "preliminary_opinion", "investigation", "formal_answer"]
    assert [v.state for v in views] == ["met", "pending", "not_started", "pending"]
    assert views[1].seconds_left == pytest.approx(3 * 86400)
    assert not views[0].live and views[1].live and not views[2].live


def test_a_deadline_past_due_is_breached_with_negative_time_left() -> None:
    views = domain.deadline_views(case(), NOW + timedelta(hours=3))
    assert views[0].state == "breached"
    assert views[0].seconds_left == pytest.approx(-3600)
    assert domain.next_deadline(case(), NOW + timedelta(hours=3)).name == "acknowledge"  # type: ignore[union-attr]


def test_met_late_when_met_after_due() -> None:
    c = case()
    c["sla"]["acknowledge"]["met_at"] = (NOW + timedelta(hours=5)).isoformat()
    assert domain.deadline_views(c, NOW)[0].state == "met_late"


def test_countdown_parts() -> None:
    assert domain.countdown_parts(2 * 86400 + 3 * 3600 + 4 * 60 + 59) == (False, 2, 3, 4)
    assert domain.countdown_parts(-90 * 60) == (True, 0, 1, 30)
    assert domain.countdown_parts(-30) == (True, 0, 0, 0)


@pytest.mark.parametrize(("status", "expected"), [
    ("received", ["take", "acknowledge", "await_customer"]),
    ("acknowledged", ["take", "preliminary_opinion", "resolve", "await_customer"]),
    ("preliminary_opinion", ["take", "investigation", "resolve", "await_customer"]),
    ("investigating", ["take", "resolve", "await_customer"]),
    ("reopened", ["take", "investigation", "resolve", "await_customer"]),
    ("resolved", ["take", "close", "reopen"]),
    ("closed", ["reopen"]),
])
def test_actions_follow_the_lifecycle_table(status: str, expected: list[str]) -> None:
    assert [a.name for a in domain.allowed_actions(case(status=status), "alice")] == expected


def test_owned_cases_offer_no_take_and_waiting_cases_offer_customer_responded() -> None:
    names = [a.name for a in domain.allowed_actions(case(status="acknowledged", owner="alice",
                                                         waiting_on_customer_since=NOW.isoformat()), "alice")]
    assert names == ["preliminary_opinion", "resolve", "customer_responded"]


def test_action_body_requires_text_and_checks_choices() -> None:
    resolve = domain.ACTIONS["resolve"]
    with pytest.raises(FormProblems) as refused:
        domain.action_body(resolve, {"resolution": "  ", "root_cause": "astrology"}, "alice")
    assert set(refused.value.problems) == {"resolution", "root_cause"}
    body = domain.action_body(resolve, {"resolution": " refunded ", "apology": "on", "root_cause": "billing",
                                        "compensation": ""}, "alice")
    assert body == {"resolution": "refunded", "apology": True, "root_cause": "billing"}
    assert domain.action_body(domain.ACTIONS["take"], {}, "alice") == {"owner": "alice"}
    assert domain.action_body(domain.ACTIONS["close"], {}, "alice") == {"confirmed_by_customer": False}


def test_queue_mine_and_unassigned_sorted_by_nearest_deadline() -> None:
    soon = case(id="soon", owner="alice")
    soon["sla"]["acknowledge"]["due_at"] = (NOW + timedelta(minutes=10)).isoformat()
    late = case(id="late", owner="alice", status="acknowledged")
    late["sla"]["acknowledge"]["met_at"] = NOW.isoformat()
    breached = case(id="breached")
    breached["sla"]["acknowledge"]["due_at"] = (NOW - timedelta(hours=1)).isoformat()
    others = case(id="bobs", owner="bob")
    closed = case(id="closed", status="closed")
    queue = domain.build_queue("alice", [late, soon], [breached, case(id="fresh"), others, closed, soon],
                               QueueFilter(), NOW)
    assert [r.case["id"] for r in queue.mine] == ["soon", "late"]
    assert [r.case["id"] for r in queue.unassigned] == ["breached", "fresh"]
    filtered = domain.build_queue("alice", [late, soon], [], QueueFilter.parse(["acknowledged"]), NOW)
    assert [r.case["id"] for r in filtered.mine] == ["late"]


def test_queue_filter_drops_unknown_values_and_round_trips_through_its_query() -> None:
    assert QueueFilter.parse(["nonsense"], "urgent", "<script>", "billing", "x") == QueueFilter((), "urgent", None,
                                                                                              "billing", "team")
    assert QueueFilter(severity="urgent").query() == "severity=urgent"
    chosen = QueueFilter.parse(["reopened", "received", "closed"], None, "phone", None, "all")
    assert chosen.statuses == ("received", "reopened")  # open statuses only, in lifecycle order
    assert chosen.query() == "status=received&status=reopened&channel=phone&scope=all"
    assert QueueFilter().scope == "team"  # an agent works from its own team's unassigned cases
    assert QueueFilter.from_query(chosen.query()) == chosen


def test_the_queue_plan_uses_the_server_filters_when_the_api_has_them() -> None:
    old = frozenset({"customer_id", "status", "owner", "overdue", "limit", "cursor"})
    filters = QueueFilter.parse(["received", "acknowledged"], "urgent", None, "billing", "team")
    plan = domain.plan_queue("alice", "team-east", filters, old, 100)
    assert not plan.server_sorted and plan.team is None
    assert plan.mine == [("limit", "100"), ("owner", "alice")] and plan.unassigned == [("limit", "100")]
    new = old | {"open", "sort", "severity", "channel", "category", "team", "number"}
    plan = domain.plan_queue("alice", "team-east", filters, new, 100)
    assert plan.server_sorted and plan.team == "team-east"
    common = [("limit", "100"), ("open", "true"), ("sort", "deadline"), ("status", "received"),
              ("status", "acknowledged"), ("severity", "urgent"), ("category", "billing")]
    assert plan.mine == [*common, ("owner", "alice")]
    assert plan.unassigned == [*common, ("owner", "none"), ("team", "team-east")]
    assert domain.plan_queue("alice", None, filters, new, 100).team is None  # no team: every team's


def test_a_server_sorted_queue_keeps_the_apis_order() -> None:
    later = case(id="later")
    sooner = case(id="sooner")
    sooner["sla"]["acknowledge"]["due_at"] = (NOW + timedelta(minutes=5)).isoformat()
    assert [r.case["id"] for r in domain.build_queue("alice", [], [later, sooner], QueueFilter(), NOW).unassigned] == [
        "sooner", "later"]
    kept = domain.build_queue("alice", [], [later, sooner], QueueFilter(), NOW, server_sorted=True)
    assert [r.case["id"] for r in kept.unassigned] == ["later", "sooner"]


def test_saved_view_names_are_checked() -> None:
    assert domain.check_view_name("  紧急   投诉 ") == "紧急 投诉"
    for bad in ("", "   ", "<b>", "x" * 61):
        with pytest.raises(FormProblems):
            domain.check_view_name(bad)


def test_case_label_is_the_number_once_there_is_one() -> None:
    assert domain.case_label({"id": "0123456789abcdef"}) == "01234567"
    assert domain.case_label({"id": "0123456789abcdef", "number": "TS-2026-000123"}) == "TS-2026-000123"
    assert domain.CASE_NUMBER.match("TS-2026-000123") and not domain.CASE_NUMBER.match("TS-26-1")


@pytest.mark.parametrize(("typed", "kind", "value"), [
    ("ts-2026-000123", "case_number", "TS-2026-000123"),
    ("+86 139 0013 9000", "phone", "+8613900139000"),
    ("139-0013-9000", "phone", "+8613900139000"),
    ("Han.Mei@Example.com", "email", "han.mei@example.com"),
    ("5b0e7c1e-3a53-4cf4-8b42-6a1f2f1c9d10", "id", "5b0e7c1e-3a53-4cf4-8b42-6a1f2f1c9d10"),
    ("韩梅梅", "name", "韩梅梅"),
    ("Han Meimei", "name", "Han Meimei"),
    ("   ", "empty", ""),
])
def test_the_search_box_tells_what_was_typed(typed: str, kind: str, value: str) -> None:
    query = domain.search.classify(typed)
    assert (query.kind, query.value) == (kind, value)


def test_an_id_is_looked_up_as_customer_and_complaint() -> None:
    assert domain.search.classify("c-42").lookups == ("customer_id", "complaint_id")
    assert domain.search.classify("abc123").lookups == ("customer_id", "complaint_id", "customer_name")


QUESTIONS = [
    {"id": "satisfaction", "type": "csat", "required": True, "min": 0, "max": 100},
    {"id": "recommend", "type": "nps", "required": True, "min": 0, "max": 10},
    {"id": "resolved", "type": "choice", "options": [{"value": "yes"}, {"value": "no"}]},
    {"id": "comment", "type": "text", "max_length": 10},
]


def test_survey_answers_are_checked_against_the_questions() -> None:
    assert domain.survey_answers(QUESTIONS, {"satisfaction": "90", "recommend": "0", "comment": " ok "}) == {
        "satisfaction": 90, "recommend": 0, "comment": "ok"}
    with pytest.raises(FormProblems) as refused:
        domain.survey_answers(QUESTIONS, {"satisfaction": "101", "resolved": "maybe", "comment": "x" * 11})
    assert set(refused.value.problems) == {"satisfaction", "recommend", "resolved", "comment"}


def test_session_states() -> None:
    s = Session("id", "alice", "Alice", ["agent"], "team-east", "tok", NOW + timedelta(hours=8), NOW, NOW, "zh-CN",
                "Asia/Shanghai")
    assert domain.session_state(s, NOW + timedelta(minutes=29), 30, 8) == "active"
    assert domain.session_state(s, NOW + timedelta(minutes=30), 30, 8) == "idle"
    s.last_seen = NOW + timedelta(hours=7, minutes=59)
    assert domain.session_state(s, NOW + timedelta(hours=8), 30, 9) == "token_expired"
    s.token_expires_at = NOW + timedelta(days=1)
    assert domain.session_state(s, NOW + timedelta(hours=8), 30, 8) == "too_old"


def test_the_roster_has_two_teams_of_agents_and_every_other_role() -> None:
    teams = {m.team for m in domain.ROSTER if m.role == "agent"}
    assert len(teams) == 2
    assert {m.role for m in domain.ROSTER} == {"agent", "supervisor", "admin", "auditor"}


TODAY = date(2026, 11, 26)


def test_a_new_customer_form_is_checked_field_by_field() -> None:
    body = customers.new_customer_body({"name": " 李雷 ", "phone": "139 0013 9000", "email": "li@example.com",
                                        "consents": ["survey", "care"], "kind": "person", "birthday": ""}, TODAY)
    assert body == {"name": "李雷", "phone": "+8613900139000", "email": "li@example.com", "kind": "person",
                    "consents": ["survey", "care"]}
    with pytest.raises(FormProblems) as refused:
        customers.new_customer_body({"name": "", "phone": "12345", "email": "nope", "birthday": "2990-01-01",
                                     "consents": ["spam"]}, TODAY)
    assert refused.value.problems == {"name": customers.REQUIRED, "phone": customers.PHONE_FORMAT,
                                      "email": customers.EMAIL_INVALID, "birthday": customers.BIRTHDAY_RANGE,
                                      "consents": "Choose one of the options."}


def test_a_correction_sends_only_what_changed_and_never_empties_personal_fields() -> None:
    current = {"name": "李雷", "company": "Acme", "occupation": None, "kind": "person", "language": "zh"}
    body = customers.correction_body({"name": "李雷", "phone": "", "email": "new@example.com", "company": "",
                                      "occupation": "Engineer", "kind": "person", "language": "zh"}, current, TODAY)
    assert body == {"email": "new@example.com", "company": None, "occupation": "Engineer"}
    with pytest.raises(FormProblems) as refused:
        customers.correction_body({"name": "", "phone": "abc"}, current, TODAY)
    assert set(refused.value.problems) == {"name", "phone"}


def test_the_customer_apis_422_errors_land_beside_their_fields() -> None:
    errors = [{"location": "body.phone", "message": "phone must be in E.164 form", "code": "phone_format"},
              {"location": "body.email", "message": "String should have at most 254 characters"},
              {"location": "query.x", "message": "?"}]
    assert customers.api_problems(errors, ["phone", "email"]) == {
        "phone": customers.PHONE_FORMAT, "email": customers.NOT_ACCEPTED, "": customers.NOT_ACCEPTED}


def test_agents_must_give_a_purpose_for_clear_values() -> None:
    assert customers.reveal_purpose(" customer  called ", ["agent"]) == "customer called"
    with pytest.raises(FormProblems):
        customers.reveal_purpose("", ["agent"])
    with pytest.raises(FormProblems):
        customers.reveal_purpose("ok", ["agent"])
    assert customers.reveal_purpose("", ["supervisor"]) is None  # the API records "supervision"
    assert customers.may_export_or_erase(["admin"]) and not customers.may_export_or_erase(["agent"])


def test_erasure_needs_a_reason_and_the_word() -> None:
    assert customers.erase_reason({"reason": "customer asked", "confirm": "erase"}) == "customer asked"
    with pytest.raises(FormProblems) as refused:
        customers.erase_reason({"reason": "x", "confirm": "yes"})
    assert set(refused.value.problems) == {"reason", "confirm"}


def test_a_phone_complaint_form_becomes_the_intake_body() -> None:
    assert domain.intake_body("c-1", {"channel": "phone", "category": "billing", "severity": "high",
                                      "description": " 扣了两次费 ", "product": ""}) == {
        "customer_id": "c-1", "channel": "phone", "category": "billing", "severity": "high", "description": "扣了两次费"}
    with pytest.raises(FormProblems) as refused:
        domain.intake_body("c-1", {"channel": "fax", "category": "", "severity": "normal", "description": ""})
    assert set(refused.value.problems) == {"channel", "category", "description"}


def test_the_customers_status_page_reads_the_public_answer() -> None:
    shown = status.customer_status({
        "number": "TS-2026-000123", "status": "acknowledged", "received_at": "2026-09-30T10:00:00+08:00",
        "acknowledged_at": "2026-09-30T11:00:00+08:00", "resolved_at": None, "closed_at": None,
        "next_deadline": "preliminary_opinion", "next_due_at": "2026-10-10T18:00:00+08:00", "breached": False})
    assert shown.number == "TS-2026-000123" and shown.message == status.CUSTOMER_STATUS["acknowledged"]
    assert [m for m, _ in shown.steps] == [status.CUSTOMER_STEPS["received"], status.CUSTOMER_STEPS["acknowledged"]]
    assert shown.promises == [("First answer by", datetime.fromisoformat("2026-10-10T18:00:00+08:00"), False)]
    assert not shown.late and status.customer_status({"status": "investigating", "breached": True}).late
