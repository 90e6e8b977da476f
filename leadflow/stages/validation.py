"""R-VAL-1/2 before the later stages: which registration records a stage reads, the gate run on them, and the
holds that keep a flagged record's customer out of that stage until a later run passes the record again."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, bindparam, select
from sqlalchemy.engine import Connection

from leadflow.stages.context import StageContext
from leadflow.store import ledger
from leadflow.store.bulk import insert_rows
from leadflow.store.models import Assignment, Customer, Ledger, Registration, ValidationHold

# time-driven stage -> the expectation suite that guards it
SUITE_OF = {"quarterly_review": "tiering", "conversion_expiry": "conversion_expiry", "monthly_audit": "sla_check",
            "audit_grace": "sla_check", "sla_check": "sla_check"}
DECIDED = ("accepted", "attached")
# Suites run over every record in play: their held records are validated on every run, even a record whose
# customer left play meanwhile, so no hold outlives its fix. The dispute suite runs on one customer's records.
BATCH_SUITES = ("allocation", "tiering", "sla_check", "conversion_expiry")
UNVALIDATED = "unvalidated"  # expectations.gate.UNVALIDATED: a row the suite could not check is not a flag
CHUNK = 5000


class ValidationFailure(RuntimeError):
    """A later stage's records broken as a whole (R-VAL-3); one plain sentence."""


def records_in_play(conn: Connection, scope: str = "open") -> list[int]:
    """Registrations of customers with an open assignment (`open`) or waiting in the pool (`pool`).

    Held records are among them: the stages' loaders leave held customers out, not this list."""
    return sorted(set(conn.execute(_IN_POOL if scope == "pool" else _IN_PLAY).scalars()))


# Built once: every run asks them (the catch-up, the pool offer, the hold recheck).
_IN_POOL = select(Registration.id).join(Customer, Customer.id == Registration.customer_id).where(
    Customer.status == "pool", Registration.status.in_(DECIDED))
_IN_PLAY = select(Registration.id).join(Assignment, Assignment.customer_id == Registration.customer_id).where(
    Assignment.ended_at.is_(None), Registration.status.in_(DECIDED))
_HOLDING_SUITES = select(ValidationHold.suite).where(ValidationHold.cleared_at.is_(None),
                                                     ValidationHold.suite.in_(BATCH_SUITES)).distinct()


def registrations_of(conn: Connection, customer_id: int) -> list[int]:
    return list(conn.execute(select(Registration.id).where(Registration.customer_id == customer_id)).scalars())


def batch_ids(conn: Connection, suite: str, ids: list[int]) -> list[int]:
    """The records a run of `suite` validates: `ids` and, for a batch suite, every record it holds."""
    if suite not in BATCH_SUITES:
        return sorted(set(ids))
    held = conn.execute(_open(suite, "registration")).scalars()
    return sorted(set(ids) | set(held))


def check(ctx: StageContext, suite: str, ids: list[int], at: dt.datetime):
    """Run `suite` on `ids` and the records it holds; hold or release them (R-VAL-2); a broken batch fails (R-VAL-3)."""
    if ctx.gate is None:
        return None
    with ctx.engine.connect() as conn:
        ids = batch_ids(conn, suite, ids)
    if not ids:
        return None
    result = ctx.gate(suite, ids=ids)
    with ctx.engine.begin() as conn:
        record_holds(conn, ctx, suite, result, at)
    if result.batch_error:
        raise ValidationFailure(result.batch_error)
    return result


def record_holds(conn: Connection, ctx: StageContext, suite: str, result, at: dt.datetime) -> dict[str, int]:
    """Hold each newly flagged record, keep those still flagged, release those that pass again; set-based.

    The ledger gets `validation_flag` when a hold opens and `validation_cleared` when it clears, so a rerun at
    the same `as_of` writes nothing. A batch broken as a whole releases nothing: its passes may be partial."""
    flagged = {int(r): sorted(set(rs)) for r, rs in result.quarantined.items() if UNVALIDATED not in rs}
    held = {r: (h, c, rs) for h, r, c, rs in conn.execute(_open(suite, "holds"))}
    new = sorted(set(flagged) - set(held))
    passed = set(result.passed) if result.batch_error is None else set()
    cleared = sorted(r for r in held if r in passed)
    changed = [{"hid": held[r][0], "rs": flagged[r]} for r in flagged if r in held and held[r][2] != flagged[r]]
    customers = _customers_of(conn, new)
    t = ValidationHold.__table__
    insert_rows(conn, t, [{"registration_id": r, "customer_id": customers.get(r), "suite": suite,
                           "reasons": flagged[r], "flagged_at": at, "cleared_at": None} for r in new])
    if changed:  # still held, for other reasons now: one executemany
        conn.execute(t.update().where(t.c.id == bindparam("hid")).values(reasons=bindparam("rs")), changed)
    for i in range(0, len(cleared), CHUNK):
        conn.execute(t.update().where(t.c.id.in_([held[r][0] for r in cleared[i:i + CHUNK]])).values(cleared_at=at))
    ledger.append(conn, [ledger.entry(at, "R-VAL-2", "validation_flag", f"{suite} suite: " + ", ".join(flagged[r]),
                                      customer_id=customers.get(r),
                                      explanation={"registration": r, "suite": suite, "reasons": flagged[r]})
                         for r in new]
                  + [ledger.entry(at, "R-VAL-2", "validation_cleared", f"{suite} suite: the record passes again",
                                  customer_id=held[r][1], explanation={"registration": r, "suite": suite})
                     for r in cleared], ctx.policy.version, ctx.flow_run_id)
    return {"held": len(new), "still_held": len(set(flagged) & set(held)), "cleared": len(cleared)}


