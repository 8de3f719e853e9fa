"""Complaint indicators (KP-1, CP-5, CP-6), pure: computed from the recorded cases of a period.

Every formula is written out, with its target, in ``docs/kpis.md``; the functions named there are the
ones below. A case counts in the period of its receipt ([from, to), by ``received_at``); ``compute``
gets exactly those cases.

* Resolution rate (``answer_stands``) = cases whose formal answer stands at the period's end (their
  last ``resolved`` / ``reopened`` step before ``to`` is a ``resolved``; closing keeps it) / cases
  received.
* First-contact resolution (``first_contact_resolved``) = cases resolved at the first contact / cases
  that reached a formal answer (``first_resolved_at`` set). At the first contact: the first ``resolved``
  step came within ``first_contact`` (24 h by default) of receipt, from the case's first owner, with no
  owner change, no preliminary opinion and no investigation before it, and the case was never reopened.
  Acknowledging (automatic or not) is not a contact step and does not count either way.
* SLA compliance per deadline = met / (met + breached), over the current deadlines and those of earlier
  rounds (reopened cases); deadlines not yet due are pending and count in neither.
* Mean times are in hours from receipt (to the acknowledgement, to the first formal answer).

Everything is read from the case document: its ``history`` (``{step, actor, at, note}``, in the order
the steps were taken), its deadline states and its outcome fields.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from .case import DEADLINE_ORDER, Case, DeadlineState, Status, Step
from .errors import InvalidPeriod

MAX_PERIOD = timedelta(days=366)
# COMPLAINTS_FIRST_CONTACT_HOURS: a formal answer later than this after receipt is not a first-contact one.
DEFAULT_FIRST_CONTACT = timedelta(hours=24)

# Step names as ``case.py`` records them.
ASSIGNED, RESOLVED, REOPENED = "assigned", "resolved", "reopened"
# Steps that mean the case needed more than one contact: it was not solved on the spot.
FURTHER_STEPS = frozenset({"preliminary_opinion", "investigation_started"})
# ``assign`` notes the owner it replaces: "from <owner>", then "; team <a> → <b>" when the team moved.
_FROM_OWNER = re.compile(r"^from (?P<owner>.+?)(?:; team .* → .*)?$", re.DOTALL)


def check_period(start: datetime, end: datetime) -> None:
    """A period is [start, end): both with a UTC offset, positive, at most ``MAX_PERIOD`` long."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidPeriod("from and to must be RFC 3339 with a UTC offset")
    if end <= start or end - start > MAX_PERIOD:
        raise InvalidPeriod("the period must be positive and at most 366 days")


# ---------------------------------------------------------------- per-case rules


def owners_named(case: Case) -> list[str | None]:
    """The owner each ``assigned`` step of the history named, in order.

    The step records who assigned, not whom; the next ``assigned`` step's note names the owner it
    replaced ("from <owner>"), and the last one named the current ``case.owner``. None where the record
    no longer tells (a note erased with the customer's data, see ``anonymise``).
    """
    steps = [s for s in case.history if s.step == ASSIGNED]
    named: list[str | None] = []
    for following in steps[1:]:
        found = _FROM_OWNER.match(following.note or "")
        named.append(found.group("owner") if found else None)
    if steps:
        named.append(case.owner)
    return named


def first_contact_resolved(case: Case, within: timedelta = DEFAULT_FIRST_CONTACT) -> bool:
    """Resolved at the first contact (KP-1): the first formal answer came

    * within ``within`` of receipt (``received_at``),
    * from the first owner — the owner the first ``assigned`` step named, or, for a case nobody was
      assigned before its answer, whoever gave it — with no change of owner before it,
    * with no preliminary-opinion and no investigation step before it,

    and the case was never reopened. Unknown owners (erased notes) do not count as the first one.
    """
    if case.reopen_count or any(s.step == REOPENED for s in case.history):
        return False
    named = iter(owners_named(case))
    first_owner: str | None = None
    for step in case.history:
        if step.step in FURTHER_STEPS:
            return False
        if step.step == ASSIGNED:
            owner = next(named)
            if owner is None or (first_owner is not None and owner != first_owner):
                return False
            first_owner = owner
        elif step.step == RESOLVED:
            return step.at - case.received_at <= within and step.actor == (first_owner or step.actor)
    return False


def answer_stands(case: Case, at: datetime) -> bool:
    """The case's formal answer stands at ``at`` (the period's end): of its ``resolved`` and ``reopened``
    steps taken before ``at``, the last is a ``resolved`` (a closed case keeps its answer; a reopened one
    has none until it is resolved again)."""
    standing = False
    for step in _before(case.history, at):
        if step.step == RESOLVED:
            standing = True
        elif step.step == REOPENED:
            standing = False
    return standing


