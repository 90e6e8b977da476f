"""Reports from the ledger (R-ALLOC-7): allocations, breaches and fairness for a period; the customers registered
in it, their numbers masked (R-REG-7) unless exported in full on the record (`full_phone_export`).

Every row is a flat dict with the columns `COLUMNS` names, in that order (so an empty CSV still has its
header). Times are business time with their offset (`2026-11-30T09:00:00+08:00`, issue 9.6); each person or
department id has its name beside it in a `…_name` column (None when the org chart gives none).
"""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.clock import iso
from leadflow.policy import Policy, load_policy
from leadflow.rules.registration import mask_phone
from leadflow.rules.tiers import eligible_tiers
from leadflow.store.models import Breach, Customer, CustomerPhone, Department, Ledger, Person

COLUMNS: dict[str, tuple[str, ...]] = {
    "allocations": ("at", "rule", "action", "customer", "tier", "department", "department_name", "owner",
                    "owner_name", "from", "from_name", "reason", "policy"),
    "breaches": ("at", "rule", "customer", "person", "person_name"),
    "fairness": ("tier", "person", "person_name", "leads", "eligible_share", "difference"),
    "customers": ("customer", "name", "phones", "tier", "status", "owner", "owner_name", "department",
                  "department_name", "channel", "created"),
}
OWNER_ACTIONS = ("allocate", "hand_on", "self_found", "take_back", "exchange", "return_to_pool", "pooled")


def names(conn: Connection) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """(person id -> name, department id -> name), two queries for the whole org chart."""
    return (dict(conn.execute(select(Person.id, Person.name)).all()),
            dict(conn.execute(select(Department.id, Department.name)).all()))


def _at(t: dt.datetime | None, policy: Policy) -> str | None:
    """Business time with its offset; a naive time from the store is UTC."""
    if t is not None and t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return iso(t, policy)


def _policy(policy: Policy | None) -> Policy:
    return policy if policy is not None else load_policy()


def allocations(conn: Connection, start: dt.datetime, end: dt.datetime, policy: Policy | None = None) -> list[dict]:
    """Every allocation and change of owner in [start, end) (aware instants), as published in the ledger."""
    policy = _policy(policy)
    people, departments = names(conn)
    rows = conn.execute(select(Ledger.at, Ledger.rule_id, Ledger.action, Ledger.customer_id, Customer.tier,
                               Ledger.department_id, Ledger.person_id, Ledger.from_person_id, Ledger.reason,
                               Ledger.policy_version)
                        .join(Customer, Customer.id == Ledger.customer_id, isouter=True)
                        .where(Ledger.at >= start, Ledger.at < end, Ledger.action.in_(OWNER_ACTIONS))
                        .order_by(Ledger.at, Ledger.id))
    return [{"at": _at(r.at, policy), "rule": r.rule_id, "action": r.action, "customer": r.customer_id,
             "tier": r.tier, "department": r.department_id, "department_name": departments.get(r.department_id),
             "owner": r.person_id, "owner_name": people.get(r.person_id), "from": r.from_person_id,
             "from_name": people.get(r.from_person_id), "reason": r.reason, "policy": r.policy_version}
            for r in rows]


def breaches(conn: Connection, start: dt.datetime, end: dt.datetime, policy: Policy | None = None) -> list[dict]:
    """SLA breaches dated in [start, end) and not disproved since (R-SLA-7), oldest first."""
    policy = _policy(policy)
    people, _ = names(conn)
    rows = conn.execute(select(Breach.at, Breach.rule_id, Breach.customer_id, Breach.person_id)
                        .where(Breach.at >= start, Breach.at < end, Breach.revoked_at.is_(None))
                        .order_by(Breach.at, Breach.id))
    return [{"at": _at(r.at, policy), "rule": r.rule_id, "customer": r.customer_id, "person": r.person_id,
             "person_name": people.get(r.person_id)} for r in rows]


