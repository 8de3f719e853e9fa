"""``InMemoryGateway``: answers like the gateway and the services behind it, for the console's fast
tests. It follows the services' READMEs: the complaint lifecycle table, the owner rule (403), refused
transitions (409), missing text (422), expired tokens (401); the customer API's masking, clear reads
(agents only with a purpose; each one recorded), 422 ``errors`` by field, erasure and export for
supervisors and admins; single-use survey links (409 used, 410 expired); and, when switched on, the
queue filters and case numbers of the complaints API and its public status route."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from ..domain.labels import OPEN_STATUSES
from .port import GatewayError, GatewayUnavailable, Params, Unauthenticated

_NEXT: dict[str, tuple[str, ...]] = {
    "acknowledge": ("received",),
    "preliminary-opinion": ("acknowledged",),
    "investigation": ("preliminary_opinion", "reopened"),
    "resolve": ("acknowledged", "preliminary_opinion", "investigating", "reopened"),
    "close": ("resolved",),
    "reopen": ("resolved", "closed"),
}
_TO = {"acknowledge": "acknowledged", "preliminary-opinion": "preliminary_opinion", "investigation": "investigating",
       "resolve": "resolved", "close": "closed", "reopen": "reopened"}
_MET = {"acknowledge": ("acknowledge",), "preliminary-opinion": ("preliminary_opinion",),
        "resolve": ("formal_answer", "investigation")}
_REQUIRED = {"preliminary-opinion": "opinion", "investigation": "reason", "resolve": "resolution", "reopen": "reason",
             "await-customer": "reason"}
STAFF = {"agent", "supervisor", "admin"}
SENIOR = {"supervisor", "admin"}
# GET /complaints as the complaints service had it before the queue filters, and with them.
OLD_COMPLAINT_PARAMETERS = frozenset({"customer_id", "status", "owner", "overdue", "limit", "cursor"})
QUEUE_COMPLAINT_PARAMETERS = OLD_COMPLAINT_PARAMETERS | {"number", "open", "severity", "channel", "category", "team",
                                                         "sort"}
PERSONAL = ("phone", "email", "address", "birthday", "id_number")
PLAIN = ("name", "kind", "gender", "occupation", "company", "industry", "size", "preferences", "tags", "language",
         "timezone")


def _mask(field: str, value: str) -> str:
    if field == "phone":
        national = value[3:] if value.startswith("+86") else value.lstrip("+")
        return f"+86 {national[:3]}****{national[-4:]}" if value.startswith("+86") else "****" + value[-4:]
    if field == "email":
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if field == "birthday":
        return "****-**-**"
    if field == "id_number":
        return "*" * max(len(value) - 4, 4) + value[-4:]
    return value[:3] + "***"


def _params(params: Params) -> list[tuple[str, str]]:
    return list(params.items()) if isinstance(params, Mapping) else list(params)


class InMemoryGateway:
    def __init__(self, now: datetime | None = None) -> None:
        self.complaints: dict[str, dict[str, Any]] = {}
        self.surveys: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}  # clear values: the fake's own "vault"
        self.contacts: dict[str, list[dict[str, Any]]] = {}
        self.purchases: dict[str, list[dict[str, Any]]] = {}
        self.visits: dict[str, list[dict[str, Any]]] = {}
        self.care: dict[str, list[dict[str, Any]]] = {}
        self.notifications: dict[str, list[dict[str, Any]]] = {}
        self.customer_surveys: dict[str, list[dict[str, Any]]] = {}
        self.status_links: dict[str, str] = {}  # link token → case id
        self.expired_links: set[str] = {"expired"}
        self.reveals: list[dict[str, Any]] = []  # every clear read: {actor, customer_id, purpose, via}
        self.pending: list[dict[str, Any]] = []  # complaints filed but not yet opened (hold_intake)
        self.calls: list[tuple[str, str, str | None, Any]] = []  # (method, path, subject, body)
        self.is_ready = True
        self.unavailable = False
        self.down: set[str] = set()  # "customers", "notifications", "surveys", "complaints": that part answers 503
        self.complaint_parameters = OLD_COMPLAINT_PARAMETERS
        self.numbers = False  # cases carry a number TS-YYYY-NNNNNN (the complaints API's addition)
        self.status_route = False  # GET /complaints/status/{token} exists (public)
        self.hold_intake = False  # filed complaints wait in ``pending`` until ``open_pending()``
        self.now = now or datetime.now(UTC)
        self._idempotent: dict[tuple[str, str], str] = {}

    # ------------------------------------------------------------------ helpers the tests use

    def add_complaint(self, *, owner: str | None = None, status: str = "received", severity: str = "normal",
                      channel: str = "web", received_at: datetime | None = None, category: str = "billing",
                      description: str = "charged twice", case_id: str | None = None, customer_id: str = "c-1",
                      team: str | None = None) -> dict[str, Any]:
        at = received_at or self.now
        case_id = case_id or str(uuid.uuid4())
        deadlines = {"acknowledge": at + timedelta(hours=24), "preliminary_opinion": at + timedelta(days=3),
                     "investigation": None, "formal_answer": at + timedelta(days=21)}
        case: dict[str, Any] = {
            "id": case_id, "customer_id": customer_id, "status": status, "channel": channel, "category": category,
            "severity": severity, "description": description, "owner": owner, "team": team,
            "received_at": at.isoformat(),
            "deadlines": {k: v.isoformat() if v else None for k, v in deadlines.items()},
            "sla": {k: {"due_at": v.isoformat(), "met_at": None, "outcome": "pending", "breached": False}
                    for k, v in deadlines.items() if v},
            "history": [{"step": "received", "actor": "guanxi-gateway", "at": at.isoformat(), "note": None}],
            "waiting_on_customer_since": None, "resolution": None, "compensation": None, "apology": False,
            "root_cause": None, "preliminary_opinion": None, "version": 1,
        }
        if self.numbers:
            case["number"] = f"TS-{at.year}-{len(self.complaints) + 1:06d}"
            case["next_due_at"] = min(v for v in deadlines.values() if v).isoformat()
        self.complaints[case_id] = case
        return case

    def add_customer(self, *, name: str = "韩梅梅", phone: str = "+8613900139000", email: str = "han@example.com",
                     customer_id: str | None = None, consents: tuple[str, ...] = ("survey",),
                     member_level: str = "gold", tenure: str = "returning", **plain: Any) -> dict[str, Any]:
        customer_id = customer_id or str(uuid.uuid4())
        now = self.now.isoformat()
        self.customers[customer_id] = {
            "id": customer_id, "status": "registered", "name": name, "kind": plain.pop("kind", "person"),
            "language": plain.pop("language", "zh"), "timezone": "Asia/Shanghai", "phone": phone, "email": email,
            "member_level": member_level, "tenure": tenure, "purchase_count": 4, "total_amount": "1200.00",
            "last_purchase_at": now, "last_contact_at": None, "churn_risk": False,
            "consents": {p: {"granted": p == "service" or p in consents, "at": now, "source": "console"}
                         for p in ("service", "survey", "care", "marketing")},
            "channels_opted_out": [], "created_at": now, "updated_at": now, "registered_at": now, **plain,
        }
        return self._view(self.customers[customer_id], masked=True)

    def add_survey(self, link_token: str, *, status: str = "open", language: str = "zh") -> None:
        zh = language == "zh"
        self.surveys[link_token] = {"status": status, "answers": None, "form": {
            "survey_id": f"s-{link_token}", "kind": "post_resolution",
            "expires_at": (self.now + timedelta(days=14)).isoformat(), "template": "post_resolution@v1",
            "language": language, "title": "投诉处理满意度调查" if zh else "How did we handle your complaint?",
            "questions": [
                {"id": "satisfaction", "type": "csat", "text": "您对本次体验的满意度（0–100分）？" if zh else
                 "How satisfied are you with this experience (0–100)?", "required": True, "min": 0, "max": 100},
                {"id": "recommend", "type": "nps", "text": "您有多大可能向朋友或同事推荐我们（0–10分）？" if zh else
                 "How likely are you to recommend us to a friend or colleague (0–10)?", "required": True, "min": 0,
                 "max": 10},
                {"id": "resolved", "type": "choice", "text": "您的问题是否已解决？" if zh else "Was your problem solved?",
                 "required": False, "options": [{"value": "yes", "label": "已解决" if zh else "Yes"},
                                                {"value": "partly", "label": "部分解决" if zh else "Partly"},
                                                {"value": "no", "label": "未解决" if zh else "No"}]},
                {"id": "comment", "type": "text", "text": "还有什么想告诉我们的吗？" if zh else
                 "Anything else you would like to tell us?", "required": False, "max_length": 2000},
            ]}}

    def open_pending(self) -> None:
        """The complaints filed while ``hold_intake`` was on become cases (what Kafka does in a moment)."""
        for body in self.pending:
            self._open(body)
        self.pending = []

    # ------------------------------------------------------------------ plumbing

    def _who(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(401, "Unauthenticated", "invalid token") from exc
        if float(claims.get("exp", 0)) < time.time():
            raise Unauthenticated(401, "Unauthenticated", "the token has expired")
        return dict(claims)

    def _check(self, part: str = "") -> None:
        if self.unavailable or part in self.down:
            raise GatewayUnavailable(f"the fake gateway is down ({part or 'all'})")

    def _staff(self, token: str, method: str, path: str, body: Any = None, roles: set[str] = STAFF) -> dict[str, Any]:
        who = self._who(token)
        self.calls.append((method, path, who["sub"], body))
        if not roles & set(who.get("roles", [])):
            raise GatewayError(403, "Forbidden", f"role may not do this; needs one of: {', '.join(sorted(roles))}")
        return who

    async def ready(self) -> bool:
        return self.is_ready

    async def api_parameters(self, path: str, method: str = "get") -> frozenset[str]:
        return self.complaint_parameters if (path, method) == ("/complaints", "get") else frozenset()

    # ------------------------------------------------------------------ complaints

    async def list_complaints(self, token: str, params: Params) -> dict[str, Any]:
        self._check("complaints")
        pairs = _params(params)
        self._staff(token, "GET", "/complaints", pairs)
        known = self.complaint_parameters
        one = {k: v for k, v in pairs if k in known}
        statuses = [v for k, v in pairs if k == "status" and k in known]
        items = sorted(self.complaints.values(), key=lambda c: c["received_at"], reverse=True)
        if statuses:
            items = [c for c in items if c["status"] in (statuses if "open" in known else statuses[:1])]
        for key in ("customer_id", "severity", "channel", "category", "team", "number"):
            if one.get(key):
                items = [c for c in items if c.get(key) == one[key]]
        if one.get("owner"):
            wanted = None if one["owner"] == "none" and "open" in known else one["owner"]
            items = [c for c in items if c.get("owner") == wanted]
        if one.get("open") == "true":
            items = [c for c in items if c["status"] in OPEN_STATUSES]
        if one.get("sort") == "deadline":
            items.sort(key=lambda c: min((s["due_at"] for s in c["sla"].values() if not s.get("met_at")),
                                         default="9999"))
        limit = int(one.get("limit", 50))
        return {"items": copy.deepcopy(items[:limit]), "next": "more" if len(items) > limit else None}

    async def get_complaint(self, token: str, case_id: str) -> dict[str, Any]:
        self._check("complaints")
        self._staff(token, "GET", f"/complaints/{case_id}")
        if case_id not in self.complaints:
            raise GatewayError(404, "Not found", f"no complaint {case_id}")
        return copy.deepcopy(self.complaints[case_id])

    async def complaint_command(self, token: str, case_id: str, path: str, body: Mapping[str, Any],
                                idempotency_key: str | None = None) -> dict[str, Any]:
        self._check("complaints")
        who = self._staff(token, "POST", f"/complaints/{case_id}/{path}", dict(body), {"agent", "supervisor"})
        roles = set(who.get("roles", []))
        case = self.complaints.get(case_id)
        if case is None:
            raise GatewayError(404, "Not found", f"no complaint {case_id}")
        field = _REQUIRED.get(path)
        if field and not str(body.get(field) or "").strip():
            raise GatewayError(422, "Invalid request", f"{field}: Field required")
        supervisor = "supervisor" in roles
        if path == "assign":
            if not supervisor and body.get("owner") != who["sub"]:
                raise GatewayError(403, "Forbidden", "agents may only take a case themselves")
        elif case.get("owner") not in (None, who["sub"]) and not supervisor:
            raise GatewayError(403, "Forbidden", f"case {case_id} belongs to {case['owner']}; only its owner or a "
                                                 "supervisor may act on it")
        now = datetime.now(UTC).isoformat()
        status = case["status"]
        if path == "assign":
            case["owner"], case["team"] = body["owner"], who.get("team")
        elif path == "await-customer":
            if status not in OPEN_STATUSES or case["waiting_on_customer_since"]:
                raise GatewayError(409, "Illegal transition", f"cannot wait on the customer in status {status}")
            case["waiting_on_customer_since"] = now
        elif path == "customer-responded":
            if not case["waiting_on_customer_since"]:
                raise GatewayError(409, "Illegal transition", "the complaint is not waiting on the customer")
            case["waiting_on_customer_since"] = None
        else:
            if status not in _NEXT[path]:
                raise GatewayError(409, "Illegal transition", f"cannot {path} a complaint in status {status}; "
                                                               f"allowed from: {', '.join(_NEXT[path])}")
            case["status"] = _TO[path]
            for name in _MET.get(path, ()):
                if name in case["sla"]:
                    case["sla"][name]["met_at"] = now
            if path == "investigation":
                due = (datetime.now(UTC) + timedelta(days=7)).isoformat()
                case["deadlines"]["investigation"] = due
                case["sla"]["investigation"] = {"due_at": due, "met_at": None, "outcome": "pending", "breached": False}
            if path == "preliminary-opinion":
                case["preliminary_opinion"] = body["opinion"]
            if path == "resolve":
                case.update(resolution=body["resolution"], compensation=body.get("compensation"),
                            apology=bool(body.get("apology")), root_cause=body.get("root_cause"))
        note = next((str(v) for k, v in body.items() if k in ("opinion", "reason", "resolution")), None)
        case["history"].append({"step": path.replace("-", "_"), "actor": who["sub"], "at": now, "note": note})
        case["version"] += 1
        return copy.deepcopy(case)

    async def file_complaint(self, token: str, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        self._check()
        who = self._staff(token, "POST", "/complaints", dict(body), STAFF | {"integration"})
        missing = [f for f in ("customer_id", "channel", "category", "severity", "description") if not body.get(f)]
        if missing:
            raise GatewayError(422, "Invalid request", "; ".join(f"body.{m}: Field required" for m in missing),
                               [{"location": f"body.{m}", "message": "Field required"} for m in missing])
        key = (who["sub"], idempotency_key or "")
        if idempotency_key and key in self._idempotent:
            return {"id": self._idempotent[key], "type": "complaint.received", "status": "accepted"}
        case_id = str(uuid.uuid4())
        if idempotency_key:
            self._idempotent[key] = case_id
        filed = {**body, "id": case_id}
        if self.hold_intake:
            self.pending.append(filed)
        else:
            self._open(filed)
        return {"id": case_id, "type": "complaint.received", "status": "accepted"}

    def _open(self, filed: Mapping[str, Any]) -> None:
        received = filed.get("received_at")
        case = self.add_complaint(case_id=str(filed["id"]), customer_id=str(filed["customer_id"]),
                                  channel=str(filed["channel"]), category=str(filed["category"]),
                                  severity=str(filed["severity"]), description=str(filed["description"]),
                                  received_at=datetime.fromisoformat(received) if isinstance(received, str) else None)
        case["product"] = filed.get("product")

    async def complaint_status(self, link_token: str) -> dict[str, Any]:
        self._check("complaints")
        if not self.status_route:
            # Before the route existed the gateway took the path for a staff route: no token, 401.
            raise Unauthenticated(401, "Unauthenticated", "a bearer token is required")
        if link_token in self.expired_links:
            raise GatewayError(410, "Gone", "this link has expired")
        case = self.complaints.get(self.status_links.get(link_token, ""))
        if case is None:
            raise GatewayError(404, "Not found", "no such link")
        steps = {h["step"]: h["at"] for h in case["history"]}
        running = sorted((s["due_at"], name) for name, s in case["sla"].items() if not s.get("met_at"))
        return {"number": case.get("number"), "status": case["status"], "received_at": case["received_at"],
                "acknowledged_at": steps.get("acknowledge"), "resolved_at": steps.get("resolve"),
                "closed_at": steps.get("close"), "next_deadline": running[0][1] if running else None,
                "next_due_at": running[0][0] if running else None,
                "breached": any(s.get("breached") for s in case["sla"].values())}

    # ------------------------------------------------------------------ customers

    def _view(self, doc: Mapping[str, Any], *, masked: bool) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in doc.items() if k not in PERSONAL}
        for f in PERSONAL:
            value = doc.get(f)
            out[f] = None if value is None else (_mask(f, value) if masked else value)
        out["masked"] = masked
        return out

    def _customer(self, customer_id: str, *, allow_erased: bool = False) -> dict[str, Any]:
        doc = self.customers.get(customer_id)
        if doc is None:
            raise GatewayError(404, "Not found", f"no customer {customer_id}")
        if doc["status"] == "erased" and not allow_erased:
            raise GatewayError(410, "Gone", f"customer {customer_id} was erased; only a tombstone remains")
        return doc

    async def get_customer(self, token: str, customer_id: str, *, reveal: bool = False,
                           purpose: str | None = None) -> dict[str, Any]:
        self._check("customers")
        who = self._staff(token, "GET", f"/customers/{customer_id}", {"reveal": reveal, "purpose": purpose})
        doc = self._customer(customer_id)
        if not reveal:
            return self._view(doc, masked=True)
        roles = set(who.get("roles", []))
        if not roles & SENIOR:
            if not purpose or len(purpose.strip()) < 3:
                raise GatewayError(403, "Forbidden", "agents see clear personal data only with reveal=true and a "
                                                     "stated purpose")
        why = (purpose or "").strip() or "supervision"
        self.reveals.append({"actor": who["sub"], "customer_id": customer_id, "purpose": why, "via": "api"})
        return self._view(doc, masked=False)

    async def list_customers(self, token: str, params: Params) -> dict[str, Any]:
        self._check("customers")
        one = dict(_params(params))
        self._staff(token, "GET", "/customers", one)
        items = [d for d in self.customers.values() if d["status"] == "registered"]
        if one.get("q"):
            items = [d for d in items if one["q"].lower() in str(d.get("name", "")).lower()]
        limit = int(one.get("limit", 50))
        return {"items": [self._view(d, masked=True) for d in items[:limit]], "next": None}

    async def lookup_customers(self, token: str, *, phone: str | None = None, email: str | None = None) -> dict[str, Any]:
        self._check("customers")
        self._staff(token, "POST", "/customers/lookup", {"phone": phone, "email": email})
        items = [d for d in self.customers.values() if d["status"] == "registered"
                 and ((phone and d.get("phone") == phone) or (email and str(d.get("email", "")).lower() == email.lower()))]
        return {"items": [self._view(d, masked=True) for d in items], "next": None}

    def _invalid(self, body: Mapping[str, Any]) -> list[dict[str, str]]:
        errors = []
        if "phone" in body and not (str(body["phone"]).startswith("+") and str(body["phone"])[1:].isdigit()
                                    and 8 <= len(str(body["phone"])) <= 16):
            errors.append({"location": "body.phone", "message": "phone must be in E.164 form", "code": "phone_format"})
        if "email" in body and "@" not in str(body["email"]):
            errors.append({"location": "body.email", "message": "email is not a valid address", "code": "email_invalid"})
        if str(body.get("email", "")).endswith("@invalid.example"):
            errors.append({"location": "body.email", "message": "email is not a valid address", "code": "email_invalid"})
        return errors

    async def create_customer(self, token: str, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        self._check("customers")
        who = self._staff(token, "POST", "/customers", dict(body), STAFF | {"integration"})
        missing = [{"location": f"body.{f}", "message": "Field required"} for f in ("name", "phone", "email")
                   if not body.get(f)]
        errors = missing + self._invalid(body)
        if errors:
            raise GatewayError(422, "Invalid request", "; ".join(f"{e['location']}: {e['message']}" for e in errors), errors)
        key = (who["sub"], idempotency_key or "")
        if idempotency_key and key in self._idempotent:
            return self._view(self.customers[self._idempotent[key]], masked=True)
        plain = {k: v for k, v in body.items() if k not in ("name", "phone", "email", "consents")}
        view = self.add_customer(name=str(body["name"]), phone=str(body["phone"]), email=str(body["email"]),
                                 consents=tuple(body.get("consents") or ()), member_level="standard", tenure="new",
                                 **plain)
        if idempotency_key:
            self._idempotent[key] = view["id"]
        return view

    async def update_customer(self, token: str, customer_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check("customers")
        self._staff(token, "PATCH", f"/customers/{customer_id}", dict(body))
        doc = self._customer(customer_id)
        errors = self._invalid(body)
        if errors:
            raise GatewayError(422, "Invalid request", "; ".join(e["message"] for e in errors), errors)
        for key, value in body.items():
            if value is None:
                doc.pop(key, None)
            else:
                doc[key] = value
        doc["updated_at"] = datetime.now(UTC).isoformat()
        return self._view(doc, masked=True)

    async def erase_customer(self, token: str, customer_id: str, reason: str) -> None:
        self._check("customers")
        self._staff(token, "DELETE", f"/customers/{customer_id}", {"reason": reason}, SENIOR)
        doc = self._customer(customer_id, allow_erased=True)
        self.customers[customer_id] = {"id": customer_id, "status": "erased", "reason": reason,
                                       "erased_at": datetime.now(UTC).isoformat()}
        del doc

    async def export_customer(self, token: str, customer_id: str) -> dict[str, Any]:
        self._check("customers")
        who = self._staff(token, "GET", f"/customers/{customer_id}/export", None, SENIOR)
        doc = self._customer(customer_id)
        self.reveals.append({"actor": who["sub"], "customer_id": customer_id, "purpose": "export", "via": "export"})
        return {"customer": self._view(doc, masked=False), "contacts": copy.deepcopy(self.contacts.get(customer_id, []))}

    async def customer_timeline(self, token: str, customer_id: str, params: Params) -> dict[str, Any]:
        self._check("customers")
        self._staff(token, "GET", f"/customers/{customer_id}/timeline", _params(params))
        doc = self._customer(customer_id)
        items: list[dict[str, Any]] = []
        items += [{"type": "contact", **c} for c in self.contacts.get(customer_id, [])]
        items += [{"type": "purchase", **p} for p in self.purchases.get(customer_id, [])]
        items += [{"type": "visit", "at": v.get("planned_for"), **v} for v in self.visits.get(customer_id, [])]
        items += [{"type": "complaint", "at": c["received_at"], "id": c["id"], "status": c["status"],
                   "category": c["category"], "severity": c["severity"], "channel": c["channel"]}
                  for c in self.complaints.values() if c["customer_id"] == customer_id]
        items += [{"type": "survey", "at": s.get("completed_at") or s.get("sent_at"), "id": s["id"],
                   "status": s["status"], "csat": s.get("csat"), "nps": s.get("nps"), "survey_kind": s.get("kind")}
                  for s in self.customer_surveys.get(customer_id, []) if s["status"] == "completed"]
        items.sort(key=lambda i: str(i.get("at") or ""), reverse=True)
        return {"customer": self._view(doc, masked=True), "items": copy.deepcopy(items), "next": None}

    async def customer_consents(self, token: str, customer_id: str) -> dict[str, Any]:
        self._check("customers")
        self._staff(token, "GET", f"/customers/{customer_id}/consents")
        doc = self._customer(customer_id)
        return {"customer_id": customer_id, "consents": copy.deepcopy(doc["consents"]),
                "channels_opted_out": list(doc.get("channels_opted_out", []))}

    async def list_interactions(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]:
        self._check("customers")
        self._staff(token, "GET", "/interactions", {"customer_id": customer_id})
        items = sorted(self.contacts.get(customer_id, []), key=lambda c: c["occurred_at"], reverse=True)
        return {"items": copy.deepcopy(items[:limit]), "next": None}

    async def log_interaction(self, token: str, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        self._check()
        who = self._staff(token, "POST", "/interactions", dict(body), STAFF | {"integration"})
        contact_id = str(uuid.uuid4())
        at = datetime.now(UTC).isoformat()
        self.contacts.setdefault(str(body["customer_id"]), []).append({
            "id": contact_id, "at": at, "occurred_at": at, "channel": body["channel"], "direction": body["direction"],
            "summary": body["summary"], "outcome": body.get("outcome"), "agent_id": who["sub"], "handler": who["sub"],
            "state": "open" if body["direction"] == "inbound" else None})
        return {"id": contact_id, "type": "interaction.logged", "status": "accepted"}

    async def list_visits(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]:
        self._check("customers")
        self._staff(token, "GET", "/visits", {"customer_id": customer_id})
        return {"items": copy.deepcopy(self.visits.get(customer_id, [])[:limit]), "next": None}

    async def customer_care(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]:
        self._check("customers")
        self._staff(token, "GET", f"/customers/{customer_id}/care")
        self._customer(customer_id)
        return {"items": copy.deepcopy(self.care.get(customer_id, [])[:limit]), "next": None}

    # ------------------------------------------------------------------ notifications and surveys

    async def list_notifications(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]:
        self._check("notifications")
        self._staff(token, "GET", "/notifications", {"customer_id": customer_id})
        return {"items": copy.deepcopy(self.notifications.get(customer_id, [])[:limit]), "next": None}

    async def list_surveys(self, token: str, customer_id: str, limit: int = 20) -> dict[str, Any]:
        self._check("surveys")
        self._staff(token, "GET", "/surveys", {"customer_id": customer_id})
        return {"items": copy.deepcopy(self.customer_surveys.get(customer_id, [])[:limit]), "next": None}

    async def survey_form(self, link_token: str) -> dict[str, Any]:
        self._check("surveys")
        survey = self._survey(link_token)
        return copy.deepcopy(survey["form"])

    async def answer_survey(self, link_token: str, answers: Mapping[str, Any]) -> dict[str, Any]:
        self._check("surveys")
        survey = self._survey(link_token)
        missing = [q["id"] for q in survey["form"]["questions"] if q.get("required") and q["id"] not in answers]
        if missing:
            raise GatewayError(422, "Invalid answers", "; ".join(f"{m}: an answer is required" for m in missing),
                               [f"{m}: an answer is required" for m in missing])
        survey["status"], survey["answers"] = "completed", dict(answers)
        return {"survey_id": survey["form"]["survey_id"], "status": "completed", "low_score": False}

    def _survey(self, link_token: str) -> dict[str, Any]:
        survey = self.surveys.get(link_token)
        if survey is None:
            raise GatewayError(404, "Not found", "no such survey link")
        if survey["status"] == "completed":
            raise GatewayError(409, "Survey already answered", "this survey has already been answered; thank you")
        if survey["status"] == "expired":
            raise GatewayError(410, "Survey closed", "this survey link has expired")
        return survey
