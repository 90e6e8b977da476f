"""Business time: the policy's time zone, working days, calendar months and sales years."""
from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo

from leadflow.policy import Policy


def zone(policy: Policy) -> ZoneInfo:
    return ZoneInfo(policy.timezone)


def local(t: dt.datetime, policy: Policy) -> dt.datetime:
    """`t` in business time."""
    return t.astimezone(zone(policy))


def iso(t: dt.datetime | None, policy: Policy) -> str | None:
    return None if t is None else local(t, policy).isoformat()


def business_time_label(t: dt.datetime, policy: Policy) -> str:
    """`2026-03-02 09:00+08:00`: `t` to the minute in business time, with the zone's offset then.

    A naive `t` is taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    lt = local(t, policy)
    minutes = round(lt.utcoffset().total_seconds() / 60)
    hours, mins = divmod(abs(minutes), 60)
    return f"{lt:%Y-%m-%d %H:%M}{'-' if minutes < 0 else '+'}{hours:02d}:{mins:02d}"


def add_months(t: dt.datetime, months: int) -> dt.datetime:
    """Calendar months: from 31 August, one month ends on the last day of September."""
    month0 = t.month - 1 + months
    year, month = t.year + month0 // 12, month0 % 12 + 1
    day = min(t.day, calendar.monthrange(year, month)[1])
    return t.replace(year=year, month=month, day=day)


def is_working_day(day: dt.date, policy: Policy) -> bool:
    wd = policy.working_days
    if day in wd.makeup_days:
        return True
    if day in wd.holidays:
        return False
    return day.isoweekday() in wd.weekdays


def end_of_working_day_after(t: dt.datetime, n: int, policy: Policy) -> dt.datetime:
    """The closing time of the n-th working day after the (business) day of `t`."""
    day = local(t, policy).date()
    while n > 0:
        day += dt.timedelta(days=1)
        if is_working_day(day, policy):
            n -= 1
    return dt.datetime.combine(day, policy.working_days.closing_time, tzinfo=zone(policy))


def month_key(t: dt.datetime, policy: Policy) -> tuple[int, int]:
    lt = local(t, policy)
    return lt.year, lt.month


def sales_year(t: dt.datetime, policy: Policy) -> int:
    lt = local(t, policy)
    return lt.year if lt.month >= policy.sales_year_start_month else lt.year - 1


def start_of_day(t: dt.datetime, policy: Policy) -> dt.datetime:
    lt = local(t, policy)
    return lt.replace(hour=0, minute=0, second=0, microsecond=0)


def week_index(t: dt.datetime, epoch: dt.date, policy: Policy) -> int:
    """Weeks (Monday 00:00 to Monday 00:00) since the week that contains `epoch`."""
    day = local(t, policy).date()
    monday = day - dt.timedelta(days=day.weekday())
    epoch_monday = epoch - dt.timedelta(days=epoch.weekday())
    return (monday - epoch_monday).days // 7


def month_starts_between(after: dt.datetime, upto: dt.datetime, policy: Policy, months: tuple[int, ...] = tuple(range(1, 13))):
    """Business-time 1st-of-month 00:00 instants t with after < t <= upto, in the given months."""
    lt = local(after, policy)
    cur = lt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = []
    while cur <= upto:
        if cur > after and cur.month in months:
            out.append(cur)
        cur = add_months(cur, 1)
    return out


def business_date(t: dt.datetime, policy: Policy) -> dt.date:
    """The business day (policy time zone) that `t` falls on; a naive `t` is taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return local(t, policy).date()


def week_start(t: dt.datetime, policy: Policy) -> dt.datetime:
    """Monday 00:00 business time of the week (R-ALLOC-1: Monday to Monday) containing `t`, aware, with the
    zone's offset then; a naive `t` is taken as UTC."""
    day = business_date(t, policy)
    monday = day - dt.timedelta(days=day.weekday())
    return dt.datetime.combine(monday, dt.time(0), tzinfo=zone(policy))


def last_week(t: dt.datetime, policy: Policy) -> tuple[dt.datetime, dt.datetime]:
    """The last whole business week before `t`: (last Monday 00:00, this Monday 00:00), business time.

    The weekly rotation report runs Mondays 00:00 and covers the week just ended."""
    end = week_start(t, policy)
    start = week_start(end - dt.timedelta(days=1), policy)  # a day back, not 7: a DST change keeps Monday 00:00
    return start, end


def day_window(first: dt.date, last: dt.date, policy: Policy) -> tuple[dt.datetime, dt.datetime]:
    """Business days `first` through `last` as a half-open window [first 00:00, the day after `last` 00:00)."""
    z = zone(policy)
    return (dt.datetime.combine(first, dt.time(0), tzinfo=z),
            dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=z))
