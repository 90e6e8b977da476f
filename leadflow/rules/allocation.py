"""R-ALLOC: who receives a lead — department rotation, grade match, round-robin, skips, replacements."""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from leadflow.rules.tiers import eligible_tiers, grades_for_tier


@dataclass(frozen=True)
class Candidate:
    """A person as allocation sees them at `now` (the stage works these out from the store)."""

    id: str
    department: str | None
    role: str
    grade: str | None
    rank: int | None
    active: bool = True
    suspended_until: dt.datetime | None = None  # the end of a suspension in force, if any
    on_leave: bool = False
    paused: dict[str, int] = field(default_factory=dict)
    barred: frozenset[str] = frozenset()
    open_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Roster:
    departments: tuple[str, ...]  # base rotation order
    people: dict[str, Candidate]
    department_suspended: dict[str, dt.datetime] = field(default_factory=dict)
    capacity: dict[str, int] = field(default_factory=dict)
    # R-ALLOC-3: leads of these tiers rotate to the departments' managers (policy allocation.manager_tiers)
    manager_tiers: tuple[str, ...] = field(kw_only=True)

    def sales_of(self, department: str, grade: str | None) -> list[Candidate]:
        """R-ALLOC-2: rank order, rank 1 first; the unranked after the ranked, by id."""
        people = [p for p in self.people.values()
                  if p.department == department and p.role == "sales" and p.grade == grade]
        return sorted(people, key=lambda p: (p.rank is None, p.rank or 0, p.id))

    def managers_of(self, department: str) -> list[Candidate]:
        return sorted((p for p in self.people.values() if p.department == department and p.role == "manager"),
                      key=lambda p: p.id)


def _rank_order(p: Candidate) -> tuple:
    """R-ALLOC-2: rank 1 first; the unranked after the ranked, by id."""
    return (p.rank is None, p.rank or 0, p.id)


class RosterIndex:
    """A roster prepared once for a batch of decisions (issue 10), read like a `Roster` by `next_owner`.

    The salespeople of each (department, grade) in rank order and each department's managers by id are
    worked out once, not sorted again for every lead; the batch's bookkeeping — a paused round used, a lead
    received while a capacity applies (R-ALLOC-4) — replaces one person in `people` (`apply`), never copies
    the roster. Group membership and order never change within a batch (role, department, grade, rank do
    not). `next_owner` over an index decides exactly as over the roster it was built from, with every
    earlier decision of the batch applied; the index is mutable, so `next_owner` stays a pure function of
    its arguments as they are when it is called."""

    def __init__(self, roster: Roster):
        self.departments = roster.departments
        self.department_suspended = roster.department_suspended
        self.capacity = roster.capacity
        self.manager_tiers = roster.manager_tiers
        self.people: dict[str, Candidate] = dict(roster.people)
        sales: dict[tuple, list[Candidate]] = defaultdict(list)
        managers: dict[str | None, list[Candidate]] = defaultdict(list)
        for p in self.people.values():
            if p.role == "sales":
                sales[(p.department, p.grade)].append(p)
            elif p.role == "manager":
                managers[p.department].append(p)
        self._sales = {k: tuple(p.id for p in sorted(v, key=_rank_order)) for k, v in sales.items()}
        self._managers = {k: tuple(sorted(p.id for p in v)) for k, v in managers.items()}
        # each group's place of every member: where a round robin resumes, without a scan per lead
        self._places = {k: {pid: i for i, pid in enumerate(ids)}
                        for k, ids in (*self._sales.items(), *(((m, "manager"), ids) for m, ids in
                                                              self._managers.items()))}

    def in_turn(self, department: str | None, grade: str | None, last: str | None, managers: bool = False):
        """The salespeople of (department, grade) — or the department's managers — in turn after `last`, as
        `_round_robin(sales_of(…), last)` orders them, one at a time: most leads take the first, so the
        group is never built whole for a lead."""
        key = (department, "manager") if managers else (department, grade)
        ids = (self._managers.get(department, ()) if managers else self._sales.get(key, ()))
        n = len(ids)
        start = self._places[key].get(last, -1) + 1 if n and last is not None else 0
        people = self.people
        for k in range(n):
            yield people[ids[(start + k) % n]]

    def sales_of(self, department: str, grade: str | None) -> list[Candidate]:
        """As `Roster.sales_of`, from the prepared order."""
        return [self.people[i] for i in self._sales.get((department, grade), ())]

    def managers_of(self, department: str) -> list[Candidate]:
        return [self.people[i] for i in self._managers.get(department, ())]

    def apply(self, d: "Decision") -> None:
        """Keep the index true to decision `d` before the next lead: each consumed paused round is used up
        (R-ALLOC-4), and the receiver holds one more open lead of the tier where a capacity applies to it
        (open counts are read only against a capacity, R-ALLOC-4)."""
        for pid in d.consumed_pauses:
            p = self.people[pid]
            self.people[pid] = dataclasses.replace(p, paused={**p.paused, d.tier: p.paused.get(d.tier, 0) - 1})
        if d.person and d.tier in self.capacity:
            p = self.people[d.person]
            self.people[d.person] = dataclasses.replace(
                p, open_counts={**p.open_counts, d.tier: p.open_counts.get(d.tier, 0) + 1})

    def roster(self) -> Roster:
        """The roster as it stands now (a copy of `people`)."""
        return Roster(departments=self.departments, people=dict(self.people),
                      department_suspended=self.department_suspended, capacity=self.capacity,
                      manager_tiers=self.manager_tiers)


