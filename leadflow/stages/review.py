"""The quarterly review (R-TIER-5): re-tier open customers, re-judge grades and ranks (R-TIER-4)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from leadflow.clock import local, month_starts_between, sales_year
from leadflow.policy import UNRANKED_TIERS
from leadflow.rules.tiers import Close, judge_grades, records_cover_previous_year, tier_for
from leadflow.stages.context import StageContext, get_meta
from leadflow.stages.marks import get_mark, set_mark
from leadflow.stages.validation import held_customers
from leadflow.store import ledger
from leadflow.store.models import Assignment, Customer, Deal, Person

STAGE = "quarterly_review"
QUARTER_MONTHS = (1, 4, 7, 10)


def next_due(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    mark = get_mark(conn, STAGE)
    if mark is None:
        return None
    times = month_starts_between(mark, horizon, ctx.policy, QUARTER_MONTHS)
    return times[0] if times else None


def run(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> dict:
    """Re-tier from the latest amount under the policy in force; never move a lead by itself."""
    retiered = retier(conn, ctx, as_of)
    graded = regrade(conn, ctx, as_of)
    set_mark(conn, STAGE, as_of)
    return {"as_of": as_of.isoformat(), "retiered": retiered, "regraded": graded}


def retier(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> list[dict]:
    rows = conn.execute(select(Customer.id, Customer.tier, Customer.amount_yuan, Customer.target)
                        .where(Customer.status.in_(("assigned", "pool")),
                               Customer.id.not_in(held_customers("tiering")))).all()  # R-VAL-2
    changes = []
    for cid, old, amount, target in rows:
        if old in UNRANKED_TIERS:
            continue  # only a hand-on or a re-application gives these a tier
        new = tier_for(amount, target, ctx.policy.tiers)
        if new != old:
            changes.append({"cid": cid, "old": old, "new": new})
    if changes:
        ct, at_ = Customer.__table__, Assignment.__table__
        conn.execute(ct.update().where(ct.c.id == bindparam("cid")).values(tier=bindparam("new"), tiered_at=as_of),
                     changes)
        conn.execute(at_.update().where(at_.c.customer_id == bindparam("cid"), at_.c.ended_at.is_(None))
                     .values(tier=bindparam("new"), retiered_at=as_of), changes)
        ledger.append(conn, [ledger.entry(as_of, "R-TIER-5", "retier", f"re-tiered {c['old']} -> {c['new']}",
                                          customer_id=c["cid"]) for c in changes],
                      ctx.policy.version, ctx.flow_run_id)
    return changes


def regrade(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> list[dict]:
    """R-TIER-4: grades and ranks the closes on record justify."""
    policy = ctx.policy
    people = {p: g for p, g in conn.execute(select(Person.id, Person.grade)
                                            .where(Person.role == "sales", Person.active.is_(True)))}
    closes = [Close(p, t, a, sales_year(at, policy)) for p, t, a, at in
              conn.execute(select(Deal.closer_id, Deal.tier, Deal.amount_yuan, Deal.at))]
    year = sales_year(as_of, policy)
    year_start = local(as_of, policy).replace(year=year, month=policy.sales_year_start_month, day=1).date()
    begun = policy.grading.records_begin or _records_begin(conn)
    whole_year = begun is not None and records_cover_previous_year(begun, year_start)
    judged = judge_grades(people, closes, year, whole_year, policy.grading.closes_for_grade)
    ranks = dict(conn.execute(select(Person.id, Person.rank)).all())
    changes = [{"pid": p, "g": j.grade, "r": j.rank, "why": j.reason} for p, j in judged.items()
               if (j.grade, j.rank) != (people[p], ranks.get(p)) and not j.reason.startswith("org-chart")]
    if changes:
        pt = Person.__table__
        conn.execute(pt.update().where(pt.c.id == bindparam("pid")).values(grade=bindparam("g"), rank=bindparam("r"),
                                                                          graded_at=as_of), changes)
        ledger.append(conn, [ledger.entry(as_of, "R-TIER-4", "regrade", f"grade {c['g'] or 'ungraded'} "
                                          f"rank {c['r'] or '-'}: {c['why']}", person_id=c["pid"]) for c in changes],
                      policy.version, ctx.flow_run_id)
    return changes


def _records_begin(conn: Connection) -> dt.date | None:
    value = get_meta(conn, "records_begin")
    return dt.datetime.fromisoformat(value).date() if value else None
