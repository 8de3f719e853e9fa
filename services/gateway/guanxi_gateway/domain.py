"""The gateway's rules, pure: which service owns a path, which roles may call it, rate buckets,
path templates for access records, idempotency records, and KPI figures beside their policy targets.
No I/O here."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from guanxi_shared.auth import Role
from guanxi_shared.errors import DomainError

API = "/api/v1"
READS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANY_METHOD = READS | WRITES
STAFF = frozenset({Role.agent, Role.supervisor, Role.admin})
PUBLIC: frozenset[Role] = frozenset()  # no token needed at all


@dataclass(frozen=True)
class Rule:
    """Who may call ``methods`` on ``prefix`` (the path itself or anything below it)."""

    prefix: str
    methods: frozenset[str]
    roles: frozenset[Role]
    service: str | None  # None: the gateway answers itself
    exact: bool = False

    def matches(self, method: str, path: str) -> bool:
        if method not in self.methods:
            return False
        if self.exact:
            return path.rstrip("/") == self.prefix
        return path == self.prefix or path.startswith(self.prefix + "/")

    @property
    def public(self) -> bool:
        return not self.roles


def _r(prefix: str, methods: Iterable[str], roles: Iterable[Role], service: str | None, exact: bool = False) -> Rule:
    return Rule(API + prefix, frozenset(methods), frozenset(roles), service, exact)


# First match wins; order from most to least specific. The gateway is the coarse gate: services
# refine (e.g. only a supervisor erases a customer; an agent sees only the cases it owns).
ROLE_MATRIX: tuple[Rule, ...] = (
    # A customer answers a survey through a signed single-use link, without an account.
    _r("/surveys/answer", {"GET", "POST"}, PUBLIC, "surveys"),
    # A customer follows a complaint through a signed, expiring status link (non-personal facts only).
    _r("/complaints/status", {"GET"}, PUBLIC, "complaints"),
    # Intake: a publish to Kafka (202); channel systems (integration) may only do these.
    _r("/complaints", {"POST"}, STAFF | {Role.integration}, None, exact=True),
    _r("/interactions", {"POST"}, STAFF | {Role.integration}, None, exact=True),
    _r("/purchases", {"POST"}, {Role.integration, Role.admin}, None, exact=True),
    # The auditor reads the audit trail and nothing else; nobody else reads it.
    _r("/audit", READS, {Role.auditor}, "audit"),
    # Indicators are for those who steer the teams.
    _r("/kpis", {"GET"}, {Role.supervisor, Role.admin}, None, exact=True),
    _r("/kpis/customer", {"GET"}, {Role.supervisor, Role.admin}, "customer"),
    _r("/kpis/complaints", {"GET"}, {Role.supervisor, Role.admin}, "complaints"),
    _r("/kpis/surveys", {"GET"}, {Role.supervisor, Role.admin}, "surveys"),
    _r("/kpis/notifications", {"GET"}, {Role.supervisor, Role.admin}, "notifications"),
    # Message templates are configuration: supervisors read them, the admin changes them.
    _r("/templates", READS, {Role.supervisor, Role.admin}, "notifications"),
    _r("/templates", WRITES, {Role.admin}, "notifications"),
    # Everyday work of the front line and its supervisors.
    _r("/customers", ANY_METHOD, STAFF, "customer"),
    _r("/interactions", READS, STAFF, "customer"),
    _r("/visits", ANY_METHOD, STAFF, "customer"),
    _r("/complaints", ANY_METHOD, STAFF, "complaints"),
    _r("/surveys", ANY_METHOD, STAFF, "surveys"),
    _r("/notifications", ANY_METHOD, STAFF, "notifications"),
)


def find_rule(method: str, path: str, rules: Iterable[Rule] = ROLE_MATRIX) -> Rule | None:
    """The rule for a request, or None when no rule covers it (404 / 405)."""
    method = "GET" if method == "HEAD" else method
    for rule in rules:
        if rule.matches(method, path):
            return rule
    return None


def path_known(path: str, rules: Iterable[Rule] = ROLE_MATRIX) -> bool:
    """Some rule covers this path for some method (so a miss is 405, not 404)."""
    return any(r.matches(m, path) for r in rules for m in r.methods)


def allowed(rule: Rule, roles: Iterable[Role]) -> bool:
    return rule.public or any(r in rule.roles for r in roles)


# The public link routes (no token needed: the link's signed token is the credential). Their templates are
# known from the start, so that no token ever reaches a span name or an access record.
PUBLIC_TEMPLATES: tuple[str, ...] = (f"{API}/surveys/answer/{{token}}", f"{API}/complaints/status/{{token}}")


# ---------------------------------------------------------------------------------------------
# Input hygiene at the edge: what no service should ever have to decode.

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def has_control_characters(path: str) -> bool:
    return bool(_CONTROL.search(path))


def json_with_lone_surrogates(body: bytes, content_type: str | None) -> bool:
    """True for a JSON body whose strings hold unpaired surrogates (RFC 8259 §8.2: not interoperable)."""
    if not body or not _SURROGATE_ESCAPE.search(body):
        return False  # the common case: no \ud800-\udfff escape at all, no parsing needed
    if content_type is not None and "json" not in content_type.lower():
        return False
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False  # not JSON: the service answers 422 itself
    try:
        json.dumps(decoded, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# ---------------------------------------------------------------------------------------------
# Path templates: access records carry the route template, never ids or link tokens.

_PARAM = re.compile(r"\{([^}/]+)\}")


@dataclass(frozen=True)
class PathTemplate:
    template: str
    pattern: re.Pattern[str]
    params: tuple[str, ...]
    literal_segments: int

    @classmethod
    def of(cls, template: str) -> PathTemplate:
        params = tuple(_PARAM.findall(template))
        parts, last = [], 0
        for i, m in enumerate(_PARAM.finditer(template)):
            parts.append(re.escape(template[last:m.start()]) + f"(?P<p{i}>[^/]+)")
            last = m.end()
        regex = "^" + "".join(parts) + re.escape(template[last:]) + "/?$"
        literal = sum(1 for seg in template.split("/") if seg and not seg.startswith("{"))
        return cls(template, re.compile(regex), params, literal)


class TemplateIndex:
    """Matches concrete paths to the most specific known template (literals beat parameters)."""

    def __init__(self, templates: Iterable[str] = ()) -> None:
        self._templates: dict[str, PathTemplate] = {}
        self.add(templates)

    def add(self, templates: Iterable[str]) -> None:
        for t in templates:
            if t not in self._templates:
                self._templates[t] = PathTemplate.of(t)
        self._ordered = sorted(self._templates.values(), key=lambda t: (-t.literal_segments, -len(t.template)))

    def match(self, path: str) -> tuple[str, dict[str, str]]:
        for t in self._ordered:
            m = t.pattern.match(path)
            if m:
                return t.template, {name: m.group(f"p{i}") for i, name in enumerate(t.params)}
        return generic_template(path), {}


def generic_template(path: str) -> str:
    """An unknown path reduced to its collection, so no id or token ends up in the audit trail."""
    segments = [s for s in path.split("/") if s]
    keep = segments[:3] if segments[:2] == ["api", "v1"] else segments[:1]
    suffix = "/{…}" if len(segments) > len(keep) else ""
    return "/" + "/".join(keep) + suffix


def customer_of(template: str, params: Mapping[str, str]) -> str | None:
    """The customer a request is about, when its path names one."""
    if "customer_id" in params:
        return params["customer_id"]
    if template.startswith(API + "/customers/{"):
        first = _PARAM.search(template)
        if first:
            return params.get(first.group(1))
    return None


# ---------------------------------------------------------------------------------------------
# Rate limiting: token buckets, time passed in (seconds, monotonic).


@dataclass
class Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """Per-key token bucket: ``per_minute`` refill, ``burst`` tokens deep."""

    per_minute: int
    burst: float
    max_keys: int = 100_000
    _buckets: dict[str, Bucket] = field(default_factory=dict)

    def take(self, key: str, now: float) -> float:
        """0.0 when admitted, else the seconds to wait before the next request would be."""
        rate = self.per_minute / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._evict(now)
            bucket = self._buckets[key] = Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def _evict(self, now: float) -> None:
        # Full buckets carry no information: dropping them changes no decision.
        rate = self.per_minute / 60.0
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.updated) * rate >= self.burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()


def retry_after(wait_seconds: float) -> str:
    return str(max(1, math.ceil(wait_seconds)))


# ---------------------------------------------------------------------------------------------
# Idempotency-Key: a POST claims (caller, key); its first answer is replayed to every retry.


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Claim:
    outcome: Literal["claimed", "replay", "in_progress", "mismatch"]
    answer: StoredAnswer | None = None


def record_id(caller: str, key: str) -> str:
    # Hashed: keys are caller-chosen strings and must not become an injection or size problem.
    return hashlib.sha256(f"{caller}\x00{key}".encode()).hexdigest()


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Refusals of the use cases (answered as problem+json at the edge).


class UpstreamFailed(DomainError):
    """An owning service gave no usable answer (down, too slow, an error or not JSON)."""

    status, title = 502, "Bad gateway"


# ---------------------------------------------------------------------------------------------
# KPIs (REQUIREMENTS KP-1): each figure beside its target.


@dataclass(frozen=True)
class Target:
    indicator: str
    label: str
    comparison: str  # ">=" | "<=" | "report"
    target: float | None
    unit: str  # ratio (0..1) | score (0..100) | nps (-100..100) | count | minutes
    aliases: tuple[str, ...] = ()


# Aliases are dotted key suffixes, as the services name their figures (e.g. complaints reports
# ``overall.sla.acknowledge.compliance``); the shallowest match wins.
TARGETS: tuple[Target, ...] = (
    Target("first_contact_resolution", "First-contact resolution", ">=", 0.90, "ratio",
           ("overall.first_contact_resolution", "first_contact_resolution_rate")),
    Target("resolution_rate", "Problem resolution rate", ">=", 0.90, "ratio",
           ("overall.resolution_rate", "problem_resolution_rate")),
    Target("average_satisfaction", "Average satisfaction (0-100)", ">=", 85.0, "score",
           ("avg_satisfaction", "avg_csat", "csat_average")),
    Target("nps", "Net promoter score (-100..100)", "report", None, "nps", ("net_promoter_score",)),
    Target("churn_rate", "Churn", "<=", 0.05, "ratio", ("churn.rate",)),
    Target("complaint_rate", "Complaints received per active customer", "report", None, "ratio", ()),
    Target("sla_acknowledge", "Acknowledged within 24 hours", ">=", 1.0, "ratio",
           ("overall.sla.acknowledge.compliance", "sla.acknowledge")),
    Target("sla_preliminary_opinion", "Preliminary opinion within 3 working days", ">=", 1.0, "ratio",
           ("overall.sla.preliminary_opinion.compliance", "sla.preliminary_opinion")),
    Target("sla_investigation", "Investigation within 5 working days", ">=", 1.0, "ratio",
           ("overall.sla.investigation.compliance", "sla.investigation")),
    Target("sla_formal_answer", "Formal answer within 15 working days", ">=", 1.0, "ratio",
           ("overall.sla.formal_answer.compliance", "sla.formal_answer")),
    Target("response_timeliness", "Contacts answered within their response target (CC-3)", ">=", 1.0, "ratio",
           ("response_timeliness.timeliness_rate",)),
    Target("survey_response_rate", "Survey response rate", "report", None, "ratio", ("response_rate",)),
)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a": {...}, "a.b": 1}``; lists are left out (they are breakdowns, not figures)."""
    out: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, Mapping):
                out[key] = v  # a figure may be {"value": …, "count": …}
                out.update(flatten(v, key))
            elif not isinstance(v, list):
                out[key] = v
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):  # {"value": 0.93, ...} or {"rate": 0.93}
        for k in ("value", "rate", "ratio", "average"):
            if k in value:
                return _number(value[k])
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _lookup(figures: Mapping[str, Any], names: Iterable[str]) -> tuple[str, Any] | None:
    """The shallowest figure whose dotted key is one of ``names`` or ends with one of them."""
    names = list(names)
    hits = [k for k in figures if any(k == n or k.endswith("." + n) for n in names) and _number(figures[k]) is not None]
    if not hits:
        return None
    best = min(hits, key=lambda k: (k.count("."), len(k)))
    return best, figures[best]


