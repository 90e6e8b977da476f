"""R-SLA, R-SUSP-3 and R-SUSP-5 rules, tested directly: no database, no Prefect."""
import datetime as dt
from zoneinfo import ZoneInfo

from leadflow.policy import load_policy
from leadflow.rules.sla import (
    Holding, Listing, Obligation, PauseEntry, Record, SlaBreach, audit_deadline, audit_listings, audit_reallocations,
    audit_times, breach_due, breaches, deadlines, disproofs, enforcement, judge, late_entry_grants_lost, mass_breach,
    mass_breach_warning, max_lateness, month_ordinals, new_ordinals, next_due, penalties, unused_rounds, with_grace,
    without_grace,
)

POLICY = load_policy()
CAL = load_policy(overrides={"working_days": {"holidays": ["2026-10-01"], "makeup_days": ["2026-10-10"]}})
CST = ZoneInfo("Asia/Shanghai")
US = dt.timedelta(microseconds=1)
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=CST)  # a Monday


def ob(start=T0, tier="B", person="s1", ended=None, bound=True, aid=1, customer=10):
    return Obligation(aid, customer, person, tier, start, ended, bound)


def rec(kind, at, person="s1", customer=10):
    return Record(customer, person, kind, at)


def rules_of(found):
    return sorted(b.rule_id for b in found)


# --- deadlines ---------------------------------------------------------------------------------

def test_r_sla_1_and_2_deadlines_are_10_minutes_and_24_hours_after_allocation():
    d = deadlines(ob(), POLICY)
    assert d["R-SLA-1"] == T0 + dt.timedelta(minutes=10)
    assert d["R-SLA-2"] == T0 + dt.timedelta(hours=24)


def test_r_sla_3_call_register_is_due_at_closing_time_of_the_next_working_day():
    assert deadlines(ob(), POLICY)["R-SLA-3"] == dt.datetime(2026, 1, 6, 18, 0, tzinfo=CST)


def test_r_sla_3_a_friday_allocation_is_due_on_monday_at_closing_time():
    friday = dt.datetime(2026, 1, 9, 17, 0, tzinfo=CST)
    assert deadlines(ob(friday), POLICY)["R-SLA-3"] == dt.datetime(2026, 1, 12, 18, 0, tzinfo=CST)


def test_r_sla_3_an_allocation_after_closing_time_still_has_only_the_next_working_day():
    late = dt.datetime(2026, 1, 5, 22, 30, tzinfo=CST)
    assert deadlines(ob(late), POLICY)["R-SLA-3"] == dt.datetime(2026, 1, 6, 18, 0, tzinfo=CST)


def test_r_sla_3_a_holiday_is_skipped_in_the_working_day_calendar():
    wednesday = dt.datetime(2026, 9, 30, 10, 0, tzinfo=CST)  # Thursday 1 October is a holiday
    assert deadlines(ob(wednesday), CAL)["R-SLA-3"] == dt.datetime(2026, 10, 2, 18, 0, tzinfo=CST)


def test_r_sla_3_a_make_up_saturday_is_a_working_day():
    friday = dt.datetime(2026, 10, 9, 10, 0, tzinfo=CST)  # Saturday 10 October is a make-up working day
    assert deadlines(ob(friday), CAL)["R-SLA-3"] == dt.datetime(2026, 10, 10, 18, 0, tzinfo=CST)
    assert deadlines(ob(friday), POLICY)["R-SLA-3"] == dt.datetime(2026, 10, 12, 18, 0, tzinfo=CST)


def test_r_sla_3_deadline_is_in_business_time_for_a_utc_allocation():
    utc = dt.datetime(2026, 1, 5, 17, 0, tzinfo=dt.timezone.utc)  # Tuesday 01:00 in Shanghai
    assert deadlines(ob(utc), POLICY)["R-SLA-3"] == dt.datetime(2026, 1, 7, 18, 0, tzinfo=CST)


