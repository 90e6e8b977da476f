"""R-DISP rules: protection and the deterministic dispute decision, tested directly."""
import datetime as dt
import random
import re
from zoneinfo import ZoneInfo

from leadflow.policy import load_policy
from leadflow.rules.disputes import (
    ClaimFact, Contact, DealFact, Holding, Reg, decide_dispute, protection_until,
)

POLICY = load_policy()
CST = ZoneInfo("Asia/Shanghai")
US = dt.timedelta(microseconds=1)
D0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=CST)


def day(n, hours=0):
    return D0 + dt.timedelta(days=n, hours=hours)


def own(person="s1", kind="self", start=D0, end=None):
    return Holding(person, start, end, kind)


def decide(regs=(), contacts=(), holdings=(), deal=None, claims=(), manager=None, as_of=None):
    return decide_dispute(list(regs), list(contacts), list(holdings), deal, list(claims), POLICY, manager, as_of=as_of)


def reg(person, at, channel="self", valid=True):
    return Reg(person, at, channel, valid)


# --- R-DISP-1 protection -----------------------------------------------------------------------

def test_r_disp_1_protection_lasts_30_days_from_registration():
    assert protection_until(D0, [], POLICY) == day(30)


def test_r_disp_1_a_follow_up_within_protection_keeps_it_15_days_from_that_follow_up():
    assert protection_until(D0, [day(20)], POLICY) == day(35)
    assert protection_until(D0, [day(20), day(34)], POLICY) == day(49)
    assert protection_until(D0, [day(5)], POLICY) == day(30)  # never shorter than the 30 days


def test_r_disp_1_a_follow_up_at_the_lapse_instant_is_too_late_and_a_lapse_is_never_revived():
    assert protection_until(D0, [day(30)], POLICY) == day(30)
    assert protection_until(D0, [day(30) - US], POLICY) == day(45) - US
    assert protection_until(D0, [day(31), day(32)], POLICY) == day(30)
    assert protection_until(D0, [day(-1)], POLICY) == day(30)  # before the registration: not maintenance


# --- R-DISP-1 ownership ------------------------------------------------------------------------

def test_r_disp_1_the_first_valid_registration_owns_the_customer():
    out = decide([reg("s1", D0), reg("s2", day(3))])
    assert (out.decision, out.rule) == ({"s1": 1.0}, "R-DISP-1")


def test_r_disp_1_an_invalid_registration_does_not_count():
    out = decide([reg("s2", D0 - US, valid=False), reg("s1", D0)])
    assert (out.decision, out.rule) == ({"s1": 1.0}, "R-DISP-1")


def test_r_disp_1_a_deal_by_the_owner_is_credited_to_the_owner():
    out = decide([reg("s1", D0)], holdings=[own()], deal=DealFact("s1", day(10), 500_000))
    assert (out.decision, out.rule, out.fines, out.refused_claims) == ({"s1": 1.0}, "R-DISP-1", [], [])


def test_r_disp_1_an_allocated_lead_belongs_to_its_holder():
    out = decide(holdings=[own("s3", "allocation")], as_of=day(5))
    assert (out.decision, out.rule) == ({"s3": 1.0}, "R-DISP-1")


# --- R-DISP-2 ----------------------------------------------------------------------------------

SAME_DAY = [reg("s1", D0), reg("s2", D0 + dt.timedelta(hours=3))]


def test_r_disp_2_same_day_registrations_split_a_deal_50_50_when_the_other_claims():
    out = decide(SAME_DAY, holdings=[own()], deal=DealFact("s1", day(10)), claims=[ClaimFact("s2", day(11))])
    assert (out.decision, out.rule) == ({"s1": 0.5, "s2": 0.5}, "R-DISP-2")


def test_r_disp_2_without_the_others_claim_the_closer_keeps_the_deal():
    out = decide(SAME_DAY, holdings=[own()], deal=DealFact("s1", day(10)))
    assert (out.decision, out.rule) == ({"s1": 1.0}, "R-DISP-1")


