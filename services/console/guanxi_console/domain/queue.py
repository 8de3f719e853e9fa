"""The queue, pure: its filters (as the page's query and as the complaints API's), which of them the API
can apply itself, the two lists (mine, unassigned) in deadline order, and a person's saved views."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from .complaints import DeadlineView, next_deadline
from .forms import FormProblems
from .labels import CATEGORIES, CHANNELS, N_, OPEN_STATUSES, SEVERITIES, STATUSES

Scope = Literal["all", "team"]
# Parameters of GET /api/v1/complaints that, once the API has them, do the queue's work on the server:
# several statuses, open cases, unowned cases (owner=none), team, severity, channel, category and
# sorting by the next deadline.
SERVER_QUEUE = frozenset({"open", "sort"})
SERVER_FILTERS = ("severity", "channel", "category", "team")


@dataclass(frozen=True)
class QueueFilter:
    statuses: tuple[str, ...] = ()
    severity: str | None = None
    channel: str | None = None
    category: str | None = None
    # The unassigned list: the viewer's team's (what an agent works from), or every team's on request.
    scope: Scope = "team"

    @classmethod
    def parse(cls, statuses: Iterable[str] | str | None = (), severity: str | None = None, channel: str | None = None,
              category: str | None = None, scope: str | None = None) -> QueueFilter:
        """Unknown values are dropped (a hand-edited URL shows the unfiltered queue, never an error)."""
        if isinstance(statuses, str):
            statuses = [statuses]
        chosen = {s for s in statuses or () if s in OPEN_STATUSES}
        return cls(tuple(s for s in STATUSES if s in chosen), severity if severity in SEVERITIES else None,
                   channel if channel in CHANNELS else None, category if category in CATEGORIES else None,
                   "all" if scope == "all" else "team")

    @classmethod
    def from_query(cls, query: str) -> QueueFilter:
        pairs = parse_qsl(query, keep_blank_values=False)
        one = {k: v for k, v in pairs}
        return cls.parse([v for k, v in pairs if k == "status"], one.get("severity"), one.get("channel"),
                         one.get("category"), one.get("scope"))

    def keeps(self, case: Mapping[str, Any]) -> bool:
        return ((not self.statuses or case.get("status") in self.statuses)
                and (self.severity is None or case.get("severity") == self.severity)
                and (self.channel is None or case.get("channel") == self.channel)
                and (self.category is None or case.get("category") == self.category))

    def pairs(self) -> list[tuple[str, str]]:
        """The page's query (repeated ``status``), in a fixed order: saved views compare equal."""
        out = [("status", s) for s in self.statuses]
        out += [(k, v) for k, v in (("severity", self.severity), ("channel", self.channel),
                                    ("category", self.category)) if v]
        if self.scope == "all":
            out.append(("scope", "all"))
        return out

    def query(self) -> str:
        return urlencode(self.pairs())

    @property
    def empty(self) -> bool:
        return not self.pairs()


@dataclass(frozen=True)
class QueuePlan:
    """The two list calls of the queue as the API can take them; ``server_sorted``: the API orders the
    pages by the next deadline, so the console does not reorder them."""

    mine: list[tuple[str, str]]
    unassigned: list[tuple[str, str]]
    server_sorted: bool
    server_filtered: bool
    team: str | None  # the team whose unassigned cases are asked for, or None for every team's


def plan_queue(viewer: str, team: str | None, filters: QueueFilter, api_parameters: frozenset[str],
               page_size: int) -> QueuePlan:
    """Which calls to make. With the queue filters of ``GET /complaints`` (``open``, ``sort``…): my open
    cases and the unowned open ones (``owner=none``), by deadline, filtered on the server. Without
    them: my cases and the newest page of all cases, filtered and ordered here."""
    size = ("limit", str(page_size))
    if SERVER_QUEUE <= api_parameters:
        common = [size, ("open", "true"), ("sort", "deadline"), *[("status", s) for s in filters.statuses]]
        common += [(k, v) for k, v in (("severity", filters.severity), ("channel", filters.channel),
                                       ("category", filters.category)) if v and k in api_parameters]
        chosen_team = team if filters.scope == "team" and team and "team" in api_parameters else None
        unassigned = [*common, ("owner", "none")] + ([("team", chosen_team)] if chosen_team else [])
        return QueuePlan([*common, ("owner", viewer)], unassigned, True, True, chosen_team)
    base = [size] + ([("status", filters.statuses[0])] if len(filters.statuses) == 1 else [])
    return QueuePlan([*base, ("owner", viewer)], base, False, False, None)


@dataclass(frozen=True)
class QueueRow:
    case: Mapping[str, Any]
    next_deadline: DeadlineView | None
    mine: bool


@dataclass
class Queue:
    mine: list[QueueRow] = field(default_factory=list)
    unassigned: list[QueueRow] = field(default_factory=list)
    # More cases than one page: without the server's filters the unassigned list may miss older
    # unowned cases; with them, only the most urgent page is shown.
    truncated: bool = False
    server: bool = False
    team: str | None = None


def _sort_key(row: QueueRow) -> tuple[int, float]:
    if row.next_deadline is None or row.next_deadline.due_at is None:
        return (1, 0.0)
    return (0, row.next_deadline.due_at.timestamp())


def build_queue(viewer: str, own: Iterable[Mapping[str, Any]], recent: Iterable[Mapping[str, Any]],
                filters: QueueFilter, now: datetime, truncated: bool = False, *, server_sorted: bool = False,
                team: str | None = None) -> Queue:
    """My open cases and the unowned open ones, each by the nearest running deadline (breached first).
    The filters are applied here too (harmless when the API applied them already); the order is kept
    as the API gave it when it sorted by deadline itself."""
    queue = Queue(truncated=truncated, server=server_sorted, team=team)
    seen: set[str] = set()
    for case in own:
        if case.get("status") in OPEN_STATUSES and filters.keeps(case) and case.get("owner") == viewer:
            seen.add(str(case["id"]))
            queue.mine.append(QueueRow(case, next_deadline(case, now), True))
    for case in recent:
        if (str(case.get("id")) not in seen and not case.get("owner") and case.get("status") in OPEN_STATUSES
                and filters.keeps(case) and (team is None or case.get("team", team) == team)):
            queue.unassigned.append(QueueRow(case, next_deadline(case, now), False))
    if not server_sorted:
        queue.mine.sort(key=_sort_key)
        queue.unassigned.sort(key=_sort_key)
    return queue


# ------------------------------------------------------------------------------------------ saved views

MAX_VIEWS = 20
VIEW_NAME = re.compile(r"^[^\x00-\x1f<>]{1,60}$")


@dataclass(frozen=True)
class SavedView:
    id: str
    owner: str
    name: str
    query: str  # QueueFilter.query()
    created_at: datetime

    @property
    def filters(self) -> QueueFilter:
        return QueueFilter.from_query(self.query)


def check_view_name(raw: str) -> str:
    name = " ".join((raw or "").split())
    if not name:
        raise FormProblems({"name": N_("Give the view a name.")})
    if not VIEW_NAME.match(name):
        raise FormProblems({"name": N_("Use at most 60 characters, without < or >.")})
    return name
