"""Dates and times an operator types (issue 9.6), read in business time: pure, given `now` and the zone.

A date names whole business days: `today`, `yesterday`, `YYYY-MM-DD` (that day) or `YYYY-MM` (that calendar
month). A report period runs from the start of its first day to the end of its last day, both included.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from leadflow.rules.registration import parse_registered_at

DATE_FORMS = "today, yesterday, YYYY-MM-DD or YYYY-MM"
DEFAULT_DAYS = 7  # the default report period: the last 7 business days, through today
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")


class DateError(ValueError):
    """A date or time argument that cannot be read, or a period that ends before it starts: one sentence."""


@dataclass(frozen=True)
class Period:
    """Whole business days `first`..`last` (both included) as the instants [start, end) in the zone."""

    first: dt.date
    last: dt.date
    start: dt.datetime
    end: dt.datetime

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def _today(now: dt.datetime, zone: ZoneInfo) -> dt.date:
    return now.astimezone(zone).date()


def midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The start of the business day `day`, aware in `zone`."""
    return dt.datetime.combine(day, dt.time(), tzinfo=zone)


def days_named(text: str, now: dt.datetime, zone: ZoneInfo) -> tuple[dt.date, dt.date]:
    """The first and last business day (both included) that `text` names, `now` aware.

    `today` and `yesterday` are read in `zone`; `YYYY-MM-DD` is one day; `YYYY-MM` the calendar month.
    Raises DateError for anything else (or a day that does not exist, 2026-02-30)."""
    word = text.strip().casefold()
    if word in ("today", "yesterday"):
        day = _today(now, zone) - dt.timedelta(days=1 if word == "yesterday" else 0)
        return day, day
    month = _MONTH.fullmatch(word)
    try:
        if month:
            year, m = int(month[1]), int(month[2])
            return dt.date(year, m, 1), dt.date(year, m, calendar.monthrange(year, m)[1])
        day = dt.date.fromisoformat(word)
        return day, day
    except ValueError:
        raise DateError(f"{text!r} is not a date (write {DATE_FORMS}).") from None


def period(since: str | None, until: str | None, now: dt.datetime, zone: ZoneInfo,
           default_days: int = DEFAULT_DAYS) -> Period:
    """The report period from `--since` (its first day) through `--until` (its last day, included).

    Defaults: until today, since `default_days - 1` days before the last day (7 days through today).
    Raises DateError for an unreadable date, or a `since` after `until` (an empty period is a mistake,
    not an empty report)."""
    try:
        last = days_named(until, now, zone)[1] if until else _today(now, zone)
    except DateError as e:
        raise DateError(f"--until {e}") from None
    try:
        first = days_named(since, now, zone)[0] if since else last - dt.timedelta(days=default_days - 1)
    except DateError as e:
        raise DateError(f"--since {e}") from None
    if first > last:
        raise DateError(f"--since {since or first} is after --until {until or last}: the period would be empty.")
    return Period(first, last, midnight(first, zone), midnight(last + dt.timedelta(days=1), zone))


def month_chunks(p: Period, zone: ZoneInfo) -> list[tuple[dt.datetime, dt.datetime]]:
    """[start, end) pieces of the period, one per calendar month it touches (for progress over long periods)."""
    chunks, day = [], p.first
    while day <= p.last:
        nxt = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        stop = min(nxt, p.last + dt.timedelta(days=1))
        chunks.append((midnight(day, zone), midnight(stop, zone)))
        day = stop
    return chunks


def parse_time(text: str, now: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """An instant from `--as-of`/`--at`: ISO-8601 (a time without offset is business time), or `today`,
    `yesterday` or `YYYY-MM-DD`: the start (00:00) of that business day. Returns it aware, in UTC.

    Raises DateError when it is none of those (or outside 1970–2099)."""
    t = parse_registered_at(text, str(zone))
    if t is None:
        try:
            first, last = days_named(text, now, zone)
        except DateError:
            first = last = None
        if first is None or first != last:
            raise DateError(f"{text!r} is not a time (write e.g. 2026-03-02T09:00+08:00, or today, yesterday, "
                            "YYYY-MM-DD for the start of that day).") from None
        t = midnight(first, zone)
    return t.astimezone(dt.timezone.utc)
