"""DueWatch: an idle scheduler does not query the store, and nothing due is left waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from guanxi_shared.scheduling import DueWatch
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RESCAN = timedelta(seconds=60)


def idle_pass(watch: DueWatch, now: datetime, found: bool = False) -> None:
    watch.done(watch.begin(now), found)


def test_the_first_pass_queries_then_an_idle_watch_waits_for_the_rescan() -> None:
    watch = DueWatch(RESCAN)
    assert watch.wanted(T0)
    idle_pass(watch, T0)
    assert not watch.wanted(T0 + timedelta(seconds=1))
    assert not watch.wanted(T0 + timedelta(seconds=59))
    assert watch.wanted(T0 + RESCAN)


def test_a_pass_that_found_work_looks_again_at_once() -> None:
    watch = DueWatch(RESCAN)
    idle_pass(watch, T0, found=True)
    assert watch.wanted(T0 + timedelta(seconds=1))
    idle_pass(watch, T0 + timedelta(seconds=1))
    assert not watch.wanted(T0 + timedelta(seconds=2))


def test_a_noted_due_time_is_queried_when_it_comes_and_once_only() -> None:
    watch = DueWatch(RESCAN)
    idle_pass(watch, T0)
    watch.note(T0 + timedelta(seconds=10))
    assert not watch.wanted(T0 + timedelta(seconds=9))
    assert watch.wanted(T0 + timedelta(seconds=10))
    idle_pass(watch, T0 + timedelta(seconds=10))
    assert not watch.wanted(T0 + timedelta(seconds=11))


def test_a_due_time_noted_while_a_pass_runs_is_kept() -> None:
    watch = DueWatch(RESCAN)
    idle_pass(watch, T0)
    started = watch.begin(T0 + timedelta(seconds=5))
    watch.note(T0 + timedelta(seconds=5))  # written after the pass's queries may have run
    watch.done(started, found=False)
    assert watch.wanted(T0 + timedelta(seconds=6))


@given(notes=st.lists(st.integers(min_value=0, max_value=600), max_size=20),
       passes=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=60))
def test_nothing_noted_is_due_for_longer_than_the_pass_interval_without_a_query(notes: list[int], passes: list[int]) -> None:
    """Property: a scheduler that passes when ``wanted`` queries every noted due time by the first pass
    at or after it (the query of a pass sees everything due at its start)."""
    watch = DueWatch(RESCAN)
    idle_pass(watch, T0)
    pending = sorted(T0 + timedelta(seconds=n) for n in notes)
    for n in notes:
        watch.note(T0 + timedelta(seconds=n))
    now = T0
    for step in passes:
        now += timedelta(seconds=step)
        overdue = [t for t in pending if t <= now]
        if overdue:
            assert watch.wanted(now), (overdue, now)
        if watch.wanted(now):
            idle_pass(watch, now)
            pending = [t for t in pending if t > now]


def test_beyond_what_it_keeps_the_latest_due_times_wait_for_the_rescan() -> None:
    watch = DueWatch(RESCAN, keep=2)
    idle_pass(watch, T0)
    for s in (30, 10, 20):
        watch.note(T0 + timedelta(seconds=s))
    assert watch.wanted(T0 + timedelta(seconds=10))
    idle_pass(watch, T0 + timedelta(seconds=10))
    assert watch.wanted(T0 + timedelta(seconds=20))
    idle_pass(watch, T0 + timedelta(seconds=20))
    assert not watch.wanted(T0 + timedelta(seconds=30))  # forgotten: 30 was the latest of three
    assert watch.wanted(T0 + timedelta(seconds=20) + RESCAN)
