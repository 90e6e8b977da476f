"""Properties of the pipeline on a store (issue 8 item 4), SQLite and PostgreSQL: random organisations,
suspensions, leaves, departures and lead streams go through the engine (`leadflow.engine`, the replay's
`Replay`), then the store is checked against oracles written from the rulebook.

Each example gets a fresh store of its own (`leadflow.simulate.replay_database`: a temporary SQLite file or
a new PostgreSQL schema), so no fixture outlives an example. The GX gate is wired as in production."""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from contextlib import contextmanager
from itertools import groupby

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from leadflow import engine
from leadflow.policy import load_policy
from leadflow.rules.allocation import Candidate, Roster, next_owner
from leadflow.rules.tiers import tier_for
from leadflow.scenario import parse_scenario
from leadflow.simulate import Replay, event_row, registration_row, replay_database
from leadflow.stages.allocation import pointers_for_week
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.store.db import create_all
from leadflow.store.models import (
    Assignment, Bar, Base, Customer, IntakeBatch, Leave, Ledger, Pause, Person, Registration, Suspension, ValidationHold,
)
from leadflow.wiring import make_gate
from tests.conftest import require_postgres
from tests.strategies import (
    AMOUNT_OF_TIER, MANAGER_TIERS, START, TIERS, may_serve, organisations, phone_number, registration_batches,
    scenarios, store_settings,
)

DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
ALLOCATED = ("allocation", "reallocation", "replacement", "manager", "hand_on")  # kinds a rule chose the owner of


@contextmanager
def fresh_store(database: str, policy=None):
    """A StageContext on a new, empty store with the GX gate, dropped afterwards."""
    policy = policy or load_policy()
    with replay_database(require_postgres() if database == "postgresql" else None) as (eng, url, schema):
        create_all(eng)
        gate = make_gate(url, schema, policy)
        try:
            yield StageContext(engine=eng, policy=policy, flow_run_id="property", gate=gate)
        finally:
            gate.close()


def with_org(ctx: StageContext, org: dict) -> StageContext:
    with ctx.engine.begin() as conn:
        load_org(conn, org["departments"], org["people"])
    return ctx


# ------------------------------------------------------------------------------------ oracles

def assert_one_owner_each(conn) -> None:
    """At most one open assignment per customer; an assigned customer's owner is its open assignment's."""
    open_by = Counter(conn.execute(select(Assignment.customer_id).where(Assignment.ended_at.is_(None))).scalars())
    assert not [c for c, n in open_by.items() if n > 1], "a customer with two open assignments"
    owner = dict(conn.execute(select(Assignment.customer_id, Assignment.person_id).where(Assignment.ended_at.is_(None))).all())
    for cid, status, owner_id in conn.execute(select(Customer.id, Customer.status, Customer.owner_id)):
        if status == "assigned":
            assert owner.get(cid) == owner_id is not None, (cid, status, owner_id, owner.get(cid))
        if status == "pool":
            assert cid not in owner and owner_id is None, (cid, owner.get(cid))


def _in_force(intervals, t) -> bool:
    """Strictly inside: at the very instant something starts or ends, either order is lawful."""
    return any(start < t and (end is None or t < end) for start, end in intervals)


def _people(conn) -> dict:
    return {p.id: p for p in conn.execute(select(Person.id, Person.role, Person.grade, Person.department_id,
                                                  Person.departed_at))}


def _spans(conn, who, start, end, *where) -> dict:
    """subject -> [(start, end)] of leaves or suspensions."""
    out = defaultdict(list)
    for subject, s, e in conn.execute(select(who, start, end).where(*where)):
        out[subject].append((s, e))
    return out


def _pause_lower_bound(pauses: list, t: dt.datetime) -> int:
    """Paused rounds at any moment of instant `t`: every grant before it, every consumption or withdrawal up to it."""
    return sum(r for at, r in pauses if at < t or (at == t and r < 0))


