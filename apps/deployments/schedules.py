"""Schedules as plain data: validate them, and list the moments they fire, correct across daylight-saving changes.

A schedule is one of (the API's JSON shape, stored as is once normalised):

    {"interval": 3600, "anchor_date": "2026-01-01T00:00:00+00:00", "timezone": "UTC"}
    {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "day_or": true}
    {"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=0", "timezone": "Europe/Berlin"}

Cron and rrule schedules are evaluated in local wall-clock time, then placed on the UTC line:

- a local time that does not exist (the spring-forward gap: 02:30 in Europe/Berlin on the last Sunday of
  March) runs at the same distance after the gap's start, i.e. 03:30 local, once;
- a local time that exists twice (autumn: 02:30 happens at +02:00 and again at +01:00) runs once, at the
  first occurrence, unless the schedule runs every hour (cron hour field `*` or `*/N`, an HOURLY or
  finer rrule without BYHOUR): such a schedule keeps running through the repeated hour.
- two local times that land on the same UTC moment run once.

Interval schedules are anchor + k * interval in UTC; when the interval is a whole number of days and a
timezone is given, they step in local days instead, so a daily run keeps its local time across DST.
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 100 * 366 * 86400
MAX_CRON_LENGTH = 200
MAX_RRULE_LENGTH = 1000
DEFAULT_ANCHOR = datetime(2020, 1, 1)
# The largest gap between a local time and its UTC moment changing around a DST transition (plus margin).
_DST_SLACK = timedelta(hours=3)
_KINDS = ("interval", "cron", "rrule")
_RRULE_FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY")
# Evaluating a valid rrule must not scan further than this past the window it is asked about.
_RRULE_LOOKAHEAD = timedelta(days=3660)
MAX_RRULE_COUNT = 10_000


class ScheduleError(ValueError):
    """A schedule that cannot be used; `field` names the key inside the schedule object."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.message = message
        self.field = field


# --------------------------------------------------------------------------------------------------------------
# Validation


def normalize(schedule: Any) -> dict[str, Any]:
    """Validate a schedule object and return its canonical form (raises ScheduleError naming the bad key)."""
    if not isinstance(schedule, dict):
        raise ScheduleError("must be an object with one of: interval, cron, rrule", field="")
    kinds = [kind for kind in _KINDS if kind in schedule]
    if len(kinds) != 1:
        raise ScheduleError("give exactly one of: interval, cron, rrule", field="")
    kind = kinds[0]
    allowed = {"interval": {"interval", "anchor_date", "timezone"}, "cron": {"cron", "timezone", "day_or"}}.get(
        kind, {"rrule", "timezone"}
    )
    for key in schedule:
        if key not in allowed:
            raise ScheduleError(f"unknown key for a {kind} schedule", field=str(key))
    timezone_name = _timezone_name(schedule.get("timezone"))
    if kind == "interval":
        return _normalize_interval(schedule, timezone_name)
    if kind == "cron":
        return _normalize_cron(schedule, timezone_name)
    return _normalize_rrule(schedule, timezone_name)


def _timezone_name(value: Any) -> str:
    if value is None:
        return "UTC"
    if not isinstance(value, str) or not value or len(value) > 64 or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", value):
        raise ScheduleError("must be an IANA time zone name such as Europe/Berlin", field="timezone")
    try:
        ZoneInfo(value)
    except Exception:
        raise ScheduleError(f"unknown time zone {value!r}", field="timezone") from None
    return value


def _normalize_interval(schedule: dict[str, Any], timezone_name: str) -> dict[str, Any]:
    interval = schedule["interval"]
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not math.isfinite(interval):
        raise ScheduleError("must be a number of seconds", field="interval")
    if not MIN_INTERVAL_SECONDS <= interval <= MAX_INTERVAL_SECONDS:
        raise ScheduleError(f"must be from {MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS} seconds", field="interval")
    if isinstance(interval, float) and interval.is_integer():
        interval = int(interval)
    anchor = schedule.get("anchor_date")
    if anchor is None:
        anchor_local = DEFAULT_ANCHOR.replace(tzinfo=ZoneInfo(timezone_name))
    else:
        anchor_local = _parse_time(anchor, timezone_name, field="anchor_date")
    return {"interval": interval, "anchor_date": anchor_local.isoformat(), "timezone": timezone_name}


def _parse_time(value: Any, timezone_name: str, *, field: str) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise ScheduleError("must be an ISO 8601 date and time", field=field)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ScheduleError("must be an ISO 8601 date and time", field=field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone_name))
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ScheduleError("is out of range", field=field) from None
    if not 1970 <= moment.year <= 9000:
        raise ScheduleError("must be between the years 1970 and 9000", field=field)
    return moment


