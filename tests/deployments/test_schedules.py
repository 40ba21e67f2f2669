"""Schedules as data: when they fire (DST days included) and which definitions are refused, naming the key."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.deployments import schedules

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def fire_times(schedule: dict, start: datetime, days: int, max_count: int = 10_000) -> list[datetime]:
    normalised = schedules.normalize(schedule)
    return schedules.occurrences(normalised, start=start, end=start + timedelta(days=days), max_count=max_count)


@pytest.mark.parametrize(
    "schedule",
    [
        {"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
        {"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "timezone": "Europe/Berlin"},
        {"interval": 86400, "anchor_date": "2026-01-01T02:30:00", "timezone": "Europe/Berlin"},
    ],
    ids=["cron", "rrule", "daily-interval"],
)
@pytest.mark.parametrize("change_day", ["2026-03-29", "2026-10-25"], ids=["spring-forward", "fall-back"])
def test_daily_0230_berlin_runs_exactly_once_on_each_local_day_across_a_dst_change(schedule, change_day) -> None:
    """02:30 does not exist on the spring day and exists twice on the autumn day: still one run per day."""
    day = datetime.fromisoformat(change_day).replace(tzinfo=BERLIN)
    times = fire_times(schedule, start=(day - timedelta(days=3)).astimezone(UTC), days=7)
    local_days = Counter(moment.astimezone(BERLIN).date() for moment in times)
    expected_days = {(day + timedelta(days=offset)).date() for offset in range(-3, 4)}
    assert set(local_days) == expected_days
    assert all(count == 1 for count in local_days.values()), local_days
    for moment in times:
        local = moment.astimezone(BERLIN)
        if local.date() == day.date() and change_day.endswith("03-29"):
            assert (local.hour, local.minute) == (3, 30)  # the gap: one hour later, the same distance past 02:00
        else:
            assert (local.hour, local.minute) == (2, 30)
    assert len(set(times)) == len(times)


def test_the_autumn_run_is_the_first_0230_not_the_repeated_one() -> None:
    """On the fall-back day 02:30 happens at +02:00 and again at +01:00; the run takes the first."""
    times = fire_times({"cron": "30 2 * * *", "timezone": "Europe/Berlin"}, datetime(2026, 10, 24, 12, tzinfo=UTC), 1)
    assert times == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]


def test_an_hourly_cron_keeps_running_every_real_hour_through_both_changes() -> None:
    """A schedule that runs every hour must not skip the repeated hour nor double the hour after the gap."""
    spring = fire_times({"cron": "0 * * * *", "timezone": "Europe/Berlin"}, datetime(2026, 3, 28, 23, tzinfo=UTC), 1)
    autumn = fire_times({"cron": "0 * * * *", "timezone": "Europe/Berlin"}, datetime(2026, 10, 24, 22, tzinfo=UTC), 1)
    for times in (spring, autumn):
        gaps = {later - earlier for earlier, later in zip(times, times[1:], strict=False)}
        assert gaps == {timedelta(hours=1)}
        assert len(times) == 25  # 24 hours and both ends of the window
    # The repeated hour in autumn: 02:00 local at +02:00 and again at +01:00.
    assert datetime(2026, 10, 25, 0, tzinfo=UTC) in autumn and datetime(2026, 10, 25, 1, tzinfo=UTC) in autumn


def test_interval_runs_land_on_the_anchor_plus_whole_intervals() -> None:
    """Runs line up with the anchor whatever time the scheduler happens to run."""
    anchor = datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    start = datetime(2026, 5, 17, 13, 41, 2, 123456, tzinfo=UTC)
    times = fire_times({"interval": 900, "anchor_date": anchor.isoformat()}, start, 1, max_count=50)
    assert len(times) == 50
    assert times[0] >= start and times[0] - start < timedelta(seconds=900)
    for moment in times:
        assert (moment - anchor).total_seconds() % 900 == 0


def test_an_anchor_in_the_future_still_gives_runs_on_its_grid() -> None:
    """An anchor after now is a phase, not a start date: runs before it land on the same grid."""
    anchor = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = fire_times({"interval": 60, "anchor_date": anchor.isoformat()}, start, 1, max_count=3)
    assert times == [start + timedelta(seconds=30 + 60 * k) for k in range(3)]


def test_cron_with_a_timezone_follows_local_time_across_the_us_change() -> None:
    """09:00 on weekdays in New York is 14:00 UTC in winter and 13:00 UTC in summer."""
    times = fire_times({"cron": "0 9 * * 1-5", "timezone": "America/New_York"}, datetime(2026, 3, 5, tzinfo=UTC), 10)
    assert all(moment.astimezone(NEW_YORK).hour == 9 for moment in times)
    assert all(moment.astimezone(NEW_YORK).weekday() < 5 for moment in times)
    assert {moment.hour for moment in times} == {14, 13}


def test_rrule_weekly_with_dtstart_fires_on_the_given_days() -> None:
    """An RFC 5545 rule with its own DTSTART: Mondays and Wednesdays at 09:00 local time."""
    rule = "DTSTART:20260105T090000\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE"
    times = fire_times({"rrule": rule, "timezone": "Europe/Berlin"}, datetime(2026, 2, 1, tzinfo=UTC), 14)
    assert [moment.astimezone(BERLIN).strftime("%a %H:%M") for moment in times] == ["Mon 09:00", "Wed 09:00"] * 2


def test_a_minutely_rrule_started_years_ago_is_computed_quickly() -> None:
    """Evaluating from the rule's 2020 default start would scan millions of minutes on every pass."""
    import time

    started = time.perf_counter()
    times = fire_times({"rrule": "FREQ=MINUTELY;INTERVAL=7"}, datetime(2026, 6, 1, tzinfo=UTC), 1, max_count=100)
    assert time.perf_counter() - started < 0.5
    assert len(times) == 100
    assert all((moment - datetime(2020, 1, 1, tzinfo=UTC)).total_seconds() % 420 == 0 for moment in times)