def test_r_sla_4_abcd_entry_binds_c_and_above_only():
    for tier in ("A", "B", "C"):
        assert deadlines(ob(tier=tier), POLICY)["R-SLA-4"] == dt.datetime(2026, 1, 6, 18, 0, tzinfo=CST)
    for tier in ("D", "below_d", "unclassified", "non_target"):
        assert "R-SLA-4" not in deadlines(ob(tier=tier), POLICY)


def test_r_sla_4_min_tier_is_a_policy_key():
    strict = load_policy(overrides={"sla": {"abcd_min_tier": "B"}})
    assert "R-SLA-4" not in deadlines(ob(tier="C"), strict)
    assert "R-SLA-4" in deadlines(ob(tier="B"), strict)


# --- breaches ----------------------------------------------------------------------------------

def met_all_but(rule):
    kinds = {"R-SLA-1": "contact", "R-SLA-2": "crm_entry", "R-SLA-3": "call_register", "R-SLA-4": "abcd_entry"}
    return [rec(k, T0 + dt.timedelta(minutes=1)) for r, k in kinds.items() if r != rule]


def test_r_sla_1_contact_at_the_deadline_is_in_time():
    records = met_all_but("R-SLA-1") + [rec("contact", T0 + dt.timedelta(minutes=10))]
    assert breaches([ob()], records, T0 + dt.timedelta(days=30), POLICY) == []


def test_r_sla_1_contact_a_microsecond_after_the_deadline_is_a_breach_at_the_deadline():
    deadline = T0 + dt.timedelta(minutes=10)
    records = met_all_but("R-SLA-1") + [rec("contact", deadline + US)]
    assert breaches([ob()], records, T0 + dt.timedelta(days=30), POLICY) == [SlaBreach(1, 10, "s1", "R-SLA-1", deadline)]


def test_r_sla_1_breach_is_due_only_once_the_clock_is_past_the_deadline():
    deadline = T0 + dt.timedelta(minutes=10)
    records = met_all_but("R-SLA-1")
    assert breaches([ob()], records, deadline, POLICY) == []
    assert rules_of(breaches([ob()], records, deadline + US, POLICY)) == ["R-SLA-1"]


def test_r_sla_1_only_the_owners_own_record_meets_it():
    records = met_all_but("R-SLA-1") + [rec("contact", T0 + dt.timedelta(minutes=2), person="s9")]
    assert rules_of(breaches([ob()], records, T0 + dt.timedelta(hours=1), POLICY)) == ["R-SLA-1"]


def test_r_sla_1_a_record_before_the_assignment_started_does_not_meet_it():
    records = met_all_but("R-SLA-1") + [rec("contact", T0 - US)]
    assert rules_of(breaches([ob()], records, T0 + dt.timedelta(hours=1), POLICY)) == ["R-SLA-1"]


def test_r_sla_1_a_record_for_another_customer_does_not_meet_it():
    records = met_all_but("R-SLA-1") + [rec("contact", T0 + dt.timedelta(minutes=2), customer=11)]
    assert rules_of(breaches([ob()], records, T0 + dt.timedelta(hours=1), POLICY)) == ["R-SLA-1"]


def test_r_sla_2_crm_entry_at_24_hours_is_in_time_and_a_microsecond_later_is_not():
    deadline = T0 + dt.timedelta(hours=24)
    on_time = met_all_but("R-SLA-2") + [rec("crm_entry", deadline)]
    late = met_all_but("R-SLA-2") + [rec("crm_entry", deadline + US)]
    as_of = T0 + dt.timedelta(days=5)
    assert breaches([ob()], on_time, as_of, POLICY) == []
    assert breaches([ob()], late, as_of, POLICY) == [SlaBreach(1, 10, "s1", "R-SLA-2", deadline)]


def test_r_sla_3_and_4_entries_at_closing_time_of_the_next_working_day_are_in_time():
    close = dt.datetime(2026, 1, 6, 18, 0, tzinfo=CST)
    records = [rec("contact", T0), rec("crm_entry", T0), rec("call_register", close), rec("abcd_entry", close + US)]
    assert rules_of(breaches([ob()], records, T0 + dt.timedelta(days=5), POLICY)) == ["R-SLA-4"]


