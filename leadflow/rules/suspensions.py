"""R-SUSP: how long a violation suspends, when leaves and late entries pause rounds."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    starts_at: dt.datetime
    ends_at: dt.datetime


def suspended_until(intervals: list[Interval], now: dt.datetime) -> dt.datetime | None:
    """The end of the longest suspension in force at `now`; overlapping ones do not add up (R-SUSP-1).

    A suspension is an expiry: one ending at t no longer holds at t.
    """
    ends = [i.ends_at for i in intervals if i.starts_at <= now < i.ends_at]
    return max(ends) if ends else None


def violation_suspension(ordinal_in_year: int, at: dt.datetime, days: tuple[int, ...]) -> Interval:
    """R-SUSP-1: 1st violation in a sales year -> 7 days, 2nd -> 15, 3rd and later -> 30, from its time."""
    n = days[min(ordinal_in_year, len(days)) - 1]
    return Interval(at, at + dt.timedelta(days=n))


def late_table_suspension(ordinal_in_month: int, at: dt.datetime, hours: tuple[int, ...]) -> Interval:
    """R-SUSP-4: a department's 1st late table in a month -> 24 h, 2nd -> 48 h, 3rd and later -> 7 days."""
    n = hours[min(ordinal_in_month, len(hours)) - 1]
    return Interval(at, at + dt.timedelta(hours=n))


def leave_pauses(kind: str, ordinal_in_month: int, allowed_per_month: int) -> int:
    """R-SUSP-2: each personal leave beyond the monthly allowance pauses one round; sick leave never counts."""
    if kind != "personal":
        return 0
    return 1 if ordinal_in_month > allowed_per_month else 0


def late_entry_pauses(ordinal_in_month: int, every: int) -> int:
    """R-SUSP-3: every 5th late entry of a kind in a month (5th, 10th, …) pauses one round."""
    return 1 if ordinal_in_month % every == 0 else 0


def malicious_omission_departs(ordinal_ever: int, threshold: int) -> bool:
    """R-SUSP-6: the 2nd malicious non-registration over a person's whole history counts as departure."""
    return ordinal_ever >= threshold


def end_of_day(at: dt.datetime, tz) -> dt.datetime:
    """A leave day keeps the person away for the rest of that calendar day (business time)."""
    local = at.astimezone(tz)
    return (local.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1))