@dataclass(frozen=True)
class Debt:
    """A replacement owed (R-ALLOC-6)."""

    id: int
    person: str
    tier: str


@dataclass
class Decision:
    tier: str
    person: str | None = None
    department: str | None = None
    rule: str = "R-ALLOC-5"
    debt_id: int | None = None
    pointer_updates: dict[str, str] = field(default_factory=dict)
    consumed_pauses: list[str] = field(default_factory=list)  # people who use up one round of `tier`
    explanation: dict = field(default_factory=dict)


def week_order(departments: tuple[str, ...], week: int) -> tuple[str, ...]:
    """R-ALLOC-1: the base order shifted by one every Monday."""
    if not departments:
        return ()
    k = week % len(departments)
    return departments[k:] + departments[:k]


def blocking_reason(p: Candidate, tier: str, roster: Roster, exclude: frozenset[str]) -> str | None:
    """Why `p` cannot receive a lead of `tier` now (R-ALLOC-3, R-ALLOC-4, R-SUSP-7); pauses aside."""
    if p.id in exclude:
        return "previous owner excluded"
    if not p.active:
        return "departed (R-CONV-6)"
    if p.suspended_until is not None:
        return "suspended (R-SUSP)"
    if p.department in roster.department_suspended:
        return "department suspended (R-SUSP-4)"
    if p.on_leave:
        return "on leave (R-SUSP-2)"
    if tier not in roster.manager_tiers and p.role != "sales":  # a replacement owed to a manager now, say
        return "not a salesperson (R-ALLOC-3)"
    if tier not in roster.manager_tiers and tier not in eligible_tiers(p.grade):
        return "grade not eligible (R-ALLOC-3)"
    if tier in p.barred:
        return "barred from the tier until a close (R-SUSP-7)"
    cap = roster.capacity.get(tier)
    if cap is not None and p.open_counts.get(tier, 0) >= cap:
        return "at capacity (R-ALLOC-4)"
    return None


def _round_robin(people: list[Candidate], last: str | None) -> list[Candidate]:
    """The people in turn, starting after the last one chosen."""
    ids = [p.id for p in people]
    if last in ids:
        i = ids.index(last) + 1
        return people[i:] + people[:i]
    return people


def _in_turn(roster: Roster | RosterIndex, dept: str, grade: str | None, last: str | None, managers: bool = False):
    """R-ALLOC-2/3: the (department, grade) salespeople, or the department's managers, starting after `last`."""
    if isinstance(roster, RosterIndex):
        return roster.in_turn(dept, grade, last, managers)
    return _round_robin(roster.managers_of(dept) if managers else roster.sales_of(dept, grade), last)


def serve_replacement(tier: str, debts: list[Debt], roster: Roster | RosterIndex,
                      exclude: frozenset[str] = frozenset()) -> Decision | None:
    """R-ALLOC-6: the oldest debt of this tier whose owner could receive it now; pauses don't matter.

    A lead re-allocated away from its owner (R-CONV-2, R-SLA-5 exclude them) never serves that owner's debt."""
    for debt in debts:
        if debt.tier != tier or debt.person not in roster.people:
            continue
        p = roster.people[debt.person]
        if blocking_reason(p, tier, roster, exclude) is None:
            return Decision(tier=tier, person=p.id, department=p.department, rule="R-ALLOC-6", debt_id=debt.id,
                            explanation={"rule": "R-ALLOC-6", "reason": "replacement owed, served ahead of the rotation",
                                         "debt": debt.id})
    return None


