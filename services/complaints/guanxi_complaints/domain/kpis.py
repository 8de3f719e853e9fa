"""Complaint indicators (KP-1, CP-5, CP-6), pure: computed from the recorded cases of a period.

A case counts in the period of its receipt. SLA compliance per deadline = met / (met + breached);
deadlines not yet due are pending and count in neither. Resolution rate = cases given a formal
answer / cases received. First-contact resolution = cases resolved straight after
acknowledgement and never reopened / cases resolved. Mean times are in hours from receipt.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from .case import DEADLINE_ORDER, Case, DeadlineState, Status
from .errors import InvalidPeriod

MAX_PERIOD = timedelta(days=366)


def check_period(start: datetime, end: datetime) -> None:
    """A period is [start, end): both with a UTC offset, positive, at most ``MAX_PERIOD`` long."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidPeriod("from and to must be RFC 3339 with a UTC offset")
    if end <= start or end - start > MAX_PERIOD:
        raise InvalidPeriod("the period must be positive and at most 366 days")


class _Tally:
    def __init__(self) -> None:
        self.received = 0
        self.open = 0
        self.resolved = 0
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
        if case.first_resolved_at is not None:
            self.resolved += 1
            self.resolve_hours += _hours(case.received_at, case.first_resolved_at)
            self.resolve_n += 1
            self.first_contact += 1 if case.first_contact_resolution else 0
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
                       "reopened": self.reopened, "escalated": self.escalated, "breaches": self.breaches},
            "sla": sla,
            "resolution_rate": _ratio(self.resolved, self.received),
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


def compute(cases: Iterable[Case], now: datetime) -> dict[str, Any]:
    overall = _Tally()
    by_owner: dict[str, _Tally] = defaultdict(_Tally)
    by_team: dict[str, _Tally] = defaultdict(_Tally)
    for case in cases:
        overall.add(case, now)
        by_owner[case.owner or "(unowned)"].add(case, now)
        by_team[case.team or "(none)"].add(case, now)
    return {
        "overall": overall.report(),
        "by_owner": {k: v.report() for k, v in sorted(by_owner.items())},
        "by_team": {k: v.report() for k, v in sorted(by_team.items())},
    }