def _normalize_cron(schedule: dict[str, Any], timezone_name: str) -> dict[str, Any]:
    from croniter import croniter

    expression = schedule["cron"]
    if not isinstance(expression, str) or not expression.strip() or len(expression) > MAX_CRON_LENGTH:
        raise ScheduleError(f"must be a cron expression of at most {MAX_CRON_LENGTH} characters", field="cron")
    expression = " ".join(expression.split())
    day_or = schedule.get("day_or", True)
    if not isinstance(day_or, bool):
        raise ScheduleError("must be true or false", field="day_or")
    fields = expression.split(" ")
    if not (expression.startswith("@") and len(fields) == 1) and len(fields) != 5:
        raise ScheduleError(
            "must have 5 fields (minute hour day-of-month month day-of-week) or be a macro such as @daily",
            field="cron",
        )
    try:
        valid = croniter.is_valid(expression)
    except Exception:
        valid = False
    if not valid:
        raise ScheduleError(f"{expression!r} is not a valid cron expression", field="cron")
    try:
        iterator = croniter(expression, datetime(2020, 1, 1), day_or=day_or, max_years_between_matches=30)
        iterator.get_next(datetime)
    except Exception:
        raise ScheduleError(f"{expression!r} never fires", field="cron") from None
    return {"cron": expression, "timezone": timezone_name, "day_or": day_or}


def _normalize_rrule(schedule: dict[str, Any], timezone_name: str) -> dict[str, Any]:
    text = schedule["rrule"]
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_RRULE_LENGTH:
        raise ScheduleError(f"must be an RFC 5545 rule of at most {MAX_RRULE_LENGTH} characters", field="rrule")
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text):
        raise ScheduleError("may not contain control characters", field="rrule")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    rule_lines = [line for line in lines if not line.upper().startswith("DTSTART")]
    if len(rule_lines) != 1 or len(lines) - len(rule_lines) > 1:
        raise ScheduleError("give one RRULE, optionally after one DTSTART line", field="rrule")
    canonical = "\n".join(lines)
    rule = _build_rrule(canonical, timezone_name)
    frequency = _frequency_name(rule)
    if frequency not in _RRULE_FREQUENCIES:
        raise ScheduleError(f"FREQ must be one of {', '.join(_RRULE_FREQUENCIES)}", field="rrule")
    if rule._count is not None and rule._count > MAX_RRULE_COUNT:
        raise ScheduleError(f"COUNT may be at most {MAX_RRULE_COUNT}", field="rrule")
    if rule._count is not None and len(lines) == len(rule_lines):
        # "COUNT=5" without a start means five from now, not five in 2020: the start is fixed here, once.
        # The next whole minute, so the first occurrence is still ahead when the scheduler looks.
        now_local = datetime.now(ZoneInfo(timezone_name)).replace(tzinfo=None)
        started = now_local.replace(second=0, microsecond=0) + timedelta(minutes=1)
        canonical = f"DTSTART:{started:%Y%m%dT%H%M%S}\n{canonical}"
        rule = _build_rrule(canonical, timezone_name)
    if rule._bysetpos and frequency not in ("YEARLY", "MONTHLY", "WEEKLY"):
        raise ScheduleError("BYSETPOS is supported with FREQ=YEARLY, MONTHLY or WEEKLY", field="rrule")
    if not _days_exist(rule):
        raise ScheduleError("this rule never fires (no calendar day matches it)", field="rrule")
    return {"rrule": canonical, "timezone": timezone_name}


def _days_exist(rule: Any) -> bool:
    """Whether any calendar day matches the rule's day filters. dateutil scans to the year 9999 looking for a
    rule that never fires (seconds for a minutely one); a yearly probe with the same filters answers fast."""
    from dateutil import rrule as rrule_module

    weekdays = [rrule_module.weekday(day) for day in rule._byweekday or ()]
    weekdays += [rrule_module.weekday(day) for day, _ in rule._bynweekday or ()]
    probe = rrule_module.rrule(
        rrule_module.YEARLY,
        dtstart=datetime(2000, 1, 1),
        bymonth=rule._bymonth,
        bymonthday=tuple(rule._bymonthday or ()) + tuple(rule._bynmonthday or ()) or None,
        byyearday=rule._byyearday,
        byweekno=rule._byweekno,
        byweekday=weekdays or None,
        byhour=0,
        byminute=0,
        bysecond=0,
    )
    return probe.after(datetime(2000, 1, 1), inc=True) is not None


def _build_rrule(text: str, timezone_name: str):
    from dateutil import rrule as rrule_module

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rule = rrule_module.rrulestr(text, dtstart=DEFAULT_ANCHOR, ignoretz=True)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise ScheduleError(f"not a valid RFC 5545 rule: {exc}", field="rrule") from None
    if not isinstance(rule, rrule_module.rrule):
        raise ScheduleError("give one RRULE, optionally after one DTSTART line", field="rrule")
    return rule


