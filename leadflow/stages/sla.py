"""The follow-up SLA check (R-SLA-1..4, R-SLA-6) with its penalties (R-SUSP-3, R-SUSP-5)."""
from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from leadflow.clock import local
from leadflow.rules import sla as rules
from leadflow.stages.context import StageContext
from leadflow.stages.marks import get_mark, set_mark
from leadflow.stages.people import fine, pause_person
from leadflow.store import ledger
from leadflow.store.models import Activity, Assignment, Breach

STAGE = "sla_check"
WINDOW = dt.timedelta(days=21)  # obligations fall due within days of the hand-over; holidays included
TICK = dt.timedelta(microseconds=1)


def load_obligations(conn: Connection, as_of: dt.datetime) -> list:
    """Bound assignments that started recently enough to still have an obligation falling due."""
    rows = conn.execute(select(Assignment.id, Assignment.customer_id, Assignment.person_id, Assignment.tier,
                               Assignment.started_at, Assignment.ended_at, Assignment.bound)
                        .where(Assignment.bound.is_(True), Assignment.started_at > as_of - WINDOW)).all()
    return [rules.Obligation(*r) for r in rows]


def load_records(conn: Connection, customer_ids: list[int]) -> list:
    out = []
    for i in range(0, len(customer_ids), 5000):
        chunk = customer_ids[i:i + 5000]
        out += [rules.Record(*r) for r in conn.execute(
            select(Activity.customer_id, Activity.person_id, Activity.kind, Activity.at)
            .where(Activity.customer_id.in_(chunk)))]
    return out


def next_due(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    """When the check next has something to record: just after the earliest unmet deadline."""
    mark = get_mark(conn, STAGE)
    if mark is None:
        return None
    obligations = load_obligations(conn, horizon)
    records = load_records(conn, sorted({o.customer_id for o in obligations}))
    deadline = rules.next_deadline(obligations, records, mark - TICK, ctx.policy)
    return None if deadline is None else deadline + TICK


def run(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> dict:
    """Record every breach whose deadline passed before `as_of`, once (R-SLA-6), and its penalty."""
    obligations = load_obligations(conn, as_of)
    records = load_records(conn, sorted({o.customer_id for o in obligations}))
    found = rules.breaches(obligations, records, as_of, ctx.policy)
    keys = {f"{b.assignment_id}:{b.rule_id}": b for b in found}
    have = set(conn.execute(select(Breach.key).where(Breach.key.in_(list(keys))))) if keys else set()
    have = {k for (k,) in have}
    new = sorted((b for k, b in keys.items() if k not in have), key=lambda b: (b.at, b.assignment_id, b.rule_id))
    penalties = Counter()
    for b in new:
        key = f"{b.assignment_id}:{b.rule_id}"
        conn.execute(Breach.__table__.insert().values(key=key, customer_id=b.customer_id, person_id=b.person_id,
                                                      assignment_id=b.assignment_id, rule_id=b.rule_id, at=b.at))
        ledger.append(conn, [ledger.entry(b.at, b.rule_id, "breach", f"{b.rule_id} deadline missed",
                                          customer_id=b.customer_id, person_id=b.person_id)],
                      ctx.policy.version, ctx.flow_run_id)
        p = rules.penalties(b.rule_id, _ordinal_in_month(conn, ctx, b), ctx.policy)
        if p.fine_yuan:
            rule = "R-SUSP-3"
            fine(conn, ctx, b.person_id, p.fine_yuan, b.at, rule, f"late entry ({b.rule_id})", source_key=key)
            penalties["fines"] += 1
        if p.pause_rounds:
            rule = "R-SUSP-5" if b.rule_id == "R-SLA-1" else "R-SUSP-3"
            pause_person(conn, ctx, b.person_id, b.at, p.pause_rounds, rule, f"penalty for {b.rule_id}")
            penalties["pauses"] += 1
    set_mark(conn, STAGE, as_of)
    return {"as_of": as_of.isoformat(), "breaches": len(new), **penalties,
            "rows": [{"customer_id": b.customer_id, "person_id": b.person_id, "rule_id": b.rule_id,
                      "at": b.at.isoformat()} for b in new]}


def _ordinal_in_month(conn: Connection, ctx: StageContext, b) -> int:
    """R-SUSP-3: late entries of a kind are counted per calendar month of the deadline."""
    start = local(b.at, ctx.policy).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return conn.execute(select(func.count()).select_from(Breach).where(
        Breach.person_id == b.person_id, Breach.rule_id == b.rule_id, Breach.at >= start,
        Breach.at <= b.at)).scalar()