def test_occurrences_keep_min_runs_past_the_horizon_and_stop_at_max_runs() -> None:
    """A monthly schedule still has runs ahead with a one-day horizon; an every-second one is capped."""
    start = datetime(2026, 1, 2, tzinfo=UTC)
    window = {"start": start, "end": start + timedelta(days=1), "hard_end": start + timedelta(days=100)}
    monthly = schedules.normalize({"cron": "0 0 1 * *"})
    found = schedules.occurrences(monthly, min_count=3, max_count=100, **window)
    assert [moment.month for moment in found] == [2, 3, 4]
    yearly = schedules.normalize({"cron": "0 0 1 1 *"})
    found = schedules.occurrences(yearly, min_count=3, max_count=100, **window)
    assert found == []  # the next is 2027: past the 100-day limit
    fast = schedules.normalize({"interval": 1})
    assert len(schedules.occurrences(fast, start=start, end=start + timedelta(days=1), max_count=100)) == 100


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"cron": 5}, "cron"),
        ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "0 2 * * *", "timezone": "../../etc/passwd"}, "timezone"),
        ({"cron": "0 2 * * *", "day_or": "yes"}, "day_or"),
        ({"interval": 0}, "interval"),
        ({"interval": -5}, "interval"),
        ({"interval": True}, "interval"),
        ({"interval": "60"}, "interval"),
        ({"interval": 1e300}, "interval"),
        ({"interval": 60, "anchor_date": "yesterday"}, "anchor_date"),
        ({"interval": 60, "anchor_date": "0001-01-01T00:00:00+14:00"}, "anchor_date"),
        ({"rrule": "FREQ=SOMETIMES"}, "rrule"),
        ({"rrule": "FREQ=SECONDLY"}, "rrule"),
        ({"rrule": "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30"}, "rrule"),
        ({"rrule": "FREQ=DAILY;COUNT=99999999"}, "rrule"),
        ({"rrule": "FREQ=DAILY\nRRULE:FREQ=WEEKLY"}, "rrule"),
        ({"rrule": "FREQ=DAILY\x00"}, "rrule"),
        ({"cron": "0 2 * * *", "extra": 1}, "extra"),
    ],
)
def test_bad_schedules_are_refused_naming_the_key(schedule, field) -> None:
    """Users fix what the error names: the key inside the schedule object."""
    with pytest.raises(schedules.ScheduleError) as caught:
        schedules.normalize(schedule)
    assert caught.value.field == field


@pytest.mark.parametrize("schedule", [{}, {"cron": "* * * * *", "interval": 60}, []])
def test_a_schedule_must_be_exactly_one_kind(schedule) -> None:
    """Neither kind, two kinds, or not an object: the error is about the whole schedule."""
    with pytest.raises(schedules.ScheduleError) as caught:
        schedules.normalize(schedule)
    assert caught.value.field == ""


@pytest.mark.parametrize(
    "schedule",
    [
        {"cron": "*/15 * * * *", "timezone": "Europe/Berlin"},
        {"cron": "0 3 * * 1"},
        {"interval": 1},
        {"interval": 3600, "anchor_date": "2026-01-01T00:20:00Z"},
        {"rrule": "FREQ=HOURLY;INTERVAL=5"},
        {"rrule": "DTSTART:20261020T000000\nRRULE:FREQ=DAILY;COUNT=8", "timezone": "Europe/Berlin"},
    ],
)
def test_the_occurrence_cache_answers_exactly_what_a_fresh_computation_does(schedule) -> None:
    """Passes reuse earlier lists; across advancing windows (DST night included) the answers never differ."""
    normalised = schedules.normalize(schedule)
    cache = schedules.OccurrenceCache()
    now = datetime(2026, 10, 24, 20, 0, tzinfo=UTC)
    for step in range(300):
        now += timedelta(seconds=97 * (step % 7) + 13)
        window = {"start": now, "end": now + timedelta(hours=6), "hard_end": now + timedelta(days=100)}
        expected = schedules.occurrences(normalised, min_count=3, max_count=40, **window)
        assert cache.occurrences(normalised, min_count=3, max_count=40, **window) == expected, (step, now)


def test_an_rrule_with_count_and_no_start_counts_from_when_it_is_saved() -> None:
    """`FREQ=DAILY;COUNT=3` means three runs from now on, the first within a minute; the start is written
    into the stored rule."""
    normalised = schedules.normalize({"rrule": "FREQ=DAILY;COUNT=3", "timezone": "Europe/Berlin"})
    assert normalised["rrule"].startswith("DTSTART:") and normalised["rrule"].endswith("\nFREQ=DAILY;COUNT=3")
    now = datetime.now(UTC)
    found = schedules.occurrences(normalised, start=now, end=now + timedelta(days=10))
    assert len(found) == 3 and found[0] - now <= timedelta(minutes=1)
    local = [moment.astimezone(BERLIN) for moment in found]
    assert [moment.date() - local[0].date() for moment in local] == [timedelta(days=day) for day in range(3)]
    assert len({moment.time() for moment in local}) == 1  # the same local time each day
