"""RFC 9457 problem details for every HTTP error; invalid input is a 4xx, never a 500."""

from __future__ import annotations

import logging
from typing import Any

from bson.errors import InvalidDocument, InvalidStringData
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import DomainError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, *, type: str = "about:blank", **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.extra = extra


def problem_response(status: int, title: str, detail: str, request: Request | None = None, type: str = "about:blank",
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": type, "title": title, "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
        rid = request.headers.get("x-request-id")
        if rid:
            body["request_id"] = rid
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        errors.append({"location": ".".join(loc), "message": err.get("msg", "invalid")})
    detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors) or "invalid request"
    return detail, errors


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _refused(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, request, exc.type, **exc.extra)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        headers = exc.extra.pop("headers", None)
        return problem_response(exc.status, exc.title, exc.detail, request, exc.type, headers=headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_detail(exc)
        return problem_response(422, "Invalid request", detail, request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthenticated", 403: "Forbidden"}
        return problem_response(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail), request,
                                headers=getattr(exc, "headers", None))

    # Input that passed validation but cannot be stored (unpaired surrogates, NUL or '.'/'$' in a
    # key built from a path parameter): the caller's fault, so a 422 with the reason, never a 500.
    @app.exception_handler(UnicodeEncodeError)
    @app.exception_handler(InvalidDocument)
    @app.exception_handler(InvalidStringData)
    async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(422, "Invalid request", f"the request holds a value that cannot be stored: {exc}", request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal error", "an unexpected error occurred; it has been logged", request)
