"""R-CONV, R-SUSP-7 and R-TIER-5 (period) rules, tested directly: no database, no Prefect."""
import datetime as dt
from zoneinfo import ZoneInfo

from leadflow.policy import load_policy
from leadflow.rules.conversion import (
    ExpiryCase, deal_credits, dormant, dormant_since, expires_at, expiry_decision, previous_owner_share,
)

POLICY = load_policy()
CST = ZoneInfo("Asia/Shanghai")
US = dt.timedelta(microseconds=1)
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=CST)
EXPIRY_B = dt.datetime(2026, 11, 5, 9, 0, tzinfo=CST)


def case(tier="B", start=T0, exempt=False, converted=None, step4=None, retiered=None):
    return ExpiryCase(1, 10, "s1", tier, start, exempt, converted, step4, retiered)


# --- R-CONV-1 ----------------------------------------------------------------------------------

def test_r_conv_1_periods_are_10_months_for_a_and_b_and_6_for_c_d_below_d():
    assert expires_at(T0, "A", POLICY) == EXPIRY_B
    assert expires_at(T0, "B", POLICY) == EXPIRY_B
    for tier in ("C", "D", "below_d"):
        assert expires_at(T0, tier, POLICY) == dt.datetime(2026, 7, 5, 9, 0, tzinfo=CST)


def test_r_conv_1_months_from_31_august_end_on_the_last_day_of_a_shorter_month():
    aug31 = dt.datetime(2026, 8, 31, 10, 0, tzinfo=CST)
    assert expires_at(aug31, "C", POLICY) == dt.datetime(2027, 2, 28, 10, 0, tzinfo=CST)
    assert expires_at(aug31, "B", POLICY) == dt.datetime(2027, 6, 30, 10, 0, tzinfo=CST)
    leap = dt.datetime(2027, 8, 31, 10, 0, tzinfo=CST)
    assert expires_at(leap, "D", POLICY) == dt.datetime(2028, 2, 29, 10, 0, tzinfo=CST)


def test_r_conv_1_months_are_counted_in_business_time():
    utc = dt.datetime(2026, 8, 30, 16, 30, tzinfo=dt.timezone.utc)  # 31 August 00:30 in Shanghai
    assert expires_at(utc, "C", POLICY) == dt.datetime(2027, 2, 28, 0, 30, tzinfo=CST)


def test_r_conv_1_unclassified_and_non_target_leads_have_no_period():
    assert expires_at(T0, "unclassified", POLICY) is None
    assert expires_at(T0, "non_target", POLICY) is None


def test_r_conv_1_periods_are_policy_keys():
    short = load_policy(overrides={"conversion": {"period_months": {"A": 3, "B": 3, "C": 2, "D": 1, "below_d": 1}}})
    assert expires_at(T0, "B", short) == dt.datetime(2026, 4, 5, 9, 0, tzinfo=CST)


def test_r_conv_1_a_remembered_expiry_is_the_policys_own_and_the_instants_not_the_offsets():
    """expires_at is remembered per (clock start, tier, re-tier) and policy: asked again under another policy, or
    for the same instant written in another zone, it answers as if asked first."""
    short = load_policy(overrides={"conversion": {"period_months": {"A": 3, "B": 3, "C": 2, "D": 1, "below_d": 1}}})
    for _ in range(2):  # the second round answers from the memo
        assert expires_at(T0, "B", POLICY) == EXPIRY_B
        assert expires_at(T0, "B", short) == dt.datetime(2026, 4, 5, 9, 0, tzinfo=CST)
        assert expires_at(T0.astimezone(dt.timezone.utc), "B", POLICY) == EXPIRY_B
        assert expires_at(T0, "C", POLICY, retiered_at=dt.datetime(2026, 7, 10, tzinfo=CST)) == dt.datetime(
            2026, 7, 10, tzinfo=CST)
        assert expires_at(T0, "C", POLICY) == dt.datetime(2026, 7, 5, 9, 0, tzinfo=CST)