def assert_allocations_lawful(conn) -> int:
    """R-ALLOC-3/4, R-SUSP-1/2/4/7, R-CONV-6: nobody received a lead while departed, on leave, suspended (or
    their department), barred from the tier, ineligible for it, or (by the rotation) paused for it."""
    people = _people(conn)
    leave = _spans(conn, Leave.person_id, Leave.at, Leave.until)
    person_susp = _spans(conn, Suspension.subject_id, Suspension.starts_at, Suspension.ends_at,
                         Suspension.subject_kind == "person")
    dept_susp = _spans(conn, Suspension.subject_id, Suspension.starts_at, Suspension.ends_at,
                       Suspension.subject_kind == "department")
    bars = defaultdict(list)
    for pid, tier, since, lifted in conn.execute(select(Bar.person_id, Bar.tier, Bar.since, Bar.lifted_at)):
        bars[(pid, tier)].append((since, lifted))
    pauses = defaultdict(list)
    for pid, tier, at, rounds in conn.execute(select(Pause.person_id, Pause.tier, Pause.at, Pause.rounds)):
        pauses[(pid, tier)].append((at, rounds))
    rows = conn.execute(select(Assignment.person_id, Assignment.kind, Assignment.rule_id, Assignment.tier,
                               Assignment.started_at).where(Assignment.kind.in_(ALLOCATED))).all()
    for pid, kind, rule, tier, t in rows:
        p = people[pid]
        what = f"{pid} received a {tier} lead at {t} ({kind}, {rule})"
        if kind == "manager":
            assert p.role == "manager" and tier in MANAGER_TIERS, what
        elif tier in MANAGER_TIERS:  # a lead still unclassified or non-target, handed on by its manager
            assert kind == "hand_on" and p.role == "sales", what
        else:
            assert p.role == "sales" and may_serve(p.grade, tier), f"{what} but is {p.role} of grade {p.grade}"
        assert p.departed_at is None or t <= p.departed_at, f"{what} after departing"
        assert not _in_force(leave[pid], t), f"{what} on leave"
        assert not _in_force(person_susp[pid], t), f"{what} while suspended"
        assert not _in_force(dept_susp[p.department_id], t), f"{what} while the department was suspended"
        assert not _in_force(bars[(pid, tier)], t), f"{what} while barred from the tier"
        if rule == "R-ALLOC-2":
            assert _pause_lower_bound(pauses[(pid, tier)], t) <= 0, f"{what} while paused for the tier"
    for key, rounds in pauses.items():
        assert sum(r for _, r in rounds) >= 0, f"{key} used more paused rounds than it had"
    assert_ledger_order_lawful(conn, people)
    return len(rows)


def assert_ledger_order_lawful(conn, people: dict) -> None:
    """The same at the instants a departure or suspension arrives, by the ledger's order (R-ALLOC-7): no
    allocation or hand-on entered after a person's departure, or after a suspension of them or their
    department that had not ended."""
    departed: set[str] = set()
    until: dict[str, dt.datetime] = {}
    entries = conn.execute(select(Ledger.at, Ledger.action, Ledger.person_id, Ledger.department_id, Ledger.explanation,
                                  Ledger.rule_id).order_by(Ledger.id))
    for at, action, pid, dept, explanation, rule in entries:
        if action == "depart":
            departed.add(pid)
        elif action == "suspend":
            end = dt.datetime.fromisoformat(explanation["until"])
            until[pid or dept] = max(end, until.get(pid or dept, end))
        elif action in ("allocate", "hand_on") and pid is not None:
            what = f"{pid} received a lead at {at} ({rule})"
            assert pid not in departed, f"{what} after the ledger recorded their departure"
            assert at >= until.get(pid, at), f"{what} while suspended"
            assert at >= until.get(people[pid].department_id, at), f"{what} while the department was suspended"


