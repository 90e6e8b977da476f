"""Issue 9.6 / 9.8: dates typed on the command line, read in business time (leadflow/dates.py, pure)."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from leadflow.dates import DateError, days_named, month_chunks, parse_time, period

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 2026-11-29 23:30 UTC is already Monday 30 November 07:30 in Shanghai: "today" is the 30th there.
NOW = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.timezone.utc)


def test_issue9_8_today_and_yesterday_are_business_days_in_the_policy_zone():
    assert days_named("today", NOW, SHANGHAI) == (dt.date(2026, 11, 30),) * 2
    assert days_named("yesterday", NOW, SHANGHAI) == (dt.date(2026, 11, 29),) * 2
    assert days_named("Yesterday ", NOW, ZoneInfo("UTC")) == (dt.date(2026, 11, 28),) * 2


def test_issue9_6_a_day_and_a_month_name_their_first_and_last_day():
    assert days_named("2026-03-02", NOW, SHANGHAI) == (dt.date(2026, 3, 2),) * 2
    assert days_named("2026-02", NOW, SHANGHAI) == (dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert days_named("2024-02", NOW, SHANGHAI) == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))


@pytest.mark.parametrize("text", ["yesterdy", "2026-13", "2026-02-30", "30/11/2026", "", "2026"])
def test_issue9_8_anything_else_is_one_sentence_naming_the_forms(text):
    with pytest.raises(DateError) as e:
        days_named(text, NOW, SHANGHAI)
    assert "\n" not in str(e.value) and "today, yesterday, YYYY-MM-DD or YYYY-MM" in str(e.value)


def test_issue9_8_until_is_the_last_day_included_through_its_end():
    p = period("2026-11-23", "2026-11-29", NOW, SHANGHAI)
    assert (p.first, p.last, p.days) == (dt.date(2026, 11, 23), dt.date(2026, 11, 29), 7)
    assert p.start == dt.datetime(2026, 11, 23, tzinfo=SHANGHAI)
    assert p.end == dt.datetime(2026, 11, 30, tzinfo=SHANGHAI)  # exclusive: the whole of the 29th is in
    month = period("2026-02", "2026-02", NOW, SHANGHAI)
    assert (month.first, month.last) == (dt.date(2026, 2, 1), dt.date(2026, 2, 28))


def test_issue9_8_the_default_period_is_the_last_7_days_through_today():
    p = period(None, None, NOW, SHANGHAI)
    assert (p.first, p.last, p.days) == (dt.date(2026, 11, 24), dt.date(2026, 11, 30), 7)
    assert period("yesterday", None, NOW, SHANGHAI).first == dt.date(2026, 11, 29)


def test_issue9_8_since_after_until_is_refused_not_an_empty_period():
    with pytest.raises(DateError, match=r"--since 2026-12-01 is after --until 2026-11-30"):
        period("2026-12-01", "2026-11-30", NOW, SHANGHAI)
    with pytest.raises(DateError, match=r"^--until '2026-13' is not a date"):
        period(None, "2026-13", NOW, SHANGHAI)


def test_issue9_8_a_long_period_is_read_a_calendar_month_at_a_time():
    p = period("2026-01-15", "2026-03-10", NOW, SHANGHAI)
    chunks = month_chunks(p, SHANGHAI)
    assert [(a.date(), b.date()) for a, b in chunks] == [
        (dt.date(2026, 1, 15), dt.date(2026, 2, 1)), (dt.date(2026, 2, 1), dt.date(2026, 3, 1)),
        (dt.date(2026, 3, 1), dt.date(2026, 3, 11))]
    assert chunks[0][0] == p.start and chunks[-1][1] == p.end


def test_issue9_6_as_of_takes_iso_times_in_business_time_and_day_words_as_their_start():
    assert parse_time("2026-03-02T09:00", NOW, SHANGHAI) == dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.timezone.utc)
    assert parse_time("2026-03-02T09:00+00:00", NOW, SHANGHAI) == dt.datetime(2026, 3, 2, 9, tzinfo=dt.timezone.utc)
    assert parse_time("today", NOW, SHANGHAI) == dt.datetime(2026, 11, 29, 16, tzinfo=dt.timezone.utc)
    assert parse_time("2026-03-02", NOW, SHANGHAI) == dt.datetime(2026, 3, 1, 16, tzinfo=dt.timezone.utc)
    for bad in ("2026-03", "soon", "2026-03-02T25:00"):
        with pytest.raises(DateError, match="is not a time"):
            parse_time(bad, NOW, SHANGHAI)
