"""Register one lead from Python (a web form, a CRM hook) through the same stage code as a file."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import time

from sqlalchemy import select

from leadflow.rules.registration import mask_phone
from leadflow.stages.context import StageContext
from leadflow import engine
from leadflow.store.models import Customer, Registration


def register_lead(lead: dict, *, now: dt.datetime | None = None, ctx: StageContext | None = None) -> dict:
    """Register `lead` (INTAKE.md's columns: channel, phone, registered_at, registered_by, …) and allocate it.

    One run of the engine at `now` (default: the current time): the clock catches up first, the lead is
    allocated when it reaches LeadFlow, and `registered_at` stays its own fact. Raises engine.ClockError
    when `now` is before the store's clock.

    Returns the outcome — status, reasons, customer id, tier, owner — with the phone masked (R-REG-7).
    Delivering the same lead twice is one registration (R-REG-4): the second comes back `attached`.
    """
    if ctx is None:
        from leadflow.wiring import stage_context

        ctx = stage_context()
    digest = hashlib.sha256(json.dumps(lead, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()
    batch_id = f"api-{digest[:16]}-{now.timestamp():.0f}" if now else f"api-{digest[:16]}-{time.time_ns()}"
    row = {**lead, "row_number": 1, "raw": {k: v for k, v in lead.items() if k != "phone"}}
    summary = engine.register(ctx, batch_id, "api", [row], now)
    with ctx.engine.connect() as conn:
        reg = conn.execute(select(Registration.status, Registration.reasons, Registration.customer_id,
                                  Registration.phone).where(Registration.batch_id == batch_id)).one()
        customer = conn.execute(select(Customer.tier, Customer.owner_id, Customer.status)
                                .where(Customer.id == reg.customer_id)).first() if reg.customer_id else None
    return {"status": reg.status, "reasons": reg.reasons or [], "customer_id": reg.customer_id,
            "phone": mask_phone(reg.phone), "tier": customer.tier if customer else None,
            "owner": customer.owner_id if customer else None, "docs": summary.get("docs")}