def assert_pool_only_when_nobody_could(conn, t: dt.datetime) -> None:
    """R-ALLOC-5: after an offer at `t`, a lead waits in the pool only while nobody anywhere could take it."""
    people = _people(conn)
    held = set(conn.execute(select(ValidationHold.customer_id).where(ValidationHold.cleared_at.is_(None))).scalars())
    leave = _spans(conn, Leave.person_id, Leave.at, Leave.until)
    susp = _spans(conn, Suspension.subject_id, Suspension.starts_at, Suspension.ends_at)
    paused = defaultdict(int)
    for pid, tier, rounds in conn.execute(select(Pause.person_id, Pause.tier, Pause.rounds)):
        paused[(pid, tier)] += rounds
    barred = set(conn.execute(select(Bar.person_id, Bar.tier).where(Bar.lifted_at.is_(None))).all())
    for cid, tier in conn.execute(select(Customer.id, Customer.tier).where(Customer.status == "pool")):
        if cid in held:
            continue
        able = [p.id for p in people.values()
                if (p.role == "manager" if tier in MANAGER_TIERS else p.role == "sales" and may_serve(p.grade, tier))
                and p.departed_at is None and not _in_force(leave[p.id], t) and not _in_force(susp[p.id], t)
                and not _in_force(susp[p.department_id], t) and (p.id, tier) not in barred
                and (tier in MANAGER_TIERS or paused[(p.id, tier)] <= 0)]
        assert not able, f"customer {cid} ({tier}) waits in the pool while {able} could take it"


def batch_counts(summary: dict) -> tuple:
    return tuple(summary[k] for k in ("rows_in", "accepted", "attached", "quarantined"))


# ------------------------------------------------------------------------------ R-REG-4/5, R-VAL-2

def expected_counts(batch, keys: set, phones: set) -> tuple:
    """The rulebook's outcome of a batch: a bad row is quarantined and claims nothing (R-VAL-2, R-REG-4);
    a good row is attached when its key (R-REG-4) or its number (R-REG-5) is known, else accepted."""
    accepted = attached = 0
    for r in batch:
        if not r.good:
            continue
        row = r.row
        key = (row["channel"], "ref", row["external_ref"]) if row["external_ref"] else \
            (row["channel"], r.phone, row["registered_at"])
        if key in keys or r.phone in phones:
            attached += 1
        else:
            accepted += 1
        keys.add(key)
        phones.add(r.phone)
    return len(batch), accepted, attached, len(batch) - accepted - attached


@pytest.mark.parametrize("database", DATABASES)
@store_settings(6)
@given(data=st.data())
def test_r_reg_4_5_r_val_2_rows_in_equal_accepted_plus_attached_plus_quarantined_for_random_batches(database, data):
    org = data.draw(organisations(), label="org")
    batches = data.draw(registration_batches(org), label="batches")
    keys: set = set()
    phones: set = set()
    with fresh_store(database) as ctx:
        with_org(ctx, org)
        for i, batch in enumerate(batches):
            rows = [dict(r.row, row_number=n + 1) for n, r in enumerate(batch)]
            summary = engine.register(ctx, f"b{i}", "property", rows, START + dt.timedelta(days=1, hours=i))
            assert batch_counts(summary) == expected_counts(batch, keys, phones), f"batch {i}"
        with ctx.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Customer)).scalar() == len(phones)
            by_batch = Counter(conn.execute(select(Registration.batch_id).where(Registration.status != "staged")).scalars())
            assert by_batch == Counter({f"b{i}": len(b) for i, b in enumerate(batches)})  # nothing lost, none staged
            for b in conn.execute(select(IntakeBatch)).mappings():
                assert b["rows_in"] == b["accepted"] + b["attached"] + b["quarantined"] and b["finished_at"], dict(b)
            assert_one_owner_each(conn)
            assert_allocations_lawful(conn)
            before = dict(conn.execute(select(Customer.id, Customer.owner_id)).all())
        rows = [dict(r.row, row_number=n + 1) for n, r in enumerate(batches[0])]
        again = engine.register(ctx, "b0", "property", rows, START + dt.timedelta(days=2))  # the same file again
        rows_in, accepted, attached, quarantined = batch_counts(again)
        assert rows_in == accepted + attached + quarantined == len(rows)
        with ctx.engine.connect() as conn:
            after = dict(conn.execute(select(Customer.id, Customer.owner_id)).all())
            assert after.keys() == before.keys()  # no new customer
            # no lead changes hands; a lead waiting in the pool may be allocated by the run's offer (R-ALLOC-5)
            assert {c: o for c, o in after.items() if before[c] is not None} == \
                {c: o for c, o in before.items() if o is not None}
            assert_one_owner_each(conn)