def test_r_disp_2_with_no_deal_the_customer_is_shared():
    out = decide(SAME_DAY)
    assert (out.decision, out.rule) == ({"s1": 0.5, "s2": 0.5}, "R-DISP-2")


def test_r_disp_2_the_same_day_is_the_business_day():
    late = dt.datetime(2026, 1, 5, 23, 30, tzinfo=CST)
    after_midnight = dt.datetime(2026, 1, 6, 0, 10, tzinfo=CST)  # the same UTC day, the next business day
    assert decide([reg("s1", late), reg("s2", after_midnight)]).rule == "R-DISP-1"
    assert decide([reg("s1", late), reg("s2", late + dt.timedelta(minutes=29))]).rule == "R-DISP-2"


def test_r_disp_2_registrations_on_different_days_do_not_split():
    out = decide([reg("s1", D0), reg("s2", day(1))], holdings=[own()], deal=DealFact("s1", day(10)),
                 claims=[ClaimFact("s2", day(11))])
    assert (out.decision, out.rule) == ({"s1": 1.0}, "R-DISP-1")


# --- R-DISP-4 ----------------------------------------------------------------------------------

def test_r_disp_4_a_claim_at_the_end_of_the_3_day_window_is_in_time():
    out = decide(SAME_DAY, holdings=[own()], deal=DealFact("s1", day(10)), claims=[ClaimFact("s2", day(13))])
    assert (out.rule, out.refused_claims) == ("R-DISP-2", [])


def test_r_disp_4_a_claim_a_microsecond_after_the_window_is_refused():
    out = decide(SAME_DAY, holdings=[own()], deal=DealFact("s1", day(10)), claims=[ClaimFact("s2", day(13) + US)])
    assert (out.decision, out.rule, out.refused_claims) == ({"s1": 1.0}, "R-DISP-4", ["s2"])
    assert any(e.startswith("R-DISP-4: s2") for e in out.evidence)


def test_r_disp_4_a_claim_without_a_registration_or_contact_on_record_before_it_is_refused():
    out = decide([reg("s1", D0)], contacts=[Contact("s3", day(11) + US)], holdings=[own()],
                 deal=DealFact("s1", day(10)), claims=[ClaimFact("s3", day(11))])
    assert (out.decision, out.rule, out.refused_claims) == ({"s1": 1.0}, "R-DISP-4", ["s3"])


def test_r_disp_4_the_closer_needs_no_claim():
    out = decide([reg("s1", D0)], holdings=[own()], deal=DealFact("s1", day(10)), claims=[ClaimFact("s1", day(40))])
    assert (out.rule, out.refused_claims) == ("R-DISP-1", [])


def test_r_disp_4_a_refused_claim_decides_the_rule_before_r_disp_2():
    regs = SAME_DAY + [reg("s3", D0 + dt.timedelta(hours=5))]
    out = decide(regs, holdings=[own()], deal=DealFact("s1", day(10)),
                 claims=[ClaimFact("s2", day(11)), ClaimFact("s3", day(14))])
    assert (out.rule, out.refused_claims, out.decision) == ("R-DISP-4", ["s3"], {"s1": 0.5, "s2": 0.5})


# --- R-DISP-6 ----------------------------------------------------------------------------------

HELD = [own("s1", "allocation")]


def test_r_disp_6_an_unknowing_close_on_a_held_customer_splits_50_50_when_the_holder_claims():
    out = decide(contacts=[Contact("s2", day(5))], holdings=HELD, deal=DealFact("s2", day(20)),
                 claims=[ClaimFact("s1", day(21))])
    assert (out.decision, out.rule, out.fines) == ({"s1": 0.5, "s2": 0.5}, "R-DISP-6", [])


def test_r_disp_6_without_the_holders_claim_the_closer_keeps_the_deal():
    out = decide(contacts=[Contact("s2", day(5))], holdings=HELD, deal=DealFact("s2", day(20)))
    assert (out.decision, out.rule) == ({"s2": 1.0}, "R-DISP-1")


