"""R-ALLOC and R-TIER rules, tested directly: no database, no Prefect."""
import datetime as dt

from leadflow.policy import load_policy
from leadflow.rules.allocation import Candidate, Debt, Roster, next_owner, week_order
from leadflow.rules.tiers import eligible_tiers, grades_for_tier, tier_for

T = {"A": 800_000, "B": 400_000, "C": 200_000, "D": 50_000}
SOON = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)


def roster(*people, depts=("d1", "d2", "d3"), **kw):
    kw.setdefault("manager_tiers", load_policy().allocation.manager_tiers)
    return Roster(departments=tuple(depts), people={p.id: p for p in people}, **kw)


def sales(pid, dept, grade, rank=None, **kw):
    return Candidate(id=pid, department=dept, role="sales", grade=grade, rank=rank, **kw)


def test_r_tier_1_tiers_by_amount_thresholds():
    assert tier_for(850_000, True, T) == "A"
    assert tier_for(800_000, True, T) == "A"
    assert tier_for(450_000, True, T) == "B"
    assert tier_for(200_000, True, T) == "C"
    assert tier_for(50_000, True, T) == "D"
    assert tier_for(49_999, True, T) == "below_d"


def test_r_tier_1_unknown_amount_or_target_is_unclassified_and_non_target_is_its_own_tier():
    assert tier_for(None, True, T) == "unclassified"
    assert tier_for(900_000, None, T) == "unclassified"
    assert tier_for(900_000, False, T) == "non_target"


def test_r_alloc_3_grade_eligibility_is_own_tier_and_below():
    assert eligible_tiers("B") == ("B", "C", "D", "below_d")
    assert eligible_tiers(None) == ("below_d",)


def test_r_alloc_2_matching_grade_first_then_next_grade_up():
    assert grades_for_tier("C") == ("C", "B", "A")
    assert grades_for_tier("below_d") == (None, "D", "C", "B", "A")


def test_r_alloc_1_departments_rotate_and_pointer_moves_past_receiver():
    r = roster(sales("s1", "d1", "A", 1), sales("s2", "d2", "A", 1), sales("s3", "d3", "A", 1))
    pointers: dict = {}
    got = []
    for _ in range(4):
        d = next_owner("A", r, pointers, week=0)
        pointers.update(d.pointer_updates)
        got.append(d.person)
    assert got == ["s1", "s2", "s3", "s1"]


def test_r_alloc_1_monday_shift_starts_the_week_at_the_next_department():
    assert week_order(("d1", "d2", "d3"), 1) == ("d2", "d3", "d1")
    assert week_order(("d1", "d2", "d3"), 3) == ("d1", "d2", "d3")


def test_r_alloc_2_round_robin_in_rank_order_within_the_grade():
    r = roster(sales("s2", "d1", "C", 2), sales("s1", "d1", "C", 1), sales("s9", "d1", "C", None),
               depts=("d1",))
    pointers: dict = {}
    got = []
    for _ in range(4):
        d = next_owner("C", r, pointers, week=0)
        pointers.update(d.pointer_updates)
        got.append(d.person)
    assert got == ["s1", "s2", "s9", "s1"]


def test_r_alloc_2_goes_up_a_grade_before_the_next_department():
    r = roster(sales("a1", "d1", "A", 1), sales("b2", "d2", "B", 1), depts=("d1", "d2"))
    d = next_owner("B", r, {}, week=0)
    assert (d.person, d.department) == ("a1", "d1")


def test_r_alloc_4_suspended_person_is_skipped_with_the_reason_in_the_explanation():
    r = roster(sales("s1", "d1", "C", 1, suspended_until=SOON), sales("s2", "d1", "C", 2), depts=("d1",))
    d = next_owner("C", r, {}, week=0)
    assert d.person == "s2"
    assert {"department": "d1", "grade": "C", "person": "s1", "skipped": "suspended (R-SUSP)"} in \
        d.explanation["considered"]


def test_r_alloc_4_paused_round_is_used_only_when_it_was_their_turn():
    r = roster(sales("s1", "d1", "C", 1, paused={"C": 1}), sales("s2", "d1", "C", 2), depts=("d1",))
    d = next_owner("C", r, {}, week=0)
    assert d.person == "s2" and d.consumed_pauses == ["s1"]
    # a lead of a tier s1 is not paused for consumes nothing
    d2 = next_owner("D", roster(sales("s1", "d1", "C", 1, paused={"C": 1}), depts=("d1",)), {}, week=0)
    assert d2.person == "s1" and d2.consumed_pauses == []