def recheck_holds(ctx: StageContext, at: dt.datetime) -> list[str]:
    """Run every batch suite that holds records on the records in play, so a fixed record is released at the
    next run even when none of its stages falls due (a held customer's own deadlines are out of the loaders)."""
    with ctx.engine.connect() as conn:
        suites = sorted(set(conn.execute(_HOLDING_SUITES).scalars()))
        in_play = {s: records_in_play(conn, "pool" if s == "allocation" else "open") for s in suites}
    for suite in suites:
        check(ctx, suite, in_play[suite], at)
    return suites


def held_customers(suite: str) -> Select:
    """Customer ids with an uncleared hold of `suite`, for `.where(Customer.id.not_in(held_customers(suite)))`."""
    # no NULL in the list: `x NOT IN (..., NULL)` is never true and would empty the stage
    return _open(suite, "customer")


def open_holds(conn: Connection, suite: str | None = None, customer_id: int | None = None) -> list[dict]:
    """The uncleared holds, oldest first: what the flows publish until the records are fixed (never a phone)."""
    q = select(ValidationHold.registration_id, ValidationHold.customer_id, ValidationHold.suite,
               ValidationHold.reasons, ValidationHold.flagged_at).where(ValidationHold.cleared_at.is_(None))
    if suite is not None:
        q = q.where(ValidationHold.suite == suite)
    if customer_id is not None:
        q = q.where(ValidationHold.customer_id == customer_id)
    rows = conn.execute(q.order_by(ValidationHold.flagged_at, ValidationHold.registration_id, ValidationHold.suite))
    return [{"registration_id": r, "customer_id": c, "suite": s, "reasons": list(rs), "flagged_at": at.isoformat()}
            for r, c, s, rs, at in rows]


def _open(suite: str, columns: str = "id") -> Select:
    """The suite's uncleared holds: their `id`s, `registration` ids, `customer` ids (none NULL) or `holds` (id,
    registration id, customer id, reasons). Built once per suite and columns: every run asks, and a statement
    built per call costs more to key for the compiled cache than SQLite takes to run it."""
    q = _OPEN.get((suite, columns))
    if q is None:
        base = select(ValidationHold.id).where(ValidationHold.suite == suite, ValidationHold.cleared_at.is_(None))
        q = _OPEN[(suite, columns)] = {
            "id": base,
            "registration": base.with_only_columns(ValidationHold.registration_id),
            "customer": base.with_only_columns(ValidationHold.customer_id).where(ValidationHold.customer_id.is_not(None)),
            "holds": base.with_only_columns(ValidationHold.id, ValidationHold.registration_id,
                                            ValidationHold.customer_id, ValidationHold.reasons),
        }[columns]
    return q


_OPEN: dict[tuple[str, str], Select] = {}


def _customers_of(conn: Connection, ids: list[int]) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for i in range(0, len(ids), CHUNK):
        out.update(conn.execute(select(Registration.id, Registration.customer_id)
                                .where(Registration.id.in_(ids[i:i + CHUNK]))).all())
    return out


def newly_held(conn: Connection, flow_run_id: str | None, since: dt.datetime | None) -> list[dict]:
    """The holds a flow run opened (R-VAL-2), from its `validation_flag` ledger entries dated `since` or later
    (the clock before the run: the `at` index bounds the search): [{"suite", "reasons"}], oldest first."""
    if not flow_run_id:
        return []
    q = select(Ledger.explanation).where(Ledger.action == "validation_flag", Ledger.flow_run_id == flow_run_id)
    if since is not None:
        q = q.where(Ledger.at >= since)
    return [{"suite": e.get("suite"), "reasons": list(e.get("reasons") or [])}
            for e in conn.execute(q.order_by(Ledger.id)).scalars() if e]