def test_r_sla_1_to_4_an_unbound_manager_never_breaches():
    assert deadlines(ob(bound=False, tier="unclassified"), POLICY) == {}
    assert breaches([ob(bound=False, tier="unclassified")], [], T0 + dt.timedelta(days=30), POLICY) == []


def test_r_sla_1_to_4_a_new_owner_gets_fresh_obligations_met_only_by_their_own_records():
    first = ob(person="s1", ended=T0 + dt.timedelta(hours=2), aid=1)
    second = ob(start=T0 + dt.timedelta(hours=2), person="s2", aid=2)
    records = [rec(k, T0 + dt.timedelta(minutes=1)) for k in ("contact", "crm_entry", "call_register", "abcd_entry")]
    found = breaches([first, second], records, T0 + dt.timedelta(days=5), POLICY)
    assert {(b.person_id, b.rule_id) for b in found} == {("s2", r) for r in ("R-SLA-1", "R-SLA-2", "R-SLA-3", "R-SLA-4")}


def test_r_sla_1_an_assignment_ended_before_or_at_the_deadline_lapses_but_not_one_ended_after():
    deadline = T0 + dt.timedelta(minutes=10)
    records = met_all_but("R-SLA-1")
    as_of = T0 + dt.timedelta(days=5)
    assert breaches([ob(ended=deadline - US)], records, as_of, POLICY) == []
    assert breaches([ob(ended=deadline)], records, as_of, POLICY) == []
    assert rules_of(breaches([ob(ended=deadline + US)], records, as_of, POLICY)) == ["R-SLA-1"]


def test_r_sla_2_a_deal_does_not_end_the_obligation():
    records = [rec("contact", T0), rec("call_register", T0), rec("abcd_entry", T0), rec("sales_step", T0)]
    assert rules_of(breaches([ob()], records, T0 + dt.timedelta(days=2), POLICY)) == ["R-SLA-2"]


def test_r_sla_6_breaches_are_the_same_however_often_the_check_runs():
    obligations = [ob(aid=1), ob(aid=2, customer=11, start=T0 + dt.timedelta(hours=1))]
    as_of = T0 + dt.timedelta(days=3)
    once = breaches(obligations, [], as_of, POLICY)
    assert len(once) == 8
    assert breaches(obligations, [], as_of, POLICY) == once
    assert len(set(once)) == len(once)
    assert sorted(once, key=lambda b: b.at) == once


def test_r_sla_6_next_due_is_just_past_the_earliest_deadline_neither_met_nor_breached():
    records = [rec("contact", T0 + dt.timedelta(minutes=3))]
    crm, register = T0 + dt.timedelta(hours=24), dt.datetime(2026, 1, 6, 18, 0, tzinfo=CST)
    assert next_due([ob()], records, set(), POLICY) == crm + US
    assert next_due([ob()], records, {(1, "R-SLA-2")}, POLICY) == register + US
    assert next_due([ob(bound=False)], [], set(), POLICY) is None
    everything = {(1, r) for r in ("R-SLA-1", "R-SLA-2", "R-SLA-3", "R-SLA-4")}
    assert next_due([ob()], [], everything, POLICY) is None


def test_r_sla_6_a_breach_is_found_however_old_its_deadline():
    long_after = T0 + dt.timedelta(days=400)
    assert rules_of(breaches([ob()], [], long_after, POLICY)) == ["R-SLA-1", "R-SLA-2", "R-SLA-3", "R-SLA-4"]


def test_r_sla_6_judge_records_each_breach_once_and_settles_what_has_nothing_left_open():
    as_of = T0 + dt.timedelta(hours=1)  # R-SLA-1 is past; R-SLA-2..4 still ahead
    first = judge([ob()], [], set(), None, as_of, POLICY)
    assert rules_of(first.breaches) == ["R-SLA-1"] and first.settled == []
    again = judge([ob()], [], {(1, "R-SLA-1")}, as_of, as_of, POLICY)
    assert again.breaches == [] and again.settled == []
    records = [rec(k, T0 + dt.timedelta(minutes=20)) for k in ("crm_entry", "call_register", "abcd_entry")]
    done = judge([ob()], records, {(1, "R-SLA-1")}, as_of, as_of, POLICY)
    assert done.breaches == [] and done.settled == [1]  # all met early: nothing left to wait for


