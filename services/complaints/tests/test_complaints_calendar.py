"""Working-day deadlines on the Chinese calendar (CP-2), with make-up working days (调休).

The 2026 cases follow the State Council notice on the 2026 holiday arrangements (国办发明电〔2025〕7号):
New Year 1–3 Jan (4 Jan Sunday worked), Spring Festival 15–23 Feb (14 Feb and 28 Feb Saturdays
worked), Qingming 4–6 Apr, Labour Day 1–5 May (9 May Saturday worked), Dragon Boat 19–21 Jun,
Mid-Autumn 25–27 Sep, National Day 1–7 Oct (20 Sep Sunday and 10 Oct Saturday worked).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import holidays
import pytest
from guanxi_complaints.domain.workdays import WorkingCalendar
from hypothesis import given, settings
from hypothesis import strategies as st

CST = timezone(timedelta(hours=8))
CAL = WorkingCalendar()


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0, tz: timezone = CST) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=tz)


def eob(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 18, 0, tzinfo=CST)


def test_the_issue_example_national_day_2026() -> None:
    received = at(2026, 9, 30)
    # Oct 1-7 off; Oct 8, 9 and Saturday Oct 10 (make-up) are the three working days.
    assert CAL.deadline(received, 3) == eob(2026, 10, 10)
    assert CAL.deadline(received, 15) == eob(2026, 10, 27)
    assert CAL.deadline(received, 3).isoformat() == "2026-10-10T18:00:00+08:00"


@pytest.mark.parametrize(
    ("received", "days", "due"),
    [
        # New Year 2026: Sunday 4 Jan is worked.
        (at(2025, 12, 31), 1, eob(2026, 1, 4)),
        (at(2025, 12, 31), 3, eob(2026, 1, 6)),
        # Spring Festival 2026: Saturday 14 Feb worked, 15-23 off, Saturday 28 Feb worked.
        (at(2026, 2, 13), 1, eob(2026, 2, 14)),
        (at(2026, 2, 13), 3, eob(2026, 2, 25)),
        (at(2026, 2, 13), 15, eob(2026, 3, 12)),
        (at(2026, 2, 16), 3, eob(2026, 2, 26)),
        (at(2026, 2, 26), 2, eob(2026, 2, 28)),
        # Qingming 2026: 4-6 Apr off (Monday 6 Apr too), no make-up day.
        (at(2026, 4, 3), 1, eob(2026, 4, 7)),
        # Labour Day 2026: 1-5 May off, Saturday 9 May worked.
        (at(2026, 4, 30), 3, eob(2026, 5, 8)),
        (at(2026, 4, 30), 5, eob(2026, 5, 11)),
        (at(2026, 4, 30), 4, eob(2026, 5, 9)),
        # Dragon Boat 2026: Friday 19 Jun off.
        (at(2026, 6, 18), 1, eob(2026, 6, 22)),
        # Mid-Autumn 2026: Friday 25 Sep off.
        (at(2026, 9, 24), 3, eob(2026, 9, 30)),
        # Before National Day 2026: Sunday 20 Sep is worked.
        (at(2026, 9, 18), 1, eob(2026, 9, 20)),
        (at(2026, 9, 18), 3, eob(2026, 9, 22)),
        # Received during the holiday: counting starts with the first working day after it.
        (at(2026, 10, 3), 3, eob(2026, 10, 10)),
        # An ordinary week: Saturday and Sunday are not worked.
        (at(2026, 11, 20), 1, eob(2026, 11, 23)),
        (at(2026, 11, 20), 5, eob(2026, 11, 27)),
    ],
)
def test_2026_official_schedule(received: datetime, days: int, due: datetime) -> None:
    assert CAL.deadline(received, days) == due


def test_the_local_date_of_receipt_decides_not_utc() -> None:
    # 23:00 in Shanghai on 29 Sep is 15:00 UTC: the 29th is the day of receipt.
    assert CAL.deadline(datetime(2026, 9, 29, 15, 0, tzinfo=UTC), 3) == eob(2026, 10, 9)
    # 01:00 in Shanghai on 30 Sep is still 29 Sep in UTC: the 30th is the day of receipt.
    assert CAL.deadline(datetime(2026, 9, 29, 17, 0, tzinfo=UTC), 3) == eob(2026, 10, 10)


def test_business_day_end_is_configurable() -> None:
    cal = WorkingCalendar(business_day_end=time(17, 30))
    assert cal.deadline(at(2026, 9, 30), 3) == datetime(2026, 10, 10, 17, 30, tzinfo=CST)


def test_2027_statutory_holidays_come_from_the_library() -> None:
    # 2027: New Year Friday 1 Jan; Spring Festival eve Friday 5 Feb and days 6-8 Feb; National Day 1 Oct.
    assert not CAL.is_working_day(date(2027, 1, 1))
    assert not CAL.is_working_day(date(2027, 2, 5))
    assert not CAL.is_working_day(date(2027, 2, 8))
    assert not CAL.is_working_day(date(2027, 10, 1))
    assert CAL.deadline(at(2026, 12, 31), 1) == eob(2027, 1, 4)


def test_installed_holidays_has_no_2027_make_up_days_yet() -> None:
    # Tripwire: holidays 0.109 lists no 调休 working days for 2027 (the 2027 notice is not in it).
    # When this fails, the library learned them: review COMPLAINTS_EXTRA_WORKING_DAYS in deployments.
    cn = holidays.country_holidays("CN", years=2027)
    assert not [d for d in cn.weekend_workdays if d.year == 2027]


def test_company_calendar_supplies_2027_make_up_days_and_extra_holidays() -> None:
    # An arrangement published after the library release is configured in settings: here an
    # illustrative Spring Festival 2027 week off until Thursday 11 Feb with Saturday 20 Feb worked.
    cal = WorkingCalendar(extra_holidays=[date(2027, 2, 11)], extra_working_days=[date(2027, 2, 20)])
    assert CAL.is_working_day(date(2027, 2, 11)) and not cal.is_working_day(date(2027, 2, 11))
    assert not CAL.is_working_day(date(2027, 2, 20)) and cal.is_working_day(date(2027, 2, 20))
    received = at(2027, 2, 4)
    # Library only: 5-10 Feb off, then 11, 12, 15.
    assert CAL.deadline(received, 3) == eob(2027, 2, 15)
    # With the company calendar: 11 Feb off too, so 12, 15, 16.
    assert cal.deadline(received, 3) == eob(2027, 2, 16)
    # Saturday 20 Feb counts as a working day: 12,15,16,17,18,19,20.
    assert cal.deadline(received, 7) == eob(2027, 2, 20)


def test_a_day_cannot_be_both_extra_holiday_and_extra_working_day() -> None:
    with pytest.raises(ValueError, match="both"):
        WorkingCalendar(extra_holidays=[date(2027, 2, 20)], extra_working_days=[date(2027, 2, 20)])


def test_working_days_between_counts_half_open_interval() -> None:
    assert CAL.working_days_between(date(2026, 9, 30), date(2026, 10, 10)) == 3
    assert CAL.working_days_between(date(2026, 9, 30), date(2026, 9, 30)) == 0


# ---------------------------------------------------------------- properties

moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))
counts = st.integers(min_value=1, max_value=20)
days_2026 = st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31))


@settings(max_examples=150, deadline=None)
@given(received=moments, n=counts)
def test_deadline_is_the_end_of_a_working_day_after_exactly_n_working_days(received: datetime, n: int) -> None:
    due = CAL.deadline(received, n)
    local_day = received.astimezone(CAL.tz).date()
    assert due.timetz().replace(tzinfo=None) == time(18, 0)
    assert CAL.is_working_day(due.date())
    assert due.date() > local_day
    assert CAL.working_days_between(local_day, due.date()) == n
    assert due > received


@settings(max_examples=100, deadline=None)
@given(received=moments, a=counts, b=counts)
def test_adding_working_days_composes(received: datetime, a: int, b: int) -> None:
    day = received.astimezone(CAL.tz).date()
    assert CAL.add_working_days(CAL.add_working_days(day, a), b) == CAL.add_working_days(day, a + b)


@settings(max_examples=100, deadline=None)
@given(first=moments, delay=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)), n=counts)
def test_a_later_receipt_never_has_an_earlier_deadline(first: datetime, delay: timedelta, n: int) -> None:
    assert CAL.deadline(first + delay, n) >= CAL.deadline(first, n)


@settings(max_examples=60, deadline=None)
@given(received=moments, n=counts, extra=days_2026)
def test_company_days_move_deadlines_only_in_their_direction(received: datetime, n: int, extra: date) -> None:
    base = CAL.deadline(received, n)
    if CAL.is_working_day(extra):
        assert WorkingCalendar(extra_holidays=[extra]).deadline(received, n) >= base
    else:
        assert WorkingCalendar(extra_working_days=[extra]).deadline(received, n) <= base


@settings(max_examples=100, deadline=None)
@given(day=days_2026)
def test_2026_weekends_are_off_except_the_published_make_up_days(day: date) -> None:
    make_up = {date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 20),
               date(2026, 10, 10)}
    if day.weekday() >= 5:
        assert CAL.is_working_day(day) == (day in make_up)