def _before(history: Sequence[Step], at: datetime) -> Iterable[Step]:
    return (s for s in history if s.at < at)


# ---------------------------------------------------------------- tallies


class _Tally:
    def __init__(self, end: datetime, first_contact: timedelta) -> None:
        self.end = end
        self.within = first_contact
        self.received = 0
        self.open = 0
        self.resolved = 0
        self.resolved_at_end = 0
        self.closed = 0
        self.reopened = 0
        self.first_contact = 0
        self.escalated = 0
        self.breaches = 0
        self.sla: dict[str, dict[str, int]] = {d.value: {"met": 0, "breached": 0, "pending": 0} for d in DEADLINE_ORDER}
        self.ack_hours = 0.0
        self.ack_n = 0
        self.resolve_hours = 0.0
        self.resolve_n = 0
        self.compensated = 0
        self.apologised = 0
        self.root_causes: dict[str, int] = defaultdict(int)

    def add(self, case: Case, now: datetime) -> None:
        self.received += 1
        if case.status == Status.closed:
            self.closed += 1
        elif case.status != Status.resolved:
            self.open += 1
        if answer_stands(case, self.end):
            self.resolved_at_end += 1
        if case.first_resolved_at is not None:
            self.resolved += 1
            self.resolve_hours += _hours(case.received_at, case.first_resolved_at)
            self.resolve_n += 1
            self.first_contact += 1 if first_contact_resolved(case, self.within) else 0
            self.compensated += 1 if case.compensation else 0
            self.apologised += 1 if case.apology else 0
            if case.root_cause:
                self.root_causes[case.root_cause] += 1
        if case.reopen_count:
            self.reopened += 1
        if case.escalations:
            self.escalated += 1
        if case.acknowledged_at is not None:
            self.ack_hours += _hours(case.received_at, case.acknowledged_at)
            self.ack_n += 1
        states: list[tuple[str, DeadlineState]] = [(name, s) for name, s in case.deadlines.items()]
        states += [(str(p["name"]), DeadlineState.model_validate(p)) for p in case.previous_deadlines]
        for name, state in states:
            outcome = state.outcome(now)
            self.sla[name][outcome] += 1
            self.breaches += 1 if outcome == "breached" else 0

    def report(self) -> dict[str, Any]:
        sla = {}
        for name, c in self.sla.items():
            decided = c["met"] + c["breached"]
            sla[name] = {**c, "compliance": round(c["met"] / decided, 4) if decided else None}
        return {
            "counts": {"received": self.received, "open": self.open, "resolved": self.resolved, "closed": self.closed,
                       "reopened": self.reopened, "escalated": self.escalated, "breaches": self.breaches,
                       "resolved_at_end": self.resolved_at_end, "first_contact": self.first_contact},
            "sla": sla,
            "resolution_rate": _ratio(self.resolved_at_end, self.received),
            "first_contact_resolution": _ratio(self.first_contact, self.resolved),
            "mean_hours_to_acknowledge": round(self.ack_hours / self.ack_n, 3) if self.ack_n else None,
            "mean_hours_to_resolve": round(self.resolve_hours / self.resolve_n, 3) if self.resolve_n else None,
            "outcomes": {"compensated": self.compensated, "apologised": self.apologised,
                         "root_causes": dict(sorted(self.root_causes.items()))},
        }


def _hours(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def compute(cases: Iterable[Case], now: datetime, *, end: datetime | None = None,
            first_contact: timedelta = DEFAULT_FIRST_CONTACT) -> dict[str, Any]:
    """The indicators of the cases received in a period ending at ``end`` (``now`` when not given):
    overall, by current owner and by team. ``now`` decides which deadlines are breached or pending."""
    end = end or now

    def tally() -> _Tally:
        return _Tally(end, first_contact)

    overall = tally()
    by_owner: dict[str, _Tally] = defaultdict(tally)
    by_team: dict[str, _Tally] = defaultdict(tally)
    for case in cases:
        overall.add(case, now)
        by_owner[case.owner or "(unowned)"].add(case, now)
        by_team[case.team or "(none)"].add(case, now)
    return {
        "first_contact_hours": first_contact.total_seconds() / 3600,
        "overall": overall.report(),
        "by_owner": {k: v.report() for k, v in sorted(by_owner.items())},
        "by_team": {k: v.report() for k, v in sorted(by_team.items())},
    }
