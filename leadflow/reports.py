"""Reports from the ledger (R-ALLOC-7): allocations, breaches and fairness for a period; the customers registered
in it, their numbers masked (R-REG-7) unless exported in full on the record (`full_phone_export`)."""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.rules.registration import mask_phone
from leadflow.rules.tiers import eligible_tiers
from leadflow.store.models import Breach, Customer, CustomerPhone, Ledger, Person


def allocations(conn: Connection, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Every allocation and change of owner in [start, end), as published in the ledger."""
    rows = conn.execute(select(Ledger.at, Ledger.rule_id, Ledger.action, Ledger.customer_id, Customer.tier,
                               Ledger.department_id, Ledger.person_id, Ledger.from_person_id, Ledger.reason,
                               Ledger.policy_version)
                        .join(Customer, Customer.id == Ledger.customer_id, isouter=True)
                        .where(Ledger.at >= start, Ledger.at < end,
                               Ledger.action.in_(("allocate", "hand_on", "self_found", "take_back", "exchange",
                                                  "return_to_pool", "pooled")))
                        .order_by(Ledger.at, Ledger.id))
    return [{"at": r.at.isoformat(), "rule": r.rule_id, "action": r.action, "customer": r.customer_id,
             "tier": r.tier, "department": r.department_id, "owner": r.person_id, "from": r.from_person_id,
             "reason": r.reason, "policy": r.policy_version} for r in rows]


def breaches(conn: Connection, start: dt.datetime, end: dt.datetime) -> list[dict]:
    rows = conn.execute(select(Breach.at, Breach.rule_id, Breach.customer_id, Breach.person_id)
                        .where(Breach.at >= start, Breach.at < end, Breach.revoked_at.is_(None))
                        .order_by(Breach.at, Breach.id))
    return [{"at": r.at.isoformat(), "rule": r.rule_id, "customer": r.customer_id, "person": r.person_id}
            for r in rows]


def fairness(conn: Connection, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Leads per person per tier against their eligible share (an equal split among the eligible sales)."""
    people = conn.execute(select(Person.id, Person.grade).where(Person.role == "sales", Person.active.is_(True))).all()
    eligible: dict[str, list[str]] = defaultdict(list)
    for pid, grade in people:
        for tier in eligible_tiers(grade):
            eligible[tier].append(pid)
    got = Counter((r["tier"], r["owner"]) for r in allocations(conn, start, end)
                  if r["action"] == "allocate" and r["owner"])
    totals = Counter(t for t, _ in got.elements())
    out = []
    for tier in ("A", "B", "C", "D", "below_d"):
        for pid in sorted(eligible.get(tier, [])):
            expected = totals[tier] / len(eligible[tier]) if eligible[tier] else 0
            out.append({"tier": tier, "person": pid, "leads": got[(tier, pid)], "eligible_share": round(expected, 2),
                        "difference": round(got[(tier, pid)] - expected, 2)})
    return out


def customers(conn: Connection, start: dt.datetime, end: dt.datetime, full_phones: bool = False) -> list[dict]:
    """Customers created in [start, end): tier, status, owner and every number reaching them (own number first),
    masked `138****8000` (R-REG-7) unless `full_phones` (only through `full_phone_export`)."""
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
             "status": r.status, "owner": r.owner_id, "department": r.department_id, "channel": r.channel,
             "created": r.created_at.isoformat()} for r in rows]


def full_phone_export(conn: Connection, policy_version: str, by: str, start: dt.datetime, end: dt.datetime,
                      fmt: str) -> list[dict]:
    """R-REG-7's one dedicated export: the customers report with full numbers, recorded on the ledger in the
    same transaction (action `export_full_phones`: who, when, the period, how many numbers and customers)."""
    from leadflow import engine
    from leadflow.store import ledger

    rows = customers(conn, start, end, full_phones=True)
    numbers = sum(len(r["phones"].split(" / ")) for r in rows if r["phones"])
    now = dt.datetime.now(dt.timezone.utc)
    ledger.append(conn, [ledger.entry(max(now, engine.clock(conn) or now), "R-REG-7", "export_full_phones",
                                      f"{numbers} full phone numbers exported by {by}", explanation={
                                          "by": by, "report": "customers", "since": start.isoformat(),
                                          "until": end.isoformat(), "format": fmt, "numbers": numbers,
                                          "customers": len(rows)})], policy_version, None)
    return rows
