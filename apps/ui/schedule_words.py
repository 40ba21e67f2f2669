"""Schedules in words for the live pages: "every 5 minutes", "at 09:00 on Monday", "every day at 02:00".

Common shapes of interval, cron and rrule schedules are described; anything else falls back to the expression
itself, so a reader never sees a wrong sentence. The time zone is added when it is not UTC.
"""

from __future__ import annotations

import re
from typing import Any

WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_CRON_DAY_NAMES = {name[:3].lower(): index for index, name in enumerate(WEEKDAYS)}
_CRON_MONTH_NAMES = {name[:3].lower(): index + 1 for index, name in enumerate(MONTHS)}
_CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_RRULE_DAYS = {"SU": 0, "MO": 1, "TU": 2, "WE": 3, "TH": 4, "FR": 5, "SA": 6}
_RRULE_UNITS = {"MINUTELY": "minute", "HOURLY": "hour", "DAILY": "day", "WEEKLY": "week", "MONTHLY": "month"}


def describe_schedule(schedule: dict[str, Any]) -> str:
    """One schedule (the normalised JSON of apps/deployments/schedules.py) as a short phrase."""
    zone = schedule.get("timezone") or "UTC"
    if "interval" in schedule:
        text = describe_interval(schedule["interval"])
    elif "cron" in schedule:
        text = describe_cron(schedule["cron"]) or f"cron {schedule['cron']}"
    elif "rrule" in schedule:
        text = describe_rrule(schedule["rrule"]) or "rrule " + " ".join(str(schedule["rrule"]).split())
    else:
        return str(schedule)
    return text if zone == "UTC" else f"{text} ({zone})"


def _every(count: float, unit: str) -> str:
    if count == 1:
        return f"every {unit}"
    shown = int(count) if float(count).is_integer() else count
    return f"every {shown} {unit}s"


