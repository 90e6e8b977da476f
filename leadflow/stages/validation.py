"""R-VAL-1 before the later stages: which registration records a stage reads, and the gate run on them."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.stages.context import StageContext
from leadflow.store import ledger
from leadflow.store.models import Assignment, Customer, Registration

# time-driven stage -> the expectation suite that guards it
SUITE_OF = {"quarterly_review": "tiering", "conversion_expiry": "conversion_expiry", "monthly_audit": "sla_check",
            "audit_grace": "sla_check", "sla_check": "sla_check"}
DECIDED = ("accepted", "attached")


class ValidationFailure(RuntimeError):
    """A later stage's records broken as a whole (R-VAL-3); one plain sentence."""


def records_in_play(conn: Connection, scope: str = "open") -> list[int]:
    """Registrations of customers with an open assignment (`open`) or waiting in the pool (`pool`)."""
    if scope == "pool":
        q = select(Registration.id).join(Customer, Customer.id == Registration.customer_id).where(
            Customer.status == "pool")
    else:
        q = select(Registration.id).join(Assignment, Assignment.customer_id == Registration.customer_id).where(
            Assignment.ended_at.is_(None))
    return sorted(set(conn.execute(q.where(Registration.status.in_(DECIDED))).scalars()))


def registrations_of(conn: Connection, customer_id: int) -> list[int]:
    return list(conn.execute(select(Registration.id).where(Registration.customer_id == customer_id)).scalars())


def check(ctx: StageContext, suite: str, ids: list[int], at: dt.datetime):
    """Run `suite` on `ids`; flagged rows go on the ledger (R-VAL-2); a broken batch fails (R-VAL-3)."""
    if ctx.gate is None or not ids:
        return None
    result = ctx.gate(suite, ids=ids)
    if result.quarantined:
        with ctx.engine.begin() as conn:
            ledger.append(conn, [ledger.entry(at, "R-VAL-2", "validation_flag",
                                              f"{suite} suite: " + ", ".join(reasons),
                                              explanation={"registration": rid, "suite": suite})
                                 for rid, reasons in sorted(result.quarantined.items())],
                          ctx.policy.version, ctx.flow_run_id)
    if result.batch_error:
        raise ValidationFailure(result.batch_error)
    return result
