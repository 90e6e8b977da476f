"""Taking leads back and handing them on: expiry (R-CONV-2), the audit (R-SLA-5), departures (R-CONV-6)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.stages.allocation import allocate
from leadflow.stages.context import StageContext
from leadflow.stages.roster import load_roster
from leadflow.store import ledger
from leadflow.store.models import Assignment, Customer


CHUNK = 5000


def end_assignments(conn: Connection, assignment_ids: list[int], at: dt.datetime, reason: str) -> None:
    t = Assignment.__table__
    for k in range(0, len(assignment_ids), CHUNK):
        conn.execute(t.update().where(t.c.id.in_(assignment_ids[k:k + CHUNK]), t.c.ended_at.is_(None))
                     .values(ended_at=at, end_reason=reason))


def take_back(conn: Connection, ctx: StageContext, items: list[dict], now: dt.datetime, rule_id: str,
              reason: str, exclude_owner: bool = True) -> dict:
    """End each item's assignment (dicts: assignment_id, customer_id, person_id, optionally its own `reason`,
    else `reason`, and the customer's current `tier` when the caller read it) and re-allocate the leads by the
    normal rotation, in the order given, excluding the owner each was taken from (unless `exclude_owner` is
    False): one roster load and one `allocate` for them all, and a tier read only for items without one."""
    if not items:
        return {"taken_back": 0, "allocated": 0, "pooled": 0, "decisions": []}
    end_assignments(conn, [i["assignment_id"] for i in items if i["assignment_id"] is not None], now, rule_id)
    ct = Customer.__table__
    ids = sorted({i["customer_id"] for i in items})
    chunks = [ids[k:k + CHUNK] for k in range(0, len(ids), CHUNK)]
    for chunk in chunks:  # the same values for every lead: one UPDATE per 5,000, not one round trip per lead
        conn.execute(ct.update().where(ct.c.id.in_(chunk)).values(
            status="pool", owner_id=None, department_id=None, pooled_at=None, converted_at=None))
    ledger.append(conn, [ledger.entry(now, rule_id, "take_back", i.get("reason", reason),
                                      customer_id=i["customer_id"], from_person_id=i["person_id"]) for i in items],
                  ctx.policy.version, ctx.flow_run_id)
    tiers = {i["customer_id"]: i["tier"] for i in items if i.get("tier") is not None}
    unread = sorted({i["customer_id"] for i in items} - set(tiers))
    for k in range(0, len(unread), CHUNK):
        tiers.update(conn.execute(select(ct.c.id, ct.c.tier).where(ct.c.id.in_(unread[k:k + CHUNK]))).all())
    leads = [{"id": i["customer_id"], "tier": tiers[i["customer_id"]], "pooled_at": None,
              "from_person": i["person_id"]} for i in items]
    exclude = {i["customer_id"]: frozenset({i["person_id"]}) for i in items if exclude_owner and i["person_id"]}
    result = allocate(conn, ctx, now, load_roster(conn, ctx.policy, now), leads, exclude,
                      kind="reallocation", reason=f"re-allocated after {rule_id}"
                      + (", excluding the previous owner" if exclude_owner else ""))
    return {"taken_back": len(items), **result}
