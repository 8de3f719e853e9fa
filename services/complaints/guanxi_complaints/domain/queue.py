"""Queues of cases: which values a list query accepts, and how they are read (pure, no I/O).

A list query names several values of a parameter by repeating it (``status=received&status=reopened``)
or by separating them with commas (``status=received,reopened``); an unknown status, severity or
channel is refused, naming the parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from guanxi_shared.contracts.inbound import ComplaintChannel, Severity
from guanxi_shared.errors import Invalid

from .case import OPEN_STATUSES, Status

STATUSES = frozenset(s.value for s in Status)
OPEN = frozenset(s.value for s in OPEN_STATUSES)
SEVERITIES = frozenset(s.value for s in Severity)
# Follow-up cases opened from a low survey score come in on the "survey" channel.
CHANNELS = frozenset(c.value for c in ComplaintChannel) | {"survey"}
# ``owner=none``: the cases nobody owns yet.
UNOWNED = "none"


class Order(StrEnum):
    received = "received"  # newest receipt first (the default)
    deadline = "deadline"  # nearest open deadline first; cases without one last, newest receipt first


class InvalidQuery(Invalid):
    """A list parameter with a value the service does not know."""

    title = "Invalid query"

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"query.{parameter}: {message}",
                         errors=[{"location": f"query.{parameter}", "message": message}])


def values(parameter: str, given: str | Iterable[str] | None, allowed: frozenset[str] | None = None) -> frozenset[str] | None:
    """The values of a parameter given repeated or comma-separated (None when not given); each must be
    one of ``allowed`` when that is given."""
    if given is None:
        return None
    items = [given] if isinstance(given, str) else list(given)
    found = frozenset(v.strip() for item in items for v in str(item).split(",") if v.strip())
    if not found:
        return None
    if allowed is not None:
        unknown = sorted(found - allowed)
        if unknown:
            raise InvalidQuery(parameter, f"unknown value {', '.join(map(repr, unknown))}; use one of: "
                               + ", ".join(sorted(allowed)))
    return found


def statuses(given: str | Iterable[str] | None, open_: bool | None) -> frozenset[str] | None:
    """The statuses asked for: ``status`` values, narrowed by ``open`` (true: every status but resolved
    and closed; false: only those two)."""
    chosen = values("status", given, STATUSES)
    if open_ is None:
        return chosen
    side = OPEN if open_ else STATUSES - OPEN
    return side if chosen is None else chosen & side


def order(given: str | None) -> Order:
    if given is None:
        return Order.received
    try:
        return Order(given)
    except ValueError:
        raise InvalidQuery("sort", f"unknown value {given!r}; use one of: "
                           + ", ".join(o.value for o in Order)) from None


@dataclass(frozen=True)
class Owner:
    """``owner``: a named handler, or nobody (``owner=none``)."""

    subject: str | None
    unowned: bool = False


def owner(given: str | None) -> Owner | None:
    if given is None or not given.strip():
        return None
    given = given.strip()
    return Owner(None, unowned=True) if given == UNOWNED else Owner(given)