def test_r_sla_6_an_assignment_that_ended_before_its_deadlines_is_settled_without_breach():
    ended = ob(ended=T0 + dt.timedelta(minutes=5))
    found = judge([ended], [], set(), None, T0 + dt.timedelta(minutes=6), POLICY)
    assert found.breaches == [] and found.settled == [1]


# --- R-SLA-7: evidence grace, enforcement switch, mass breach -----------------------------------

GRACE = load_policy(overrides={"sla": {"evidence_grace_minutes": 60}})


def switched(**modes):
    return load_policy(overrides={"sla": {"enforcement": {k.replace("_", "-"): v for k, v in modes.items()}}})


def test_r_sla_7_the_evidence_grace_defaults_to_zero_and_delays_the_breach_by_its_minutes():
    deadline = T0 + dt.timedelta(minutes=10)
    assert breach_due(deadline, POLICY) == deadline + US
    assert breach_due(deadline, GRACE) == deadline + dt.timedelta(minutes=60) + US
    assert with_grace(deadline, GRACE) == deadline + dt.timedelta(hours=1)
    assert without_grace(with_grace(deadline, GRACE), GRACE) == deadline


def test_r_sla_7_no_breach_is_recorded_before_the_deadline_plus_the_grace_has_passed():
    deadline = T0 + dt.timedelta(minutes=10)
    records = met_all_but("R-SLA-1")
    assert breaches([ob()], records, deadline + dt.timedelta(minutes=60), GRACE) == []
    assert breaches([ob()], records, deadline + dt.timedelta(minutes=60) + US, GRACE) == [
        SlaBreach(1, 10, "s1", "R-SLA-1", deadline)]  # dated at the deadline, not at the end of the grace
    assert next_due([ob()], records, set(), GRACE) == deadline + dt.timedelta(minutes=60) + US


def test_r_sla_7_a_record_dated_in_time_that_arrives_within_the_grace_prevents_the_breach():
    deadline = T0 + dt.timedelta(minutes=10)
    late_arrival = Record(10, "s1", "contact", deadline - dt.timedelta(minutes=2), deadline + dt.timedelta(minutes=30))
    assert breaches([ob()], met_all_but("R-SLA-1") + [late_arrival], deadline + dt.timedelta(days=1), GRACE) == []


def test_r_sla_7_deadlines_are_judged_by_when_the_record_was_made_not_when_it_arrived():
    deadline = T0 + dt.timedelta(minutes=10)
    made_late_sent_at_once = Record(10, "s1", "contact", deadline + US, deadline + US)
    assert rules_of(breaches([ob()], met_all_but("R-SLA-1") + [made_late_sent_at_once], deadline + dt.timedelta(days=1),
                             POLICY)) == ["R-SLA-1"]


def test_r_sla_7_the_enforcement_switch_defaults_to_enforce_for_every_rule():
    assert [enforcement(f"R-SLA-{i}", POLICY) for i in range(1, 6)] == ["enforce"] * 5
    assert enforcement("R-SLA-2", switched(R_SLA_2="record")) == "record"
    assert enforcement("R-SLA-1", switched(R_SLA_2="record")) == "enforce"


def test_r_sla_7_a_rule_switched_off_is_not_checked_and_record_still_finds_its_breach():
    late = T0 + dt.timedelta(days=5)
    off = switched(R_SLA_1="off", R_SLA_4="off")
    assert rules_of(breaches([ob()], [], late, off)) == ["R-SLA-2", "R-SLA-3"]
    assert rules_of(breaches([ob()], [], late, switched(R_SLA_1="record"))) == ["R-SLA-1", "R-SLA-2", "R-SLA-3",
                                                                                  "R-SLA-4"]
    assert next_due([ob()], [], set(), switched(R_SLA_1="off")) == T0 + dt.timedelta(hours=24) + US
    # an assignment whose only open obligations are switched off has nothing left to wait for
    records = [rec(k, T0) for k in ("contact", "crm_entry")]
    assert judge([ob()], records, set(), None, T0 + dt.timedelta(hours=1),
                 switched(R_SLA_3="off", R_SLA_4="off")).settled == [1]


