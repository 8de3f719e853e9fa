"""Crisis early warning rules (CP-7), pure: a sliding-window count compared with its recent baseline.

Arrivals are counted in fixed time buckets. The window count is the sum of the buckets of the
last ``window``; the baseline is the mean count per window over the ``baseline_windows`` windows
before it. A spike is a window count of at least ``max(min_count, ratio × baseline)``. An episode
starts (one alert) when a spike is seen and ends when the count falls back under the threshold.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CRISIS_NAMESPACE = uuid.UUID("0b6f3c52-1c8e-4a0a-9d58-5a8e0e2f7c43")


@dataclass(frozen=True)
class CrisisRule:
    window: timedelta
    bucket: timedelta
    baseline_windows: int
    min_count: int
    ratio: float

    @property
    def lookback(self) -> timedelta:
        return self.window * (self.baseline_windows + 1)


@dataclass(frozen=True)
class Reading:
    count: int
    baseline: float
    threshold: float

    @property
    def spiking(self) -> bool:
        return self.count >= self.threshold


def bucket_of(at: datetime, bucket: timedelta) -> datetime:
    """Start of the bucket holding ``at`` (UTC, aligned on the epoch)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    size = int(bucket.total_seconds())
    seconds = int((at - epoch).total_seconds())
    return epoch + timedelta(seconds=seconds - seconds % size)


def read(counts: Iterable[tuple[datetime, int]], now: datetime, rule: CrisisRule) -> Reading:
    # The window is the current bucket and the buckets before it, ``window`` long in all, so a
    # fresh burst counts in full at once; the baseline is the ``baseline_windows`` windows before.
    window_start = bucket_of(now, rule.bucket) + rule.bucket - rule.window
    baseline_start = window_start - rule.window * rule.baseline_windows
    current = 0
    earlier = 0
    for bucket, count in counts:
        if window_start <= bucket <= now:
            current += count
        elif baseline_start <= bucket < window_start:
            earlier += count
    baseline = earlier / rule.baseline_windows
    return Reading(current, baseline, max(float(rule.min_count), rule.ratio * baseline))


def alert_id(dimension: str, value: str, episode: int) -> str:
    return str(uuid.uuid5(CRISIS_NAMESPACE, f"{dimension}|{value}|{episode}"))
