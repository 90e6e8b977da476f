"""The monthly follow-up audit (R-SLA-5): list untouched leads for the manager, take them back 7 days later."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from leadflow.clock import month_starts_between
from leadflow.memory import bulk_work
from leadflow.rules import sla as rules
from leadflow.stages.context import StageContext
from leadflow.stages.marks import get_mark, set_mark
from leadflow.stages.reassign import take_back
from leadflow.stages.sla import load_records
from leadflow.stages.validation import held_customers
from leadflow.store import ledger, references
from leadflow.store.bulk import insert_rows
from leadflow.store.models import Activity, Assignment, Breach, Customer, Person

STAGE = "monthly_audit"
TICK = dt.timedelta(microseconds=1)
EFFECTIVE = ("contact", "follow_up", "sales_step")


def _candidates(conn: Connection, audit_at: dt.datetime,
                policy) -> tuple[list[rules.Holding], list[rules.Record]]:
    """The holdings the audit at `audit_at` can list (R-SLA-5), with their customers' effective records since the
    quiet window's start: open salesperson holdings of customers still in play (an exchange restarts the holding,
    R-CONV-4; R-VAL-2 holds left out), held since before `audit_at` less the held days, with no effective
    follow-up (`rules.EFFECTIVE_KINDS`) by the owner in the quiet window (audit_at less the quiet days, audit_at].

    Scope only, never wider than the rule: both bounds are elapsed time (UTC), as the rule counts them, so a
    holding left out is one `rules.audit_listings` would not list; the rule still judges every candidate with
    its records. Reading only the candidates is what keeps the audit near one statement's time: at 1 M open
    leads most holdings were followed up, and reading them all into Python cost over 10x the statement (issue 10).

    Two statements: the candidates (the anti-join), then their records by customer (`load_records`). Joined
    into one statement, the records made the database hash every effective record of the store since the
    window's start a second time and join the candidates to the customers before the anti-join: 0.35 s against
    0.19 s + 0.07 s at 300 k open leads (issue 10). The R-VAL-2 hold is tested on the assignment's customer id
    (the same id): on the customer's it made PostgreSQL join every open holding to its customer first."""
    at = audit_at.astimezone(dt.timezone.utc)
    quiet_from = at - dt.timedelta(days=policy.sla.audit_quiet_days)
    kinds = sorted(rules.EFFECTIVE_KINDS)
    followed = select(Activity.id).where(Activity.customer_id == Assignment.customer_id,
                                         Activity.person_id == Assignment.person_id, Activity.kind.in_(kinds),
                                         Activity.at > quiet_from, Activity.at <= at)
    q = (select(Assignment.id, Assignment.customer_id, Assignment.person_id, Assignment.started_at)
         .join(Customer, Customer.id == Assignment.customer_id)
         .where(Assignment.ended_at.is_(None), Assignment.kind != "manager",
                Customer.status == "assigned", Assignment.customer_id.not_in(held_customers("sla_check")),
                Assignment.started_at < at - dt.timedelta(days=policy.sla.audit_held_days),
                ~followed.exists()))
    holdings = [rules.Holding(*r) for r in conn.execute(q)]
    # the listings name these assignments' own ids, customers and owners: read here, so proved (R-SLA-5)
    references.proved(conn, {"assignments": [h.assignment_id for h in holdings],
                             "customers": [h.customer_id for h in holdings],
                             "people": [h.person_id for h in holdings]})
    return holdings, load_records(conn, [h.customer_id for h in holdings], rules.EFFECTIVE_KINDS, quiet_from)


def _listed_at(conn: Connection, audit_at: dt.datetime) -> set[str]:
    """The keys of the listings already recorded for this audit instant (R-SLA-6: each listing once): one read,
    whatever the number of holdings."""
    return set(conn.execute(select(Breach.key).where(Breach.rule_id == "R-SLA-5", Breach.at == audit_at)).scalars())