def test_r_tier_5_a_retier_that_shortens_the_period_below_the_time_held_ends_it_at_the_retier():
    retier = dt.datetime(2026, 7, 10, 0, 0, tzinfo=CST)  # B -> C after 6 months and 5 days
    assert expires_at(T0, "C", POLICY, retiered_at=retier) == retier
    early = dt.datetime(2026, 4, 1, 0, 0, tzinfo=CST)
    assert expires_at(T0, "C", POLICY, retiered_at=early) == dt.datetime(2026, 7, 5, 9, 0, tzinfo=CST)
    assert expires_at(T0, "A", POLICY, retiered_at=early) == EXPIRY_B  # counted from the original allocation


# --- R-CONV-2 and R-SUSP-7 ---------------------------------------------------------------------

def test_r_conv_2_nothing_happens_before_the_expiry_instant():
    assert expiry_decision(case(), EXPIRY_B - US, POLICY) is None


def test_r_conv_2_an_unconverted_lead_is_reallocated_at_the_expiry_instant():
    out = expiry_decision(case(), EXPIRY_B, POLICY)
    assert (out.action, out.rule, out.at) == ("reallocate", "R-CONV-2", EXPIRY_B)


def test_r_susp_7_the_expired_owner_is_excluded_and_barred_from_the_tier():
    out = expiry_decision(case(tier="C"), dt.datetime(2026, 8, 1, tzinfo=CST), POLICY)
    assert out.excluded == frozenset({"s1"})
    assert out.barred_tier == "C"
    assert out.at == dt.datetime(2026, 7, 5, 9, 0, tzinfo=CST)  # recorded at the expiry, however late the check


def test_r_conv_2_a_deal_before_expiry_is_not_reallocated_but_a_deal_at_the_instant_is_too_late():
    assert expiry_decision(case(converted=EXPIRY_B - US), EXPIRY_B + US, POLICY) is None
    assert expiry_decision(case(converted=EXPIRY_B), EXPIRY_B, POLICY).action == "reallocate"


def test_r_conv_2_step_4_before_expiry_exempts_for_good_but_step_4_at_the_instant_is_too_late():
    out = expiry_decision(case(step4=EXPIRY_B - US), EXPIRY_B, POLICY)
    assert (out.action, out.barred_tier, out.excluded) == ("exempt", None, frozenset())
    assert expiry_decision(case(step4=EXPIRY_B), EXPIRY_B, POLICY).action == "reallocate"


def test_r_conv_2_an_exempt_assignment_is_left_alone_for_good():
    assert expiry_decision(case(exempt=True), EXPIRY_B + dt.timedelta(days=400), POLICY) is None


def test_r_conv_2_an_unclassified_lead_never_expires():
    assert expiry_decision(case(tier="unclassified"), T0 + dt.timedelta(days=3000), POLICY) is None


def test_r_conv_2_with_r_tier_5_the_shortened_period_expires_at_the_retier():
    retier = dt.datetime(2026, 7, 10, 0, 0, tzinfo=CST)
    out = expiry_decision(case(tier="C", retiered=retier), retier, POLICY)
    assert (out.action, out.at, out.barred_tier) == ("reallocate", retier, "C")


# --- R-CONV-3 ----------------------------------------------------------------------------------

HANDOVER = EXPIRY_B


def test_r_conv_3_previous_owner_with_a_recent_follow_up_gets_30_percent_of_the_commission():
    followups = [dt.datetime(2026, 10, 20, 14, 0, tzinfo=CST)]
    assert previous_owner_share(HANDOVER, "R-CONV-2", True, followups, POLICY) == 0.3
    assert previous_owner_share(HANDOVER, "R-SLA-5", True, followups, POLICY) == 0.3


def test_r_conv_3_last_follow_up_exactly_30_days_before_counts_and_a_microsecond_more_does_not():
    thirty = HANDOVER - dt.timedelta(days=30)
    assert previous_owner_share(HANDOVER, "R-CONV-2", True, [thirty], POLICY) == 0.3
    assert previous_owner_share(HANDOVER, "R-CONV-2", True, [thirty - US], POLICY) == 0.0


