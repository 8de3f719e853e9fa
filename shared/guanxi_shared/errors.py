"""The kinds of refusal a use case can give, each with the HTTP status it means at the edge.

Services raise subclasses of these from their domain and handlers (``CaseNotFound(NotFound)``); the
problem+json handlers that every service's app installs turn them into answers, so an ``api`` module
never translates errors and a handler never speaks HTTP. Nothing here does I/O: a pure ``domain``
may import it.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A refusal of the request as it stands (the caller's to fix), never an outage."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    type: ClassVar[str] = "about:blank"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Invalid(DomainError):
    status, title = 422, "Invalid request"


class NotFound(DomainError):
    status, title = 404, "Not found"


class Gone(DomainError):
    """The thing existed and was erased: only a tombstone remains."""

    status, title = 410, "Gone"


class Conflict(DomainError):
    """The request contradicts the current state, or raced another change (try again)."""

    status, title = 409, "Conflict"


class Forbidden(DomainError):
    """This caller may not do this (its role or its relation to the thing)."""

    status, title = 403, "Forbidden"
