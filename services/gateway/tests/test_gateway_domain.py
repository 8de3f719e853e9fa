"""Pure rules of the gateway: the role matrix, path templates, rate buckets and KPI targets."""

from __future__ import annotations

import pytest
from guanxi_gateway import domain
from guanxi_gateway.authn import roles_from_claims
from guanxi_shared.auth import Role
from hypothesis import given, settings
from hypothesis import strategies as st

A, S, AU, AD, IN = Role.agent, Role.supervisor, Role.auditor, Role.admin, Role.integration
EVERYONE = (A, S, AU, AD, IN)

# (method, path, roles allowed, owning service or None for the gateway itself)
MATRIX = [
    ("POST", "/api/v1/complaints", {A, S, AD, IN}, None),
    ("GET", "/api/v1/complaints", {A, S, AD}, "complaints"),
    ("GET", "/api/v1/complaints/5b0e7c1e", {A, S, AD}, "complaints"),
    ("POST", "/api/v1/complaints/5b0e7c1e/resolve", {A, S, AD}, "complaints"),
    ("POST", "/api/v1/interactions", {A, S, AD, IN}, None),
    ("GET", "/api/v1/interactions", {A, S, AD}, "customer"),
    ("POST", "/api/v1/purchases", {IN, AD}, None),
    ("POST", "/api/v1/customers", {A, S, AD}, "customer"),
    ("GET", "/api/v1/customers/c1", {A, S, AD}, "customer"),
    ("PATCH", "/api/v1/customers/c1", {A, S, AD}, "customer"),
    ("DELETE", "/api/v1/customers/c1", {A, S, AD}, "customer"),
    ("POST", "/api/v1/visits", {A, S, AD}, "customer"),
    ("GET", "/api/v1/surveys", {A, S, AD}, "surveys"),
    ("GET", "/api/v1/notifications", {A, S, AD}, "notifications"),
    ("GET", "/api/v1/templates", {S, AD}, "notifications"),
    ("PUT", "/api/v1/templates/ack", {AD}, "notifications"),
    ("GET", "/api/v1/audit/verify", {AU}, "audit"),
    ("GET", "/api/v1/audit/records", {AU}, "audit"),
    ("GET", "/api/v1/kpis", {S, AD}, None),
    ("GET", "/api/v1/kpis/complaints", {S, AD}, "complaints"),
]


@pytest.mark.parametrize(("method", "path", "roles", "service"), MATRIX)
def test_role_matrix_route_by_route(method: str, path: str, roles: set[Role], service: str | None) -> None:
    """Each role reaches only the routes its work needs (CF-1)."""
    rule = domain.find_rule(method, path)
    assert rule is not None and rule.service == service
    for role in EVERYONE:
        assert domain.allowed(rule, [role]) is (role in roles), (method, path, role)


def test_auditor_reaches_only_audit_and_integration_only_intake() -> None:
    """Auditors and integrations reach only their own routes (CF-1)."""
    for method, path, _, _ in MATRIX:
        rule = domain.find_rule(method, path)
        assert rule is not None
        assert domain.allowed(rule, [AU]) is path.startswith("/api/v1/audit")
        assert domain.allowed(rule, [IN]) is (method == "POST" and rule.service is None)


def test_the_survey_answer_and_complaint_status_links_are_public_and_nothing_else_is() -> None:
    rule = domain.find_rule("POST", "/api/v1/surveys/answer/tok.en")
    assert rule is not None and rule.public and rule.service == "surveys"
    status = domain.find_rule("GET", "/api/v1/complaints/status/tok.en")
    assert status is not None and status.public and status.service == "complaints"
    # Only reading: a command on the status path is no public route (nor a staff one).
    assert domain.find_rule("POST", "/api/v1/complaints/status/tok.en") == domain.find_rule("POST", "/api/v1/complaints/x")
    assert not domain.find_rule("POST", "/api/v1/complaints/status/tok.en").public  # type: ignore[union-attr]
    public = {r.prefix for r in domain.ROLE_MATRIX if r.public}
    assert public == {"/api/v1/surveys/answer", "/api/v1/complaints/status"}
    # A case id is not taken for the status route, and the status route is not a case.
    assert not domain.find_rule("GET", "/api/v1/complaints/statusx").public  # type: ignore[union-attr]
    index = domain.TemplateIndex([*domain.PUBLIC_TEMPLATES, "/api/v1/complaints/{complaint_id}"])
    assert index.match("/api/v1/complaints/status/secret.tok")[0] == "/api/v1/complaints/status/{token}"


def test_unknown_paths_and_methods() -> None:
    assert domain.find_rule("GET", "/api/v1/internal/customers/c1/contact-details") is None
    assert not domain.path_known("/api/v1/nothing")
    assert domain.find_rule("DELETE", "/api/v1/audit/verify") is None and domain.path_known("/api/v1/audit/verify")
    assert domain.find_rule("GET", "/api/v1/customersX") is None  # a prefix is a whole segment


