"""Taking leads back and handing them on: expiry (R-CONV-2), the audit (R-SLA-5), departures (R-CONV-6)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from leadflow.stages.allocation import allocate
from leadflow.stages.context import StageContext
from leadflow.stages.roster import load_roster
from leadflow.store import ledger
from leadflow.store.models import Assignment, Customer


def end_assignments(conn: Connection, assignment_ids: list[int], at: dt.datetime, reason: str) -> None:
    if assignment_ids:
        t = Assignment.__table__
        conn.execute(t.update().where(t.c.id.in_(assignment_ids), t.c.ended_at.is_(None))
                     .values(ended_at=at, end_reason=reason))


def take_back(conn: Connection, ctx: StageContext, items: list[dict], now: dt.datetime, rule_id: str,
              reason: str, exclude_owner: bool = True) -> dict:
    """End each item's assignment (dicts: assignment_id, customer_id, person_id) and re-allocate the lead
    by the normal rotation, excluding the owner it was taken from (unless `exclude_owner` is False)."""
    if not items:
        return {"taken_back": 0, "allocated": 0, "pooled": 0, "decisions": []}
    end_assignments(conn, [i["assignment_id"] for i in items if i["assignment_id"] is not None], now, rule_id)
    ct = Customer.__table__
    conn.execute(ct.update().where(ct.c.id == bindparam("cid")).values(
        status="pool", owner_id=None, department_id=None, pooled_at=None, converted_at=None),
        [{"cid": i["customer_id"]} for i in items])
    ledger.append(conn, [ledger.entry(now, rule_id, "take_back", reason, customer_id=i["customer_id"],
                                      from_person_id=i["person_id"]) for i in items],
                  ctx.policy.version, ctx.flow_run_id)
    tiers = dict(conn.execute(select(ct.c.id, ct.c.tier).where(ct.c.id.in_([i["customer_id"] for i in items]))).all())
    leads = [{"id": i["customer_id"], "tier": tiers[i["customer_id"]], "pooled_at": None,
              "from_person": i["person_id"]} for i in items]
    exclude = {i["customer_id"]: frozenset({i["person_id"]}) for i in items if exclude_owner and i["person_id"]}
    result = allocate(conn, ctx, now, load_roster(conn, ctx.policy, now), leads, exclude,
                      kind="reallocation", reason=f"re-allocated after {rule_id}"
                      + (", excluding the previous owner" if exclude_owner else ""))
    return {"taken_back": len(items), **result}
