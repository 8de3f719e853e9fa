"""A customer created or corrected (field-level messages in the person's language), exported, or erased
after a confirmation: for the roles the customer API allows."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from .. import domain, handlers
from ..domain import N_, FormProblems, Session
from ..gateway import GatewayError, GatewayUnavailable
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
from .customers import customer_refused

router = APIRouter()


def _form_page(request: Request, pages: Pages, session: Session, *, customer: dict[str, Any] | None,
               values: dict[str, Any], status: int = 200, problems: dict[str, str] | None = None) -> Response:
    viewer = pages.viewer(request, session)
    t = pages.gettext(viewer)
    fields = domain.customers.NEW_FIELDS if customer is None else domain.customers.CORRECTION_FIELDS
    return pages.render(request, viewer, "customer_form.html", status=status, customer=customer, fields=fields,
                        values=values, problems={k: t(v) for k, v in (problems or {}).items()},
                        personal=domain.customers.PERSONAL, idempotency_key=new_key())


@router.get("/customers/new")
async def new_customer_form(request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    session = await signed_in(request, deps)
    return _form_page(request, pages, session, customer=None, values={"kind": "person", "language": "zh"})


@router.post("/customers/new")
async def new_customer(request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    session = await signed_in(request, deps)
    form = await form_of(request)
    if not checked(pages, request, session, form):
        return csrf_refused(pages, request, pages.viewer(request, session))
    try:
        customer_id = await handlers.create_customer(deps, session, form, form.get("idempotency_key") or None,
                                                     deps.clock.now().date())
    except FormProblems as exc:
        return _form_page(request, pages, session, customer=None, values=form, status=422, problems=exc.problems)
    except GatewayError as exc:
        return _form_page(request, pages, session, customer=None, values=form, status=exc.status,
                          problems={"": CUSTOMER_REFUSALS.get(exc.status, REFUSED)})
    except GatewayUnavailable:
        return _form_page(request, pages, session, customer=None, values=form, status=503, problems={"": UNREACHABLE})
    return RedirectResponse(f"/customers/{customer_id}?created=1", status_code=303)


@router.get("/customers/{customer_id}/edit")
async def edit_form(customer_id: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    session = await signed_in(request, deps)
    try:
        customer = await handlers.load_customer(deps, session, customer_id)
    except (GatewayError, GatewayUnavailable) as exc:
        return customer_refused(pages, request, session, exc)
    values = {k: v for k, v in customer.items() if k not in domain.customers.PERSONAL and isinstance(v, str)}
    return _form_page(request, pages, session, customer=customer, values=values)


@router.post("/customers/{customer_id}/edit")
async def correct(customer_id: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    session = await signed_in(request, deps)
    form = await form_of(request)
    if not checked(pages, request, session, form):
        return csrf_refused(pages, request, pages.viewer(request, session))
    try:
        changed = await handlers.correct_customer(deps, session, customer_id, form, deps.clock.now().date())
    except FormProblems as exc:
        try:
            customer = await handlers.load_customer(deps, session, customer_id)
        except (GatewayError, GatewayUnavailable) as refused:
            return customer_refused(pages, request, session, refused)
        return _form_page(request, pages, session, customer=customer, values=form, status=422, problems=exc.problems)
    except (GatewayError, GatewayUnavailable) as exc:
        return customer_refused(pages, request, session, exc)
    return RedirectResponse(f"/customers/{customer_id}?updated={len(changed)}", status_code=303)


@router.post("/customers/{customer_id}/export")
async def export(customer_id: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    """Everything held about the customer, clear, as a JSON file (supervisors and admins; audited)."""
    session = await signed_in(request, deps)
    form = await form_of(request)
    if not checked(pages, request, session, form):
        return csrf_refused(pages, request, pages.viewer(request, session))
    try:
        data = await handlers.export_customer(deps, session, customer_id)
    except (GatewayError, GatewayUnavailable) as exc:
        return customer_refused(pages, request, session, exc)
    safe = "".join(c for c in customer_id if c.isalnum() or c in "-_")[:64] or "customer"
    return Response(json.dumps(data, ensure_ascii=False, indent=2), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="customer-{safe}.json"'})


@router.get("/customers/{customer_id}/erase")
async def erase_form(customer_id: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    session = await signed_in(request, deps)
    try:
        customer = await handlers.load_customer(deps, session, customer_id)
    except (GatewayError, GatewayUnavailable) as exc:
        return customer_refused(pages, request, session, exc)
    return pages.render(request, pages.viewer(request, session), "customer_erase.html", c=customer, problems={},
                        values={}, back=f"/customers/{customer_id}/erase")


@router.post("/customers/{customer_id}/erase")
async def erase(customer_id: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    session = await signed_in(request, deps)
    form = await form_of(request)
    viewer = pages.viewer(request, session)
    if not checked(pages, request, session, form):
        return csrf_refused(pages, request, viewer)
    try:
        await handlers.erase_customer(deps, session, customer_id, form)
    except FormProblems as exc:
        try:
            customer = await handlers.load_customer(deps, session, customer_id)
        except (GatewayError, GatewayUnavailable) as refused:
            return customer_refused(pages, request, session, refused)
        t = pages.gettext(viewer)
        return pages.render(request, viewer, "customer_erase.html", status=422, c=customer,
                            problems={k: t(v) for k, v in exc.problems.items()}, values=form,
                            back=f"/customers/{customer_id}/erase")
    except (GatewayError, GatewayUnavailable) as exc:
        return customer_refused(pages, request, session, exc)
    return message_page(pages, request, viewer, 200, N_("Customer erased"),
                        N_("The customer's personal data was erased; only a tombstone remains."))