def next_audit(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    """The next 1st-of-month audit instant after the mark, acted on once the evidence grace has passed (R-SLA-7)."""
    mark = get_mark(conn, STAGE)
    if mark is None:
        return None
    times = month_starts_between(mark, rules.without_grace(horizon, ctx.policy), ctx.policy)
    return rules.with_grace(times[0], ctx.policy) if times else None


@bulk_work()  # a run's rows are alive together: collect cycles less often (leadflow.memory)
def run_audit(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> dict:
    """Every 1st-of-month instant in (mark, as_of - evidence grace]: list the untouched leads, once each (R-SLA-6);
    the mark is the last audit instant judged. R-SLA-7: the policy's switch `off` lists nothing."""
    upto = rules.without_grace(as_of, ctx.policy)
    mark = get_mark(conn, STAGE) or upto
    listed = []
    policy = ctx.policy
    for audit_at in month_starts_between(mark, upto, policy):
        if rules.enforcement("R-SLA-5", policy) == rules.OFF:
            continue
        # scope only (the rule judges): the holdings that can be listed, with their effective records since the
        # quiet window's start (only those can spare one)
        holdings, records = _candidates(conn, audit_at, policy)
        day = audit_at.date().isoformat()  # (once per instant, not per listing: tens of thousands at 1 M leads)
        found = {f"{i.assignment_id}:R-SLA-5:{day}": i
                 for i in rules.audit_listings(holdings, records, audit_at, policy)}
        done = _listed_at(conn, audit_at)
        new = [(k, i) for k, i in found.items() if k not in done]
        insert_rows(conn, Breach.__table__, [{"key": k, "customer_id": i.customer_id, "person_id": i.person_id,
                                              "assignment_id": i.assignment_id, "rule_id": "R-SLA-5",
                                              "at": audit_at} for k, i in new])
        listed += [i for _, i in new]
        ledger.append(conn, [ledger.entry(audit_at, "R-SLA-5", "audit_listing", "no effective follow-up in 30 days",
                                          customer_id=i.customer_id, person_id=i.person_id) for _, i in new],
                      policy.version, ctx.flow_run_id)
    set_mark(conn, STAGE, upto)
    return {"as_of": as_of.isoformat(), "listed": len(listed), "listing": listing_report(conn, listed)}


def listing_report(conn: Connection, listed: list) -> list[dict]:
    """EC未有效跟进记录表: the listing per department manager."""
    depts = dict(conn.execute(select(Person.id, Person.department_id)).all())
    managers: dict[str, list[str]] = {}
    for pid, dept, role in conn.execute(select(Person.id, Person.department_id, Person.role)):
        if role == "manager":
            managers.setdefault(dept, []).append(pid)
    # per department and per instant once, not per listing (tens of thousands at 1 M leads, issue 10)
    names = {dept: ", ".join(sorted(ids)) for dept, ids in managers.items()}
    stamps = {at: at.isoformat() for at in {i.at for i in listed}}
    return [{"manager": names.get(depts.get(i.person_id)) or "-", "department": depts.get(i.person_id),
             "owner": i.person_id, "customer_id": i.customer_id, "listed_at": stamps[i.at]} for i in listed]


def _open_listings(conn: Connection) -> list:
    """Listings still pending on an open holding of a lead still in play (R-SLA-5: a lead that closed
    during the grace is no longer an untouched lead and is not taken back), oldest lead first: the order they
    are handed over in (R-ALLOC-5's pool order), fixed here, not left to the query plan — an index on breaches
    once turned SQLite's plan from the customers' order to the listings' and gave the leads to other people."""
    rows = conn.execute(select(Breach.assignment_id, Breach.customer_id, Breach.person_id, Breach.at)
                        .join(Assignment, Assignment.id == Breach.assignment_id)
                        .join(Customer, Customer.id == Breach.customer_id)
                        .where(Breach.rule_id == "R-SLA-5", Breach.resolved_at.is_(None),
                               Assignment.ended_at.is_(None), Customer.status == "assigned",
                               Customer.id.not_in(held_customers("sla_check")))  # R-VAL-2
                        .order_by(Customer.created_at, Customer.id, Breach.id)).all()
    return [rules.Listing(*r) for r in rows]


# What `next_grace` reads, built once (every run asks it): `_open_listings`, bounded by the latest listing
# whose grace can have passed.
_NEXT_LISTINGS = (select(Breach.assignment_id, Breach.customer_id, Breach.person_id, Breach.at)
                  .join(Assignment, Assignment.id == Breach.assignment_id)
                  .join(Customer, Customer.id == Breach.customer_id)
                  .where(Breach.rule_id == "R-SLA-5", Breach.resolved_at.is_(None),
                         Assignment.ended_at.is_(None), Customer.status == "assigned",
                         Customer.id.not_in(held_customers("sla_check")),  # R-VAL-2
                         Breach.at <= bindparam("bound")))


def next_grace(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    """Just past the earliest open listing's 7-day deadline plus the evidence grace (R-SLA-5, R-SLA-7).

    Exact when that instant is at or before `horizon`; otherwise None or a later instant (the catch-up acts only
    on what is due by its horizon). Scope only: a listing made after `horizon` less the evidence grace and the
    7 days (elapsed time) cannot be due by then; the rule computes each deadline."""
    policy = ctx.policy
    bound = rules.without_grace(horizon, policy) - dt.timedelta(days=policy.sla.audit_grace_days)
    return min((rules.breach_due(rules.audit_deadline(rules.Listing(*r), policy), policy)
                for r in conn.execute(_NEXT_LISTINGS, {"bound": bound})), default=None)


@bulk_work()  # a run's rows are alive together: collect cycles less often (leadflow.memory)
def run_grace(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> dict:
    """Leads still untouched 7 days after their listing are re-allocated, excluding the owner."""
    listings = _open_listings(conn)
    records = load_records(conn, sorted({i.customer_id for i in listings}), rules.EFFECTIVE_KINDS,
                           min((i.at for i in listings), default=None))  # scope: follow-ups after the listing
    grace = dt.timedelta(days=ctx.policy.sla.audit_grace_days)
    due = [i for i in listings if as_of >= rules.breach_due(rules.audit_deadline(i, ctx.policy), ctx.policy)]
    back = {(i.assignment_id) for i in rules.audit_reallocations(due, records, as_of, ctx.policy)}
    if rules.enforcement("R-SLA-5", ctx.policy) != rules.ENFORCE:  # R-SLA-7 `record`: listed, never taken back
        back = set()
    t = Breach.__table__
    for at in sorted({i.at for i in due}):  # one UPDATE per audit instant, earliest first, not one per listing
        ids = sorted({i.assignment_id for i in due if i.at == at})
        for k in range(0, len(ids), 5000):
            conn.execute(t.update().where(t.c.assignment_id.in_(ids[k:k + 5000]), t.c.rule_id == "R-SLA-5",
                                          t.c.resolved_at.is_(None)).values(resolved_at=at + grace))
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