def assess(sections: Mapping[str, Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """Each KP-1 indicator with its value (None when no available service reports it) beside its target."""
    flat: dict[str, dict[str, Any]] = {svc: flatten(body) for svc, body in sections.items() if body is not None}
    derived = _complaint_rate(flat)
    result = []
    for target in TARGETS:
        found: tuple[str, str, Any] | None = None
        for svc, figures in flat.items():
            hit = _lookup(figures, (target.indicator, *target.aliases))
            if hit is not None:
                found = (svc, hit[0], hit[1])
                break
        if found is None and target.indicator == "complaint_rate" and derived is not None:
            found = ("gateway", "complaints.received/customer.customers", derived)
        value = _number(found[2]) if found else None
        if value is not None and target.unit == "ratio" and 1.0 < value <= 100.0:
            value = value / 100.0  # a service reporting percent: compare like with like
        met: bool | None = None
        if value is not None and target.target is not None:
            met = value >= target.target if target.comparison == ">=" else value <= target.target
        result.append({"indicator": target.indicator, "label": target.label, "value": value, "unit": target.unit,
                       "target": target.target, "comparison": target.comparison, "met": met,
                       "source": f"{found[0]}:{found[1]}" if found else None})
    return result


def _complaint_rate(flat: Mapping[str, Mapping[str, Any]]) -> float | None:
    received = _lookup(flat.get("complaints", {}), ("overall.counts.received",))
    customers = _lookup(flat.get("customer", {}), ("churn.customers",))
    if received is None or customers is None:
        return None
    r, c = _number(received[1]), _number(customers[1])
    return round(r / c, 4) if r is not None and c else None
