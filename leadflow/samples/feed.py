"""The sample organisation at work on a store: the activity due for the leads it was allocated, delivered as its
systems would — export files through `record_file` (the main job's first days) or a push through
`record_events` (the live `sample-activity` deployment).

Activity is planned from the allocations on record (`leadflow.samples.activity.plan`), so only leads that
reached an owner get any; each planned row has a stable event id, so a row is delivered once however often
the feed runs (rows already in the events table are left out, and a repeat would be a duplicate anyway).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from leadflow import engine
from leadflow.clock import local
from leadflow.events.api import record_events, record_file
from leadflow.policy import Policy
from leadflow.rules import sla as sla_rules
from leadflow.samples.activity import HORIZON, SEED, Allocation, leaves, plan
from leadflow.samples.exports import write_exports
from leadflow.stages.context import StageContext, get_meta
from leadflow.stages.roster import load_paused
from leadflow.store.models import Assignment, Breach, Customer, Event, Person, Registration

SOURCE = "sample-activity"
# The live feed runs every EVERY and delivers what is due up to LOOKAHEAD ahead: records a few minutes ahead are
# within the events' clock skew (`leadflow.events.normalise.CLOCK_SKEW`, 5 min), so an owner's contact made in
# time reaches LeadFlow before the SLA check passes its deadline (and is not a breach revoked later, R-SLA-7).
EVERY = dt.timedelta(minutes=2)
LOOKAHEAD = dt.timedelta(minutes=3)
EXPORT_EVERY = dt.timedelta(hours=4)  # the first days' exports; every deadline in between is a delivery too
CHUNK = 5000


def allocations(conn: Connection, since: dt.datetime, until: dt.datetime) -> list[Allocation]:
    """Assignments bound by the SLAs that started in (since, until], named as the events name their customer."""
    rows = conn.execute(select(Assignment.customer_id, Assignment.person_id, Assignment.started_at, Assignment.tier,
                               Assignment.ended_at, Customer.amount_yuan, Customer.ref)
                        .join(Customer, Customer.id == Assignment.customer_id)
                        .where(Assignment.bound.is_(True), Assignment.started_at > since,
                               Assignment.started_at <= until)
                        .order_by(Assignment.started_at, Assignment.id)).all()
    keys = _external_refs(conn, sorted({r.customer_id for r in rows}))
    return [Allocation(r.ref or keys.get(r.customer_id) or str(r.customer_id), r.person_id, r.started_at, r.tier,
                       r.amount_yuan, r.ended_at) for r in rows]


def _external_refs(conn: Connection, customer_ids: list[int]) -> dict[int, str]:
    """customer id -> the external reference of the first accepted registration that has one."""
    out: dict[int, str] = {}
    for i in range(0, len(customer_ids), CHUNK):
        for cid, ref in conn.execute(select(Registration.customer_id, Registration.external_ref)
                                     .where(Registration.customer_id.in_(customer_ids[i:i + CHUNK]),
                                            Registration.status == "accepted", Registration.external_ref.is_not(None))
                                     .order_by(Registration.id.desc())):
            out[cid] = ref
    return out


def _leave_rows(conn: Connection, policy: Policy, since: dt.datetime, until: dt.datetime, seed: int) -> list[dict]:
    """HR's leave rows for the working days after the store's first day, up to `until`."""
    first = get_meta(conn, "records_begin")
    if first is None:
        return []
    day = max(dt.date.fromisoformat(first) + dt.timedelta(days=1), local(since, policy).date())
    sales = list(conn.execute(select(Person.id).where(Person.role == "sales", Person.active.is_(True))).scalars())
    rows = []
    while day <= local(until, policy).date():
        rows += leaves(sales, day, policy, seed)
        day += dt.timedelta(days=1)
    return rows


_PLANS: dict[tuple, list[dict]] = {}  # (allocation, seed, policy version) -> its rows: the feed asks again and again


def _plan(a: Allocation, policy: Policy, seed: int) -> list[dict]:
    key = (a, seed, policy.version)
    if key not in _PLANS:
        if len(_PLANS) > 50_000:
            _PLANS.clear()
        _PLANS[key] = plan(a, policy, seed)
    return _PLANS[key]


def due(conn: Connection, policy: Policy, as_of: dt.datetime, seed: int = SEED,
        lookahead: dt.timedelta = dt.timedelta(0)) -> list[dict]:
    """Planned rows dated up to `as_of + lookahead` not delivered yet, by time."""
    until, since = as_of + lookahead, as_of - HORIZON
    rows = [r for a in allocations(conn, since, as_of) for r in _plan(a, policy, seed)]
    rows = [r for r in rows + _leave_rows(conn, policy, since, until, seed) if r["at"] <= until]
    ids = [r["event_id"] for r in rows]
    known: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        known |= set(conn.execute(select(Event.source_event_id).where(Event.source_event_id.in_(ids[i:i + CHUNK])))
                     .scalars())
    return sorted((r for r in rows if r["event_id"] not in known), key=lambda r: (r["at"], r["event_id"]))


def deliver(ctx: StageContext, as_of: dt.datetime, *, seed: int = SEED, folder: Path | None = None,
            lookahead: dt.timedelta = dt.timedelta(0)) -> dict:
    """Record what is due at `as_of`: as export files in `folder` (each through `record_file`), or pushed through
    `record_events`. Returns {"as_of", "rows", "files", "applied", "duplicate", "waiting", "refused", "reasons"}."""
    with ctx.engine.connect() as conn:
        rows = due(conn, ctx.policy, as_of, seed, lookahead)
    out = {"as_of": as_of, "rows": len(rows), "files": [], "applied": 0, "duplicate": 0, "waiting": 0, "refused": 0,
           "reasons": {}}
    if not rows:
        return out
    if folder is None:
        summaries = [record_events(rows, as_of=as_of, source=SOURCE, operator=SOURCE, ctx=ctx)]
    else:
        stamp = local(as_of, ctx.policy).strftime("%Y-%m-%d-%H%M%S")  # dashes: not masked as a phone (R-REG-7)
        paths = write_exports(rows, folder, stamp, ctx.policy)
        out["files"] = [p.name for p in paths]
        summaries = [record_file(p, as_of=as_of, operator=SOURCE, ctx=ctx) for p in paths]
    for s in summaries:
        for k in ("applied", "duplicate", "waiting", "refused"):
            out[k] += s[k] or 0
        for reason, n in s["reasons"].items():
            out["reasons"][reason] = out["reasons"].get(reason, 0) + n
    return out


def next_stop(conn: Connection, policy: Policy, after: dt.datetime, until: dt.datetime,
              every: dt.timedelta = EXPORT_EVERY) -> dt.datetime:
    """The next delivery time: the earliest SLA deadline after `after` of a recent allocation (so records made in
    time reach LeadFlow before the check passes it), else `after + every`, at most `until`."""
    stop = min(after + every, until)
    rows = conn.execute(select(Assignment.id, Assignment.customer_id, Assignment.person_id, Assignment.tier,
                               Assignment.started_at, Assignment.ended_at, Assignment.bound)
                        .where(Assignment.bound.is_(True), Assignment.started_at > after - HORIZON,
                               Assignment.started_at <= after))
    for r in rows:
        ob = sla_rules.Obligation(r.id, r.customer_id, r.person_id, r.tier, r.started_at, r.ended_at, r.bound)
        for deadline in sla_rules.deadlines(ob, policy).values():
            if after < deadline < stop:
                stop = deadline
    return stop


def backfill(ctx: StageContext, start: dt.datetime, end: dt.datetime, *, seed: int = SEED,
             folder: Path | None = None, every: dt.timedelta = EXPORT_EVERY) -> list[dict]:
    """Deliver the activity of (start, end] as its systems export it: at every deadline, at `end`, and at least
    `every` (a delivery with nothing due is no run)."""
    out, t = [], start
    while t < end:
        with ctx.engine.connect() as conn:
            stop = max(next_stop(conn, ctx.policy, t, end, every), engine.clock(conn) or t)  # never back in time
        out.append(deliver(ctx, stop, seed=seed, folder=folder))
        t = stop
    return out


def standing(conn: Connection, policy: Policy, as_of: dt.datetime) -> dict:
    """How the sample organisation stands: salespeople with paused rounds (R-SUSP-5 and others) in any tier, and
    in the tier of their own grade (the rotation they take their turns in: a pause of a tier below it is used
    up only when nobody of that grade can take a lead, R-ALLOC-2/4), and the R-SLA-1 breaches so far."""
    sales = dict(conn.execute(select(Person.id, Person.grade).where(Person.role == "sales",
                                                                    Person.active.is_(True))).all())
    pauses = load_paused(conn)
    paused = sorted(p for p, tiers in pauses.items() if p in sales and tiers)
    own = [p for p in paused if pauses[p].get(sales[p] or "below_d")]
    count = select(func.count())
    bound = conn.execute(count.select_from(Assignment).where(Assignment.bound.is_(True),
                                                             Assignment.started_at <= as_of)).scalar()
    first_contact = conn.execute(count.select_from(Breach).where(Breach.rule_id == "R-SLA-1",
                                                                 Breach.revoked_at.is_(None))).scalar()
    return {"salespeople": len(sales), "paused": len(paused), "paused_own_tier": len(own), "allocations": bound,
            "first_contact_breaches": first_contact}