# --------------------------------------------------------------------- R-ALLOC, R-SUSP on replays

def drive(s, ctx: StageContext) -> dt.datetime:
    """The scenario through production's entry points, one run per instant: a burst of registrations is one
    batch (`engine.register`), the other events of an instant one delivery (`engine.record`)."""
    with_org(ctx, {"departments": s.departments, "people": s.people})
    engine.tick(ctx, s.start)
    for i, ((at, registering), group) in enumerate(groupby(s.events, lambda e: (e.delivered_at, e.type == "register"))):
        if registering:
            rows = [dict(registration_row(e), row_number=n + 1) for n, e in enumerate(group)]
            engine.register(ctx, f"s{i}", "property", rows, at)
        else:
            engine.record(ctx, [event_row(e) for e in group], at, batch_id=f"e{i}", source="property")
    return s.events[-1].delivered_at


@pytest.mark.parametrize("database", DATABASES)
@store_settings(5)
@given(scenario=scenarios())
def test_r_alloc_3_4_5_r_susp_a_random_organisation_never_allocates_to_anyone_kept_out(database, scenario):
    s = parse_scenario(scenario)
    with fresh_store(database, load_policy(None, s.policy)) as ctx:
        end = drive(s, ctx) + dt.timedelta(minutes=1)
        engine.tick(ctx, end)  # every lead pooled by the last run has been offered again
        with ctx.engine.connect() as conn:
            assert_one_owner_each(conn)
            assert_allocations_lawful(conn)
            assert_pool_only_when_nobody_could(conn, end)
            for b in conn.execute(select(IntakeBatch)).mappings():
                assert b["rows_in"] == b["accepted"] + b["attached"] + b["quarantined"], dict(b)


# ------------------------------------------------------------------------- R-ALLOC-1/2 fairness

def lead_rows(tiers: list[str]) -> list[dict]:
    """One registration per tier drawn (`unknown` is an unclassified lead, R-ALLOC-3), each a new customer."""
    return [{"ref": f"f{i}", "row_number": i + 1, "channel": "marketplace", "name": "客户", "phone": phone_number(i),
             "amount": AMOUNT_OF_TIER.get(t), "registered_at": START + dt.timedelta(minutes=i), "registered_by": "k1",
             "external_ref": f"F-{i}", "target": "yes"} for i, t in enumerate(tiers)]


def deliver(database: str, org: dict, batches: list[list[dict]]) -> dict[str, str | None]:
    """Register the batches a minute apart (inside R-SLA-1's 10 minutes: no breach, no pause); ref -> owner."""
    with fresh_store(database) as ctx:
        with_org(ctx, org)
        for i, rows in enumerate(batches):
            engine.register(ctx, f"f{i}", "property", rows, START + dt.timedelta(days=1, minutes=i))
        with ctx.engine.connect() as conn:
            assert_one_owner_each(conn)
            return dict(conn.execute(select(Customer.ref, Customer.owner_id)).all())


def one_pass(org: dict, tiers: list[str]) -> dict[str, str | None]:
    """What a single run gives: the rule over the whole stream in one pass, nobody kept out; ref -> owner."""
    policy = load_policy()
    people = {p["id"]: Candidate(id=p["id"], department=p["department"], role=p["role"], grade=p.get("grade"),
                                 rank=p.get("rank")) for p in org["people"]}
    roster = Roster(departments=tuple(d["id"] for d in org["departments"]), people=people,
                    manager_tiers=policy.allocation.manager_tiers)
    pointers, owners = pointers_for_week({}, 0), {}
    for i, t in enumerate(tiers):
        tier = tier_for(AMOUNT_OF_TIER.get(t), True, policy.tiers)
        d = next_owner(tier, roster, pointers, 0)
        pointers.update(d.pointer_updates)
        owners[f"f{i}"] = d.person
    return owners