def test_r_sla_7_the_switch_rejects_unknown_rules_and_values():
    import pytest

    from leadflow.policy import PolicyError

    with pytest.raises(PolicyError, match="sla.enforcement"):
        switched(R_SLA_9="off")
    with pytest.raises(PolicyError, match="sla.enforcement.R-SLA-1"):
        switched(R_SLA_1="sometimes")


def test_r_sla_7_max_lateness_is_a_policy_key_of_seven_days_by_default():
    assert max_lateness(POLICY) == dt.timedelta(days=7)
    assert max_lateness(load_policy(overrides={"sla": {"max_lateness_days": 2}})) == dt.timedelta(days=2)


def test_r_sla_7_mass_breach_is_more_than_the_share_of_obligations_looked_at():
    policy = load_policy(overrides={"sla": {"mass_breach_min_obligations": 4}})
    assert mass_breach(3, 4, policy) and not mass_breach(2, 4, policy)  # 75 % > 50 %; exactly half is not more
    assert not mass_breach(3, 3, policy)  # too few looked at to judge a share
    assert not mass_breach(0, 0, policy)
    assert mass_breach(11, 20, POLICY) and not mass_breach(10, 20, POLICY)
    assert mass_breach_warning(10, 20, POLICY) is None
    warning = mass_breach_warning(15, 20, POLICY)
    assert "15 of the 20" in warning and warning.count(". ") == 0 and warning.endswith(".")


def test_r_sla_7_looked_at_counts_each_obligation_once_when_it_falls_due():
    obligations = [ob(aid=1), ob(aid=2, customer=11)]
    records = [rec("contact", T0 + dt.timedelta(minutes=5))]  # customer 10 contacted in time, 11 not
    first = judge(obligations, records, set(), T0, T0 + dt.timedelta(minutes=11), POLICY)
    assert (len(first.breaches), first.looked_at) == (1, 2)
    later = judge(obligations, records, {(2, "R-SLA-1")}, T0 + dt.timedelta(minutes=11),
                  T0 + dt.timedelta(minutes=30), POLICY)
    assert (len(later.breaches), later.looked_at) == (0, 0)  # nothing fell due since


# --- R-SLA-7: late records revoke breaches ---------------------------------------------------------

def test_r_sla_7_a_record_dated_by_the_deadline_disproves_the_breach_of_its_rule_only():
    deadline = T0 + dt.timedelta(minutes=10)
    b1 = SlaBreach(1, 10, "s1", "R-SLA-1", deadline)
    b2 = SlaBreach(1, 10, "s1", "R-SLA-2", T0 + dt.timedelta(hours=24))
    contact = Record(10, "s1", "contact", deadline, deadline + dt.timedelta(hours=3))
    found = disproofs([(b1, T0), (b2, T0)], [contact])
    assert [(d.breach, d.record) for d in found] == [(b1, contact)]


def test_r_sla_7_a_late_record_made_after_the_deadline_or_by_someone_else_disproves_nothing():
    deadline = T0 + dt.timedelta(minutes=10)
    b = SlaBreach(1, 10, "s1", "R-SLA-1", deadline)
    assert disproofs([(b, T0)], [Record(10, "s1", "contact", deadline + US, deadline + dt.timedelta(hours=1))]) == []
    assert disproofs([(b, T0)], [Record(10, "s2", "contact", deadline, deadline + dt.timedelta(hours=1))]) == []
    assert disproofs([(b, T0)], [Record(10, "s1", "contact", T0 - US, deadline)]) == []  # before the allocation


def test_r_sla_7_audit_listings_are_never_disproved():
    listing = SlaBreach(1, 10, "s1", "R-SLA-5", T0)
    assert disproofs([(listing, T0 - dt.timedelta(days=40))], [Record(10, "s1", "contact", T0 - US, T0)]) == []