def test_r_disp_6_an_unknowing_helper_gets_30_and_the_closing_holder_70():
    out = decide(contacts=[Contact("s2", day(5))], holdings=HELD, deal=DealFact("s1", day(20)),
                 claims=[ClaimFact("s2", day(21))])
    assert (out.decision, out.rule) == ({"s1": 0.7, "s2": 0.3}, "R-DISP-6")


def test_r_disp_6_a_knowing_close_fines_1000_yuan_and_gives_the_whole_deal_to_the_holder():
    out = decide(contacts=[Contact("s2", day(5))], holdings=HELD, deal=DealFact("s2", day(20)),
                 claims=[ClaimFact("s1", day(21), knowingly=True)])
    assert (out.decision, out.rule, out.fines) == ({"s1": 1.0}, "R-DISP-6", [("s2", 1000.0, "R-DISP-6")])


def test_r_disp_6_a_knowing_helper_is_fined_and_the_holder_keeps_the_whole_deal():
    out = decide(contacts=[Contact("s2", day(5))], holdings=HELD, deal=DealFact("s1", day(20)),
                 claims=[ClaimFact("s2", day(21), knowingly=True)])
    assert (out.decision, out.fines) == ({"s1": 1.0}, [("s2", 1000.0, "R-DISP-6")])


def test_r_disp_6_a_close_without_any_contact_on_record_still_counts_as_contact():
    out = decide(holdings=HELD, deal=DealFact("s2", day(20)), claims=[ClaimFact("s1", day(21))])
    assert (out.decision, out.rule) == ({"s1": 0.5, "s2": 0.5}, "R-DISP-6")


def test_r_disp_6_contact_with_a_self_found_lead_counts_only_while_it_is_protected():
    base = dict(regs=[reg("s1", D0)], holdings=[own()], claims=[ClaimFact("s1", day(41))])
    held = decide(contacts=[Contact("s2", day(30) - US)], deal=DealFact("s2", day(40)), **base)
    free = decide(contacts=[Contact("s2", day(30))], deal=DealFact("s2", day(40)), **base)
    assert (held.rule, held.decision) == ("R-DISP-6", {"s1": 0.5, "s2": 0.5})
    assert (free.rule, free.decision) == ("R-DISP-1", {"s2": 1.0})


def test_r_disp_6_with_no_deal_a_claim_on_a_held_customer_leaves_it_with_the_holder():
    out = decide(contacts=[Contact("s2", day(5))], holdings=HELD, claims=[ClaimFact("s2", day(6))], as_of=day(7))
    assert (out.decision, out.rule) == ({"s1": 1.0}, "R-DISP-6")


def test_r_disp_2_precedes_r_disp_6():
    out = decide(SAME_DAY, contacts=[Contact("s2", day(5))], holdings=[own()], deal=DealFact("s2", day(20)),
                 claims=[ClaimFact("s1", day(21))])
    assert (out.decision, out.rule) == ({"s1": 0.5, "s2": 0.5}, "R-DISP-2")


# --- R-DISP-7 ----------------------------------------------------------------------------------

def test_r_disp_7_a_registration_at_the_lapse_instant_takes_the_customer_over():
    regs = [reg("s1", D0), reg("s2", day(30))]
    out = decide(regs, deal=DealFact("s2", day(40)))
    assert (out.decision, out.rule) == ({"s2": 1.0}, "R-DISP-7")
    assert any("s1's protection lapsed" in e for e in out.evidence)


def test_r_disp_7_a_registration_a_microsecond_before_the_lapse_takes_nothing_over():
    out = decide([reg("s1", D0), reg("s2", day(30) - US)], as_of=day(35))
    assert (out.decision, out.rule) == ({"s1": 1.0}, "R-DISP-1")


