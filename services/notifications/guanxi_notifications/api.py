"""Thin HTTP routers: delivery log, preferences and opt-out, in-app inbox, templates, KPIs.

Each route checks the caller's role, calls one use case and returns its view; refusals are the
domain's errors, answered as problem+json by the app.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from guanxi_shared.auth import Identity, Role, require_roles
from guanxi_shared.errors import Invalid
from guanxi_shared.runtime import app_deps
from pydantic import BaseModel, Field, field_validator

from .domain import Category, Channel
from .handlers import Deps, customers, reading, templates

STAFF_READ = (Role.agent, Role.supervisor, Role.admin, Role.service)
STAFF_WRITE = (Role.agent, Role.supervisor, Role.admin)
TEMPLATE_READ = (Role.admin, Role.supervisor)
MAX_LIMIT = 200
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

DepsDep = Annotated[Deps, Depends(app_deps)]


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise Invalid(f"{name} must be RFC 3339 with a UTC offset")
    return value


# ---- delivery log, preferences, inbox --------------------------------------------------------

notifications_router = APIRouter(prefix="/api/v1", tags=["notifications"])


class Preferences(BaseModel):
    opted_out: list[Channel] = Field(default_factory=list, description="channels the customer must not be reached on")
    preferred_channels: list[Channel] | None = Field(None, description="order to try channels in")


@notifications_router.get("/notifications", summary="A customer's messages (delivery log), newest first")
async def list_notifications(deps: DepsDep, _: Annotated[Identity, Depends(require_roles(*STAFF_READ))],
                             customer_id: Annotated[str, Query(min_length=1, max_length=128)],
                             limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
                             cursor: str | None = None) -> dict[str, Any]:
    return await reading.notifications_of(deps, customer_id, limit, cursor)


@notifications_router.get("/notifications/preferences/{customer_id}", summary="Channel preferences and opt-outs")
async def get_preferences(customer_id: str, deps: DepsDep,
                          _: Annotated[Identity, Depends(require_roles(*STAFF_READ))]) -> dict[str, Any]:
    return await customers.preferences(deps, customer_id)


@notifications_router.put("/notifications/preferences/{customer_id}",
                          summary="Set opt-outs and preferred channels; honoured from the next send on")
async def put_preferences(customer_id: str, body: Preferences, deps: DepsDep,
                          identity: Annotated[Identity, Depends(require_roles(*STAFF_WRITE))]) -> dict[str, Any]:
    return await customers.set_preferences(deps, customer_id, body.opted_out, body.preferred_channels, identity.subject)


@notifications_router.get("/notifications/inbox/{customer_id}", summary="In-app inbox of a customer")
async def inbox(customer_id: str, deps: DepsDep, _: Annotated[Identity, Depends(require_roles(*STAFF_READ))],
                unread_only: bool = False, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50) -> dict[str, Any]:
    return await reading.inbox(deps, customer_id, limit, unread_only)


@notifications_router.post("/notifications/inbox/{customer_id}/{message_id}/read", summary="Mark an in-app message read")
async def mark_read(customer_id: str, message_id: str, deps: DepsDep,
                    _: Annotated[Identity, Depends(require_roles(*STAFF_READ))]) -> dict[str, Any]:
    return await reading.mark_read(deps, customer_id, message_id)


@notifications_router.get("/notifications/{notification_id}", summary="One message with its history")
async def get_notification(notification_id: str, deps: DepsDep,
                           _: Annotated[Identity, Depends(require_roles(*STAFF_READ))]) -> dict[str, Any]:
    return await reading.notification(deps, notification_id)


@notifications_router.get("/kpis/notifications", summary="Sent, failed, suppressed and held counts in a period")
async def kpis(deps: DepsDep, _: Annotated[Identity, Depends(require_roles(Role.supervisor, Role.admin))],
               from_: Annotated[datetime, Query(alias="from")], to: datetime) -> dict[str, Any]:
    return await reading.kpis(deps, _aware(from_, "from"), _aware(to, "to"))


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


async def _write(deps: Deps, key: str, language: str, text: TemplateText, actor: str, *, first: bool) -> dict[str, Any]:
    return await templates.write_template(deps, key, language, text.category, text.subject, text.body,
                                          text.required_variables, text.description, actor, first=first)


@templates_router.get("", summary="Current version of every template")
async def list_templates(deps: DepsDep, _: Annotated[Identity, Depends(require_roles(*TEMPLATE_READ))]) -> dict[str, Any]:
    return await templates.list_templates(deps)


@templates_router.post("", status_code=201, summary="Create a template (version 1)")
async def create_template(body: NewTemplate, deps: DepsDep,
                          identity: Annotated[Identity, Depends(require_roles(Role.admin))]) -> dict[str, Any]:
    return await _write(deps, body.key, body.language, body, identity.subject, first=True)


@templates_router.post("/preview", summary="Render a draft template without saving it")
async def preview_draft(body: DraftPreview, _: Annotated[Identity, Depends(require_roles(*TEMPLATE_READ))]) -> dict[str, str]:
    return templates.preview_draft(body.subject, body.body, body.required_variables, body.variables)


@templates_router.get("/{key}/{language}", summary="A template (current version, or ?version=)")
async def get_template(key: str, language: Language, deps: DepsDep,
                       _: Annotated[Identity, Depends(require_roles(*TEMPLATE_READ))],
                       version: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    return await templates.template(deps, key, language, version)


@templates_router.get("/{key}/{language}/versions", summary="Every version of a template")
async def template_versions(key: str, language: Language, deps: DepsDep,
                            _: Annotated[Identity, Depends(require_roles(*TEMPLATE_READ))]) -> dict[str, Any]:
    return await templates.template_versions(deps, key, language)


@templates_router.put("/{key}/{language}", summary="Change a template: stores a new version")
async def update_template(key: str, language: Language, body: TemplateText, deps: DepsDep,
                          identity: Annotated[Identity, Depends(require_roles(Role.admin))]) -> dict[str, Any]:
    return await _write(deps, key, language, body, identity.subject, first=False)


@templates_router.delete("/{key}/{language}", status_code=204, summary="Retire a template (versions kept for the log)")
async def delete_template(key: str, language: Language, deps: DepsDep,
                          _: Annotated[Identity, Depends(require_roles(Role.admin))]) -> Response:
    await templates.retire_template(deps, key, language)
    return Response(status_code=204)


@templates_router.post("/{key}/{language}/preview", summary="Render a stored template with the given variables")
async def preview_template(key: str, language: Language, body: PreviewRequest, deps: DepsDep,
                           _: Annotated[Identity, Depends(require_roles(*TEMPLATE_READ))]) -> dict[str, Any]:
    return await templates.preview_template(deps, key, language, body.variables, body.version)


ROUTERS = [notifications_router, templates_router]