def _frequency_name(rule: Any) -> str:
    from dateutil import rrule as rrule_module

    return rrule_module.FREQNAMES[rule._freq]


def describe(schedule: dict[str, Any]) -> str:
    """A short human description for tables: `every 3600s`, `cron 30 2 * * * (Europe/Berlin)`."""
    zone = schedule.get("timezone") or "UTC"
    if "interval" in schedule:
        return f"every {schedule['interval']}s" + (f" ({zone})" if zone != "UTC" else "")
    if "cron" in schedule:
        return f"cron {schedule['cron']} ({zone})"
    return f"rrule {schedule['rrule']} ({zone})".replace("\n", " ")


# --------------------------------------------------------------------------------------------------------------
# Occurrences


def occurrences(
    schedule: dict[str, Any],
    *,
    start: datetime,
    end: datetime,
    min_count: int = 0,
    max_count: int = 100,
    hard_end: datetime | None = None,
) -> list[datetime]:
    """The UTC moments at or after `start` the schedule fires: all up to `end`, and more past it until there
    are `min_count` (never past `hard_end`), at most `max_count`. `schedule` is a normalised schedule."""
    hard_end = hard_end or end
    found: list[datetime] = []
    for moment in iterate(schedule, start=start):
        if len(found) >= max_count or moment > hard_end:
            break
        if moment > end and len(found) >= min_count:
            break
        found.append(moment)
    return found


class OccurrenceCache:
    """`occurrences()` answered from lists computed on earlier calls while they still cover the request.

    The scheduler asks every few seconds for nearly the same window of every schedule; croniter needs about
    0.1 ms per step, so recomputing a thousand 15-minute cron schedules would take seconds per pass. A cached
    list holds every occurrence from the moment it was computed until `covered_until`; a request starting
    later and ending inside that coverage is answered from it."""

    # How far past the requested horizon a fresh list reaches, so that later passes can use it.
    MARGIN = timedelta(hours=1)
    MAX_ENTRIES = 5_000

    def __init__(self) -> None:
        self._lists: dict[str, tuple[datetime, datetime, list[datetime]]] = {}

    def occurrences(
        self,
        schedule: dict[str, Any],
        *,
        start: datetime,
        end: datetime,
        min_count: int = 0,
        max_count: int = 100,
        hard_end: datetime | None = None,
    ) -> list[datetime]:
        hard_end = hard_end or end
        key = json.dumps(schedule, sort_keys=True)
        cached = self._lists.get(key)
        if cached is not None:
            found = self._answer(
                cached, start=start, end=end, min_count=min_count, max_count=max_count, hard_end=hard_end
            )
            if found is not None:
                return found
        computed_until = min(end + self.MARGIN, hard_end)
        moments = occurrences(
            schedule, start=start, end=computed_until, min_count=min_count, max_count=2 * max_count, hard_end=hard_end
        )
        # Complete up to the last moment found when the list was cut by its count; else up to the bound.
        if len(moments) >= 2 * max_count:
            covered_until = moments[-1]
        else:
            covered_until = max(computed_until, moments[-1]) if moments else computed_until
            if moments and moments[-1] >= hard_end:
                covered_until = moments[-1]
        if len(self._lists) >= self.MAX_ENTRIES:
            self._lists.clear()
        self._lists[key] = (start, covered_until, moments)
        found = self._answer(
            self._lists[key], start=start, end=end, min_count=min_count, max_count=max_count, hard_end=hard_end
        )
        return found if found is not None else moments[:max_count]

    @staticmethod
    def _answer(
        cached: tuple[datetime, datetime, list[datetime]],
        *,
        start: datetime,
        end: datetime,
        min_count: int,
        max_count: int,
        hard_end: datetime,
    ) -> list[datetime] | None:
        """The answer from a cached list, or None when the list does not cover the request."""
        computed_from, covered_until, moments = cached
        if start < computed_from:
            return None
        found: list[datetime] = []
        for moment in moments[bisect.bisect_left(moments, start) :]:
            if len(found) >= max_count or moment > hard_end or (moment > end and len(found) >= min_count):
                return found
            found.append(moment)
        # The list ran out: complete only if every later occurrence would stop the answer anyway.
        if len(found) >= max_count or covered_until >= hard_end or (covered_until >= end and len(found) >= min_count):
            return found
        return None


