"""Reading cases and the commands people give on them (lifecycle, assignment, waiting on the customer)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from .. import domain
from ..domain import Actor, Case, CaseNotFound, ConcurrentChange, Outcome, StatusLinkInvalid, queue
from ..store import CaseFilter, CasePage
from .deps import SAVE_ATTEMPTS, Deps, to_cloud_events

Command = Callable[[Case, datetime], Outcome]
Values = str | Iterable[str] | None


async def _load(deps: Deps, ref: str) -> Case | None:
    """The case under an id, an alias, or its case number (``TS-2026-000123``)."""
    return await deps.cases.by_number(ref) if domain.is_case_number(ref) else await deps.cases.get(ref)


async def get_case(deps: Deps, case_id: str) -> Case:
    case = await _load(deps, case_id)
    if case is None:
        raise CaseNotFound(f"no complaint {case_id} (yet: intake is asynchronous)")
    return case


async def list_cases(deps: Deps, *, customer_id: str | None = None, status: Values = None, open_: bool | None = None,
                     owner: str | None = None, team: str | None = None, severity: Values = None, channel: Values = None,
                     category: Values = None, number: str | None = None, overdue: bool | None = None,
                     sort: str | None = None, limit: int = 50, cursor: str | None = None) -> CasePage:
    """A page of a queue. Several values of ``status``, ``severity``, ``channel`` and ``category`` are given
    repeated or comma-separated; ``open`` narrows the statuses to the open (or the finished) ones;
    ``owner`` ``none`` means nobody's. Newest receipt first, or (``sort=deadline``) nearest open deadline
    first; the page size is capped by ``deps.max_page_size``. Unknown values are refused (``InvalidQuery``)."""
    who = queue.owner(owner)
    filters = CaseFilter(
        customer_id=customer_id or None, status=queue.statuses(status, open_),
        owner=who.subject if who else None, unowned=bool(who and who.unowned), team=team or None,
        severity=queue.values("severity", severity, queue.SEVERITIES),
        channel=queue.values("channel", channel, queue.CHANNELS),
        category=queue.values("category", category), number=number or None, overdue=overdue)
    order = queue.order(sort)
    return await deps.cases.query(filters, deps.clock.now(), min(limit, deps.max_page_size), cursor, order)


async def status_page(deps: Deps, token: str) -> Case:
    """The case behind a customer's status link (``StatusLinkInvalid`` 404, ``StatusLinkExpired`` 410)."""
    links = deps.policy.status_links
    if links is None:
        raise StatusLinkInvalid()
    case = await deps.cases.get(links.read(token, deps.clock.now()))
    if case is None:
        raise StatusLinkInvalid()
    return case


async def run_command(deps: Deps, case_id: str, actor: Actor, command: Command) -> Case:
    """Load, check the actor may act, apply, and save with its events (retrying on a concurrent write)."""
    for _ in range(SAVE_ATTEMPTS):
        case = await _load(deps, case_id)
        if case is None:
            raise CaseNotFound(f"no complaint {case_id}")
        case_id = case.id  # the id asked for may be an alias
        domain.ensure_may_act(case, actor.subject, privileged=actor.supervisor)
        outcome = command(case, deps.clock.now())
        if await deps.cases.save(outcome.case, case.version, to_cloud_events(outcome.case, outcome.events)):
            return outcome.case
    raise ConcurrentChange(f"complaint {case_id} is being changed concurrently; try again")


async def acknowledge(deps: Deps, case_id: str, actor: Actor) -> Case:
    return await run_command(deps, case_id, actor, lambda c, now: domain.acknowledge(c, actor.subject, now, deps.policy))


async def assign(deps: Deps, case_id: str, actor: Actor, owner: str, team: str | None = None) -> Case:
    """Name the owner. The case keeps the team routing gave it; a supervisor may move it with ``team``."""
    domain.ensure_may_assign(actor, owner)

    def command(case: Case, now: datetime) -> Outcome:
        domain.ensure_may_move(actor, case, team)
        return domain.assign(case, owner, actor.subject, now, deps.policy, team)

    return await run_command(deps, case_id, actor, command)


async def give_preliminary_opinion(deps: Deps, case_id: str, actor: Actor, opinion: str) -> Case:
    return await run_command(deps, case_id, actor, lambda c, now: domain.give_preliminary_opinion(
        c, opinion, actor.subject, now, deps.policy))


async def start_investigation(deps: Deps, case_id: str, actor: Actor, reason: str) -> Case:
    return await run_command(deps, case_id, actor, lambda c, now: domain.start_investigation(
        c, reason, actor.subject, now, deps.policy))


async def resolve(deps: Deps, case_id: str, actor: Actor, resolution: str, *, compensation: str | None = None,
                  apology: bool = False, root_cause: str | None = None) -> Case:
    return await run_command(deps, case_id, actor, lambda c, now: domain.resolve(
        c, resolution, actor.subject, now, deps.policy, compensation=compensation, apology=apology, root_cause=root_cause))


async def close(deps: Deps, case_id: str, actor: Actor, *, confirmed_by_customer: bool = False) -> Case:
    return await run_command(deps, case_id, actor, lambda c, now: domain.close(
        c, actor.subject, now, deps.policy, confirmed_by_customer=confirmed_by_customer))


async def reopen(deps: Deps, case_id: str, actor: Actor, reason: str) -> Case:
    return await run_command(deps, case_id, actor, lambda c, now: domain.reopen(c, reason, actor.subject, now, deps.policy))


async def await_customer(deps: Deps, case_id: str, actor: Actor, reason: str) -> Case:
    return await run_command(deps, case_id, actor, lambda c, now: domain.await_customer(
        c, reason, actor.subject, now, deps.policy))


async def customer_responded(deps: Deps, case_id: str, actor: Actor) -> Case:
    return await run_command(deps, case_id, actor, lambda c, now: domain.customer_responded(
        c, actor.subject, now, deps.policy))