def test_r_susp_3_r_sla_7_revoking_one_of_five_late_entries_loses_the_month_its_pause_grant():
    assert late_entry_grants_lost(5, 4, POLICY) == 1
    assert late_entry_grants_lost(6, 5, POLICY) == 0
    assert late_entry_grants_lost(10, 8, POLICY) == 1
    assert late_entry_grants_lost(4, 3, POLICY) == 0


def test_r_susp_3_revoked_breaches_are_left_out_of_the_monthly_count():
    def b(day, aid):
        return SlaBreach(aid, aid, "s1", "R-SLA-2", dt.datetime(2026, 1, day, 18, 0, tzinfo=CST))
    recorded = [b(d, d) for d in (5, 6, 7)]  # the caller passes the non-revoked ones
    new = [b(9, 9), b(8, 8)]
    assert new_ordinals(new, recorded, POLICY) == {b(8, 8): 4, b(9, 9): 5}


def test_r_sla_7_an_unused_pause_is_withdrawn_whole():
    assert unused_rounds([PauseEntry(1, "7:R-SLA-1")], "7:R-SLA-1") == 1


def test_r_sla_7_a_used_pause_stays_used():
    assert unused_rounds([PauseEntry(1, "7:R-SLA-1"), PauseEntry(-1, None)], "7:R-SLA-1") == 0


def test_r_sla_7_the_withdrawn_pause_is_the_last_one_counted_as_used():
    leave = PauseEntry(1, None)  # e.g. R-SUSP-2, no breach behind it
    grant = PauseEntry(1, "7:R-SLA-1")
    used = PauseEntry(-1, None)
    assert unused_rounds([grant, leave, used], "7:R-SLA-1") == 1  # the leave's round was there to use
    assert unused_rounds([leave, grant, used], "7:R-SLA-1") == 1
    assert unused_rounds([grant, used, leave], "7:R-SLA-1") == 0  # used when nothing else was paused
    assert unused_rounds([grant, PauseEntry(0, "7:R-SLA-1")], "7:R-SLA-1") == 0  # withdrawn already


# --- penalties (R-SUSP-3, R-SUSP-5) ------------------------------------------------------------

def test_r_susp_5_no_first_contact_pauses_one_round_without_a_fine():
    p = penalties("R-SLA-1", 1, POLICY)
    assert (p.fine_yuan, p.pause_rounds) == (0.0, 1)


def test_r_susp_3_late_crm_entries_are_fined_and_the_5th_and_10th_pause_a_round():
    got = [penalties("R-SLA-2", n, POLICY) for n in range(1, 11)]
    assert all(p.fine_yuan == 20 for p in got)
    assert [p.pause_rounds for p in got] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    assert [penalties("R-SLA-3", n, POLICY).pause_rounds for n in (4, 5, 10)] == [0, 1, 1]


def test_r_susp_3_late_abcd_entry_is_fined_without_count_or_pause():
    assert [(penalties("R-SLA-4", n, POLICY).fine_yuan, penalties("R-SLA-4", n, POLICY).pause_rounds)
            for n in (1, 5, 10)] == [(20.0, 0)] * 3


def test_r_susp_3_late_entries_count_per_kind_per_calendar_month_of_the_deadline():
    def b(rule, day, month=1, aid=0):
        return SlaBreach(aid or day, day, "s1", rule, dt.datetime(2026, month, day, 18, 0, tzinfo=CST))
    found = [b("R-SLA-2", d) for d in (5, 6, 7, 8)] + [b("R-SLA-3", 9), b("R-SLA-2", 1, month=2, aid=99),
                                                        b("R-SLA-2", 31, aid=31)]
    n = month_ordinals(found, POLICY)
    assert [n[b("R-SLA-2", d)] for d in (5, 6, 7, 8)] == [1, 2, 3, 4]
    assert n[b("R-SLA-3", 9)] == 1  # each kind on its own
    assert n[b("R-SLA-2", 31, aid=31)] == 5  # the 5th in January pauses
    assert n[b("R-SLA-2", 1, month=2, aid=99)] == 1  # February starts again
    utc_late = SlaBreach(7, 7, "s1", "R-SLA-2", dt.datetime(2026, 1, 31, 17, 0, tzinfo=dt.timezone.utc))
    assert month_ordinals([utc_late], POLICY)[utc_late] == 1  # 1 February 01:00 in business time


