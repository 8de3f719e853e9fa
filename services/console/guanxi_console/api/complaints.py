"""A complaint: the case with the customer beside it, its commands, and the small parts htmx polls
while a complaint just filed is being registered."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from .. import domain, handlers
from ..domain import N_, FormProblems, Session
from ..gateway import GatewayError, GatewayUnavailable
from ..handlers import Deps
from ..web import CSRF_FIELD, Pages
from .common import REFUSALS, REFUSED, DepsDep, PagesDep, csrf_refused, form_of, message_page, new_key, signed_in

router = APIRouter()


async def _page(request: Request, deps: Deps, pages: Pages, session: Session, case: dict[str, Any], *,
                status: int = 200, failed: str | None = None, message: str | None = None, detail: str = "",
                problems: dict[str, str] | None = None, values: dict[str, Any] | None = None,
                done: str | None = None) -> Response:
    viewer = pages.viewer(request, session)
    now = deps.clock.now()
    panel = await handlers.customer_panel(deps, session, case) if case.get("customer_id") else None
    return pages.render(request, viewer, "complaint.html", status=status, case=case, back=f"/complaints/{case['id']}",
                        deadlines=domain.deadline_views(case, now), actions=domain.allowed_actions(case, session.subject),
                        failed=failed, message=message, detail=detail, problems=problems or {}, values=values or {},
                        done=domain.ACTIONS.get(done or ""), idempotency_key=new_key(), panel=panel,
                        history=[{**h, "at_time": domain.parse_time(h.get("at"))} for h in case.get("history", [])],
                        received_at=domain.parse_time(case.get("received_at")))


@router.get("/complaints/{case_id}")
async def complaint_page(case_id: str, request: Request, deps: DepsDep, pages: PagesDep, done: str | None = None) -> Response:
    session = await signed_in(request, deps)
    viewer = pages.viewer(request, session)
    try:
        case = await handlers.load_complaint(deps, session, case_id)
    except GatewayError as exc:
        if exc.status == 404:
            # Filed a moment ago (202): the case appears once the complaints service has it.
            return pages.render(request, viewer, "complaint_pending.html", status=404, case_id=case_id)
        return message_page(pages, request, viewer, exc.status, N_("Complaint"), REFUSALS.get(exc.status, REFUSED), exc.detail)
    except GatewayUnavailable:
        return message_page(pages, request, viewer, 503, N_("Complaint"),
                            N_("The complaints service cannot be reached right now. Please try again shortly."))
    return await _page(request, deps, pages, session, case, done=done)


@router.get("/complaints/{case_id}/state")
async def complaint_state(case_id: str, request: Request, deps: DepsDep) -> Response:
    """htmx polls this while the case is being registered: 204 (nothing to do) until it exists, then
    ``HX-Refresh`` (the page loads again and shows the case)."""
    session = await signed_in(request, deps)
    try:
        case = await handlers.complaint_if_any(deps, session, case_id)
    except (GatewayError, GatewayUnavailable):
        case = None
    return Response(status_code=200, headers={"HX-Refresh": "true"}) if case else Response(status_code=204)


@router.get("/complaints/{case_id}/badge")
async def complaint_badge(case_id: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    """The link to a complaint just filed: "being registered" (polled again) until the case exists, then
    its number (or id) as a link."""
    session = await signed_in(request, deps)
    try:
        case = await handlers.complaint_if_any(deps, session, case_id)
    except (GatewayError, GatewayUnavailable):
        case = None
    return pages.render(request, pages.viewer(request, session), "complaint_badge.html", case=case, case_id=case_id)


@router.post("/complaints/{case_id}/actions/{action}")
async def complaint_action(case_id: str, action: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    session = await signed_in(request, deps)
    form = await form_of(request)
    viewer = pages.viewer(request, session)
    t = pages.gettext(viewer)
    if not pages.csrf_ok(request, session, form.get(CSRF_FIELD)):
        return csrf_refused(pages, request, viewer)
    try:
        await handlers.run_action(deps, session, case_id, action, form, form.get("idempotency_key") or None)
    except FormProblems as exc:
        case = await _reload(deps, session, case_id)
        return await _page(request, deps, pages, session, case, status=422, failed=action,
                           message=t("Please complete the highlighted fields."),
                           problems={k: t(v) for k, v in exc.problems.items()}, values=form)
    except GatewayError as exc:
        case = await _reload(deps, session, case_id)
        return await _page(request, deps, pages, session, case, status=exc.status, failed=action,
                           message=t(REFUSALS.get(exc.status, REFUSED)), detail=exc.detail, values=form)
    except GatewayUnavailable:
        case = await _reload(deps, session, case_id)
        return await _page(request, deps, pages, session, case, status=503, failed=action,
                           message=t("The complaints service cannot be reached right now. Nothing was changed; "
                                     "please try again."), values=form)
    return RedirectResponse(f"/complaints/{case_id}?done={action}", status_code=303)


async def _reload(deps: Deps, session: Session, case_id: str) -> dict[str, Any]:
    try:
        return await handlers.load_complaint(deps, session, case_id)
    except (GatewayError, GatewayUnavailable):
        return {"id": case_id, "status": "", "history": []}
