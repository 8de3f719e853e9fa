"""Scores and the figures of a report: CSAT (0-100, target shown), NPS (0-10), response rate."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo


def nps_category(nps: int) -> Literal["promoter", "passive", "detractor"]:
    if nps >= 9:
        return "promoter"
    if nps >= 7:
        return "passive"
    return "detractor"


def low_score_reasons(csat: int | None, nps: int | None, threshold: int) -> list[str]:
    reasons = []
    if csat is not None and csat < threshold:
        reasons.append(f"csat_below_{threshold}")
    if nps is not None and nps_category(nps) == "detractor":
        reasons.append("nps_detractor")
    return reasons


CSAT_BUCKETS: tuple[tuple[int, int], ...] = ((0, 59), (60, 69), (70, 79), (80, 89), (90, 100))
NPS_SCORES = range(11)


def csat_bucket(csat: int | None) -> str:
    if csat is None:
        return "none"
    for low, high in CSAT_BUCKETS:
        if low <= csat <= high:
            return f"{low}-{high}"
    raise ValueError(f"csat out of range: {csat}")


def _no_csat() -> dict[str, int]:
    return {f"{low}-{high}": 0 for low, high in CSAT_BUCKETS}


def _no_nps() -> dict[int, int]:
    return dict.fromkeys(NPS_SCORES, 0)


@dataclass
class Figures:
    """What one group of a report is made of: surveys sent, surveys answered, the sum of their CSAT
    scores and how many answers fell in each CSAT bucket and gave each NPS score.

    Every figure a report shows is derived from these counts (``as_report``): the average CSAT is the
    sum over the answers that gave one; NPS is promoters (9-10) minus detractors (0-6), over the NPS
    answers, times 100; the response rate is answered over sent."""

    sent: int = 0
    completed: int = 0
    csat_sum: int = 0
    csat_buckets: dict[str, int] = field(default_factory=_no_csat)
    nps_scores: dict[int, int] = field(default_factory=_no_nps)

    def count(self, n: int, *, completed: bool, csat: int | None, nps: int | None) -> None:
        """Add ``n`` sent surveys that share one outcome (answered or not, CSAT, NPS)."""
        self.sent += n
        if not completed:
            return
        self.completed += n
        if csat is not None:
            self.csat_sum += csat * n
            self.csat_buckets[csat_bucket(csat)] += n
        if nps is not None:
            self.nps_scores[nps] += n

    def add(self, other: Figures) -> None:
        self.sent += other.sent
        self.completed += other.completed
        self.csat_sum += other.csat_sum
        for bucket, n in other.csat_buckets.items():
            self.csat_buckets[bucket] += n
        for score, n in other.nps_scores.items():
            self.nps_scores[score] += n

    @classmethod
    def total(cls, parts: Iterable[Figures]) -> Figures:
        out = cls()
        for part in parts:
            out.add(part)
        return out

    @property
    def csat_n(self) -> int:
        return sum(self.csat_buckets.values())

    @property
    def nps_n(self) -> int:
        return sum(self.nps_scores.values())

    @property
    def promoters(self) -> int:
        return sum(n for score, n in self.nps_scores.items() if nps_category(score) == "promoter")

    @property
    def detractors(self) -> int:
        return sum(n for score, n in self.nps_scores.items() if nps_category(score) == "detractor")

    def as_report(self, target: float) -> dict[str, Any]:
        csat_n, nps_n = self.csat_n, self.nps_n
        avg = round(self.csat_sum / csat_n, 2) if csat_n else None
        return {
            "sent": self.sent,
            "completed": self.completed,
            "response_rate": round(self.completed / self.sent, 4) if self.sent else None,
            "avg_csat": avg,
            "csat_target": target,
            "meets_target": None if avg is None else avg >= target,
            "nps": round(100 * (self.promoters - self.detractors) / nps_n, 2) if nps_n else None,
            "promoters": self.promoters,
            "detractors": self.detractors,
            "nps_responses": nps_n,
        }

    def distribution(self) -> dict[str, dict[str, int]]:
        return {"csat": dict(self.csat_buckets), "nps": {str(score): n for score, n in self.nps_scores.items()}}


def period_keys(moment: datetime, tz: ZoneInfo) -> dict[str, str]:
    """Day, ISO week and month of ``moment`` in the business time zone, stored with the survey when sent
    so that reports can group by them."""
    local = moment.astimezone(tz)
    year, week, _ = local.isocalendar()
    return {"day": local.strftime("%Y-%m-%d"), "week": f"{year}-W{week:02d}", "month": local.strftime("%Y-%m")}