def test_r_disp_7_a_takeover_holding_decides_for_its_holder():
    holdings = [own("s1", "self", D0, day(30)), own("s2", "takeover", day(30))]
    out = decide([reg("s1", D0), reg("s2", day(30))], holdings=holdings, as_of=day(33))
    assert (out.decision, out.rule) == ({"s2": 1.0}, "R-DISP-7")


def test_r_disp_7_a_company_channel_registration_never_takes_over():
    out = decide([reg("s1", D0), reg("s2", day(31), channel="hotline")], as_of=day(33))
    assert (out.decision, out.rule) == ({"s1": 1.0}, "R-DISP-1")


def test_r_disp_6_precedes_r_disp_7():
    holdings = [own("s1", "self", D0, day(30)), own("s2", "takeover", day(30))]
    out = decide([reg("s1", D0), reg("s2", day(30))], contacts=[Contact("s3", day(35))], holdings=holdings,
                 deal=DealFact("s3", day(40)), claims=[ClaimFact("s2", day(41))])
    assert (out.decision, out.rule) == ({"s2": 0.5, "s3": 0.5}, "R-DISP-6")


# --- R-DISP-5 ----------------------------------------------------------------------------------

def test_r_disp_5_a_deal_nobody_owns_or_closed_goes_to_the_reception_manager():
    gone = [own("s1", "allocation", D0, day(10))]
    out = decide(holdings=gone, deal=DealFact(None, day(20)), manager="m2")
    assert (out.decision, out.rule) == ({"m2": 1.0}, "R-DISP-5")
    assert decide(holdings=gone, deal=DealFact(None, day(20))).decision == {}


def test_r_disp_5_does_not_apply_while_someone_holds_the_customer():
    out = decide(holdings=HELD, deal=DealFact(None, day(20)), manager="m2")
    assert (out.decision, out.rule) == ({"s1": 1.0}, "R-DISP-1")


def test_r_disp_7_precedes_r_disp_5_and_r_disp_5_precedes_r_disp_1():
    assert decide([reg("s1", D0), reg("s2", day(30))], deal=DealFact("s2", day(40)), manager="m2").rule == "R-DISP-7"
    out = decide([reg("s1", D0)], holdings=[own("s1", "self", D0, day(5))], deal=DealFact(None, day(6)), manager="m2")
    assert out.rule == "R-DISP-5"


# --- R-DISP-8 ----------------------------------------------------------------------------------

def test_r_disp_8_the_same_history_in_any_order_gives_the_same_decision():
    regs = SAME_DAY + [reg("s3", day(2))]
    contacts = [Contact("s3", day(4)), Contact("s1", day(6)), Contact("s2", day(7))]
    claims = [ClaimFact("s2", day(11)), ClaimFact("s3", day(20))]
    deal = DealFact("s1", day(10))
    first = decide(regs, contacts, [own()], deal, claims)
    rng = random.Random(8)
    for _ in range(5):
        shuffled = [list(x) for x in (regs, contacts, claims)]
        for x in shuffled:
            rng.shuffle(x)
        again = decide(shuffled[0], shuffled[1], [own()], deal, shuffled[2])
        assert again == first


def test_r_disp_8_evidence_names_people_times_and_rules_never_phone_numbers():
    cases = [
        decide(SAME_DAY, holdings=[own()], deal=DealFact("s1", day(10)), claims=[ClaimFact("s2", day(14))]),
        decide(contacts=[Contact("s2", day(5))], holdings=HELD, deal=DealFact("s2", day(20)),
               claims=[ClaimFact("s1", day(21), knowingly=True)]),
        decide([reg("s1", D0), reg("s2", day(30))], deal=DealFact("s2", day(40))),
        decide(holdings=[own("s1", "allocation", D0, day(1))], deal=DealFact(None, day(20)), manager="m2"),
    ]
    for out in cases:
        assert out.evidence and all(re.match(r"R-DISP-\d: ", e) for e in out.evidence)
        assert not any(re.search(r"\d{7,}", e) for e in out.evidence)
        assert abs(sum(out.decision.values()) - 1.0) < 1e-9