def test_r_conv_3_no_share_without_follow_ups_or_after_departure_or_for_other_hand_overs():
    recent = [HANDOVER - dt.timedelta(days=3)]
    assert previous_owner_share(HANDOVER, "R-CONV-2", True, [], POLICY) == 0.0
    assert previous_owner_share(HANDOVER, "R-CONV-2", False, recent, POLICY) == 0.0
    for rule in ("R-CONV-4", "R-CONV-6", "R-DISP-7", "R-VAL-4"):
        assert previous_owner_share(HANDOVER, rule, True, recent, POLICY) == 0.0


def test_r_conv_3_follow_ups_after_the_hand_over_do_not_count():
    old = HANDOVER - dt.timedelta(days=45)
    assert previous_owner_share(HANDOVER, "R-CONV-2", True, [old, HANDOVER + US], POLICY) == 0.0


def test_r_conv_3_the_share_comes_out_of_the_commission_not_the_performance():
    performance, commission = deal_credits("s2", "s1", 0.3)
    assert performance == {"s2": 1.0}
    assert commission == {"s1": 0.3, "s2": 0.7}


def test_r_conv_3_without_a_share_the_closer_has_everything():
    assert deal_credits("s2", None, 0.0) == ({"s2": 1.0}, {"s2": 1.0})
    assert deal_credits("s2", "s1", 0.0) == ({"s2": 1.0}, {"s2": 1.0})
    assert deal_credits("s1", "s1", 0.3) == ({"s1": 1.0}, {"s1": 1.0})


def test_r_conv_3_the_worked_scenario_b_lead_after_10_months():
    followups = [dt.datetime(2026, m, d, 14, 0, tzinfo=CST) for m, d in ((9, 2), (10, 1), (10, 20))]
    handover = expires_at(T0, "B", POLICY)
    share = previous_owner_share(handover, "R-CONV-2", True, followups, POLICY)
    assert deal_credits("s2", "s1", share) == ({"s2": 1.0}, {"s1": 0.3, "s2": 0.7})


# --- R-CONV-5 ----------------------------------------------------------------------------------

ON = load_policy(overrides={"conversion": {"dormant_return": {"enabled": True}}})


def test_r_conv_5_dormant_return_is_off_by_default():
    assert dormant(T0, None, T0 + dt.timedelta(days=1000), POLICY) is False


def test_r_conv_5_six_months_without_sale_or_payment_returns_the_customer_at_the_instant():
    six = dt.datetime(2026, 7, 5, 9, 0, tzinfo=CST)
    assert dormant(T0, None, six - US, ON) is False
    assert dormant(T0, None, six, ON) is True


def test_r_conv_5_a_later_payment_keeps_the_customer_and_no_past_sale_means_never_dormant():
    payment = dt.datetime(2026, 3, 1, 9, 0, tzinfo=CST)
    assert dormant(T0, payment, dt.datetime(2026, 8, 1, tzinfo=CST), ON) is False
    assert dormant(T0, payment, dt.datetime(2026, 9, 1, 9, 0, tzinfo=CST), ON) is True
    assert dormant(None, payment, dt.datetime(2030, 1, 1, tzinfo=CST), ON) is False


def test_r_conv_5_the_dormant_instant_is_6_calendar_months_after_the_last_sale_or_payment():
    payment = dt.datetime(2026, 8, 31, 10, 0, tzinfo=CST)
    assert dormant_since(T0, None, ON) == dt.datetime(2026, 7, 5, 9, 0, tzinfo=CST)
    assert dormant_since(T0, payment, ON) == dt.datetime(2027, 2, 28, 10, 0, tzinfo=CST)  # month-end
    assert dormant_since(T0, None, POLICY) is None  # the switch is off by default
    assert dormant_since(None, payment, ON) is None  # no past sale


def test_r_conv_4_help_by_agreement_moves_the_agreed_part_of_the_owners_share():
    from leadflow.rules.conversion import apply_help

    assert apply_help({"s1": 1.0}, "s1", "s2", 0.4) == {"s1": 0.6, "s2": 0.4}
    # with an R-CONV-3 share, only the closer's part is split
    assert apply_help({"s0": 0.3, "s1": 0.7}, "s1", "s2", 0.5) == {"s0": 0.3, "s1": 0.35, "s2": 0.35}
    assert apply_help({"s1": 1.0}, "s1", "s1", 0.4) == {"s1": 1.0}
