"""The refusals of the complaints service, each a ``guanxi_shared.errors`` kind (so its HTTP status)."""

from __future__ import annotations

from guanxi_shared.errors import Conflict, DomainError, Forbidden, Invalid, NotFound


class CaseNotFound(NotFound):
    """No case under this id or alias (yet: intake is asynchronous)."""


class ConcurrentChange(Conflict):
    """The case kept changing under the command; trying again may succeed."""


class IllegalTransition(Conflict):
    """The command does not apply to the case in its current status."""

    title = "Illegal transition"


class NotPermitted(Forbidden):
    """The actor may not act on this case: agents act on their own or unowned cases."""


class BadCursor(DomainError):
    """A list cursor that this service did not hand out."""

    title = "Bad cursor"


class InvalidPeriod(Invalid):
    """A KPI period that is not a positive span of at most a year, with offsets."""
