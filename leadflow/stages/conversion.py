"""Conversion expiry (R-CONV-1, R-CONV-2, R-SUSP-7): unconverted leads are taken back at the end of their period."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.engine import Connection

from leadflow.memory import bulk_work
from leadflow.rules import conversion as rules
from leadflow.rules.sla import with_grace, without_grace
from leadflow.stages.context import StageContext
from leadflow.stages.reassign import take_back
from leadflow.stages.validation import held_customers
from leadflow.store import ledger, references
from leadflow.store.bulk import insert_rows
from leadflow.store.models import Activity, Assignment, Bar, Customer, Deal

STAGE = "conversion_expiry"


def load_cases(conn: Connection, ctx: StageContext, upto: dt.datetime | None = None) -> list[tuple]:
    """Open, non-exempt, salesperson-held assignments of unconverted customers, with their expiry.

    `upto`: only those whose conversion clock started early enough for the period to have ended by `upto`
    (`started_by`: an indexed scope, not a judgment — the rule computes each expiry); None: all of them."""
    step = ctx.policy.conversion.exempt_step
    step4 = (select(func.min(Activity.at)).where(Activity.customer_id == Assignment.customer_id,
                                                 Activity.person_id == Assignment.person_id,
                                                 Activity.kind == "sales_step", Activity.step >= step,
                                                 Activity.at >= Assignment.started_at)
             .correlate(Assignment).scalar_subquery())
    q = (select(Assignment.id, Assignment.customer_id, Assignment.person_id, Customer.tier,
                Assignment.clock_start, Assignment.exempt, Customer.converted_at, step4,
                Assignment.retiered_at)
         .join(Customer, Customer.id == Assignment.customer_id)
         .where(Assignment.ended_at.is_(None), Assignment.exempt.is_(False),
                Assignment.kind != "manager", Customer.status == "assigned",
                Customer.id.not_in(held_customers("conversion_expiry"))))  # R-VAL-2
    if upto is not None:
        bound = started_by(upto, ctx.policy)
        if bound is None:
            return []
        q = q.where(Assignment.clock_start <= bound)
    cases = []
    for r in conn.execute(q).all():
        case = rules.ExpiryCase(assignment_id=r[0], customer_id=r[1], person_id=r[2], tier=r[3], clock_start=r[4],
                                exempt=r[5], converted_at=r[6], step4_at=r[7], retiered_at=r[8])
        expiry = rules.expires_at(r[4], r[3], ctx.policy, retiered_at=r[8])
        if expiry is not None:
            cases.append((expiry, case))
    return cases


def started_by(upto: dt.datetime, policy) -> dt.datetime | None:
    """The latest conversion-clock start whose period can have ended by `upto` (R-CONV-1): no period is
    shorter than `rules.shortest_period`, and a re-tier only ever moves an expiry later (R-TIER-5).
    None when no tier has a period."""
    period = rules.shortest_period(policy)
    return None if period is None else upto - period


# What `next_due` reads, built once (every run asks it): the scope of `load_cases`, only the columns an expiry
# is computed from (R-CONV-1, R-TIER-5); `_next_expiries` adds the bounds on the clock start.
_NEXT_EXPIRIES = (select(Assignment.clock_start, Customer.tier, Assignment.retiered_at)
                  .join(Customer, Customer.id == Assignment.customer_id)
                  .where(Assignment.ended_at.is_(None), Assignment.exempt.is_(False),
                         Assignment.kind != "manager", Customer.status == "assigned",
                         Customer.id.not_in(held_customers(STAGE))))  # R-VAL-2

_BY_PERIOD: dict[tuple, object] = {}


def _next_expiries(policy):
    """`_NEXT_EXPIRIES` with one clock-start bound per period length instead of the shortest for all: the tiers
    of `m` months, bound `b<m>` (`rules.period_floor(m)` before the horizon). Built once per set of periods.
    Returns (statement, {m: tiers}); no tier with a period: (None, {})."""
    groups: dict[int, list[str]] = {}
    for tier, months in sorted(policy.conversion.period_months.items()):
        if months is not None:
            groups.setdefault(months, []).append(tier)
    key = tuple(sorted((m, tuple(t)) for m, t in groups.items()))
    q = _BY_PERIOD.get(key)
    if q is None and groups:
        q = _BY_PERIOD[key] = _NEXT_EXPIRIES.where(
            Assignment.clock_start <= bindparam(f"b{min(groups)}"),  # the shortest's: an indexed range to scan
            or_(*(and_(Customer.tier.in_(tiers), Assignment.clock_start <= bindparam(f"b{m}"))
                  for m, tiers in sorted(groups.items()))))
    return q, groups


def next_due(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    """The earliest expiry, acted on once the evidence grace has passed (R-SLA-7: a step 4 made before it may
    still arrive), or the earliest dormant return.

    Exact when that instant is at or before `horizon`; otherwise None or a later instant (the catch-up acts only
    on what is due by its horizon). The read is scoped by a bound on the clock start per period length (a tier
    of m months expires no sooner than `rules.period_floor(m)` after it; the rule still computes each expiry),
    so it does not grow with every open lead of the store: a 10-month lead is not read from its sixth month."""
    policy = ctx.policy
    q, groups = _next_expiries(policy)
    upto = without_grace(horizon, policy)
    expiries = [] if q is None else [
        rules.expires_at(start, tier, policy, retiered_at=retiered)
        for start, tier, retiered in conn.execute(q, {f"b{m}": upto - rules.period_floor(m) for m in groups})]
    return min([with_grace(e, policy) for e in expiries if e is not None]
               + [t for t in [next_dormant(conn, ctx, horizon)] if t is not None], default=None)


@bulk_work()  # a run's rows are alive together: collect cycles less often (leadflow.memory)
def run(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> dict:
    """Take back every lead whose period ended by `as_of` with no deal and no step 4 (R-CONV-2), once the
    evidence grace after the expiry has passed (R-SLA-7); the take-back is dated at the expiry.

    The leads expiring at one instant are barred (R-SUSP-7), taken back and re-allocated together: one bar
    write, one roster load and one `allocate` per instant, however many leads (each excludes its owner)."""
    due = [(e, c) for e, c in load_cases(conn, ctx, without_grace(as_of, ctx.policy))
           if with_grace(e, ctx.policy) <= as_of]
    # the take-backs' ledger rows and new assignments name these customers, read here: proved (R-ALLOC-7)
    references.proved(conn, {"customers": [c.customer_id for _, c in due]})
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
        for i in range(0, len(exempt), 5000):
            conn.execute(t.update().where(t.c.id.in_(exempt[i:i + 5000])).values(exempt=True))
    back.sort(key=lambda x: (x[0], x[1].assignment_id))
    by_expiry: dict[dt.datetime, list[rules.ExpiryCase]] = {}
    for expiry, case in back:  # grouped in one pass, in time order (not one scan of `back` per instant)
        by_expiry.setdefault(expiry, []).append(case)
    results = []
    for expiry, cases in by_expiry.items():
        _bars(conn, ctx, [(c.person_id, c.tier) for c in cases], expiry)
        # the customer's tier was read with the case (`load_cases`): take_back need not read it again
        results.append(take_back(conn, ctx, [{"assignment_id": c.assignment_id, "customer_id": c.customer_id,
                                              "person_id": c.person_id, "tier": c.tier,
                                              "reason": f"conversion period of tier {c.tier} ended without a deal "
                                                        "or step 4"} for c in cases], expiry, "R-CONV-2",
                                 "conversion period ended without a deal or step 4"))
    dormant = run_dormant(conn, ctx, as_of)  # R-CONV-5 runs with the expiry flow
    return {"as_of": as_of.isoformat(), "expired": len(back), "exempted": len(exempt),
            "returned_dormant": dormant["returned"],
            "decisions": [d for r in results for d in r["decisions"]] + dormant["decisions"],
            "taken_back": [{"customer_id": c.customer_id, "from": c.person_id, "tier": c.tier,
                            "expired_at": e.isoformat()} for e, c in back]}


def _bars(conn: Connection, ctx: StageContext, pairs: list[tuple[str, str]], at: dt.datetime) -> None:
    """R-SUSP-7: no more leads of that tier until the person closes one; (person, tier) pairs already barred
    keep their bar. One read, one insert, one ledger append."""
    pairs = list(dict.fromkeys(pairs))
    if not pairs:
        return
    barred = set(conn.execute(select(Bar.person_id, Bar.tier).where(
        Bar.person_id.in_(sorted({p for p, _ in pairs})), Bar.lifted_at.is_(None))).all())
    new = [(p, t) for p, t in pairs if (p, t) not in barred]
    insert_rows(conn, Bar.__table__, [{"person_id": p, "tier": t, "since": at} for p, t in new])
    ledger.append(conn, [ledger.entry(at, "R-SUSP-7", "bar", f"no more {t} leads until a {t} close", person_id=p)
                         for p, t in new], ctx.policy.version, ctx.flow_run_id)


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
