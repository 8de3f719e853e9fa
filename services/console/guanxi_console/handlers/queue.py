"""The queue: my open cases and the unassigned ones, with the complaints API's queue filters when it
has them (learned from the gateway's OpenAPI document), and each person's saved views."""

from __future__ import annotations

import asyncio

from guanxi_shared.errors import Conflict, NotFound

from .. import domain
from ..domain import Queue, QueueFilter, SavedView, Session
from ..domain.queue import SERVER_QUEUE
from .deps import Deps, as_person


class TooManyViews(Conflict):
    title = "Too many saved views"


async def load_queue(deps: Deps, session: Session, filters: QueueFilter) -> Queue:
    """Two list calls side by side. With the API's queue filters (``open``, ``owner=none``, ``team``,
    ``sort=deadline``…) the pages come filtered and in deadline order; without them the unowned cases
    are picked from the newest page and ordered here (see the README's API gaps)."""
    parameters = await deps.gateway.api_parameters("/complaints", "get")
    plan = domain.plan_queue(session.subject, session.team, filters, parameters, deps.settings.queue_page_size)
    own, other = await as_person(deps, session, asyncio.gather(
        deps.gateway.list_complaints(session.token, plan.mine),
        deps.gateway.list_complaints(session.token, plan.unassigned)))
    return domain.build_queue(session.subject, own.get("items", []), other.get("items", []), filters, deps.clock.now(),
                              truncated=bool(other.get("next")), server_sorted=plan.server_sorted, team=plan.team)


async def team_filter_available(deps: Deps, session: Session) -> bool:
    """The "my team's unassigned cases" choice makes sense: the person has a team and the API filters by it."""
    parameters = await deps.gateway.api_parameters("/complaints", "get")
    return bool(session.team) and SERVER_QUEUE <= parameters and "team" in parameters


async def saved_views(deps: Deps, session: Session) -> list[SavedView]:
    return await deps.store.views(session.subject)


async def save_view(deps: Deps, session: Session, name: str, filters: QueueFilter) -> SavedView:
    """Save the current filters under a name (``FormProblems`` for a bad name); the same name replaces."""
    chosen = domain.check_view_name(name)
    existing = await deps.store.views(session.subject)
    if len(existing) >= domain.MAX_VIEWS and all(v.name != chosen for v in existing):
        raise TooManyViews(f"at most {domain.MAX_VIEWS} saved views per person")
    return await deps.store.save_view(session.subject, chosen, filters.query(), deps.clock.now())


async def delete_view(deps: Deps, session: Session, view_id: str) -> None:
    if not await deps.store.delete_view(session.subject, view_id):
        raise NotFound(f"no saved view {view_id}")
