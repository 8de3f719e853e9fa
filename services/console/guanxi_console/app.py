"""Composition root of the console: the only place that constructs anything.

Like every service it builds a ``ServiceRuntime`` and owns one MongoDB database (sessions and saved
queue views); unlike them it has no messaging (``messaging=False``: it neither consumes nor publishes
events: everything else is read and done through the gateway's ``/api/v1``). ``runtime.http_app``
gives the probes, request ids and server spans; readiness is the store's and the gateway's
(``ready_when``); old sessions are swept by ``runtime.every``. Errors are pages here, not problem+json."""

from __future__ import annotations

import logging
import sys
from functools import partial

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from guanxi_shared.clock import Clock, SystemClock
from guanxi_shared.errors import DomainError
from guanxi_shared.runtime import ServiceRuntime, serve
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import handlers, i18n
from .api import ROUTERS, STATIC_DIR, SignInNeeded
from .domain import N_
from .gateway import Gateway, GatewayError, GatewayUnavailable, HttpGateway, Unauthenticated
from .handlers import Deps, SessionEnded
from .identity import HttpIdentityProvider, IdentityProvider
from .settings import ConsoleSettings
from .store import ConsoleStore, MongoConsoleStore
from .web import Pages, SecurityHeaders, csp_for, to_sign_in

log = logging.getLogger(__name__)
SWEEP_EVERY_SECONDS = 300
# FastAPI's own documentation pages load scripts from a CDN (refused by the CSP) and document no API.
_DOCS = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


def build(settings: ConsoleSettings | None = None, clock: Clock | None = None, gateway: Gateway | None = None,
          store: ConsoleStore | None = None, identity: IdentityProvider | None = None, *, tracing: bool = True) -> FastAPI:
    settings = settings or ConsoleSettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(settings, tracing=tracing, messaging=False)
    own_gateway = HttpGateway(settings.gateway_url, settings.gateway_timeout) if gateway is None else None
    the_gateway: Gateway = gateway if gateway is not None else own_gateway  # type: ignore[assignment]
    the_store: ConsoleStore = store if store is not None else MongoConsoleStore(runtime.db)
    # Single sign-on through the organisation's OpenID Connect provider (discovery is read on first use).
    own_identity = HttpIdentityProvider(settings) if identity is None and settings.oidc_configured else None
    the_identity = identity if identity is not None else own_identity
    deps = Deps(settings=settings, gateway=the_gateway, store=the_store, clock=clock, identity=the_identity)
    pages = Pages(settings, i18n.load_all())
    if not (settings.assets_dir / "htmx.org" / "dist" / "htmx.min.js").is_file():
        log.warning("htmx is not installed under %s: run `make install` (npm ci in services/console); pages work "
                    "without live updates", settings.assets_dir)

    runtime.on_startup(the_store.ensure_indexes)
    runtime.ready_when("gateway", the_gateway.ready)
    runtime.every("session-sweep", SWEEP_EVERY_SECONDS, partial(handlers.sweep_sessions, deps))
    if own_gateway is not None:
        runtime.on_shutdown(own_gateway.close)
    if own_identity is not None:
        runtime.on_shutdown(own_identity.close)

    app = runtime.http_app(ROUTERS, deps=deps, title="Guanxi console")
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) not in _DOCS]
    app.openapi_url = app.docs_url = app.redoc_url = None
    app.state.pages = pages
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _error_pages(app, pages)
    app.add_middleware(SecurityHeaders, csp=csp_for(settings))
    return app


def _error_pages(app: FastAPI, pages: Pages) -> None:
    """People get pages in their language, not problem+json (these replace the runtime's JSON handlers)."""

    def page(request: Request, status: int, title: str, message: str) -> Response:
        viewer = pages.viewer(request, None)
        t = pages.gettext(viewer)
        return pages.render(request, viewer, "message.html", status=status, title=t(title), message=t(message))

    async def sign_in_needed(request: Request, exc: Exception) -> Response:
        return to_sign_in(request, None, pages)

    async def session_ended(request: Request, exc: Exception) -> Response:
        return to_sign_in(request, "expired", pages)

    async def refused_by_the_api(request: Request, exc: Exception) -> Response:
        if isinstance(exc, Unauthenticated):
            return to_sign_in(request, "expired", pages)
        status = exc.status if isinstance(exc, GatewayError) else 400
        return page(request, status, N_("Request refused"), N_("The request was refused."))

    async def unavailable(request: Request, exc: Exception) -> Response:
        return page(request, 503, N_("Please try again shortly"), N_("A service cannot be reached right now. Please "
                                                                       "try again shortly."))

    async def http_error(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        if code == 404:
            return page(request, 404, N_("Page not found"), N_("There is no page at this address."))
        if code == 405:
            return page(request, 405, N_("Not allowed"), N_("This page cannot be used this way."))
        return page(request, code, N_("Error"), N_("The request could not be handled."))

    async def invalid(request: Request, exc: Exception) -> Response:
        return page(request, 422, N_("Incomplete request"), N_("Something was missing from the form. Please try "
                                                               "again from the page."))

    async def refused(request: Request, exc: Exception) -> Response:
        status = exc.status if isinstance(exc, DomainError) else 400
        if status == 404:
            return page(request, 404, N_("Page not found"), N_("There is no page at this address."))
        return page(request, status, N_("Error"), N_("The request could not be handled."))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return page(request, 500, N_("Something went wrong"), N_("An unexpected error occurred; it has been logged. "
                                                                 "Please try again."))

    for cls, handler in ((SignInNeeded, sign_in_needed), (SessionEnded, session_ended),
                         (GatewayError, refused_by_the_api), (GatewayUnavailable, unavailable),
                         (StarletteHTTPException, http_error),
                         (RequestValidationError, invalid), (DomainError, refused), (Exception, unexpected)):
        app.add_exception_handler(cls, handler)


def settings_problem(exc: ValidationError) -> str:
    """What is wrong with the settings, on one line (the variables' names, not pydantic's report)."""
    problems = []
    for error in exc.errors():
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        field = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"CONSOLE_{field.upper()}: {message}" if field in ConsoleSettings.model_fields else message)
    return "; ".join(problems)


def main() -> None:
    try:
        settings = ConsoleSettings()
    except ValidationError as exc:
        print(f"guanxi-console cannot start: {settings_problem(exc)}", file=sys.stderr)  # one line, no traceback
        raise SystemExit(2) from None
    serve(build(settings), settings)
