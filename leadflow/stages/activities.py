"""What salespeople record about a customer: contacts, entries, follow-ups, sales steps; phone links."""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from leadflow.rules.registration import mask_phone, normalise_phone
from leadflow.stages.context import StageContext
from leadflow.store import ledger, references
from leadflow.store.models import Activity, Assignment, CustomerPhone

KINDS = ("contact", "crm_entry", "call_register", "abcd_entry", "follow_up", "sales_step")
log = logging.getLogger("leadflow.activities")
# Built once: every delivery of records runs them.
_INSERT = Activity.__table__.insert()
_EXEMPT = Assignment.__table__.update().where(
    Assignment.__table__.c.customer_id == bindparam("cid"), Assignment.__table__.c.person_id == bindparam("pid"),
    Assignment.__table__.c.ended_at.is_(None)).values(exempt=True)


def record(conn: Connection, ctx: StageContext, customer_id: int, person_id: str, kind: str, at: dt.datetime,
           step: int | None = None) -> None:
    """One record (R-SLA-1..5, R-CONV-2); see `record_many`."""
    record_many(conn, ctx, [{"customer_id": customer_id, "person_id": person_id, "kind": kind, "step": step,
                             "at": at, "recorded_at": None, "event_id": None}])


def record_many(conn: Connection, ctx: StageContext, rows: list[dict]) -> int:
    """Write records in bulk: dicts with customer_id, person_id, kind (KINDS), step, at, recorded_at, event_id.

    R-CONV-2: a sales step at or past the policy's `exempt_step` exempts the recorder's open assignment
    for good (the exemption travels with an exchange). Two statements, whatever the number of rows.
    """
    if not rows:
        return 0
    conn.execute(_INSERT, [{k: r.get(k) for k in ("customer_id", "person_id", "kind", "step",
                                                                         "at", "recorded_at", "event_id")}
                                               for r in rows])
    steps = {(r["customer_id"], r["person_id"]) for r in rows
             if r["kind"] == "sales_step" and r.get("step") is not None and r["step"] >= ctx.policy.conversion.exempt_step}
    if steps:
        conn.execute(_EXEMPT, [{"cid": c, "pid": p} for c, p in sorted(steps)])
    return len(rows)


def link_phone(conn: Connection, ctx: StageContext, customer_id: int | None, raw_phone: str, relation: str,
               at: dt.datetime) -> bool:
    """R-REG-5 (alias) and R-REG-6 (household): later registrations of the number attach to the customer."""
    if customer_id is None:
        return False
    phone, kind = normalise_phone(str(raw_phone))
    if kind not in ("mobile", "landline"):
        log.warning("link refused: %s is not a phone number", mask_phone(phone))
        return False
    holder = conn.execute(select(CustomerPhone.customer_id).where(CustomerPhone.phone == phone)).scalar()
    if holder is not None:
        if holder != customer_id:
            log.warning("link refused: %s already belongs to another customer", mask_phone(phone))
        return False
    references.check(conn, "customer_phones", [{"customer_id": customer_id}])
    conn.execute(CustomerPhone.__table__.insert().values(phone=phone, customer_id=customer_id, relation=relation,
                                                         linked_at=at))
    rule = "R-REG-5" if relation == "alias" else "R-REG-6"
    ledger.append(conn, [ledger.entry(at, rule, "link", f"{relation} {mask_phone(phone)} linked",
                                      customer_id=customer_id)], ctx.policy.version, ctx.flow_run_id)
    return True
