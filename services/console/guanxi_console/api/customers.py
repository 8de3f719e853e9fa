"""A customer's 360 page and what is done from it: show a clear value (with its purpose), log a
contact, log a complaint taken by phone."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from .. import domain, handlers
from ..domain import N_, FormProblems, Session
from ..gateway import GatewayError, GatewayUnavailable
from ..handlers import Deps
from ..web import Pages
from .common import (
    CUSTOMER_REFUSALS,
    REFUSED,
    UNREACHABLE,
    DepsDep,
    PagesDep,
    checked,
    csrf_refused,
    form_of,
    message_page,
    new_key,
    signed_in,
)

router = APIRouter()
CUSTOMER = N_("Customer")


def customer_refused(pages: Pages, request: Request, session: Session, exc: Exception) -> Response:
    viewer = pages.viewer(request, session)
    if isinstance(exc, GatewayError):
        return message_page(pages, request, viewer, exc.status, CUSTOMER, CUSTOMER_REFUSALS.get(exc.status, REFUSED),
                            exc.detail)
    return message_page(pages, request, viewer, 503, CUSTOMER, UNREACHABLE)


async def show_customer(request: Request, deps: Deps, pages: Pages, session: Session, customer_id: str, *,
                        reveal: bool = False, purpose: str | None = None, status: int = 200, failed: str | None = None,
                        problems: dict[str, str] | None = None, values: dict[str, Any] | None = None,
                        message: str | None = None) -> Response:
    """The 360 page; ``failed`` names the form on it whose ``problems`` are shown with what was typed."""
    try:
        view = (await handlers.customer_360(deps, session, customer_id, reveal=True, purpose=purpose) if reveal
                else await handlers.customer_360(deps, session, customer_id))
    except (GatewayError, GatewayUnavailable) as exc:
        return customer_refused(pages, request, session, exc)
    viewer = pages.viewer(request, session)
    t = pages.gettext(viewer)
    q = request.query_params
    return pages.render(request, viewer, "customer.html", status=status, view=view, c=view.customer,
                        back=f"/customers/{customer_id}", failed=failed,
                        problems={k: t(v) for k, v in (problems or {}).items()}, values=values or {}, message=message,
                        filed=q.get("filed"), logged=q.get("logged"), created=q.get("created"), updated=q.get("updated"),
                        idempotency_key=new_key(), intake_fields=domain.INTAKE_FIELDS,
                        intake_defaults=domain.INTAKE_DEFAULTS, contact_fields=domain.customers.CONTACT_FIELDS,
                        contact_defaults=domain.customers.CONTACT_DEFAULTS,
                        senior=domain.customers.may_export_or_erase(session.roles))


@router.get("/customers/{customer_id}")
async def customer_page(customer_id: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    session = await signed_in(request, deps)
    return await show_customer(request, deps, pages, session, customer_id)


@router.post("/customers/{customer_id}/reveal")
async def reveal(customer_id: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    """The page again with the clear values, this once (never in a URL, never cached); the customer
    service records who read them and why."""
    session = await signed_in(request, deps)
    form = await form_of(request)
    if not checked(pages, request, session, form):
        return csrf_refused(pages, request, pages.viewer(request, session))
    purpose = str(form.get("purpose") or "")
    try:
        chosen = domain.customers.reveal_purpose(purpose, session.roles)
    except FormProblems as exc:
        return await show_customer(request, deps, pages, session, customer_id, status=422, failed="reveal",
                                   problems=exc.problems, values=form)
    return await show_customer(request, deps, pages, session, customer_id, reveal=True, purpose=chosen)


@router.post("/customers/{customer_id}/contacts")
async def log_contact(customer_id: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    session = await signed_in(request, deps)
    form = await form_of(request)
    if not checked(pages, request, session, form):
        return csrf_refused(pages, request, pages.viewer(request, session))
    try:
        await handlers.log_contact(deps, session, customer_id, form, form.get("idempotency_key") or None)
    except FormProblems as exc:
        return await show_customer(request, deps, pages, session, customer_id, status=422, failed="contact",
                                   problems=exc.problems, values=form)
    except GatewayError as exc:
        return await show_customer(request, deps, pages, session, customer_id, status=exc.status, failed="contact",
                                   problems={"": CUSTOMER_REFUSALS.get(exc.status, REFUSED)}, values=form)
    except GatewayUnavailable:
        return await show_customer(request, deps, pages, session, customer_id, status=503, failed="contact",
                                   problems={"": UNREACHABLE}, values=form)
    return RedirectResponse(f"/customers/{customer_id}?logged=1#contacts", status_code=303)


@router.post("/customers/{customer_id}/complaints")
async def log_complaint(customer_id: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    """A complaint taken by phone: filed through the gateway (202); the page says it is registered and
    links to the case once it exists."""
    session = await signed_in(request, deps)
    form = await form_of(request)
    if not checked(pages, request, session, form):
        return csrf_refused(pages, request, pages.viewer(request, session))
    try:
        case_id = await handlers.file_complaint(deps, session, customer_id, form, form.get("idempotency_key") or None)
    except FormProblems as exc:
        return await show_customer(request, deps, pages, session, customer_id, status=422, failed="complaint",
                                   problems=exc.problems, values=form)
    except GatewayError as exc:
        return await show_customer(request, deps, pages, session, customer_id, status=exc.status, failed="complaint",
                                   problems={"": CUSTOMER_REFUSALS.get(exc.status, REFUSED)}, values=form)
    except GatewayUnavailable:
        return await show_customer(request, deps, pages, session, customer_id, status=503, failed="complaint",
                                   problems={"": UNREACHABLE}, values=form)
    return RedirectResponse(f"/customers/{customer_id}?filed={case_id}", status_code=303)