def next_owner(
    tier: str,
    roster: Roster | RosterIndex,
    pointers: dict[str, str],
    week: int,
    exclude: frozenset[str] = frozenset(),
    debts: list[Debt] = (),
    reoffer: bool = False,
) -> Decision:
    """Decide who receives a lead of `tier` now; the decision explains itself (R-ALLOC-1..6).

    `roster`: a `Roster`, or a `RosterIndex` prepared once for a batch (same decision, no sorting per lead);
    `pointers`: the rotation pointers (not changed: the moves are in `pointer_updates`); `week`: weeks since
    the rotation epoch; `exclude`: people who may not receive this lead; `debts`: replacements owed, oldest
    first (only those of `tier` matter). Pure: reads its arguments, changes none."""
    to_manager = tier in roster.manager_tiers
    served = serve_replacement(tier, debts, roster, exclude) if not to_manager and debts else None
    if served:
        return served
    order = week_order(roster.departments, week)
    key = f"dept:{tier}"
    start = int(pointers.get(key, 0)) % len(order) if order else 0
    decision = Decision(tier=tier)
    considered: list[dict] = []
    paused_passed: list[str] = []
    for offset in range(len(order)):
        index = (start + offset) % len(order)
        dept = order[index]
        if dept in roster.department_suspended:
            considered.append({"department": dept, "skipped": "department suspended (R-SUSP-4)"})
            continue
        if to_manager:
            chosen = _pick_manager(dept, tier, roster, pointers, exclude, considered, decision)
        else:
            chosen = _pick_salesperson(dept, tier, roster, pointers, exclude, considered, paused_passed, decision)
        if chosen:
            decision.person, decision.department = chosen.id, dept
            decision.rule = "R-ALLOC-3" if to_manager else "R-ALLOC-2"
            decision.pointer_updates[key] = str((index + 1) % len(order))
            decision.consumed_pauses = list(paused_passed)
            break
    else:
        # R-ALLOC-4: everyone who could take it was paused -> each uses up a round, unless re-offered.
        decision.consumed_pauses = [] if reoffer else list(paused_passed)
    decision.explanation = {
        "tier": tier, "week_order": list(order), "start_department": order[start] if order else None,
        "considered": considered, "chosen": decision.person, "department": decision.department,
        "rule": decision.rule, "paused_rounds_used": decision.consumed_pauses,
        "excluded": sorted(exclude),
    }
    return decision


def _pick_salesperson(dept, tier, roster, pointers, exclude, considered, paused_passed, decision):
    for grade in grades_for_tier(tier):
        rr_key = f"rr:{dept}:{tier}:{grade or 'ungraded'}"
        for p in _in_turn(roster, dept, grade, pointers.get(rr_key)):
            reason = blocking_reason(p, tier, roster, exclude)
            if reason is None and p.paused.get(tier, 0) > 0:
                reason = "paused for a round (R-ALLOC-4)"
                paused_passed.append(p.id)
            considered.append({"department": dept, "grade": grade, "person": p.id,
                               **({"skipped": reason} if reason else {"chosen": True})})
            if reason is None:
                decision.pointer_updates[rr_key] = p.id
                return p
    return None


def _pick_manager(dept, tier, roster, pointers, exclude, considered, decision):
    mgr_key = f"mgr:{dept}"
    for p in _in_turn(roster, dept, None, pointers.get(mgr_key), managers=True):
        reason = blocking_reason(p, tier, roster, exclude)
        considered.append({"department": dept, "role": "manager", "person": p.id,
                           **({"skipped": reason} if reason else {"chosen": True})})
        if reason is None:
            decision.pointer_updates[mgr_key] = p.id
            return p
    return None


def can_receive_now(p: Candidate, tier: str, roster: Roster) -> str | None:
    """R-ALLOC-3 hand-on: None when salesperson `p` could receive a lead of `tier` now; pauses aside."""
    if p.role != "sales":
        return "not a salesperson"
    return blocking_reason(p, tier, roster, frozenset())
