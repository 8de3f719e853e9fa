"""When to send: a window after the trigger, working days of a country's calendar, the customer's quiet hours.

The public-holiday calendar comes from the ``holidays`` package, which is data, not I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays


def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    @property
    def wraps(self) -> bool:
        return self.end <= self.start

    def contains(self, t: time) -> bool:
        if self.start == self.end:
            return False
        if self.wraps:
            return t >= self.start or t < self.end
        return self.start <= t < self.end

    def first_allowed(self, day: date, tz: ZoneInfo) -> datetime:
        """The earliest non-quiet moment of ``day``."""
        at = self.end if self.wraps and self.start != self.end else time(0, 0)
        return datetime.combine(day, at, tzinfo=tz)

    def next_allowed(self, local: datetime) -> datetime:
        """``local`` itself if not quiet, else the end of its quiet period (same zone)."""
        if not self.contains(local.timetz().replace(tzinfo=None)):
            return local
        t = local.time()
        day = local.date()
        if self.wraps and t >= self.start:
            day += timedelta(days=1)
        return datetime.combine(day, self.end, tzinfo=local.tzinfo)


@lru_cache(maxsize=64)
def _calendar(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year)


def working_day_checker(country: str) -> Callable[[date], bool]:
    """Working days of the country, including weekend make-up working days (调休)."""

    def is_working(day: date) -> bool:
        return bool(_calendar(country, day.year).is_working_day(day))

    return is_working


def zone(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


@dataclass(frozen=True)
class SendPolicy:
    quiet: QuietHours
    is_working: Callable[[date], bool] = field(repr=False)

    def allowed(self, moment: datetime, tz: ZoneInfo) -> bool:
        local = moment.astimezone(tz)
        return self.is_working(local.date()) and not self.quiet.contains(local.time())

    def next_allowed(self, moment: datetime, tz: ZoneInfo, horizon_days: int = 40) -> datetime | None:
        local = moment.astimezone(tz)
        for _ in range(horizon_days + 1):
            if not self.is_working(local.date()):
                local = self.quiet.first_allowed(local.date() + timedelta(days=1), tz)
                continue
            moved = self.quiet.next_allowed(local)
            if moved.date() != local.date():
                local = moved  # quiet into the next day: that day must be checked too
                continue
            return moved
        return None

    def choose(self, earliest: datetime, latest: datetime, tz: ZoneInfo) -> datetime:
        """First working, non-quiet moment in [earliest, latest]; else the first non-quiet one; else earliest."""
        found = self.next_allowed(earliest, tz)
        if found is not None and found <= latest:
            return found
        not_quiet = self.quiet.next_allowed(earliest.astimezone(tz))
        return not_quiet if not_quiet <= latest else earliest


def send_window(trigger_at: datetime, now: datetime, min_days: float, max_days: float) -> tuple[datetime, datetime] | None:
    """The window to send in, starting no earlier than now; None when it has already passed."""
    earliest = max(trigger_at + timedelta(days=min_days), now)
    latest = trigger_at + timedelta(days=max_days)
    if latest < earliest:
        return None
    return earliest, latest
