"""Sign-in and out, the language switch, the account page, and the pinned front-end libraries."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from guanxi_shared.errors import NotFound

from .. import domain, handlers
from ..domain.oidc import SignInFailed
from ..handlers import SignInRefused
from ..settings import LOCALES, OIDC_CALLBACK_PATH, OIDC_SIGNED_OUT_PATH
from ..web import SIGNIN_COOKIE, Pages, Viewer, origin, safe_next, token_like
from .common import DepsDep, PagesDep, csrf_refused, maybe_session, signed_in

log = logging.getLogger(__name__)

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


def sign_in_failed(pages: Pages, request: Request, viewer: Viewer, failed: SignInFailed) -> Response:
    """A failed single sign-on, in the person's words, with the way back to sign-in; nobody is signed in."""
    what = domain.oidc.failure(failed.code)
    t = pages.gettext(viewer)
    return pages.render(request, viewer, "message.html", status=what.status, title=t(what.title), message=t(what.message),
                        detail=failed.detail, link_href="/signin" if what.retry else "",
                        link_text=t("Sign in again"), back="/signin")  # the language switch: never back to the callback


@router.get("/signin/oidc")
async def signin_oidc(request: Request, deps: DepsDep, pages: PagesDep, next: str | None = None) -> Response:
    """Single sign-on: a new sign-in (state, nonce, PKCE verifier kept here), off to the provider."""
    viewer = pages.viewer(request, None)
    browser = request.cookies.get(SIGNIN_COOKIE) or ""
    if not token_like(browser):
        browser = secrets.token_urlsafe(24)
    try:
        target = await handlers.start_oidc_sign_in(deps, browser, safe_next(next), viewer.locale)
    except SignInFailed as failed:
        if failed.code != "not_configured":
            log.warning("single sign-on cannot start: %s", failed)
        return sign_in_failed(pages, request, viewer, failed)
    response = RedirectResponse(target, status_code=303)
    pages.set_signin_cookie(response, browser)
    pages.remember_visitor(response, viewer)
    return response


@router.get(OIDC_CALLBACK_PATH)
async def signin_oidc_callback(request: Request, deps: DepsDep, pages: PagesDep) -> Response:
    """The provider's answer: a session once everything checks out, else a page saying why."""
    viewer = pages.viewer(request, None)
    params = {key: request.query_params[key] for key in request.query_params}
    try:
        session, target = await handlers.complete_oidc_sign_in(deps, request.cookies.get(SIGNIN_COOKIE), params)
    except SignInFailed as failed:
        log.warning("single sign-on refused (%s)", failed)
        return sign_in_failed(pages, request, viewer, failed)
    previous = await maybe_session(request, deps)
    if previous is not None:
        await handlers.sign_out(deps, previous)  # a new sign-in replaces the old session (and its cookie)
    response = RedirectResponse(target, status_code=303)
    pages.set_session_cookie(response, session)
    pages.set_lang_cookie(response, session.locale)
    return response


@router.get(OIDC_SIGNED_OUT_PATH)
async def signed_out_at_provider() -> Response:
    """Where the provider sends people back after its own sign-out (post_logout_redirect_uri)."""
    return RedirectResponse("/signin?reason=signed_out", status_code=303)


@router.post("/signout")
async def signout(request: Request, deps: DepsDep, pages: PagesDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    session = await maybe_session(request, deps)
    if session is not None and not pages.csrf_ok(request, session, csrf_token):
        return csrf_refused(pages, request, pages.viewer(request, session))
    at_provider = await handlers.provider_sign_out_url(deps, session)
    await handlers.sign_out(deps, session)
    if at_provider and origin(at_provider) != origin(deps.settings.oidc_issuer or ""):
        # The CSP lets forms lead to the issuer's origin only: another one gets a link.
        viewer = pages.viewer(request, None)
        t = pages.gettext(viewer)
        response: Response = pages.render(
            request, viewer, "message.html", title=t("You have signed out."),
            message=t("You have signed out of the console. Your organisation's account may still be signed in."),
            link_href=at_provider, link_text=t("Sign out of your organisation's account too"))
    else:
        response = RedirectResponse(at_provider or "/signin?reason=signed_out", status_code=303)
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