def test_templates_prefer_literals_and_hide_ids() -> None:
    index = domain.TemplateIndex(["/api/v1/customers/{customer_id}", "/api/v1/customers/export",
                                  "/api/v1/complaints/{complaint_id}/resolve", "/api/v1/surveys/answer/{token}"])
    assert index.match("/api/v1/customers/export") == ("/api/v1/customers/export", {})
    assert index.match("/api/v1/customers/c-9") == ("/api/v1/customers/{customer_id}", {"customer_id": "c-9"})
    template, _ = index.match("/api/v1/surveys/answer/secret.token")
    assert template == "/api/v1/surveys/answer/{token}" and "secret" not in template
    assert index.match("/api/v1/visits/v1/report")[0] == "/api/v1/visits/{…}"
    assert domain.customer_of("/api/v1/customers/{id}", {"id": "c1"}) == "c1"
    assert domain.customer_of("/api/v1/complaints/{complaint_id}/resolve", {"complaint_id": "x"}) is None


@given(st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=200),
       st.integers(min_value=1, max_value=600), st.floats(min_value=1, max_value=50))
@settings(max_examples=150, deadline=None)
def test_rate_limiter_never_admits_more_than_burst_plus_refill(gaps: list[float], per_minute: int, burst: float) -> None:
    limiter = domain.RateLimiter(per_minute, burst)
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        wait = limiter.take("k", now)
        assert wait >= 0
        admitted += wait == 0
    assert admitted <= burst + now * per_minute / 60.0 + 1e-6


@given(st.integers(min_value=1, max_value=600))
def test_rate_limiter_waiting_the_advised_time_admits(per_minute: int) -> None:
    limiter = domain.RateLimiter(per_minute, 1.0)
    assert limiter.take("k", 0.0) == 0.0
    wait = limiter.take("k", 0.0)
    assert wait > 0 and int(domain.retry_after(wait)) >= 1
    assert limiter.take("k", wait + 1e-9) == 0.0
    assert limiter.take("other", 0.0) == 0.0  # buckets are per key


def test_kpis_beside_targets() -> None:
    """Each indicator beside its target (KP-1)."""
    indicators = {i["indicator"]: i for i in domain.assess({
        "complaints": {
            "by_owner": {"bob": {"first_contact_resolution": 0.1}},
            "overall": {"first_contact_resolution": 0.93, "resolution_rate": 85.0, "counts": {"received": 6},
                        "sla": {"acknowledge": {"met": 3, "compliance": 1.0}, "formal_answer": {"compliance": 0.8},
                                "investigation": {"compliance": None}}}},
        "surveys": {"avg_satisfaction": 87.5, "nps": 31, "response_rate": 0.4},
        "customer": {"churn": {"customers": 200, "at_risk": 14, "rate": 0.07},
                     "response_timeliness": {"timeliness_rate": 0.97}},
        "notifications": None,
    })}
    assert indicators["first_contact_resolution"]["met"] is True  # the overall figure, not one owner's
    assert indicators["first_contact_resolution"]["source"] == "complaints:overall.first_contact_resolution"
    assert indicators["resolution_rate"]["value"] == pytest.approx(0.85) and indicators["resolution_rate"]["met"] is False
    assert indicators["average_satisfaction"]["met"] is True and indicators["average_satisfaction"]["target"] == 85.0
    assert indicators["churn_rate"]["value"] == 0.07 and indicators["churn_rate"]["met"] is False
    assert indicators["churn_rate"]["comparison"] == "<="
    assert indicators["sla_formal_answer"]["met"] is False and indicators["sla_acknowledge"]["met"] is True
    assert indicators["sla_investigation"]["value"] is None and indicators["sla_investigation"]["met"] is None
    assert indicators["response_timeliness"]["met"] is False
    assert indicators["nps"]["value"] == 31 and indicators["nps"]["met"] is None
    assert indicators["complaint_rate"]["value"] == 0.03


def test_roles_from_claims_ignores_unknown_and_service() -> None:
    assert roles_from_claims({"roles": ["agent", "root", "service"]}, "roles") == [Role.agent]
    assert roles_from_claims({"realm_access": {"roles": ["auditor"]}}, "realm_access.roles") == [Role.auditor]
    assert roles_from_claims({"scope": "admin integration"}, "scope") == [Role.admin, Role.integration]
    assert roles_from_claims({}, "roles") == []


def test_input_hygiene() -> None:
    assert domain.has_control_characters("/api/v1/customers/a\x01b")
    assert domain.has_control_characters("/api/v1/customers/\x93")
    assert not domain.has_control_characters("/api/v1/customers/李雷-7")
    assert domain.json_with_lone_surrogates(b'{"a": "x\\udbc9y"}', "application/json")
    assert domain.json_with_lone_surrogates(b'{"k\\udc00": 1}', None)
    assert not domain.json_with_lone_surrogates(b'{"a": "\\ud83d\\ude00"}', "application/json")  # a valid pair
    assert not domain.json_with_lone_surrogates(b'{"a": "plain"}', "application/json")
    assert not domain.json_with_lone_surrogates(b'not json \\udbc9', "application/json")
