"""Sign-in and out, the language switch, the account page, and the pinned front-end libraries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from guanxi_shared.errors import NotFound

from .. import domain, handlers
from ..handlers import SignInRefused
from ..settings import LOCALES
from ..web import safe_next
from .common import DepsDep, PagesDep, csrf_refused, maybe_session, signed_in

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
VENDOR = {"htmx.min.js": ("htmx.org", "dist/htmx.min.js"), "echarts.min.js": ("echarts", "dist/echarts.min.js")}
router = APIRouter()


@router.get("/static/vendor/{name}", include_in_schema=False)
async def vendor(name: str, deps: DepsDep) -> Response:
    """The pinned libraries installed by ``npm ci`` (package-lock.json), served from here: no CDN."""
    if name not in VENDOR:
        raise NotFound(f"no asset {name}")
    package, inner = VENDOR[name]
    path = deps.settings.assets_dir / package / inner
    if not path.is_file():
        raise NotFound(f"{package} is not installed (make install runs npm ci in services/console)")
    return FileResponse(path, media_type="text/javascript")


@router.get("/", include_in_schema=False)
async def home(request: Request, deps: DepsDep) -> Response:
    session = await maybe_session(request, deps)
    if session is None:
        return RedirectResponse("/signin", status_code=303)
    return RedirectResponse("/queue" if session.has("agent", "supervisor", "admin") else "/me", status_code=303)


@router.get("/signin")
async def signin_page(request: Request, deps: DepsDep, pages: PagesDep, reason: str | None = None,
                      next: str | None = None) -> Response:
    viewer = pages.viewer(request, None)
    t = pages.gettext(viewer)
    notices = {"expired": t("Your session has ended. Please sign in again."),
               "signed_out": t("You have signed out.")}
    return pages.render(request, viewer, "signin.html", roster=domain.ROSTER if deps.settings.dev_sign_in_allowed else (),
                        notice=notices.get(reason or ""), next=safe_next(next),
                        oidc_configured=deps.settings.oidc_configured)


@router.post("/signin/dev")
async def signin_dev(request: Request, deps: DepsDep, pages: PagesDep, subject: Annotated[str, Form()],
                     csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/queue") -> Response:
    viewer = pages.viewer(request, None)
    if not pages.csrf_ok(request, None, csrf_token):
        return csrf_refused(pages, request, viewer)
    try:
        session = await handlers.sign_in_dev(deps, subject, viewer.locale)
    except SignInRefused:
        t = pages.gettext(viewer)
        return pages.render(request, viewer, "message.html", status=403, title=t("Sign-in refused"),
                            message=t("The development sign-in is available in local mode only, for the sample staff."))
    target = safe_next(next)
    if target == "/queue" and not session.has("agent", "supervisor", "admin"):
        target = "/me"
    response = RedirectResponse(target, status_code=303)
    pages.set_session_cookie(response, session)
    return response


@router.get("/signin/oidc")
async def signin_oidc(request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    viewer = pages.viewer(request, None)
    t = pages.gettext(viewer)
    message = (t("Single sign-on (OpenID Connect) is configured but not available in this version yet.")
               if deps.settings.oidc_configured else
               t("Single sign-on (OpenID Connect) is not configured. An administrator sets CONSOLE_OIDC_ISSUER and "
                 "CONSOLE_OIDC_CLIENT_ID."))
    return pages.render(request, viewer, "message.html", status=503, title=t("Single sign-on"), message=message)


@router.post("/signout")
async def signout(request: Request, deps: DepsDep, pages: PagesDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    session = await maybe_session(request, deps)
    if session is not None and not pages.csrf_ok(request, session, csrf_token):
        return csrf_refused(pages, request, pages.viewer(request, session))
    await handlers.sign_out(deps, session)
    response = RedirectResponse("/signin?reason=signed_out", status_code=303)
    pages.clear_session_cookie(response)
    return response


@router.post("/lang")
async def choose_language(request: Request, deps: DepsDep, pages: PagesDep, locale: Annotated[str, Form()],
                          csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    session = await maybe_session(request, deps)
    if not pages.csrf_ok(request, session, csrf_token):
        return csrf_refused(pages, request, pages.viewer(request, session))
    chosen = await handlers.choose_locale(deps, session, locale if locale in LOCALES else "")
    response = RedirectResponse(safe_next(next, "/"), status_code=303)
    pages.set_lang_cookie(response, chosen)
    return response


@router.get("/me")
async def me(request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    """Where people whose role has no queue land (auditor): who they are, what the console offers them."""
    session = await signed_in(request, deps)
    return pages.render(request, pages.viewer(request, session), "me.html")
