"""Taking leads back and handing them on: expiry (R-CONV-2), the audit (R-SLA-5), departures (R-CONV-6)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.stages.allocation import allocate
from leadflow.stages.context import StageContext
from leadflow.stages.roster import load_roster
from leadflow.store import ledger, references
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
    False): one roster load and one `allocate` for them all, and a tier read only for items without one.

    The customers leave their owners and the take-back's ledger rows are written inside that `allocate`
    (`taken_back`): each customer row is written once, with where the lead went (its new owner or the pool),
    and one ledger COPY holds the take-backs ahead of the allocations, in the same order as before (issue 10:
    two UPDATEs of the same scattered customer rows and two COPYs were a third of a conversion-expiry day)."""
    if not items:
        return {"taken_back": 0, "allocated": 0, "pooled": 0, "decisions": []}
    end_assignments(conn, [i["assignment_id"] for i in items if i["assignment_id"] is not None], now, rule_id)
    ct = Customer.__table__
    entries = [ledger.entry(now, rule_id, "take_back", i.get("reason", reason), customer_id=i["customer_id"],
                            from_person_id=i["person_id"]) for i in items]
    # every lead's customer proved once, here, for the assignments and ledger rows written below (the ledger's
    # check of all of them would otherwise repeat the assignments' check of the re-allocated ones)
    references.check(conn, "ledger", entries)
    tiers = {i["customer_id"]: i["tier"] for i in items if i.get("tier") is not None}
    unread = sorted({i["customer_id"] for i in items} - set(tiers))
    for k in range(0, len(unread), CHUNK):
        tiers.update(conn.execute(select(ct.c.id, ct.c.tier).where(ct.c.id.in_(unread[k:k + CHUNK]))).all())
    leads = [{"id": i["customer_id"], "tier": tiers[i["customer_id"]], "pooled_at": None,
              "from_person": i["person_id"]} for i in items]
    exclude = {i["customer_id"]: frozenset({i["person_id"]}) for i in items if exclude_owner and i["person_id"]}
    result = allocate(conn, ctx, now, load_roster(conn, ctx.policy, now), leads, exclude,
                      kind="reallocation", reason=f"re-allocated after {rule_id}"
                      + (", excluding the previous owner" if exclude_owner else ""), taken_back=entries)
    return {"taken_back": len(items), **result}
