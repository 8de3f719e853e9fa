"""Thin HTTP routers: delivery log, preferences and opt-out, in-app inbox, templates, KPIs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from guanxi_shared.auth import Identity, Role, require_roles
from guanxi_shared.problems import Problem
from pydantic import BaseModel, Field, field_validator

from . import handlers
from .domain import Category, Channel
from .handlers import Deps
from .templating import MissingVariables, TemplateInvalid, render, validate

STAFF_READ = (Role.agent, Role.supervisor, Role.admin, Role.service)
STAFF_WRITE = (Role.agent, Role.supervisor, Role.admin)
TEMPLATE_READ = (Role.admin, Role.supervisor)
MAX_LIMIT = 200
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def deps_of(request: Request) -> Deps:
    return request.app.state.deps  # type: ignore[no-any-return]


DepsDep = Annotated[Deps, Depends(deps_of)]


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise Problem(422, "Invalid request", f"{name} must be RFC 3339 with a UTC offset")
    return value


# ---- delivery log, preferences, inbox --------------------------------------------------------

notifications_router = APIRouter(prefix="/api/v1", tags=["notifications"])


class Preferences(BaseModel):
    opted_out: list[Channel] = Field(default_factory=list, description="channels the customer must not be reached on")
    preferred_channels: list[Channel] | None = Field(None, description="order to try channels in")


def preferences_view(customer_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"customer_id": customer_id, "opted_out": doc.get("opted_out", []),
            "opted_out_in_customer_service": doc.get("opted_out_upstream", []),
            "preferred_channels": doc.get("preferred_channels"), "consents": doc.get("consents"),
            "language": doc.get("language"), "timezone": doc.get("timezone"), "erased": bool(doc.get("erased"))}


@notifications_router.get("/notifications", summary="A customer's messages (delivery log), newest first")
async def list_notifications(deps: DepsDep, _: Annotated[Identity, Depends(require_roles(*STAFF_READ))],
                             customer_id: Annotated[str, Query(min_length=1, max_length=128)],
                             limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
                             cursor: str | None = None) -> dict[str, Any]:
    try:
        docs, next_cursor = await deps.store.list_for_customer(customer_id, limit, cursor)
    except (ValueError, TypeError) as exc:
        raise Problem(422, "Invalid request", "cursor is not one this service issued") from exc
    return {"items": [handlers.notification_view(d) for d in docs], "next": next_cursor}


@notifications_router.get("/notifications/preferences/{customer_id}", summary="Channel preferences and opt-outs")
async def get_preferences(customer_id: str, deps: DepsDep,
                          _: Annotated[Identity, Depends(require_roles(*STAFF_READ))]) -> dict[str, Any]:
    return preferences_view(customer_id, await deps.store.recipient(customer_id) or {})


@notifications_router.put("/notifications/preferences/{customer_id}",
                          summary="Set opt-outs and preferred channels; honoured from the next send on")
async def put_preferences(customer_id: str, body: Preferences, deps: DepsDep,
                          identity: Annotated[Identity, Depends(require_roles(*STAFF_WRITE))]) -> dict[str, Any]:
    fields: dict[str, Any] = {"opted_out": sorted({c.value for c in body.opted_out}),
                              "preferences_by": identity.subject, "preferences_at": deps.clock.now()}
    if body.preferred_channels is not None:
        fields["preferred_channels"] = [c.value for c in dict.fromkeys(body.preferred_channels)]
    return preferences_view(customer_id, await deps.store.set_preferences(customer_id, fields))


@notifications_router.get("/notifications/inbox/{customer_id}", summary="In-app inbox of a customer")
async def inbox(customer_id: str, deps: DepsDep, _: Annotated[Identity, Depends(require_roles(*STAFF_READ))],
                unread_only: bool = False, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50) -> dict[str, Any]:
    docs = await deps.store.list_inbox(customer_id, limit, unread_only)
    return {"items": [handlers.template_view(d) for d in docs], "next": None}


@notifications_router.post("/notifications/inbox/{customer_id}/{message_id}/read", summary="Mark an in-app message read")
async def mark_read(customer_id: str, message_id: str, deps: DepsDep,
                    _: Annotated[Identity, Depends(require_roles(*STAFF_READ))]) -> dict[str, Any]:
    doc = await deps.store.mark_read(customer_id, message_id, deps.clock.now())
    if doc is None:
        raise Problem(404, "Not found", f"no in-app message {message_id} for customer {customer_id}")
    return handlers.template_view(doc)


@notifications_router.get("/notifications/{notification_id}", summary="One message with its history")
async def get_notification(notification_id: str, deps: DepsDep,
                           _: Annotated[Identity, Depends(require_roles(*STAFF_READ))]) -> dict[str, Any]:
    doc = await deps.store.notification(notification_id)
    if doc is None:
        raise Problem(404, "Not found", f"no notification {notification_id}")
    return handlers.notification_view(doc)


@notifications_router.get("/kpis/notifications", summary="Sent, failed, suppressed and held counts in a period")
async def kpis(deps: DepsDep, _: Annotated[Identity, Depends(require_roles(Role.supervisor, Role.admin))],
               from_: Annotated[datetime, Query(alias="from")], to: datetime) -> dict[str, Any]:
    since, until = _aware(from_, "from"), _aware(to, "to")
    assert since is not None and until is not None
    if until <= since:
        raise Problem(422, "Invalid request", "to must be after from")
    totals = {"sent": 0, "failed": 0, "suppressed": 0, "held": 0, "pending": 0}
    by_category: dict[str, dict[str, int]] = {}
    reasons: dict[str, int] = {}
    for row in await deps.store.outcome_counts(since, until):
        key, count = row["_id"], int(row["count"])
        status = "pending" if key.get("status") == "sending" else str(key.get("status"))
        totals[status] = totals.get(status, 0) + count
        cat = by_category.setdefault(str(key.get("category")), {})
        cat[status] = cat.get(status, 0) + count
        if key.get("reason") and status in ("suppressed", "failed", "held"):
            label = f"{status}:{key['reason']}"
            reasons[label] = reasons.get(label, 0) + count
    return {"from": since.isoformat(), "to": until.isoformat(), **totals, "total": sum(totals.values()),
            "by_category": by_category, "reasons": reasons}


# ---- templates --------------------------------------------------------------------------------

templates_router = APIRouter(prefix="/api/v1/templates", tags=["templates"])
Language = Literal["zh", "en"]


class TemplateText(BaseModel):
    category: Category
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=20_000)
    required_variables: list[str] = Field(default_factory=list, max_length=50)
    description: str | None = Field(None, max_length=500)

    @field_validator("required_variables")
    @classmethod
    def _identifiers(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not _IDENT.match(n)]
        if bad:
            raise ValueError(f"not variable names: {', '.join(bad)}")
        return list(dict.fromkeys(names))


class NewTemplate(TemplateText):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    language: Language


class PreviewRequest(BaseModel):
    variables: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(None, ge=1)


class DraftPreview(TemplateText):
    variables: dict[str, Any] = Field(default_factory=dict)


def _check(text: TemplateText) -> None:
    try:
        validate(text.subject, text.body, text.required_variables)
    except TemplateInvalid as exc:
        raise Problem(422, "Invalid template", str(exc)) from exc


def _preview(subject: str, body: str, required: list[str], variables: dict[str, Any]) -> dict[str, str]:
    try:
        rendered = render(subject, body, variables, required)
    except MissingVariables as exc:
        raise Problem(422, "Missing template variables", str(exc), missing=exc.names) from exc
    except TemplateInvalid as exc:
        raise Problem(422, "Invalid template", str(exc)) from exc
    return {"subject": rendered.subject, "body": rendered.body}


async def _new_version(deps: Deps, key: str, language: str, text: TemplateText, actor: str, *, first: bool) -> dict[str, Any]:
    _check(text)
    latest = await deps.store.template_versions(key, language)
    if first and latest and not latest[-1].get("archived"):
        raise Problem(409, "Conflict", f"template {key} ({language}) exists; PUT a new version instead")
    if not first and (not latest or latest[-1].get("archived")):
        raise Problem(404, "Not found", f"no template {key} ({language})")
    version = (latest[-1]["version"] + 1) if latest else 1
    doc = {"_id": f"{key}:{language}:{version}", "key": key, "language": language, "version": version,
           **text.model_dump(mode="json"), "created_at": deps.clock.now(), "created_by": actor}
    if not await deps.store.insert_template_version(doc):
        raise Problem(409, "Conflict", f"template {key} ({language}) changed concurrently; retry")
    return handlers.template_view(doc)


@templates_router.get("", summary="Current version of every template")
async def list_templates(deps: DepsDep, _: Annotated[Identity, Depends(require_roles(*TEMPLATE_READ))]) -> dict[str, Any]:
    return {"items": [handlers.template_view(d) for d in await deps.store.list_templates()], "next": None}


@templates_router.post("", status_code=201, summary="Create a template (version 1)")
async def create_template(body: NewTemplate, deps: DepsDep,
                          identity: Annotated[Identity, Depends(require_roles(Role.admin))]) -> dict[str, Any]:
    return await _new_version(deps, body.key, body.language, body, identity.subject, first=True)


@templates_router.post("/preview", summary="Render a draft template without saving it")
async def preview_draft(body: DraftPreview, _: Annotated[Identity, Depends(require_roles(*TEMPLATE_READ))]) -> dict[str, str]:
    _check(body)
    return _preview(body.subject, body.body, body.required_variables, body.variables)


@templates_router.get("/{key}/{language}", summary="A template (current version, or ?version=)")
async def get_template(key: str, language: Language, deps: DepsDep,
                       _: Annotated[Identity, Depends(require_roles(*TEMPLATE_READ))],
                       version: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    doc = await (deps.store.template_version(key, language, version) if version
                 else deps.store.latest_template(key, language))
    if doc is None:
        raise Problem(404, "Not found", f"no template {key} ({language})" + (f" version {version}" if version else ""))
    return handlers.template_view(doc)


@templates_router.get("/{key}/{language}/versions", summary="Every version of a template")
async def template_versions(key: str, language: Language, deps: DepsDep,
                            _: Annotated[Identity, Depends(require_roles(*TEMPLATE_READ))]) -> dict[str, Any]:
    docs = await deps.store.template_versions(key, language)
    if not docs:
        raise Problem(404, "Not found", f"no template {key} ({language})")
    return {"items": [handlers.template_view(d) for d in docs], "next": None}


@templates_router.put("/{key}/{language}", summary="Change a template: stores a new version")
async def update_template(key: str, language: Language, body: TemplateText, deps: DepsDep,
                          identity: Annotated[Identity, Depends(require_roles(Role.admin))]) -> dict[str, Any]:
    return await _new_version(deps, key, language, body, identity.subject, first=False)


@templates_router.delete("/{key}/{language}", status_code=204, summary="Retire a template (versions kept for the log)")
async def delete_template(key: str, language: Language, deps: DepsDep,
                          _: Annotated[Identity, Depends(require_roles(Role.admin))]) -> Response:
    if not await deps.store.archive_template(key, language, deps.clock.now()):
        raise Problem(404, "Not found", f"no template {key} ({language})")
    return Response(status_code=204)


@templates_router.post("/{key}/{language}/preview", summary="Render a stored template with the given variables")
async def preview_template(key: str, language: Language, body: PreviewRequest, deps: DepsDep,
                           _: Annotated[Identity, Depends(require_roles(*TEMPLATE_READ))]) -> dict[str, Any]:
    doc = await (deps.store.template_version(key, language, body.version) if body.version
                 else deps.store.latest_template(key, language))
    if doc is None:
        raise Problem(404, "Not found", f"no template {key} ({language})")
    standard = {"name": "", "customer_id": "", "member_level": ""}
    rendered = _preview(doc["subject"], doc["body"], doc.get("required_variables", []), {**standard, **body.variables})
    return {"key": key, "language": language, "version": doc["version"], **rendered}