def describe_interval(seconds: float) -> str:
    """`every 5 minutes`, `every hour`, `every 2 days`, `every 90 seconds`."""
    for size, unit in ((604800, "week"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            return _every(seconds // size, unit)
    return _every(seconds, "second")


# ----------------------------------------------------------------------------------------------------------------
# Cron


def _number(text: str, names: dict[str, int] | None = None) -> int | None:
    if text.isdigit():
        return int(text)
    if names and text.lower() in names:
        return names[text.lower()]
    return None


def _values(field: str, names: dict[str, int] | None = None) -> list[int] | None:
    """The values of a list field such as `1,3,5` or a range `1-5` (no steps), or None."""
    values: list[int] = []
    for part in field.split(","):
        if "-" in part:
            low_text, _, high_text = part.partition("-")
            low, high = _number(low_text, names), _number(high_text, names)
            if low is None or high is None or low > high:
                return None
            values.extend(range(low, high + 1))
        else:
            value = _number(part, names)
            if value is None:
                return None
            values.append(value)
    return values


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _weekdays(field: str) -> str | None:
    if re.fullmatch(r"(1-5|mon-fri)", field, re.IGNORECASE):
        return "Monday to Friday"
    if re.fullmatch(r"(0,6|6,0|sat,sun|sun,sat)", field, re.IGNORECASE):
        return "Saturday and Sunday"
    values = _values(field, _CRON_DAY_NAMES)
    if values is None or any(value > 7 for value in values):
        return None
    return _join([WEEKDAYS[value % 7] for value in values])


def _time(hour: int, minute: int) -> str:
    return f"{hour:02d}:{minute:02d}"


def describe_cron(expression: str) -> str | None:
    """Common cron shapes in words, or None when the expression is not one of them."""
    expression = " ".join(expression.split())
    expression = _CRON_MACROS.get(expression.lower(), expression)
    fields = expression.split(" ")
    if len(fields) != 5:
        return None
    minute, hour, day, month, weekday = fields
    if day == "*" and month == "*" and weekday == "*":
        if hour == "*":
            if minute == "*":
                return "every minute"
            step = re.fullmatch(r"\*/(\d+)", minute)
            if step:
                return _every(int(step.group(1)), "minute")
            if minute.isdigit():
                return "every hour" if minute == "0" else f"every hour at minute {int(minute)}"
            return None
        step = re.fullmatch(r"\*/(\d+)", hour)
        if step and minute.isdigit():
            text = _every(int(step.group(1)), "hour")
            return text if minute == "0" else f"{text} at minute {int(minute)}"
    if not minute.isdigit():
        return None
    hours = _values(hour)
    if hours is None or any(value > 23 for value in hours) or int(minute) > 59:
        return None
    at = "at " + _join([_time(value, int(minute)) for value in hours])
    if day == "*" and month == "*":
        if weekday == "*":
            return f"{at} every day"
        days = _weekdays(weekday)
        return f"{at} on {days}" if days else None
    if weekday != "*":
        return None
    days_of_month = _values(day)
    if days_of_month is None or any(not 1 <= value <= 31 for value in days_of_month):
        return None
    on_days = _join([str(value) for value in days_of_month])
    if month == "*":
        return f"{at} on day {on_days} of every month"
    months = _values(month, _CRON_MONTH_NAMES)
    if months is None or any(not 1 <= value <= 12 for value in months):
        return None
    return f"{at} on {on_days} {_join([MONTHS[value - 1] for value in months])}"


# ----------------------------------------------------------------------------------------------------------------
# RRULE


def describe_rrule(text: str) -> str | None:
    """Simple RFC 5545 rules (FREQ, INTERVAL, BYDAY, BYHOUR, BYMINUTE, COUNT, UNTIL) in words, else None."""
    start_hour, start_minute = 0, 0  # the rule's start when it has none (apps/deployments/schedules.py)
    rule_line = ""
    for line in str(text).strip().splitlines():
        line = line.strip()
        if line.upper().startswith("DTSTART"):
            found = re.search(r"T(\d{2})(\d{2})", line)
            if found:
                start_hour, start_minute = int(found.group(1)), int(found.group(2))
        else:
            rule_line = line.split(":", 1)[1] if line.upper().startswith("RRULE:") else line
    parts: dict[str, str] = {}
    for item in rule_line.split(";"):
        key, _, value = item.partition("=")
        if key:
            parts[key.strip().upper()] = value.strip().upper()
    allowed = {"FREQ", "INTERVAL", "BYDAY", "BYHOUR", "BYMINUTE", "COUNT", "UNTIL", "WKST"}
    frequency = parts.get("FREQ")
    if frequency not in _RRULE_UNITS or set(parts) - allowed:
        return None
    interval = parts.get("INTERVAL", "1")
    if not interval.isdigit() or int(interval) < 1:
        return None
    text_out = _every(int(interval), _RRULE_UNITS[frequency])
    if "BYDAY" in parts:
        codes = parts["BYDAY"].split(",")
        if any(code not in _RRULE_DAYS for code in codes) or frequency not in ("DAILY", "WEEKLY"):
            return None
        ordered = sorted((_RRULE_DAYS[code] - 1) % 7 for code in codes)  # Monday first
        text_out += " on " + _join([WEEKDAYS[(value + 1) % 7] for value in ordered])
    if frequency in ("DAILY", "WEEKLY", "MONTHLY"):
        hours = _values(parts["BYHOUR"]) if "BYHOUR" in parts else [start_hour]
        minutes = _values(parts["BYMINUTE"]) if "BYMINUTE" in parts else [start_minute]
        if not hours or not minutes or len(minutes) != 1 or max(hours) > 23 or minutes[0] > 59:
            return None
        text_out += " at " + _join([_time(hour, minutes[0]) for hour in hours])
    elif "BYHOUR" in parts or ("BYMINUTE" in parts and frequency == "MINUTELY"):
        return None
    elif "BYMINUTE" in parts:
        minutes = _values(parts["BYMINUTE"])
        if not minutes or len(minutes) != 1:
            return None
        text_out += f" at minute {minutes[0]}"
    if "COUNT" in parts:
        text_out += f", {parts['COUNT']} times"
    if "UNTIL" in parts:
        until = re.match(r"(\d{4})(\d{2})(\d{2})", parts["UNTIL"])
        if not until:
            return None
        text_out += f", until {until.group(1)}-{until.group(2)}-{until.group(3)}"
    return text_out
