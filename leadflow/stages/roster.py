"""Load the roster as allocation sees it at `now`: one query per table, never one per person."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from leadflow.policy import Policy
from leadflow.rules.allocation import Candidate, Roster
from leadflow.rules.suspensions import Interval, suspended_until
from leadflow.store import pauses as pauses_store
from leadflow.store.models import Assignment, Bar, Customer, Department, Leave, Person, Suspension


# The roster's reads, built once: every pool offer loads the roster, and building a statement costs more than
# SQLite takes to run these.
_NOW = bindparam("now", type_=Suspension.__table__.c.starts_at.type)
_SUSPENSIONS = select(Suspension.subject_id, Suspension.starts_at, Suspension.ends_at).where(
    Suspension.subject_kind == bindparam("kind"), Suspension.starts_at <= _NOW, Suspension.ends_at > _NOW)
_DEPARTMENTS = select(Department.id).order_by(Department.position, Department.id)
_ON_LEAVE = select(Leave.person_id).where(Leave.at <= _NOW, Leave.until > _NOW)
_BARRED = select(Bar.person_id, Bar.tier).where(Bar.lifted_at.is_(None))
_PEOPLE = select(Person)


def load_suspensions(conn: Connection, kind: str, now: dt.datetime) -> dict[str, dt.datetime]:
    """subject id -> end of the longest suspension in force at `now`."""
    rows = conn.execute(_SUSPENSIONS, {"kind": kind, "now": now}).all()
    by_subject: dict[str, list[Interval]] = defaultdict(list)
    for subject, start, end in rows:
        by_subject[subject].append(Interval(start, end))
    return {s: suspended_until(iv, now) for s, iv in by_subject.items()}


def load_paused(conn: Connection) -> dict[str, dict[str, int]]:
    """R-ALLOC-4: {person: {tier: paused rounds left}} (the balances kept beside the pause rows)."""
    return pauses_store.balances(conn)


def load_roster(conn: Connection, policy: Policy, now: dt.datetime) -> Roster:
    """The org chart as allocation sees it at `now` (R-ALLOC-3/4, R-SUSP): one query per table. A person's
    `open_counts` hold only the tiers the policy caps (R-ALLOC-4); the other tiers are never read."""
    departments = tuple(conn.execute(_DEPARTMENTS).scalars())
    suspended = load_suspensions(conn, "person", now)
    dept_suspended = load_suspensions(conn, "department", now)
    on_leave = set(conn.execute(_ON_LEAVE, {"now": now}).scalars())
    paused = load_paused(conn)
    barred: dict[str, set[str]] = defaultdict(set)
    for person, tier in conn.execute(_BARRED):
        barred[person].add(tier)
    open_counts: dict[str, dict[str, int]] = defaultdict(dict)
    capacity = dict(policy.allocation.capacity_per_tier)
    # R-ALLOC-4 capacity counts open leads: a closed (converted) lead keeps its owner but is not open. Only
    # the tiers under a capacity are counted (nothing else reads the counts): with none, the store's size
    # does not weigh on a single lead's allocation.
    if capacity:
        for person, tier, n in conn.execute(select(Assignment.person_id, Assignment.tier, func.count())
                                            .join(Customer, Customer.id == Assignment.customer_id)
                                            .where(Assignment.ended_at.is_(None), Customer.status == "assigned",
                                                   Assignment.tier.in_(sorted(capacity)))
                                            .group_by(Assignment.person_id, Assignment.tier)):
            open_counts[person][tier] = n
    people = {}
    for p in conn.execute(_PEOPLE).mappings():
        people[p["id"]] = Candidate(
            id=p["id"], department=p["department_id"], role=p["role"], grade=p["grade"], rank=p["rank"],
            active=p["active"], suspended_until=suspended.get(p["id"]), on_leave=p["id"] in on_leave,
            paused=dict(paused.get(p["id"], {})), barred=frozenset(barred.get(p["id"], ())),
            open_counts=dict(open_counts.get(p["id"], {})))
    return Roster(departments=departments, people=people, department_suspended=dept_suspended,
                  capacity=capacity,
                  manager_tiers=policy.allocation.manager_tiers)
