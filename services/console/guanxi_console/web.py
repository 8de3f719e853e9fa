"""What every page needs: the templates in the viewer's language, the security headers (strict CSP),
the session and visitor cookies, and the CSRF token of each form."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from babel.support import Translations
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import domain
from .domain import Session
from .i18n import Formatter
from .settings import LOCALES, ConsoleSettings

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
SESSION_COOKIE = "gx_session"
VISITOR_COOKIE = "gx_visitor"
LANG_COOKIE = "gx_lang"
# A random id of the browser during a sign-in through the identity provider (the pending sign-in is
# stored under it and the state: the answer is accepted only in the browser that asked).
SIGNIN_COOKIE = "gx_signin"
CSRF_FIELD = "csrf_token"

# No inline script or style, no eval, nothing from elsewhere; forms post only here; never framed.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def csp_for(settings: ConsoleSettings) -> str:
    """The CSP; with single sign-on, forms may also lead to the provider (the sign-out form is answered
    with a redirect to its end-session endpoint, and browsers hold redirects after a form to form-action)."""
    provider = origin(settings.oidc_issuer or "") if settings.oidc_configured else ""
    return CSP.replace("form-action 'self'", f"form-action 'self' {provider}") if provider else CSP


class SecurityHeaders:
    """Pure ASGI: the CSP and friends on every answer; pages (not static files) are never cached."""

    def __init__(self, app: ASGIApp, csp: str = CSP) -> None:
        self.app = app
        self.headers = [(b"content-security-policy", csp.encode()), *SECURITY_HEADERS]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {n for n, _ in self.headers} | {b"cache-control"}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                headers += self.headers
                headers.append((b"cache-control", b"public, max-age=3600" if static else b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def safe_next(target: str | None, default: str = "/queue") -> str:
    """A local path to go back to after sign-in or a language switch, never another site."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


@dataclass
class Viewer:
    """Who is looking and how they read: the session (if any), the language, the time zone, the CSRF token."""

    session: Session | None
    locale: str
    timezone: str
    csrf: str
    new_visitor: str | None = None  # a visitor cookie to set with the answer


class Pages:
    def __init__(self, settings: ConsoleSettings, translations: Mapping[str, Translations]) -> None:
        self.settings = settings
        self.translations = translations
        self.secret = settings.session_secret.get_secret_value().encode()
        self.envs: dict[str, Environment] = {}
        for locale in LOCALES:
            env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]),
                              extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
            env.install_gettext_translations(translations[locale], newstyle=True)  # type: ignore[attr-defined]
            self.envs[locale] = env

    # -- who is looking

    def csrf_for(self, key: str) -> str:
        return hmac.new(self.secret, f"csrf:{key}".encode(), hashlib.sha256).hexdigest()

    def viewer(self, request: Request, session: Session | None, locale: str | None = None) -> Viewer:
        visitor = request.cookies.get(VISITOR_COOKIE) or ""
        new_visitor = None
        if session is None and not token_like(visitor):
            visitor = new_visitor = secrets.token_urlsafe(24)
        key = f"s:{session.id}" if session else f"v:{visitor}"
        chosen = locale or (session.locale if session else None) or request.cookies.get(LANG_COOKIE) or ""
        if chosen not in LOCALES:
            chosen = self.settings.default_locale
        tz = session.timezone if session else self.settings.default_timezone
        return Viewer(session, chosen, tz, self.csrf_for(key), new_visitor)

    def csrf_ok(self, request: Request, session: Session | None, submitted: str | None) -> bool:
        if not submitted:
            return False
        key = f"s:{session.id}" if session else f"v:{request.cookies.get(VISITOR_COOKIE) or ''}"
        if session is None and not token_like(request.cookies.get(VISITOR_COOKIE) or ""):
            return False
        return hmac.compare_digest(submitted, self.csrf_for(key))

    def gettext(self, viewer: Viewer) -> Any:
        return self.translations[viewer.locale].gettext

    # -- answers

    def render(self, request: Request, viewer: Viewer, template: str, status: int = 200,
               headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse:
        t = self.translations[viewer.locale]
        fmt = Formatter(viewer.locale, viewer.timezone, t)
        countdown_words = {"d": t.gettext("%(n)dd"), "h": t.gettext("%(n)dh"), "m": t.gettext("%(n)dm"),
                           "left": t.gettext("%(time)s left"), "over": t.gettext("overdue by %(time)s")}
        html = self.envs[viewer.locale].get_template(template).render(
            request=request, viewer=viewer, session=viewer.session, fmt=fmt, domain=domain, settings=self.settings,
            html_lang="zh-CN" if viewer.locale == "zh-CN" else "en", path=request.url.path,
            full_path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            countdown_words=json.dumps(countdown_words, ensure_ascii=False), csrf_field=CSRF_FIELD,
            htmx_config=json.dumps({"includeIndicatorStyles": False, "allowEval": False, "allowScriptTags": False,
                                    "selfRequestsOnly": True, "historyCacheSize": 0}),
            **context)
        response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
        self.remember_visitor(response, viewer)
        return response

    def remember_visitor(self, response: Response, viewer: Viewer) -> None:
        if viewer.new_visitor:
            response.set_cookie(VISITOR_COOKIE, viewer.new_visitor, httponly=True, samesite="lax",
                                secure=self.settings.secure_cookies, path="/")

    def set_session_cookie(self, response: Response, session: Session) -> None:
        # The cookie lasts as long as the session may: CONSOLE_SESSION_MAX_HOURS, or less when its token expires sooner.
        token_left = int((session.token_expires_at - session.created_at).total_seconds())
        response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="lax", secure=self.settings.secure_cookies,
                            path="/", max_age=max(60, min(self.settings.session_max_hours * 3600, token_left)))

    def set_signin_cookie(self, response: Response, browser: str) -> None:
        response.set_cookie(SIGNIN_COOKIE, browser, httponly=True, samesite="lax", secure=self.settings.secure_cookies,
                            path="/signin/oidc", max_age=int(domain.oidc.PENDING_TTL.total_seconds()))

    def clear_session_cookie(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=self.settings.secure_cookies)

    def set_lang_cookie(self, response: Response, locale: str) -> None:
        response.set_cookie(LANG_COOKIE, locale, httponly=True, samesite="lax", secure=self.settings.secure_cookies,
                            path="/", max_age=365 * 24 * 3600)


def to_sign_in(request: Request, reason: str | None = None, pages: Pages | None = None) -> Response:
    """Back to the sign-in page (with why, and where to return); for htmx a client-side redirect."""
    query = f"?reason={reason}" if reason else "?"
    if request.method == "GET" and not request.headers.get("hx-request"):
        from urllib.parse import quote

        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query += f"&next={quote(here, safe='')}" if query != "?" else f"next={quote(here, safe='')}"
    target = "/signin" + (query if query != "?" else "")
    if request.headers.get("hx-request"):
        response: Response = Response(status_code=200, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    if pages is not None:
        pages.clear_session_cookie(response)
    return response


def token_like(value: str) -> bool:
    return 16 <= len(value) <= 64 and all(c.isalnum() or c in "-_" for c in value)
