"""What the page routes share: the dependency bundle and the page renderer, the signed-in person (or
back to sign-in), the CSRF check, a submitted form, the refusals in the person's words."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from guanxi_shared.runtime import app_deps

from .. import handlers
from ..domain import N_, Session
from ..handlers import Deps, SessionEnded
from ..web import CSRF_FIELD, SESSION_COOKIE, Pages, Viewer, to_sign_in

REFUSALS = {
    401: N_("Your session has ended. Please sign in again."),
    403: N_("You may not do this: only the case's owner or a supervisor may act on it."),
    404: N_("This complaint does not exist (or is not registered yet)."),
    409: N_("This step is not possible in the case's current status; it may have changed meanwhile."),
    410: N_("This no longer exists."),
    422: N_("The service did not accept what was entered. Please check it."),
    429: N_("Too many requests: please wait a moment and try again."),
}
CUSTOMER_REFUSALS = {
    403: N_("Your role may not do this."),
    404: N_("There is no customer with this id."),
    409: N_("This customer already exists."),
    410: N_("This customer was erased: only a tombstone remains."),
}
REFUSED = N_("The request was refused.")
UNREACHABLE = N_("A service cannot be reached right now. Please try again shortly.")
OUT_OF_DATE = N_("The form was out of date or came from elsewhere. Please try again.")
MULTI = frozenset({"consents", "status"})  # form fields that may come several times


async def deps_of(request: Request) -> Deps:
    deps: Deps = await app_deps(request)
    return deps


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


DepsDep = Annotated[Deps, Depends(deps_of)]
PagesDep = Annotated[Pages, Depends(pages_of)]


class SignInNeeded(Exception):
    """Nobody is signed in: the app answers with the sign-in page (and where to come back)."""


async def maybe_session(request: Request, deps: Deps) -> Session | None:
    """The signed-in person, or None (also when their session has just ended)."""
    try:
        return await handlers.current_session(deps, request.cookies.get(SESSION_COOKIE))
    except SessionEnded:
        return None


async def signed_in(request: Request, deps: Deps) -> Session:
    """The signed-in person; ``SessionEnded`` / ``SignInNeeded`` lead back to sign-in (app handlers)."""
    session = await handlers.current_session(deps, request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInNeeded()
    return session


def sign_in_response(request: Request, pages: Pages, ended: bool) -> Response:
    return to_sign_in(request, "expired" if ended else None, pages)


async def form_of(request: Request) -> dict[str, Any]:
    """The submitted form: one string per field, a list for the fields that may repeat (checkboxes)."""
    data = await request.form()
    out: dict[str, Any] = {}
    for key in data:
        values = [v for v in data.getlist(key) if isinstance(v, str)]
        out[key] = values if key in MULTI else (values[0] if values else "")
    return out


def csrf_refused(pages: Pages, request: Request, viewer: Viewer) -> Response:
    t = pages.gettext(viewer)
    return pages.render(request, viewer, "message.html", status=403, title=t("Request refused"), message=t(OUT_OF_DATE))


def checked(pages: Pages, request: Request, session: Session | None, form: dict[str, Any]) -> bool:
    return pages.csrf_ok(request, session, form.get(CSRF_FIELD))


def message_page(pages: Pages, request: Request, viewer: Viewer, status: int, title: str, message: str,
                 detail: str = "", **links: Any) -> Response:
    """A page saying what happened (both strings msgids, translated here)."""
    t = pages.gettext(viewer)
    return pages.render(request, viewer, "message.html", status=status, title=t(title), message=t(message),
                        detail=detail, **links)


def new_key() -> str:
    """An Idempotency-Key for a form: the same form sent twice does one thing."""
    return secrets.token_urlsafe(16)