def fairness(conn: Connection, start: dt.datetime, end: dt.datetime, policy: Policy | None = None,
             allocated: list[dict] | None = None) -> list[dict]:
    """Leads per person per tier in [start, end) against their eligible share (an equal split among the eligible
    sales, R-ALLOC-7); `allocated`: the period's `allocations` rows when the caller has read them already."""
    people = conn.execute(select(Person.id, Person.grade).where(Person.role == "sales", Person.active.is_(True))).all()
    eligible: dict[str, list[str]] = defaultdict(list)
    for pid, grade in people:
        for tier in eligible_tiers(grade):
            eligible[tier].append(pid)
    rows = allocated if allocated is not None else allocations(conn, start, end, policy)
    got = Counter((r["tier"], r["owner"]) for r in rows if r["action"] == "allocate" and r["owner"])
    totals = Counter(t for t, _ in got.elements())
    labels, _ = names(conn)
    out = []
    for tier in ("A", "B", "C", "D", "below_d"):
        for pid in sorted(eligible.get(tier, [])):
            expected = totals[tier] / len(eligible[tier]) if eligible[tier] else 0
            out.append({"tier": tier, "person": pid, "person_name": labels.get(pid), "leads": got[(tier, pid)],
                        "eligible_share": round(expected, 2), "difference": round(got[(tier, pid)] - expected, 2)})
    return out


def customers(conn: Connection, start: dt.datetime, end: dt.datetime, full_phones: bool = False,
              policy: Policy | None = None) -> list[dict]:
    """Customers created in [start, end): tier, status, owner and every number reaching them (own number first),
    masked `138****8000` (R-REG-7) unless `full_phones` (only through `full_phone_export`)."""
    policy = _policy(policy)
    people, departments = names(conn)
    rows = conn.execute(select(Customer.id, Customer.name, Customer.tier, Customer.status, Customer.owner_id,
                               Customer.department_id, Customer.channel, Customer.created_at)
                        .where(Customer.created_at >= start, Customer.created_at < end).order_by(Customer.id)).all()
    phones: dict[int, list[str]] = defaultdict(list)
    ids = [r.id for r in rows]
    for i in range(0, len(ids), 5000):
        for cid, phone in conn.execute(select(CustomerPhone.customer_id, CustomerPhone.phone)
                                       .where(CustomerPhone.customer_id.in_(ids[i:i + 5000]))
                                       .order_by(CustomerPhone.relation != "primary", CustomerPhone.phone)):
            phones[cid].append(phone if full_phones else mask_phone(phone))
    return [{"customer": r.id, "name": r.name, "phones": " / ".join(phones[r.id]), "tier": r.tier,
             "status": r.status, "owner": r.owner_id, "owner_name": people.get(r.owner_id),
             "department": r.department_id, "department_name": departments.get(r.department_id),
             "channel": r.channel, "created": _at(r.created_at, policy)} for r in rows]


def full_phone_export(conn: Connection, policy_version: str, by: str, start: dt.datetime, end: dt.datetime,
                      fmt: str, policy: Policy | None = None) -> list[dict]:
    """R-REG-7's one dedicated export: the customers report with full numbers, recorded on the ledger in the
    same transaction (action `export_full_phones`: who, when, the period, how many numbers and customers)."""
    from leadflow import engine
    from leadflow.store import ledger

    policy = _policy(policy)
    rows = customers(conn, start, end, full_phones=True, policy=policy)
    numbers = sum(len(r["phones"].split(" / ")) for r in rows if r["phones"])
    now = dt.datetime.now(dt.timezone.utc)
    ledger.append(conn, [ledger.entry(max(now, engine.clock(conn) or now), "R-REG-7", "export_full_phones",
                                      f"{numbers} full phone numbers exported by {by}", explanation={
                                          "by": by, "report": "customers", "since": _at(start, policy),
                                          "until": _at(end, policy), "format": fmt, "numbers": numbers,
                                          "customers": len(rows)})], policy_version, None)
    return rows