# --- R-SLA-5 monthly audit ---------------------------------------------------------------------

AUDIT = dt.datetime(2026, 3, 1, 0, 0, tzinfo=CST)


def holding(since, person="s1", aid=1, customer=10):
    return Holding(aid, customer, person, since)


def test_r_sla_5_a_lead_held_exactly_30_days_is_not_listed_but_a_microsecond_more_is():
    since = AUDIT - dt.timedelta(days=30)
    assert audit_listings([holding(since)], [], AUDIT, POLICY) == []
    assert audit_listings([holding(since - US)], [], AUDIT, POLICY) == [Listing(1, 10, "s1", AUDIT)]


def test_r_sla_5_an_effective_follow_up_within_the_previous_30_days_keeps_it_off_the_list():
    since = AUDIT - dt.timedelta(days=60)
    window_start = AUDIT - dt.timedelta(days=30)
    for kind in ("contact", "follow_up", "sales_step"):
        assert audit_listings([holding(since)], [rec(kind, window_start + US)], AUDIT, POLICY) == []
    assert audit_listings([holding(since)], [rec("follow_up", AUDIT)], AUDIT, POLICY) == []
    assert len(audit_listings([holding(since)], [rec("follow_up", window_start)], AUDIT, POLICY)) == 1


def test_r_sla_5_entries_and_other_peoples_follow_ups_are_not_effective_follow_ups():
    since = AUDIT - dt.timedelta(days=60)
    records = [rec("crm_entry", AUDIT - dt.timedelta(days=2)), rec("call_register", AUDIT - dt.timedelta(days=2)),
               rec("follow_up", AUDIT - dt.timedelta(days=2), person="s2")]
    assert len(audit_listings([holding(since)], records, AUDIT, POLICY)) == 1


def test_r_sla_5_after_an_exchange_the_holding_counts_from_the_exchange():
    exchanged = AUDIT - dt.timedelta(days=10)
    assert audit_listings([holding(exchanged, person="s2")], [], AUDIT, POLICY) == []


def test_r_sla_5_a_follow_up_at_the_end_of_the_7_day_grace_is_in_time():
    listing = Listing(1, 10, "s1", AUDIT)
    deadline = AUDIT + dt.timedelta(days=7)
    assert audit_deadline(listing, POLICY) == deadline
    late = deadline + dt.timedelta(days=1)
    assert audit_reallocations([listing], [rec("follow_up", deadline)], late, POLICY) == []
    assert audit_reallocations([listing], [rec("follow_up", deadline + US)], late, POLICY) == [listing]


def test_r_sla_5_reallocation_is_due_only_once_the_clock_passes_the_grace():
    listing = Listing(1, 10, "s1", AUDIT)
    deadline = AUDIT + dt.timedelta(days=7)
    assert audit_reallocations([listing], [], deadline, POLICY) == []
    assert audit_reallocations([listing], [], deadline + US, POLICY) == [listing]


def test_r_sla_5_a_follow_up_at_the_listing_instant_does_not_clear_it():
    listing = Listing(1, 10, "s1", AUDIT)
    late = AUDIT + dt.timedelta(days=8)
    assert audit_reallocations([listing], [rec("contact", AUDIT)], late, POLICY) == [listing]


def test_r_sla_5_audits_run_on_the_1st_of_each_month_at_midnight_business_time():
    after = dt.datetime(2026, 1, 1, 0, 0, tzinfo=CST)
    upto = dt.datetime(2026, 4, 1, 0, 0, tzinfo=CST)
    assert audit_times(after, upto, POLICY) == [dt.datetime(2026, m, 1, 0, 0, tzinfo=CST) for m in (2, 3, 4)]
    assert audit_times(after, upto - US, POLICY)[-1] == dt.datetime(2026, 3, 1, 0, 0, tzinfo=CST)
    assert audit_times(after, after + dt.timedelta(days=3), POLICY) == []
