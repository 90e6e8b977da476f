"""What salespeople record about a customer: contacts, entries, follow-ups, sales steps; phone links."""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.rules.registration import mask_phone, normalise_phone
from leadflow.stages.context import StageContext
from leadflow.store import ledger
from leadflow.store.models import Activity, Assignment, CustomerPhone

KINDS = ("contact", "crm_entry", "call_register", "abcd_entry", "follow_up", "sales_step")
log = logging.getLogger("leadflow.activities")


def record(conn: Connection, ctx: StageContext, customer_id: int, person_id: str, kind: str, at: dt.datetime,
           step: int | None = None) -> None:
    conn.execute(Activity.__table__.insert().values(customer_id=customer_id, person_id=person_id, kind=kind,
                                                    step=step, at=at))
    if kind == "sales_step" and step is not None and step >= ctx.policy.conversion.exempt_step:
        # R-CONV-2: reaching step 4 exempts the owner's assignment for good (and travels with an exchange).
        t = Assignment.__table__
        conn.execute(t.update().where(t.c.customer_id == customer_id, t.c.person_id == person_id,
                                      t.c.ended_at.is_(None)).values(exempt=True))


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
    conn.execute(CustomerPhone.__table__.insert().values(phone=phone, customer_id=customer_id, relation=relation,
                                                         linked_at=at))
    rule = "R-REG-5" if relation == "alias" else "R-REG-6"
    ledger.append(conn, [ledger.entry(at, rule, "link", f"{relation} {mask_phone(phone)} linked",
                                      customer_id=customer_id)], ctx.policy.version, ctx.flow_run_id)
    return True
