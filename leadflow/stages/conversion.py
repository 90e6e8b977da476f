"""Conversion expiry (R-CONV-1, R-CONV-2, R-SUSP-7): unconverted leads are taken back at the end of their period."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from leadflow.rules import conversion as rules
from leadflow.rules.sla import with_grace
from leadflow.stages.context import StageContext
from leadflow.stages.reassign import take_back
from leadflow.stages.validation import held_customers
from leadflow.store import ledger
from leadflow.store.models import Activity, Assignment, Bar, Customer, Deal

STAGE = "conversion_expiry"


def load_cases(conn: Connection, ctx: StageContext) -> list[tuple]:
    """Open, non-exempt, salesperson-held assignments of unconverted customers, with their expiry."""
    step = ctx.policy.conversion.exempt_step
    step4 = (select(func.min(Activity.at)).where(Activity.customer_id == Assignment.customer_id,
                                                 Activity.person_id == Assignment.person_id,
                                                 Activity.kind == "sales_step", Activity.step >= step,
                                                 Activity.at >= Assignment.started_at)
             .correlate(Assignment).scalar_subquery())
    rows = conn.execute(select(Assignment.id, Assignment.customer_id, Assignment.person_id, Customer.tier,
                               Assignment.clock_start, Assignment.exempt, Customer.converted_at, step4,
                               Assignment.retiered_at)
                        .join(Customer, Customer.id == Assignment.customer_id)
                        .where(Assignment.ended_at.is_(None), Assignment.exempt.is_(False),
                               Assignment.kind != "manager", Customer.status == "assigned",
                               Customer.id.not_in(held_customers("conversion_expiry")))).all()  # R-VAL-2
    cases = []
    for r in rows:
        case = rules.ExpiryCase(assignment_id=r[0], customer_id=r[1], person_id=r[2], tier=r[3], clock_start=r[4],
                                exempt=r[5], converted_at=r[6], step4_at=r[7], retiered_at=r[8])
        expiry = rules.expires_at(r[4], r[3], ctx.policy, retiered_at=r[8])
        if expiry is not None:
            cases.append((expiry, case))
    return cases


def next_due(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    """The earliest expiry, acted on once the evidence grace has passed (R-SLA-7: a step 4 made before it may
    still arrive), or the earliest dormant return."""
    cases = load_cases(conn, ctx)
    return min([with_grace(e, ctx.policy) for e, _ in cases]
               + [t for t in [next_dormant(conn, ctx, horizon)] if t is not None], default=None)


def run(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> dict:
    """Take back every lead whose period ended by `as_of` with no deal and no step 4 (R-CONV-2), once the
    evidence grace after the expiry has passed (R-SLA-7); the take-back is dated at the expiry."""
    due = [(e, c) for e, c in load_cases(conn, ctx) if with_grace(e, ctx.policy) <= as_of]
    exempt, back = [], []
    for expiry, case in due:
        outcome = rules.expiry_decision(case, as_of, ctx.policy)
        if outcome is None:
            continue
        if outcome.action == "exempt":
            exempt.append(case.assignment_id)
        elif outcome.action == "reallocate":
            back.append((expiry, case))
    if exempt:
        t = Assignment.__table__
        conn.execute(t.update().where(t.c.id.in_(exempt)).values(exempt=True))
    results = []
    for expiry, case in sorted(back, key=lambda x: (x[0], x[1].assignment_id)):
        _bar(conn, ctx, case.person_id, case.tier, expiry)
        results.append(take_back(conn, ctx, [{"assignment_id": case.assignment_id, "customer_id": case.customer_id,
                                              "person_id": case.person_id}], expiry, "R-CONV-2",
                                 f"conversion period of tier {case.tier} ended without a deal or step 4"))
    dormant = run_dormant(conn, ctx, as_of)  # R-CONV-5 runs with the expiry flow
    return {"as_of": as_of.isoformat(), "expired": len(back), "exempted": len(exempt),
            "returned_dormant": dormant["returned"],
            "decisions": [d for r in results for d in r["decisions"]] + dormant["decisions"],
            "taken_back": [{"customer_id": c.customer_id, "from": c.person_id, "tier": c.tier,
                            "expired_at": e.isoformat()} for e, c in back]}


def _bar(conn: Connection, ctx: StageContext, person: str, tier: str, at: dt.datetime) -> None:
    """R-SUSP-7: no more leads of that tier until the person closes one."""
    open_bar = conn.execute(select(Bar.id).where(and_(Bar.person_id == person, Bar.tier == tier,
                                                      Bar.lifted_at.is_(None)))).first()
    if open_bar is None:
        conn.execute(Bar.__table__.insert().values(person_id=person, tier=tier, since=at))
        ledger.append(conn, [ledger.entry(at, "R-SUSP-7", "bar", f"no more {tier} leads until a {tier} close",
                                          person_id=person)], ctx.policy.version, ctx.flow_run_id)


# --- R-CONV-5: dormant return (seed 004 variant, a policy switch, off by default) ---------------------
def load_dormant(conn: Connection, ctx: StageContext) -> list[tuple[dt.datetime, int]]:
    """(dormant instant, customer) for every converted customer; nothing when the switch is off.

    No payment is on record in this build, so the last sale alone starts the 6 months.
    """
    if not ctx.policy.conversion.dormant_return.enabled:
        return []
    rows = conn.execute(select(Customer.id, func.max(Deal.at)).join(Deal, Deal.customer_id == Customer.id)
                        .where(Customer.status == "converted").group_by(Customer.id)).all()
    out = [(rules.dormant_since(last, None, ctx.policy), cid) for cid, last in rows]
    return sorted((t, cid) for t, cid in out if t is not None)


def next_dormant(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    return min((t for t, _ in load_dormant(conn, ctx)), default=None)


def run_dormant(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> dict:
    """Customers dormant by `as_of` return to the company pool, each at its own instant, and are offered by
    the normal rotation (the rulebook excludes nobody)."""
    results = []
    for at, cid in load_dormant(conn, ctx):
        if at > as_of:
            break
        a = conn.execute(select(Assignment.id, Assignment.person_id).where(
            Assignment.customer_id == cid, Assignment.ended_at.is_(None))).first()
        results.append(take_back(conn, ctx, [{"assignment_id": a[0] if a else None, "customer_id": cid,
                                              "person_id": a[1] if a else None}], at, "R-CONV-5",
                                 "no sale and no payment for 6 months: back to the company pool",
                                 exclude_owner=False))
    return {"as_of": as_of.isoformat(), "returned": len(results),
            "decisions": [d for r in results for d in r["decisions"]]}