def test_r_alloc_4_everyone_paused_pool_uses_a_round_each_but_a_reoffer_uses_none():
    r = roster(sales("s1", "d1", "C", 1, paused={"C": 1}), sales("s2", "d1", "C", 2, paused={"C": 2}),
               depts=("d1",))
    d = next_owner("C", r, {}, week=0)
    assert d.person is None and sorted(d.consumed_pauses) == ["s1", "s2"]
    assert next_owner("C", r, {}, week=0, reoffer=True).consumed_pauses == []


def test_r_alloc_5_nobody_eligible_leaves_the_lead_in_the_pool():
    r = roster(sales("s1", "d1", None), depts=("d1",))
    d = next_owner("A", r, {}, week=0)
    assert d.person is None and d.rule == "R-ALLOC-5"


def test_r_alloc_5_suspended_department_loses_its_turn():
    r = roster(sales("s1", "d1", "A", 1), sales("s2", "d2", "A", 1), depts=("d1", "d2"),
               department_suspended={"d1": SOON})
    d = next_owner("A", r, {}, week=0)
    assert d.department == "d2" and d.pointer_updates["dept:A"] == "0"


def test_r_alloc_3_unclassified_leads_go_to_the_department_manager_in_turn():
    m1 = Candidate(id="m1", department="d1", role="manager", grade=None, rank=None)
    m2 = Candidate(id="m2", department="d2", role="manager", grade=None, rank=None)
    r = roster(m1, m2, sales("s1", "d1", "A", 1), depts=("d1", "d2"))
    first = next_owner("unclassified", r, {}, week=0)
    second = next_owner("unclassified", r, first.pointer_updates, week=0)
    assert (first.person, second.person) == ("m1", "m2")
    assert next_owner("non_target", r, first.pointer_updates, week=0).person == "m1"  # its own rotation


def test_r_alloc_3_the_tiers_that_go_to_managers_are_the_policys_manager_tiers():
    tiers = load_policy(overrides={"allocation": {"manager_tiers": ["unclassified", "non_target", "below_d"]}})
    m1 = Candidate(id="m1", department="d1", role="manager", grade=None, rank=None)
    r = roster(m1, sales("s1", "d1", None), depts=("d1",), manager_tiers=tiers.allocation.manager_tiers)
    d = next_owner("below_d", r, {}, week=0)
    assert (d.person, d.rule) == ("m1", "R-ALLOC-3")
    assert next_owner("below_d", roster(m1, sales("s1", "d1", None), depts=("d1",)), {}, week=0).person == "s1"


def test_r_alloc_6_replacement_is_served_before_the_rotation_and_moves_no_pointer():
    r = roster(sales("s1", "d1", "B", 1), sales("s2", "d1", "B", 2, paused={"B": 1}), depts=("d1",))
    d = next_owner("B", r, {}, week=0, debts=[Debt(7, "s2", "B")])
    assert (d.person, d.rule, d.debt_id, d.pointer_updates) == ("s2", "R-ALLOC-6", 7, {})


def test_r_susp_7_barred_tier_is_skipped():
    r = roster(sales("s1", "d1", "B", 1, barred=frozenset({"B"})), sales("s2", "d1", "B", 2), depts=("d1",))
    assert next_owner("B", r, {}, week=0).person == "s2"
    assert next_owner("C", r, {}, week=0).person == "s1"


def test_r_alloc_4_capacity_cap_skips_a_full_salesperson():
    r = roster(sales("s1", "d1", "A", 1, open_counts={"A": 2}), sales("s2", "d1", "A", 2), depts=("d1",),
               capacity={"A": 2})
    assert next_owner("A", r, {}, week=0).person == "s2"


def test_r_alloc_4_excluded_previous_owner_is_skipped():
    r = roster(sales("s1", "d1", "B", 1), sales("s2", "d2", "B", 1), depts=("d1", "d2"))
    assert next_owner("B", r, {}, week=0, exclude=frozenset({"s1"})).person == "s2"
