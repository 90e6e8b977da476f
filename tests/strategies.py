"""Hypothesis strategies for the property tests (issue 8 item 4): random organisations with suspensions,
pauses, leaves, departures and bars; streams of leads of random tiers; registration batches with
duplicates, bad rows and repeated phones; whole scenarios (SCENARIOS.md) to replay.

Rosters and streams feed the pure rule (`leadflow.rules.allocation.next_owner`); registration batches and
scenarios go through the engine on a store. Every generated phone is a test number (`1390000xxxx`).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from hypothesis import Phase, settings
from hypothesis import strategies as st

from leadflow.policy import load_policy
from leadflow.rules.allocation import Candidate, Debt, Roster

TIERS = ("A", "B", "C", "D", "below_d")
MANAGER_TIERS = load_policy().allocation.manager_tiers  # ("unclassified", "non_target") by default
GRADES = (None, "A", "B", "C", "D")
TZ = dt.timezone(dt.timedelta(hours=8))  # the default policy's Asia/Shanghai
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=TZ)  # a Monday inside a quarter: no review, audit or expiry nearby
CI_EXAMPLES = 60  # the `ci` profile's max_examples (tests/conftest.py)
RANK = {"A": 0, "B": 1, "C": 2, "D": 3, "below_d": 4}


def may_serve(grade: str | None, tier: str) -> bool:
    """The oracles' R-ALLOC-3: grade X takes tier X and every tier below it; the ungraded take below_d only."""
    return tier == "below_d" if grade is None else RANK[grade] <= RANK[tier]


