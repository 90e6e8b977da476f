"""The monthly follow-up audit (R-SLA-5): list untouched leads for the manager, take them back 7 days later."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.clock import month_starts_between
from leadflow.rules import sla as rules
from leadflow.stages.context import StageContext
from leadflow.stages.marks import get_mark, set_mark
from leadflow.stages.reassign import take_back
from leadflow.stages.sla import load_records
from leadflow.stages.validation import held_customers
from leadflow.store import ledger
from leadflow.store.models import Assignment, Breach, Customer, Person

STAGE = "monthly_audit"
TICK = dt.timedelta(microseconds=1)
EFFECTIVE = ("contact", "follow_up", "sales_step")


def _holdings(conn: Connection) -> list:
    """Open salesperson holdings of customers still in play; an exchange restarts the holding (R-CONV-4)."""
    rows = conn.execute(select(Assignment.id, Assignment.customer_id, Assignment.person_id, Assignment.started_at)
                        .join(Customer, Customer.id == Assignment.customer_id)
                        .where(Assignment.ended_at.is_(None), Assignment.kind != "manager",
                               Customer.status == "assigned", Customer.id.not_in(held_customers("sla_check")))).all()
    return [rules.Holding(*r) for r in rows]


def next_audit(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    """The next 1st-of-month audit instant after the mark, acted on once the evidence grace has passed (R-SLA-7)."""
    mark = get_mark(conn, STAGE)
    if mark is None:
        return None
    times = month_starts_between(mark, rules.without_grace(horizon, ctx.policy), ctx.policy)
    return rules.with_grace(times[0], ctx.policy) if times else None


def run_audit(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> dict:
    """Every 1st-of-month instant in (mark, as_of - evidence grace]: list the untouched leads, once each (R-SLA-6);
    the mark is the last audit instant judged. R-SLA-7: the policy's switch `off` lists nothing."""
    upto = rules.without_grace(as_of, ctx.policy)
    mark = get_mark(conn, STAGE) or upto
    listed = []
    for audit_at in month_starts_between(mark, upto, ctx.policy):
        if rules.enforcement("R-SLA-5", ctx.policy) == rules.OFF:
            continue
        holdings = _holdings(conn)
        records = load_records(conn, sorted({h.customer_id for h in holdings}))
        for item in rules.audit_listings(holdings, records, audit_at, ctx.policy):
            key = f"{item.assignment_id}:R-SLA-5:{audit_at.date().isoformat()}"
            if conn.execute(select(Breach.id).where(Breach.key == key)).first():
                continue
            conn.execute(Breach.__table__.insert().values(key=key, customer_id=item.customer_id,
                                                          person_id=item.person_id, assignment_id=item.assignment_id,
                                                          rule_id="R-SLA-5", at=audit_at))
            listed.append(item)
        ledger.append(conn, [ledger.entry(audit_at, "R-SLA-5", "audit_listing", "no effective follow-up in 30 days",
                                          customer_id=i.customer_id, person_id=i.person_id)
                             for i in listed if i.at == audit_at], ctx.policy.version, ctx.flow_run_id)
    set_mark(conn, STAGE, upto)
    return {"as_of": as_of.isoformat(), "listed": len(listed), "listing": listing_report(conn, listed)}


def listing_report(conn: Connection, listed: list) -> list[dict]:
    """EC未有效跟进记录表: the listing per department manager."""
    depts = dict(conn.execute(select(Person.id, Person.department_id)).all())
    managers: dict[str, list[str]] = {}
    for pid, dept, role in conn.execute(select(Person.id, Person.department_id, Person.role)):
        if role == "manager":
            managers.setdefault(dept, []).append(pid)
    return [{"manager": ", ".join(sorted(managers.get(depts.get(i.person_id), []))) or "-",
             "department": depts.get(i.person_id), "owner": i.person_id, "customer_id": i.customer_id,
             "listed_at": i.at.isoformat()} for i in listed]


def _open_listings(conn: Connection) -> list:
    """Listings still pending on an open holding of a lead still in play (R-SLA-5: a lead that closed
    during the grace is no longer an untouched lead and is not taken back)."""
    rows = conn.execute(select(Breach.assignment_id, Breach.customer_id, Breach.person_id, Breach.at)
                        .join(Assignment, Assignment.id == Breach.assignment_id)
                        .join(Customer, Customer.id == Breach.customer_id)
                        .where(Breach.rule_id == "R-SLA-5", Breach.resolved_at.is_(None),
                               Assignment.ended_at.is_(None), Customer.status == "assigned",
                               Customer.id.not_in(held_customers("sla_check")))).all()  # R-VAL-2
    return [rules.Listing(*r) for r in rows]


def next_grace(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    """Just past the earliest open listing's 7-day deadline plus the evidence grace (R-SLA-5, R-SLA-7)."""
    return min((rules.breach_due(rules.audit_deadline(item, ctx.policy), ctx.policy) for item in _open_listings(conn)),
               default=None)


def run_grace(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> dict:
    """Leads still untouched 7 days after their listing are re-allocated, excluding the owner."""
    listings = _open_listings(conn)
    records = load_records(conn, sorted({i.customer_id for i in listings}))
    grace = dt.timedelta(days=ctx.policy.sla.audit_grace_days)
    due = [i for i in listings if as_of >= rules.breach_due(rules.audit_deadline(i, ctx.policy), ctx.policy)]
    back = {(i.assignment_id) for i in rules.audit_reallocations(due, records, as_of, ctx.policy)}
    if rules.enforcement("R-SLA-5", ctx.policy) != rules.ENFORCE:  # R-SLA-7 `record`: listed, never taken back
        back = set()
    t = Breach.__table__
    for item in due:
        conn.execute(t.update().where(t.c.assignment_id == item.assignment_id, t.c.rule_id == "R-SLA-5",
                                      t.c.resolved_at.is_(None)).values(resolved_at=item.at + grace))
    result = {"taken_back": 0, "allocated": 0, "pooled": 0, "decisions": []}
    for deadline in sorted({i.at + grace for i in due if i.assignment_id in back}):
        # the hand-over is dated at the grace deadline it follows from, however late the run
        part = take_back(conn, ctx, [{"assignment_id": i.assignment_id, "customer_id": i.customer_id,
                                      "person_id": i.person_id} for i in due
                                     if i.assignment_id in back and i.at + grace == deadline],
                         deadline, "R-SLA-5", "still no effective follow-up 7 days after the audit listing")
        for k in ("taken_back", "allocated", "pooled"):
            result[k] += part.get(k, 0)
        result["decisions"] += part.get("decisions", [])
    return {"as_of": as_of.isoformat(), **result}