def receiving_group(org: dict, department: str, tier: str) -> list[str]:
    """R-ALLOC-2/3: who in a department takes a lead of `tier` when nobody is kept out: its managers, or the
    salespeople of the matching grade, else of the next grade up, and so on."""
    members = [p for p in org["people"] if p["department"] == department]
    if tier in MANAGER_TIERS:
        return [p["id"] for p in members if p["role"] == "manager"]
    order = [None, "D", "C", "B", "A"] if tier == "below_d" else ["A", "B", "C", "D"][:"ABCD".index(tier) + 1][::-1]
    for grade in order:
        group = [p["id"] for p in members if p["role"] == "sales" and p.get("grade") == grade]
        if group:
            return group
    return []


@pytest.mark.parametrize("database", DATABASES)
@store_settings(6)
@given(data=st.data())
def test_r_alloc_1_2_leads_in_several_runs_spread_as_one_run_would_within_one_among_equally_eligible(database, data):
    focused = data.draw(st.booleans(), label="few grades and tiers")  # round-robins of several people
    org = data.draw(organisations(grades=(None, "C")) if focused else organisations(), label="org")
    tiers = data.draw(st.lists(st.sampled_from(("C", "below_d", "unknown") if focused else TIERS + ("unknown",)),
                               min_size=4, max_size=16), label="tiers")
    cuts = sorted(data.draw(st.sets(st.integers(1, len(tiers) - 1), max_size=3), label="cuts"))
    rows = lead_rows(tiers)
    split = [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)])]
    owners = deliver(database, org, split)
    assert owners == one_pass(org, tiers)  # as fair as a single run: the very same owners
    got = Counter((owners[f"f{i}"], t if t != "unknown" else "unclassified") for i, t in enumerate(tiers))
    for tier_set in [(t,) for t in TIERS] + [MANAGER_TIERS]:
        per_dept = {}
        for d in (d["id"] for d in org["departments"]):
            group = set().union(*[receiving_group(org, d, t) for t in tier_set])
            if not group:
                continue
            counts = [sum(got[(pid, t)] for t in tier_set) for pid in sorted(group)]
            assert max(counts) - min(counts) <= 1, (tier_set, d, counts)  # R-ALLOC-2 round robin
            per_dept[d] = sum(counts)
        others = {pid for (pid, t), n in got.items() if t in tier_set and n and pid is not None} - \
            set().union(*[receiving_group(org, d["id"], t) for d in org["departments"] for t in tier_set])
        assert not others, (tier_set, others)  # a grade up only when nobody of the matching grade can take it
        for t in tier_set:
            leads = sum(n for (_, tier), n in got.items() if tier == t)
            waiting = got[(None, t)]
            assert waiting == (leads if not per_dept else 0), (t, waiting, per_dept)  # R-ALLOC-5
        if len(tier_set) == 1 and per_dept:  # R-ALLOC-1: one week, so the department rotation is even
            assert max(per_dept.values()) - min(per_dept.values()) <= 1, (tier_set, per_dept)


# ------------------------------------------------------------------------------------ determinism

VOLATILE = {("ledger", "recorded_at")}  # the wall clock at the write, not a fact of the replay


def dump(conn) -> dict:
    """Every table of the store, in primary-key order, but for wall-clock columns."""
    out = {}
    for table in Base.metadata.sorted_tables:
        cols = [c for c in table.columns if (table.name, c.name) not in VOLATILE]
        out[table.name] = [tuple(r) for r in conn.execute(select(*cols).order_by(*table.primary_key.columns))]
    return out


def replay(database: str, scenario: dict) -> tuple[dict, dict]:
    s = parse_scenario(scenario)
    with fresh_store(database, load_policy(None, s.policy)) as ctx:
        state = Replay(s, ctx).run()
        with ctx.engine.connect() as conn:
            return state, dump(conn)


@pytest.mark.parametrize("database", DATABASES)
@store_settings(2)
@given(scenario=scenarios(max_steps=1, max_burst=3))
def test_a_replay_is_deterministic_the_same_scenario_twice_leaves_the_same_store(database, scenario):
    state, tables = replay(database, scenario)
    again_state, again_tables = replay(database, scenario)
    assert again_state == state
    differing = [name for name in tables if tables[name] != again_tables[name]]
    assert not differing, differing
