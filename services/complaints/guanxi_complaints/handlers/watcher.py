"""The deadline watcher (CP-4, CP-5): one pass over the cases due for a look, then the crisis episodes."""

from __future__ import annotations

from .. import domain
from .crisis import end_quiet_episodes
from .deps import Deps, to_cloud_events


async def watch_once(deps: Deps, limit: int = 200) -> int:
    """One pass of the deadline watcher; returns how many cases changed."""
    now = deps.clock.now()
    changed = 0
    for case in await deps.cases.due_for_check(now, limit):
        outcome = domain.tick(case, now, deps.policy)
        # The version guard makes each flag (approaching, breached, escalated) flip once across instances.
        if await deps.cases.save(outcome.case, case.version, to_cloud_events(outcome.case, outcome.events)):
            changed += 1
    await end_quiet_episodes(deps, now)
    return changed
