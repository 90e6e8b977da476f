"""R-TIER-2 re-applications and R-TIER-3 misjudgment penalties, tested directly."""
import datetime as dt
from zoneinfo import ZoneInfo

from leadflow.policy import load_policy
from leadflow.rules.tiers_review import misjudgment_penalties, reapplication

POLICY = load_policy()
CST = ZoneInfo("Asia/Shanghai")


def at(month, day, hour=10):
    return dt.datetime(2026, month, day, hour, 0, tzinfo=CST)


def run(times, fired=None):
    """Feed misjudgments one by one, recording each firing as the caller would; return the firings."""
    fired = set() if fired is None else fired
    out = []
    for i, t in enumerate(times):
        for p in misjudgment_penalties(times[:i], t, fired, POLICY):
            fired.add(p.key)
            out.append(p)
    return out


# --- R-TIER-2 ----------------------------------------------------------------------------------

def test_r_tier_2_a_re_application_to_the_same_tier_is_refused():
    out = reapplication("B", "B")
    assert (out.accepted, out.replacement_tier) == (False, None)


def test_r_tier_2_a_lower_tier_earns_a_replacement_of_the_tier_it_had():
    out = reapplication("B", "D")
    assert (out.accepted, out.replacement_tier) == (True, "B")
    assert reapplication("D", "below_d").replacement_tier == "D"


def test_r_tier_2_a_higher_tier_earns_no_replacement():
    out = reapplication("C", "A")
    assert (out.accepted, out.replacement_tier) == (True, None)


def test_r_tier_2_an_unclassified_or_non_target_lead_gets_its_tier_without_replacement():
    for old in ("unclassified", "non_target"):
        for new in ("A", "below_d"):
            out = reapplication(old, new)
            assert (out.accepted, out.replacement_tier) == (True, None)


def test_r_tier_2_reasons_name_the_rule():
    assert all(reapplication(a, b).reason.startswith("R-TIER-2") for a, b in (("B", "B"), ("B", "C"), ("C", "B")))


# --- R-TIER-3 ----------------------------------------------------------------------------------

def test_r_tier_3_three_misjudgments_in_one_calendar_month_pause_one_round_once():
    fired = run([at(3, 2), at(3, 10), at(3, 20), at(3, 25)])
    assert [(p.count, p.months, p.pause_rounds, p.at) for p in fired] == [(3, 1, 1, at(3, 20))]
    assert fired[0].key == ("R-TIER-3", 3, 1, "2026-03")


def test_r_tier_3_a_recorded_firing_never_fires_again():
    times = [at(3, 2), at(3, 10)]
    first = misjudgment_penalties(times, at(3, 20), set(), POLICY)
    assert len(first) == 1
    assert misjudgment_penalties(times, at(3, 20), {first[0].key}, POLICY) == []


def test_r_tier_3_three_across_a_month_boundary_do_not_make_a_monthly_three():
    assert run([at(3, 20), at(3, 30), at(4, 2)]) == []


def test_r_tier_3_the_month_is_the_business_time_month():
    late_utc = dt.datetime(2026, 3, 31, 17, 0, tzinfo=dt.timezone.utc)  # 1 April 01:00 in Shanghai
    assert run([late_utc, at(4, 2), at(4, 3)])[0].key == ("R-TIER-3", 3, 1, "2026-04")


def test_r_tier_3_each_month_with_three_fires_its_own_monthly_threshold():
    fired = run([at(3, 1), at(3, 2), at(3, 3), at(5, 1), at(5, 2), at(5, 3)])
    assert [p.key for p in fired] == [("R-TIER-3", 3, 1, "2026-03"), ("R-TIER-3", 3, 1, "2026-05")]


def test_r_tier_3_six_over_two_consecutive_months_pause_three_rounds():
    fired = run([at(3, 20), at(3, 25), at(4, 1), at(4, 2), at(4, 5), at(4, 9)])
    six = [p for p in fired if p.count == 6]
    assert [(p.months, p.pause_rounds, p.at, p.key) for p in six] == [(2, 3, at(4, 9), ("R-TIER-3", 6, 2, "2026-03"))]
    assert [p.count for p in fired] == [3, 6]  # April's own three fired the monthly threshold too


def test_r_tier_3_six_over_months_that_are_not_consecutive_do_not_fire():
    fired = run([at(3, 1), at(3, 2), at(3, 3), at(5, 1), at(5, 2), at(5, 3)])
    assert all(p.count != 6 for p in fired)


def test_r_tier_3_ten_over_three_months_suspend_7_days_and_ban_hotline_duty_a_month():
    times = [at(1, d) for d in (10, 20)] + [at(2, d) for d in (1, 2, 3, 10)] + [at(3, d) for d in (1, 2, 3, 5)]
    ten = [p for p in run(times) if p.count == 10]
    assert len(ten) == 1
    p = ten[0]
    assert (p.months, p.pause_rounds, p.key) == (3, 0, ("R-TIER-3", 10, 3, "2026-01"))
    assert p.suspend_until == at(3, 5) + dt.timedelta(days=7)
    assert p.hotline_ban_until == dt.datetime(2026, 4, 5, 10, 0, tzinfo=CST)


def test_r_tier_3_penalties_stack_and_each_threshold_fires_once_as_the_count_grows():
    fired = run([at(3, 1, h) for h in range(8, 20)])  # twelve in one month
    assert [(p.count, p.at.hour) for p in fired] == [(3, 10), (6, 13), (10, 17)]
    assert sum(p.pause_rounds for p in fired) == 4


def test_r_tier_3_a_window_already_past_its_threshold_does_not_fire_when_it_slides():
    fired = run([at(3, 1, h) for h in range(8, 14)] + [at(4, 1)])  # six in March, then one in April
    assert [p.key for p in fired] == [("R-TIER-3", 3, 1, "2026-03"), ("R-TIER-3", 6, 2, "2026-02")]


def test_r_tier_3_thresholds_are_policy_keys():
    strict = load_policy(overrides={"misjudgment": [{"count": 2, "months": 1, "pause_rounds": 5}]})
    out = misjudgment_penalties([at(3, 1)], at(3, 2), set(), strict)
    assert [(p.count, p.pause_rounds) for p in out] == [(2, 5)]


def test_r_tier_3_the_new_misjudgment_counts_once_whether_or_not_it_is_already_on_record():
    earlier = [at(3, 2), at(3, 10)]
    new = at(3, 20)
    without = misjudgment_penalties(earlier, new, set(), POLICY)
    with_new = misjudgment_penalties(earlier + [new], new, set(), POLICY)
    assert [p.key for p in without] == [p.key for p in with_new] == [("R-TIER-3", 3, 1, "2026-03")]
    assert misjudgment_penalties([at(3, 2), new], new, set(), POLICY) == []  # only two on record
