"""The queue: the filters, my cases and the unassigned ones (refreshed by htmx), and saved views."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from .. import handlers
from ..domain import N_, FormProblems, QueueFilter, Session
from ..gateway import GatewayError, GatewayUnavailable
from ..handlers import Deps, TooManyViews
from ..web import Pages
from .common import REFUSALS, REFUSED, DepsDep, PagesDep, checked, csrf_refused, form_of, signed_in

QUEUE_FORBIDDEN = N_("Your role may not see the complaint queue.")
router = APIRouter()


def _filters(request: Request) -> QueueFilter:
    q = request.query_params
    return QueueFilter.parse(q.getlist("status"), q.get("severity"), q.get("channel"), q.get("category"), q.get("scope"))


async def _lists(request: Request, deps: Deps, pages: Pages, session: Session,
                 filters: QueueFilter) -> tuple[int, dict[str, Any]]:
    t = pages.gettext(pages.viewer(request, session))
    try:
        queue = await handlers.load_queue(deps, session, filters)
    except GatewayError as exc:
        text = QUEUE_FORBIDDEN if exc.status == 403 else REFUSALS.get(exc.status, REFUSED)
        return exc.status, {"queue": None, "error": t(text), "error_detail": exc.detail}
    except GatewayUnavailable:
        return 503, {"queue": None, "error": t("The complaints service cannot be reached right now; the queue will "
                                               "refresh by itself."), "error_detail": ""}
    return 200, {"queue": queue, "error": None, "error_detail": ""}


async def _queue_page(request: Request, deps: Deps, pages: Pages, session: Session, filters: QueueFilter, *,
                      status: int = 200, problems: dict[str, str] | None = None, view_name: str = "") -> Response:
    code, context = await _lists(request, deps, pages, session, filters)
    views = await handlers.saved_views(deps, session)
    return pages.render(request, pages.viewer(request, session), "queue.html",
                        status=status if status != 200 else (code if code != 503 else 200), filters=filters,
                        views=views, team_filter=await handlers.team_filter_available(deps, session),
                        saved=request.query_params.get("saved"), problems=problems or {}, view_name=view_name, **context)


@router.get("/queue")
async def queue_page(request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    session = await signed_in(request, deps)
    return await _queue_page(request, deps, pages, session, _filters(request))


@router.get("/queue/lists")
async def queue_lists(request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    """The lists alone, for htmx's polling (the page refreshes them without a reload)."""
    session = await signed_in(request, deps)
    filters = _filters(request)
    _, context = await _lists(request, deps, pages, session, filters)
    return pages.render(request, pages.viewer(request, session), "queue_lists.html", filters=filters, **context)


@router.post("/queue/views")
async def save_view(request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    """Save the filters now shown under a name; picking it later opens the queue with them."""
    session = await signed_in(request, deps)
    form = await form_of(request)
    if not checked(pages, request, session, form):
        return csrf_refused(pages, request, pages.viewer(request, session))
    filters = QueueFilter.from_query(str(form.get("query") or ""))
    t = pages.gettext(pages.viewer(request, session))
    try:
        view = await handlers.save_view(deps, session, str(form.get("name") or ""), filters)
    except FormProblems as exc:
        return await _queue_page(request, deps, pages, session, filters, status=422,
                                 problems={k: t(v) for k, v in exc.problems.items()}, view_name=str(form.get("name") or ""))
    except TooManyViews:
        return await _queue_page(request, deps, pages, session, filters, status=409,
                                 problems={"name": t("You have saved as many views as allowed; delete one first.")},
                                 view_name=str(form.get("name") or ""))
    query = view.query
    return RedirectResponse(f"/queue?{query + '&' if query else ''}saved={view.id}", status_code=303)


@router.post("/queue/views/{view_id}/delete")
async def delete_view(view_id: str, request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    session = await signed_in(request, deps)
    form = await form_of(request)
    if not checked(pages, request, session, form):
        return csrf_refused(pages, request, pages.viewer(request, session))
    await handlers.delete_view(deps, session, view_id)
    return RedirectResponse("/queue", status_code=303)
