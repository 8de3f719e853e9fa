"""Reading cases and the commands people give on them (lifecycle, assignment, waiting on the customer)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .. import domain
from ..domain import Actor, Case, CaseNotFound, ConcurrentChange, Outcome, Status
from ..store import CaseFilter, CasePage
from .deps import SAVE_ATTEMPTS, Deps, to_cloud_events

Command = Callable[[Case, datetime], Outcome]


async def get_case(deps: Deps, case_id: str) -> Case:
    case = await deps.cases.get(case_id)
    if case is None:
        raise CaseNotFound(f"no complaint {case_id} (yet: intake is asynchronous)")
    return case


async def list_cases(deps: Deps, *, customer_id: str | None = None, status: Status | None = None, owner: str | None = None,
                     overdue: bool | None = None, limit: int = 50, cursor: str | None = None) -> CasePage:
    """A page of a queue (by customer, status, owner, overdue), newest receipt first; the page size is
    capped by ``deps.max_page_size``."""
    filters = CaseFilter(customer_id=customer_id, status=status.value if status else None, owner=owner, overdue=overdue)
    return await deps.cases.query(filters, deps.clock.now(), min(limit, deps.max_page_size), cursor)


async def run_command(deps: Deps, case_id: str, actor: Actor, command: Command) -> Case:
    """Load, check the actor may act, apply, and save with its events (retrying on a concurrent write)."""
    for _ in range(SAVE_ATTEMPTS):
        case = await deps.cases.get(case_id)
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
    domain.ensure_may_assign(actor, owner)
    # Taking a case oneself puts it in one's own team unless another is named.
    team = team or (actor.team if owner == actor.subject else None)
    return await run_command(deps, case_id, actor,
                             lambda c, now: domain.assign(c, owner, actor.subject, now, deps.policy, team))


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

