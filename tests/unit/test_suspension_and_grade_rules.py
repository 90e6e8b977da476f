"""R-SUSP and R-TIER-4 rules, tested directly."""
import datetime as dt

from leadflow.rules.suspensions import (
    Interval, late_entry_pauses, late_table_suspension, leave_pauses, malicious_omission_departs,
    suspended_until, violation_suspension,
)
from leadflow.rules.tiers import Close, judge_grades, records_cover_previous_year

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=CST)


def test_r_susp_1_violations_suspend_7_15_then_30_days_from_their_time():
    days = (7, 15, 30)
    assert violation_suspension(1, T0, days).ends_at == T0 + dt.timedelta(days=7)
    assert violation_suspension(2, T0, days).ends_at == T0 + dt.timedelta(days=15)
    assert violation_suspension(3, T0, days).ends_at == T0 + dt.timedelta(days=30)
    assert violation_suspension(7, T0, days).ends_at == T0 + dt.timedelta(days=30)


def test_r_susp_1_overlapping_suspensions_do_not_add_up_the_last_ending_wins():
    a = Interval(T0, T0 + dt.timedelta(days=7))
    b = Interval(T0 + dt.timedelta(days=2), T0 + dt.timedelta(days=17))
    assert suspended_until([a, b], T0 + dt.timedelta(days=3)) == T0 + dt.timedelta(days=17)


def test_r_susp_1_a_suspension_ending_at_t_no_longer_holds_at_t():
    a = Interval(T0, T0 + dt.timedelta(days=7))
    assert suspended_until([a], T0 + dt.timedelta(days=7)) is None
    assert suspended_until([a], T0) == a.ends_at


def test_r_susp_2_sixth_personal_leave_in_a_month_pauses_and_sick_leave_never_does():
    assert [leave_pauses("personal", n, 5) for n in range(1, 8)] == [0, 0, 0, 0, 0, 1, 1]
    assert leave_pauses("sick", 9, 5) == 0


def test_r_susp_3_every_fifth_late_entry_of_a_kind_pauses_a_round():
    assert [late_entry_pauses(n, 5) for n in range(1, 11)] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]


def test_r_susp_4_late_tables_suspend_a_department_24h_48h_then_7_days():
    hours = (24, 48, 168)
    assert late_table_suspension(1, T0, hours).ends_at == T0 + dt.timedelta(hours=24)
    assert late_table_suspension(2, T0, hours).ends_at == T0 + dt.timedelta(hours=48)
    assert late_table_suspension(4, T0, hours).ends_at == T0 + dt.timedelta(days=7)


def test_r_susp_6_second_malicious_omission_counts_as_departure():
    assert not malicious_omission_departs(1, 2)
    assert malicious_omission_departs(2, 2)


def test_r_tier_4_two_closes_of_a_tier_give_its_grade_and_totals_give_the_rank():
    closes = [Close("s1", "B", 500_000, 2026), Close("s1", "B", 450_000, 2026),
              Close("s2", "B", 900_000, 2025), Close("s2", "B", 400_000, 2026),
              Close("s3", "A", 900_000, 2026)]
    g = judge_grades({"s1": "C", "s2": None, "s3": "A"}, closes, 2026, whole_previous_year_on_record=True)
    assert (g["s2"].grade, g["s2"].rank) == ("B", 1)
    assert (g["s1"].grade, g["s1"].rank) == ("B", 2)
    assert g["s3"].grade is None  # one close of A is not enough, and a whole year is on record


def test_r_tier_4_closes_of_different_tiers_do_not_add_up_and_old_years_do_not_count():
    closes = [Close("s1", "A", 900_000, 2026), Close("s1", "B", 450_000, 2026),
              Close("s1", "A", 900_000, 2024), Close("s1", "A", 950_000, 2024)]
    assert judge_grades({"s1": None}, closes, 2026, True)["s1"].grade is None


def test_r_tier_4_org_chart_grade_stands_until_a_whole_previous_year_is_on_record():
    assert judge_grades({"s1": "B"}, [], 2026, whole_previous_year_on_record=False)["s1"].grade == "B"
    assert records_cover_previous_year(dt.date(2025, 1, 1), dt.date(2026, 1, 1))
    assert not records_cover_previous_year(dt.date(2025, 3, 1), dt.date(2026, 1, 1))
