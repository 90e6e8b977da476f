"""R-TIER: customer tiers by amount, salesperson grades and ranks by closes."""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

TIER_ORDER = ("A", "B", "C", "D", "below_d")  # highest first
GRADE_ORDER = ("A", "B", "C", "D")


def tier_for(amount_yuan: float | None, target: bool | None, thresholds: dict[str, float]) -> str:
    """R-TIER-1: the tier of a lead from its estimated amount and is-target flag."""
    if target is False:
        return "non_target"
    if target is None or amount_yuan is None:
        return "unclassified"  # 未接来电 / 目标不明确
    for tier in GRADE_ORDER:
        if amount_yuan >= thresholds[tier]:
            return tier
    return "below_d"


def tier_rank(tier: str) -> int:
    """0 for A … 4 for below_d; unclassified and non-target rank below everything."""
    return TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER)


@functools.cache  # pure, on constants: called for every candidate of every lead
def eligible_tiers(grade: str | None) -> tuple[str, ...]:
    """R-ALLOC-3: grade X receives tier X and every tier below; ungraded receive below_d only."""
    if grade is None:
        return ("below_d",)
    return TIER_ORDER[TIER_ORDER.index(grade):]


@functools.cache  # pure, on constants: called for every lead allocated
def grades_for_tier(tier: str) -> tuple[str | None, ...]:
    """R-ALLOC-2: the matching grade first, then each grade up (below_d matches the ungraded)."""
    if tier == "below_d":
        return (None,) + tuple(reversed(GRADE_ORDER))
    i = GRADE_ORDER.index(tier)
    return tuple(reversed(GRADE_ORDER[: i + 1]))


@dataclass(frozen=True)
class Close:
    person: str
    tier: str  # the customer's tier at the deal (R-TIER-4)
    amount_yuan: float
    sales_year: int


@dataclass(frozen=True)
class GradeJudgment:
    person: str
    grade: str | None
    rank: int | None
    reason: str


def judge_grades(
    people: dict[str, str | None],
    closes: list[Close],
    current_year: int,
    whole_previous_year_on_record: bool,
    closes_for_grade: int = 2,
) -> dict[str, GradeJudgment]:
    """R-TIER-4: grade = highest tier with enough closes in the previous or current sales year; rank by sales in it.

    `people` maps each salesperson to their grade in the org chart, which stands while the records
    justify nothing (until a whole previous sales year is on record).
    """
    years = {current_year - 1, current_year}
    counts: dict[tuple[str, str], int] = {}
    totals: dict[tuple[str, str], float] = {}
    for c in closes:
        if c.sales_year in years and c.tier in GRADE_ORDER:
            key = (c.person, c.tier)
            counts[key] = counts.get(key, 0) + 1
            totals[key] = totals.get(key, 0.0) + c.amount_yuan
    grades: dict[str, tuple[str | None, str]] = {}
    for person, chart_grade in people.items():
        earned = next((t for t in GRADE_ORDER if counts.get((person, t), 0) >= closes_for_grade), None)
        if earned:
            grades[person] = (earned, f"{counts[(person, earned)]} closes of tier {earned}")
        elif whole_previous_year_on_record:
            grades[person] = (None, "no tier with enough closes over a whole year on record")
        else:
            grades[person] = (chart_grade, "org-chart grade stands: not a whole previous year on record")
    out: dict[str, GradeJudgment] = {}
    for grade in GRADE_ORDER:
        members = [p for p, (g, _) in grades.items() if g == grade]
        members.sort(key=lambda p: (-totals.get((p, grade), 0.0), p))
        for i, p in enumerate(members, start=1):
            out[p] = GradeJudgment(p, grade, i, grades[p][1])
    for p, (g, why) in grades.items():
        if g is None:
            out[p] = GradeJudgment(p, None, None, why)
    return out


def records_cover_previous_year(records_begin: dt.date, current_year_start: dt.date) -> bool:
    """R-TIER-4: a whole previous sales year is on record when records began on or before its first day."""
    previous_start = current_year_start.replace(year=current_year_start.year - 1)
    return records_begin <= previous_start
