"""The state of the world at `as_of`, as `leadflow simulate --json` prints it (SCENARIOS.md, Output)."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from leadflow.clock import iso
from leadflow.policy import Policy
from leadflow.stages.roster import load_paused, load_suspensions
from leadflow.store.models import (
    Assignment, Bar, Breach, Credit, Customer, Deal, Department, Fine, Ledger, Person, Registration,
)


def customer_keys(conn: Connection) -> dict[int, str]:
    """customer id -> how the state names it: the scenario `ref` of the registration that created it, else
    that registration's `external_ref` (the channel's own reference), else the customer id."""
    keys = {cid: ref for cid, ref in conn.execute(select(Customer.id, Customer.ref)) if ref}
    for cid, external in conn.execute(select(Registration.customer_id, Registration.external_ref)
                                      .where(Registration.status == "accepted", Registration.external_ref.is_not(None))
                                      .order_by(Registration.id)):
        keys.setdefault(cid, external)
    for cid in conn.execute(select(Customer.id)).scalars():
        keys.setdefault(cid, str(cid))
    return keys


def world_state(conn: Connection, policy: Policy, name: str, as_of: dt.datetime) -> dict:
    """The store at `as_of` in the shape of `leadflow simulate --json` (SCENARIOS.md, Output).

    Used by the replay and by `leadflow state` for production: registrations are keyed by their scenario
    `ref`, else their `external_ref`, else their id; customers as `customer_keys` says."""
    refs = customer_keys(conn)
    return {
        "scenario": name,
        "as_of": iso(as_of, policy),
        "registrations": _registrations(conn, refs),
        "customers": _customers(conn, refs),
        "people": _people(conn, policy, as_of),
        "departments": {d: {"suspended_until": iso(until.get(d), policy)}
                        for until in [load_suspensions(conn, "department", as_of)]
                        for d in conn.execute(select(Department.id).order_by(Department.position)).scalars()},
        "breaches": [{"customer": refs.get(c), "person": p, "rule": r, "at": iso(at, policy)}
                     for c, p, r, at in conn.execute(select(Breach.customer_id, Breach.person_id, Breach.rule_id,
                                                            Breach.at).where(Breach.revoked_at.is_(None))  # R-SLA-7
                                                     .order_by(Breach.at, Breach.id))],
        "performance": _credits(conn, refs, "performance"),
        "commissions": _credits(conn, refs, "commission"),
        "disputes": _disputes(conn, refs),
        "ledger_entries": conn.execute(select(func.count()).select_from(Ledger)).scalar(),
    }


def _registrations(conn, refs) -> dict:
    out = {}
    rows = conn.execute(select(Registration.id, Registration.ref, Registration.external_ref, Registration.status,
                               Registration.customer_id, Registration.reasons)
                        .where(Registration.status != "staged").order_by(Registration.id))
    for rid, ref, external, status, cid, reasons in rows:
        out.setdefault(ref or external or str(rid),
                       {"status": status, "customer": refs.get(cid), "reasons": sorted(reasons or [])})
    return out


def _customers(conn, refs) -> dict:
    owners: dict[int, list[str]] = defaultdict(list)
    for cid, pid in conn.execute(select(Assignment.customer_id, Assignment.person_id)
                                 .order_by(Assignment.started_at, Assignment.id)):
        if not owners[cid] or owners[cid][-1] != pid:
            owners[cid].append(pid)
    out = {}
    for c in conn.execute(select(Customer.id, Customer.ref, Customer.status, Customer.tier, Customer.owner_id,
                                 Customer.department_id).order_by(Customer.id)).mappings():
        out[refs[c["id"]]] = {"status": c["status"], "tier": c["tier"], "owner": c["owner_id"],
                                         "department": c["department_id"], "owners": owners.get(c["id"], [])}
    return out


def _people(conn, policy, as_of) -> dict:
    suspended = load_suspensions(conn, "person", as_of)
    paused = load_paused(conn)
    barred: dict[str, list[str]] = defaultdict(list)
    for pid, tier in conn.execute(select(Bar.person_id, Bar.tier).where(Bar.lifted_at.is_(None)).order_by(Bar.id)):
        if tier not in barred[pid]:
            barred[pid].append(tier)
    fines = dict(conn.execute(select(Fine.person_id, func.sum(Fine.amount_yuan))
                              .where(Fine.revoked_at.is_(None)).group_by(Fine.person_id)).all())  # R-SLA-7
    out = {}
    for p in conn.execute(select(Person.id, Person.active, Person.grade).order_by(Person.id)).mappings():
        amount = fines.get(p["id"], 0) or 0
        out[p["id"]] = {"active": p["active"], "grade": p["grade"],
                        "suspended_until": iso(suspended.get(p["id"]), policy),
                        "paused_rounds": paused.get(p["id"], {}), "barred_tiers": barred.get(p["id"], []),
                        "fines_yuan": int(amount) if float(amount).is_integer() else amount}
    return out


def _credits(conn, refs, kind) -> list[dict]:
    rows = conn.execute(select(Deal.customer_id, Credit.person_id, func.sum(Credit.share))
                        .join(Deal, Deal.id == Credit.deal_id)
                        .where(Credit.kind == kind, Credit.superseded_at.is_(None))
                        .group_by(Deal.id, Deal.customer_id, Credit.person_id).order_by(Deal.id, Credit.person_id))
    return [{"customer": refs.get(c), "person": p, "share": round(s, 10)} for c, p, s in rows if s]


def _disputes(conn, refs) -> list[dict]:
    rows = conn.execute(select(Ledger.customer_id, Ledger.rule_id, Ledger.explanation)
                        .where(Ledger.action == "dispute_decision").order_by(Ledger.id))
    latest = {}
    for cid, rule, expl in rows:
        latest[cid] = {"customer": refs.get(cid), "decision": (expl or {}).get("decision", {}), "rule": rule}
    return list(latest.values())
