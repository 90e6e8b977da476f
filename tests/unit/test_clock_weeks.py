"""Issue 9 findings 4 and 7: business-time days and Monday weeks for the fairness and rotation reports."""
from __future__ import annotations

import datetime as dt

from leadflow.clock import business_date, day_window, last_week, week_start
from leadflow.policy import load_policy

POLICY = load_policy()
UTC = dt.timezone.utc


def test_issue9_7_a_sunday_evening_utc_is_monday_in_shanghai():
    t = dt.datetime(2026, 11, 29, 16, 30, tzinfo=UTC)  # Monday 30 November 00:30 in Shanghai
    assert business_date(t, POLICY) == dt.date(2026, 11, 30)
    assert week_start(t, POLICY).isoformat() == "2026-11-30T00:00:00+08:00"


def test_issue9_7_week_start_is_monday_midnight_business_time_for_every_day_of_the_week():
    for hours in range(0, 7 * 24, 5):
        t = dt.datetime(2026, 11, 29, 16, tzinfo=UTC) + dt.timedelta(hours=hours)
        start = week_start(t, POLICY)
        assert start.weekday() == 0 and (start.hour, start.minute) == (0, 0) and start.utcoffset() == dt.timedelta(hours=8)
        assert start <= t < start + dt.timedelta(days=7)


def test_issue9_4_the_rotation_report_at_monday_0000_covers_the_week_just_ended():
    monday = dt.datetime(2026, 11, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    start, end = last_week(monday, POLICY)
    assert (start.isoformat(), end.isoformat()) == ("2026-11-23T00:00:00+08:00", "2026-11-30T00:00:00+08:00")


def test_issue9_4_a_week_across_a_dst_change_still_runs_monday_to_monday():
    berlin = load_policy(overrides={"timezone": "Europe/Berlin"})
    start, end = last_week(dt.datetime(2026, 3, 30, 12, tzinfo=UTC), berlin)  # DST began Sunday 29 March
    assert (start.isoformat(), end.isoformat()) == ("2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00")


def test_issue9_4_a_day_window_is_whole_business_days():
    start, end = day_window(dt.date(2026, 11, 22), dt.date(2026, 11, 29), POLICY)
    assert (start.isoformat(), end.isoformat()) == ("2026-11-22T00:00:00+08:00", "2026-11-30T00:00:00+08:00")
