"""Working days of a country's calendar, with make-up working days (调休) and company overrides.

Pure computation (no I/O): the `holidays` package knows each country's public holidays and, for
China, the weekend days the State Council turns into working days (``weekend_workdays``). The
company may add its own holidays or working days; those win over the country calendar. A
deadline of "N working days after receipt" falls at the end of the business day of the N-th
working day after the local date of receipt (the day of receipt itself does not count).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

# More than a year of consecutive non-working days means the calendar is broken, not long holidays.
_MAX_SCAN_DAYS = 400


class WorkingCalendar:
    def __init__(
        self,
        country: str = "CN",
        timezone: str = "Asia/Shanghai",
        business_day_end: time = time(18, 0),
        extra_holidays: Iterable[date] = (),
        extra_working_days: Iterable[date] = (),
        subdivision: str | None = None,
    ) -> None:
        self.tz = ZoneInfo(timezone)
        self.business_day_end = business_day_end
        self._public = holidays.country_holidays(country, subdiv=subdivision)
        self._weekend = frozenset(self._public.weekend)
        self._extra_holidays = frozenset(extra_holidays)
        self._extra_working = frozenset(extra_working_days)
        overlap = self._extra_holidays & self._extra_working
        if overlap:
            raise ValueError(f"dates both extra holiday and extra working day: {sorted(overlap)}")

    def is_working_day(self, day: date) -> bool:
        if day in self._extra_holidays:
            return False
        if day in self._extra_working:
            return True
        # The membership test loads the year, which also fills the make-up working days.
        is_public_holiday = day in self._public
        if day.weekday() in self._weekend:
            return day in self._public.weekend_workdays
        return not is_public_holiday

    def add_working_days(self, day: date, n: int) -> date:
        """The n-th working day strictly after ``day`` (n >= 1)."""
        if n < 1:
            raise ValueError("n must be at least 1")
        current = day
        scanned = 0
        while n > 0:
            current += timedelta(days=1)
            scanned += 1
            if self.is_working_day(current):
                n -= 1
                scanned = 0
            elif scanned > _MAX_SCAN_DAYS:
                raise ValueError(f"no working day within {_MAX_SCAN_DAYS} days after {current}")
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]."""
        count = 0
        current = start
        while current < end:
            current += timedelta(days=1)
            if self.is_working_day(current):
                count += 1
        return count

    def end_of_business(self, day: date) -> datetime:
        return datetime.combine(day, self.business_day_end, tzinfo=self.tz)

    def deadline(self, start: datetime, working_days: int) -> datetime:
        """End of business of the ``working_days``-th working day after ``start``'s local date."""
        local_day = start.astimezone(self.tz).date()
        return self.end_of_business(self.add_working_days(local_day, working_days))

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)