def examples(n: int) -> int:
    """`n` examples under the `ci` profile, scaled for another (HYPOTHESIS_PROFILE=thorough runs 10x)."""
    return max(1, n * settings().max_examples // CI_EXAMPLES)


def store_settings(n: int) -> settings:
    """`n` examples of a store property; under the `ci` profile a failure is reported as found, unshrunk
    (shrinking replays on a fresh store each time and can take minutes); `thorough` shrinks it."""
    if settings().max_examples > CI_EXAMPLES:
        return settings(max_examples=examples(n))
    return settings(max_examples=n, phases=(Phase.explicit, Phase.reuse, Phase.generate))


# ----------------------------------------------------------------------------- rosters (pure rules)

# Rosters and streams are drawn as small integers and decoded (fast to draw, and they shrink to "nothing
# blocks anyone, a lead of tier A"); the decoded objects are what a failing example prints.
BLOCKS = ((), (), (), (), ("departed",), ("suspended",), ("on_leave",), ("barred",), ("on_leave", "barred"),
          ("departed", "suspended"))
STATE = st.tuples(st.sampled_from(BLOCKS), st.integers(0, 63), st.integers(0, 63))


def person_state(code: tuple, tiers: tuple[str, ...] = TIERS + MANAGER_TIERS) -> dict:
    """What can keep a person out of a lead (R-ALLOC-3/4, R-SUSP-*, R-CONV-6): for some codes departed,
    suspended, on leave or barred from a tier; paused rounds and open leads on a tier."""
    blocks, pause, load = code
    n = len(tiers)
    return {"active": "departed" not in blocks,
            "suspended_until": START + dt.timedelta(days=7) if "suspended" in blocks else None,
            "on_leave": "on_leave" in blocks,
            "barred": frozenset({tiers[(pause + load) % n]}) if "barred" in blocks else frozenset(),
            "paused": {tiers[pause % n]: pause // n % 3} if pause // n % 3 else {},
            "open_counts": {tiers[load % n]: load // n % 4} if load // n % 4 else {}}


@st.composite
def rosters(draw, grades: tuple = GRADES) -> Roster:
    """An organisation as allocation sees it: 1-4 departments, salespeople of random grades and ranks
    (ranks may tie, some unranked), 0-2 managers each, a receptionist, and what keeps people out."""
    departments = tuple(f"d{i}" for i in range(1, draw(st.integers(1, 4)) + 1))
    people: dict[str, Candidate] = {}
    for d in departments:
        sales = draw(st.lists(st.tuples(st.sampled_from(grades), st.integers(0, 3), STATE), max_size=5))
        for i, (grade, rank, state) in enumerate(sales):
            people[f"{d}s{i}"] = Candidate(id=f"{d}s{i}", department=d, role="sales", grade=grade,
                                           rank=rank or None, **person_state(state))
        for i, state in enumerate(draw(st.lists(STATE, max_size=2))):
            people[f"{d}m{i}"] = Candidate(id=f"{d}m{i}", department=d, role="manager", grade=None, rank=None,
                                           **person_state(state))
    people["k1"] = Candidate(id="k1", department=departments[0], role="receptionist", grade=None, rank=None)
    suspended = draw(st.sets(st.sampled_from(departments))) if draw(st.booleans()) else set()  # R-SUSP-4
    cap = draw(st.integers(0, 63))  # a third of the rosters cap one tier's open leads at 1-3 (R-ALLOC-4)
    return Roster(departments=departments, people=people,
                  department_suspended={d: START + dt.timedelta(days=1) for d in sorted(suspended)},
                  capacity={TIERS[cap % 5]: 1 + cap // 5 % 3} if cap >= 42 else {},
                  manager_tiers=MANAGER_TIERS)


@dataclass(frozen=True)
class Lead:
    tier: str
    exclude: frozenset[str] = frozenset()  # the previous owner of a re-allocated lead (R-CONV-2, R-SLA-5)
    reoffer: bool = False  # a lead already waiting in the pool (R-ALLOC-5)


@dataclass(frozen=True)
class Change:
    """Between two leads: a person's state changes (a leave, a suspension, a departure, a pause, ...)."""

    person: str
    state: dict


@dataclass(frozen=True)
class DeptChange:
    department: str
    suspended: bool


@dataclass(frozen=True)
class NewWeek:
    """Monday 00:00: the department order shifts and every tier's pointer restarts (R-ALLOC-1)."""


@dataclass
class Stream:
    roster: Roster
    steps: list = field(default_factory=list)
    debts: list[Debt] = field(default_factory=list)


@st.composite
def streams(draw, max_steps: int = 30, grades: tuple = GRADES, tiers: tuple = TIERS + MANAGER_TIERS) -> Stream:
    """A roster, replacements owed (R-ALLOC-6), and a stream of leads of random tiers — some re-offered from
    the pool, some excluding a previous owner (who may be owed a replacement) — with changes and weeks between.
    Leads favour the tiers somebody is paused for or owed."""
    roster = draw(rosters(grades))
    pids = sorted(roster.people)
    owed = draw(st.lists(st.tuples(st.sampled_from(pids), st.sampled_from(tiers)), max_size=3))
    debts = [Debt(id=i, person=p, tier=t) for i, (p, t) in enumerate(owed)]
    tiers = tiers + tuple(t for _, t in owed) + tuple(t for p in roster.people.values() for t in p.paused)
    excluded = [None, None] + pids + [p for p, _ in owed]
    steps = []
    for kind, a, state in draw(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 255), STATE),
                                        min_size=max_steps // 4, max_size=max_steps)):
        if kind <= 3:
            who = excluded[state[1] % len(excluded)]
            steps.append(Lead(tiers[a % len(tiers)], frozenset({who} if who else ()), bool(state[2] & 1)))
        elif kind == 4:
            steps.append(Change(pids[a % len(pids)], person_state(state)))
        elif kind == 5:
            steps.append(DeptChange(roster.departments[a % len(roster.departments)], bool(state[1] & 1)))
        else:
            steps.append(NewWeek())
    return Stream(roster=roster, steps=steps, debts=debts)


# ------------------------------------------------------------------ organisations (stores, scenarios)

PHONE_FORMS = (  # R-REG-2: one number as people write it
    lambda n: n,
    lambda n: f"{n[:3]} {n[3:7]} {n[7:]}",
    lambda n: f"+86 {n[:3]}-{n[3:7]}-{n[7:]}",
    lambda n: f"(0086){n}",
    lambda n: n.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
)
GOOD_AMOUNTS = ("900000", "85万", "约45万", "25w", "８万元", "6万左右", "12,000", "", None)
BAD_AMOUNTS = ("-5万", "abc", "1,2,3", "11亿")  # R-REG-3: quarantined `amount`
BAD_PHONES = ("12345", "2800013800", "1390000")  # R-REG-2: quarantined `phone_format`
COMPANY_CHANNELS = ("marketplace", "hotline", "web_chat", "wechat")


def phone_number(i: int) -> str:
    return f"1390000{i:04d}"


@st.composite
def organisations(draw, max_departments: int = 3, max_sales: int = 4, grades: tuple = GRADES) -> dict:
    """{"departments", "people"} as `leadflow org load` takes them: graded salespeople, managers, `k1`."""
    departments = [{"id": f"d{i}", "name": f"营销{i}部"} for i in range(1, draw(st.integers(1, max_departments)) + 1)]
    people = [{"id": "k1", "department": "d1", "role": "receptionist"}]
    for d in departments:
        for i in range(draw(st.integers(0 if len(departments) > 1 else 1, max_sales))):
            people.append({"id": f"{d['id']}s{i}", "department": d["id"], "role": "sales",
                           "grade": draw(st.sampled_from(grades)), "rank": draw(st.one_of(st.none(), st.integers(1, 3)))})
        for i in range(draw(st.integers(0, 2))):
            people.append({"id": f"{d['id']}m{i}", "department": d["id"], "role": "manager"})
    return {"departments": departments, "people": people}


def salespeople(org: dict) -> list[str]:
    return [p["id"] for p in org["people"] if p["role"] == "sales"]


# ------------------------------------------------------------------------ registration batches

@dataclass(frozen=True)
class Row:
    """A delivered registration row and what the rulebook says it must become."""

    row: dict
    good: bool  # passes R-REG-1..3 (else quarantined, R-VAL-2)
    phone: str | None  # the normalised number


@st.composite
def registration_rows(draw, n: int, org: dict, earlier: list[Row]) -> list[Row]:
    """`n` rows: good ones (phones from a small pool, in any written form), exact re-deliveries of earlier
    rows (R-REG-4), rows of a repeated phone (R-REG-5), bad phones, bad amounts and missing phones (R-VAL-2)."""
    sellers = salespeople(org)
    out: list[Row] = []
    for _ in range(n):
        seen = earlier + out
        kind = draw(st.sampled_from(("good", "good", "good", "again", "bad_phone", "bad_amount", "no_phone")))
        if kind == "again" and seen:
            out.append(draw(st.sampled_from(seen)))
            continue
        number = phone_number(draw(st.integers(0, 7)))
        k = len(seen)  # a fresh reference: only a re-delivery repeats one
        channel = draw(st.sampled_from(COMPANY_CHANNELS + (("self",) if sellers else ())))
        row = {"ref": f"r{k}", "channel": channel, "name": "客户", "inquiry": "绿植租摆", "region": "上海",
               "phone": draw(st.sampled_from(PHONE_FORMS))(number), "amount": draw(st.sampled_from(GOOD_AMOUNTS)),
               "registered_at": START + dt.timedelta(minutes=draw(st.integers(0, 600))),
               "registered_by": draw(st.sampled_from(sellers)) if channel == "self" else "k1",
               "external_ref": draw(st.one_of(st.none(), st.just(f"X-{k}"))),
               "target": draw(st.sampled_from(("yes", "yes", "no", "unknown")))}
        good = True
        if kind == "bad_phone":
            row["phone"], good, number = draw(st.sampled_from(BAD_PHONES)), False, None
        elif kind == "bad_amount":
            row["amount"], good = draw(st.sampled_from(BAD_AMOUNTS)), False
        elif kind == "no_phone":
            row["phone"], good, number = draw(st.sampled_from((None, ""))), False, None
        out.append(Row(row=row, good=good, phone=number))
    return out


@st.composite
def registration_batches(draw, org: dict, max_batches: int = 4, max_rows: int = 12) -> list[list[Row]]:
    """1-4 batches of 1-12 rows (under R-VAL-3's 20-row minimum, so no batch fails as a whole)."""
    batches: list[list[Row]] = []
    for _ in range(draw(st.integers(1, max_batches))):
        earlier = [r for b in batches for r in b]
        batches.append(draw(registration_rows(draw(st.integers(1, max_rows)), org, earlier)))
    return batches


# ------------------------------------------------------------------------------------ scenarios

AMOUNT_OF_TIER = {"A": 900_000, "B": 500_000, "C": 250_000, "D": 60_000, "below_d": 10_000}


@st.composite
def _burst(draw, t: dt.datetime, org: dict, refs: list[str], phones: list[str], size: int) -> list[dict]:
    """Registrations at one instant: mostly tiers somebody may serve, some unclassified or non-target (to the
    managers, R-ALLOC-3), some `self` leads (R-REG-8), now and then a repeat caller (R-REG-5)."""
    sellers = salespeople(org) or ["k1"]
    grades = {p.get("grade") for p in org["people"] if p["role"] == "sales"}
    served = sorted({t for t in TIERS for g in grades if may_serve(g, t)})
    out = []
    for _ in range(size):
        tier = draw(st.sampled_from(served * 2 + list(TIERS) + ["unknown"]))
        channel = draw(st.sampled_from(COMPANY_CHANNELS * 2 + ("self",)))
        again = phones and draw(st.integers(0, 7)) == 7
        phones.append(draw(st.sampled_from(phones)) if again else phone_number(len(refs)))
        refs.append(f"c{len(refs)}")
        out.append({"at": t.isoformat(), "type": "register", "ref": refs[-1], "channel": channel, "phone": phones[-1],
                    "by": draw(st.sampled_from(sellers)) if channel == "self" else "k1",
                    "amount": AMOUNT_OF_TIER.get(tier), "target": draw(st.sampled_from((True,) * 6 + (False, None)))})
    return out


@st.composite
def _happenings(draw, t: dt.datetime, org: dict, refs: list[str], new: list[str]) -> list[dict]:
    """What happens at one instant after a burst: first contacts on most new leads (in time when within 10
    minutes; a lead without one pauses its owner, R-SUSP-5), leaves (R-SUSP-2), a violation (R-SUSP-1), a
    departure (R-CONV-6), a late daily table (R-SUSP-4), hand-ons (R-ALLOC-3), invalid marks (R-VAL-4)."""
    at = t.isoformat()
    people = [p["id"] for p in org["people"] if p["role"] in ("sales", "manager")] or ["k1"]
    sellers = salespeople(org) or ["k1"]
    managers = [p["id"] for p in org["people"] if p["role"] == "manager"] or ["k1"]
    out = [{"at": at, "type": "contact", "customer": ref} for ref in new if draw(st.integers(0, 7)) > 0]
    out += [{"at": at, "type": "leave", "person": p, "kind": draw(st.sampled_from(("personal", "sick")))}
            for p in draw(st.lists(st.sampled_from(people), max_size=2, unique=True))]
    if draw(st.integers(0, 3)) == 3:  # a suspension lasts 7 days and a departure for good: now and then
        out.append({"at": at, "type": "violation", "person": draw(st.sampled_from(people)), "kind": "company_rule"})
    if draw(st.integers(0, 3)) == 3:
        out.append({"at": at, "type": "depart", "person": draw(st.sampled_from(people))})
    for kind in draw(st.lists(st.sampled_from(("late_table", "hand_on", "invalid")), max_size=2)):
        e: dict = {"at": at, "type": kind}
        if kind == "late_table":
            e["department"] = draw(st.sampled_from([d["id"] for d in org["departments"]]))
        else:
            e["customer"] = draw(st.sampled_from(refs))
        if kind == "invalid":
            e["reason"] = draw(st.sampled_from(("unreachable", "no_intent", "advertising")))
        elif kind == "hand_on":
            e.update(to=draw(st.sampled_from(sellers)), by=draw(st.sampled_from(managers)))
        out.append(e)
    return out


@st.composite
def scenarios(draw, max_steps: int = 4, max_burst: int = 10) -> dict:
    """A scenario (SCENARIOS.md) over a small random organisation, in steps minutes to a day apart (a Monday
    shift within reach): each step a burst of registrations at one instant, then what happens to people and
    leads a few minutes later at one instant; a last burst shows what the last step changed."""
    org = draw(organisations(max_departments=2, max_sales=4))
    events: list[dict] = []
    refs: list[str] = []
    phones: list[str] = []
    t = START
    for step in range(draw(st.integers(min(3, max_steps), max_steps)) + 1):
        t += dt.timedelta(minutes=draw(st.sampled_from((30, 1, 5, 240, 600, 1440))))
        burst = draw(_burst(t, org, refs, phones, draw(st.integers(min(3, max_burst), max_burst))))
        events += burst
        if step < max_steps:
            t += dt.timedelta(minutes=draw(st.sampled_from((9, 3, 9, 15))))
            events += draw(_happenings(t, org, refs, [e["ref"] for e in burst]))
    return {"name": "property", "start": START.isoformat(), **org, "events": events}
