"""R-SLA, R-SUSP-3 and R-SUSP-5 rules, tested directly: no database, no Prefect."""
import datetime as dt
from zoneinfo import ZoneInfo

from leadflow.policy import load_policy
from leadflow.rules.sla import (
    Holding, Listing, Obligation, Record, SlaBreach, audit_deadline, audit_listings, audit_reallocations,
    audit_times, breaches, deadlines, month_ordinals, next_deadline, penalties,
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


def test_r_sla_6_next_deadline_is_the_earliest_unmet_one_after_the_clock():
    records = [rec("contact", T0 + dt.timedelta(minutes=3))]
    assert next_deadline([ob()], records, T0, POLICY) == T0 + dt.timedelta(hours=24)
    assert next_deadline([ob()], records, T0 + dt.timedelta(hours=24), POLICY) == dt.datetime(2026, 1, 6, 18, 0, tzinfo=CST)
    assert next_deadline([ob(bound=False)], [], T0, POLICY) is None
    assert next_deadline([ob()], [], T0 + dt.timedelta(days=3), POLICY) is None


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
