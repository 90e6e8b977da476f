"""Issue 9 findings 5 and 9: the ledger's reason follows the deciding rule, and a pooled lead says why (R-ALLOC)."""
from __future__ import annotations

from leadflow.policy import load_policy
from leadflow.rules.allocation import Candidate, Debt, Roster, next_owner
from leadflow.stages.allocation import decision_reason, pool_reason


def roster(*people, **kw):
    return Roster(departments=("d1", "d2"), people={p.id: p for p in people},
                  manager_tiers=load_policy().allocation.manager_tiers, **kw)


def sales(pid, dept, grade, rank=1, **kw):
    return Candidate(id=pid, department=dept, role="sales", grade=grade, rank=rank, **kw)


def test_issue9_5_r_alloc_2_a_grade_match_says_rotation_and_grade():
    d = next_owner("B", roster(sales("s1", "d1", "B")), {}, week=0)
    assert decision_reason(d.explanation) == "rotation: d1's turn for tier B, grade match B in rank order (R-ALLOC-2)"


def test_issue9_5_r_alloc_2_the_next_grade_up_and_the_departments_passed_over_are_said():
    r = roster(sales("s1", "d1", "B", paused={"B": 1}), sales("s2", "d2", "A"))
    reason = decision_reason(next_owner("B", r, {}, week=0).explanation)
    assert reason == ("rotation: d2's turn for tier B, nobody of grade B free in d2, so the next grade up, A "
                      "(R-ALLOC-2); d1 had nobody free (R-ALLOC-5)")


def test_issue9_5_r_alloc_3_a_non_target_lead_says_manager_not_rotation():
    m1 = Candidate(id="m1", department="d1", role="manager", grade=None, rank=None)
    reason = decision_reason(next_owner("non_target", roster(m1), {}, week=0).explanation)
    assert reason.startswith("non-target lead: to the manager of d1") and "(R-ALLOC-3)" in reason
    assert "rotation:" not in reason


def test_issue9_5_r_alloc_6_a_replacement_says_it_was_owed():
    d = next_owner("C", roster(sales("s1", "d1", "C")), {}, week=0, debts=[Debt(id=7, person="s1", tier="C")])
    assert decision_reason(d.explanation) == "replacement owed (debt 7), served ahead of the rotation (R-ALLOC-6)"


def test_issue9_9_a_lead_pooled_because_everyone_is_paused_says_so_with_the_count():
    r = roster(*(sales(f"s{i}", "d1" if i % 2 else "d2", "B", rank=i, paused={"B": 1}) for i in range(1, 6)))
    d = next_owner("B", r, {}, week=0)
    assert d.person is None
    assert pool_reason(d.explanation) == "all 5 who could take a B lead paused for a round (R-ALLOC-4)"


def test_issue9_9_a_lead_pooled_for_want_of_anyone_of_its_grade_says_so():
    d = next_owner("A", roster(sales("s1", "d1", "B")), {}, week=0)
    assert pool_reason(d.explanation) == "nobody of grade A in any department"
    assert pool_reason(next_owner("C", roster(), {}, week=0).explanation) == \
        "nobody of grade C or above in any department"
    assert pool_reason(next_owner("unclassified", roster(), {}, week=0).explanation) == "no manager in any department"


def test_issue9_9_mixed_reasons_are_counted():
    r = roster(sales("s1", "d1", "C", paused={"C": 1}), sales("s2", "d2", "C", on_leave=True),
               sales("s3", "d2", "B", on_leave=True))
    assert pool_reason(next_owner("C", r, {}, week=0).explanation) == \
        "3 who could take a C lead, 2 on leave (R-SUSP-2) and 1 paused for a round (R-ALLOC-4)"