def iterate(schedule: dict[str, Any], *, start: datetime) -> Iterator[datetime]:
    """UTC moments at or after `start`, in increasing order, without duplicates."""
    zone = ZoneInfo(schedule.get("timezone") or "UTC")
    start = start.astimezone(UTC)
    if "interval" in schedule:
        interval = timedelta(seconds=schedule["interval"])
        anchor = datetime.fromisoformat(schedule["anchor_date"])
        if schedule["interval"] % 86400 == 0 and zone.key != "UTC":
            return _after(_to_utc(_local_days(anchor.astimezone(zone), interval.days, start, zone), zone, False), start)
        return _utc_steps(anchor.astimezone(UTC), interval, start)
    if "cron" in schedule:
        every_hour = _cron_runs_every_hour(schedule["cron"])
        return _after(_to_utc(_cron_local(schedule, start, zone), zone, every_hour), start)
    rule = _build_rrule(schedule["rrule"], zone.key)
    every_hour = _frequency_name(rule) in ("HOURLY", "MINUTELY") and not rule._byhour
    return _after(_to_utc(_rrule_local(rule, start, zone), zone, every_hour), start)


def _utc_steps(anchor: datetime, step: timedelta, start: datetime) -> Iterator[datetime]:
    k = -((anchor - start) // step)  # the smallest k with anchor + k*step >= start
    moment = anchor + k * step
    while True:
        yield moment
        moment = moment + step


def _local_days(anchor_local: datetime, days: int, start: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    """Naive local times anchor + k * days, from a little before `start`."""
    anchor_naive = anchor_local.replace(tzinfo=None)
    step = timedelta(days=days)
    first = start.astimezone(zone).replace(tzinfo=None) - _DST_SLACK
    moment = anchor_naive + step * ((first - anchor_naive) // step)
    while True:
        yield moment
        moment = moment + step


def _cron_runs_every_hour(expression: str) -> bool:
    fields = expression.split()
    if len(fields) == 1:  # a macro: @hourly runs every hour, @daily and the rest at a set hour
        return expression in ("@hourly",)
    return fields[1] == "*" or fields[1].startswith("*/")


def _cron_local(schedule: dict[str, Any], start: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    from croniter import croniter

    first = start.astimezone(zone).replace(tzinfo=None) - _DST_SLACK
    iterator = croniter(schedule["cron"], first - timedelta(microseconds=1), day_or=schedule.get("day_or", True))
    while True:
        try:
            yield iterator.get_next(datetime)
        except Exception:  # past the years croniter can compute
            return


def _rrule_local(rule: Any, start: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    """Naive local occurrences from a little before `start`. Without COUNT the rule is restarted from a
    DTSTART near `start` (a whole number of periods later, so the phase is kept): dateutil otherwise scans
    every period since DTSTART, seconds of work for a minutely rule started years ago."""
    from dateutil.relativedelta import relativedelta

    first = start.astimezone(zone).replace(tzinfo=None) - _DST_SLACK
    dtstart = rule._dtstart
    if rule._count is None and first > dtstart:
        frequency = _frequency_name(rule)
        unit = {"WEEKLY": timedelta(weeks=1), "DAILY": timedelta(days=1)}.get(frequency)
        unit = unit or {"HOURLY": timedelta(hours=1), "MINUTELY": timedelta(minutes=1)}.get(frequency)
        if unit is not None:
            period = unit * rule._interval
            periods = (first - dtstart) // period - 1
            if periods > 0:
                dtstart = dtstart + period * periods
        elif frequency == "MONTHLY" and dtstart.day <= 28:
            months = ((first.year - dtstart.year) * 12 + first.month - dtstart.month) // rule._interval - 1
            if months > 0:
                dtstart = dtstart + relativedelta(months=months * rule._interval)
        elif frequency == "YEARLY" and not (dtstart.month == 2 and dtstart.day == 29):
            years = (first.year - dtstart.year) // rule._interval - 1
            if years > 0:
                dtstart = dtstart + relativedelta(years=years * rule._interval)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        limit = first + _RRULE_LOOKAHEAD
        until = min(rule._until, limit) if rule._until else limit
        bounded = rule.replace(dtstart=dtstart, until=until)
        yield from bounded.xafter(first, inc=True)


def _to_utc(local_times: Iterator[datetime], zone: ZoneInfo, every_hour: bool) -> Iterator[datetime]:
    """Place naive local times on the UTC line (see the module docstring), in increasing order."""
    heap: list[datetime] = []
    for local in local_times:
        first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
        heapq.heappush(heap, first)
        if every_hour:
            second = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
            if second != first and second.astimezone(zone).replace(tzinfo=None) == local:
                heapq.heappush(heap, second)
        # Later local times never map before this one minus the DST slack: what is below is final.
        while heap and heap[0] <= first - _DST_SLACK:
            yield heapq.heappop(heap)
    while heap:
        yield heapq.heappop(heap)


def _after(moments: Iterator[datetime], start: datetime) -> Iterator[datetime]:
    """The moments at or after `start`, each once."""
    last = None
    for moment in moments:
        if moment < start or moment == last:
            continue
        last = moment
        yield moment
