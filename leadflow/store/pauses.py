"""Paused rounds (R-ALLOC-4): the `pauses` rows, and each (person, tier)'s balance kept beside them.

A pause granted (+n: R-SUSP-3/5 penalties, a manager's pause) and every round used (-1) or withdrawn (R-SLA-7) is
a row of `pauses`, the record. Allocation needs only the balance per person and tier, the rows' sum: summing the
history on every offer grew with it (45 ms a call at 100,000 leads, the largest part of one lead's latency). So
every write of rows also adds them to `pause_balances` in the same transaction, one upsert per (person, tier):
the database's row locks keep concurrent writers' sums exact.
"""
from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.store.bulk import insert_rows
from leadflow.store.models import Pause, PauseBalance


def append(conn: Connection, rows: list[dict]) -> int:
    """Write `rows` (dicts of Pause's columns: person_id, tier, rounds, at, rule_id, reason[, source_key]) and add
    their rounds to the balances, in the caller's transaction. Returns the number of rows written."""
    if not rows:
        return 0
    written = insert_rows(conn, Pause.__table__, rows)
    sums: Counter = Counter()
    for r in rows:
        sums[(r["person_id"], r["tier"])] += r["rounds"]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    # in key order, so two writers touching the same balances lock them in the same order (no deadlock)
    values = [{"person_id": p, "tier": t, "rounds": n} for (p, t), n in sorted(sums.items())]
    stmt = insert(PauseBalance.__table__).values(values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["person_id", "tier"],
                                            set_={"rounds": PauseBalance.__table__.c.rounds + stmt.excluded.rounds}))
    return written


_POSITIVE = select(PauseBalance.person_id, PauseBalance.tier, PauseBalance.rounds).where(PauseBalance.rounds > 0)


def balances(conn: Connection) -> dict[str, dict[str, int]]:
    """R-ALLOC-4: {person: {tier: paused rounds left}}, only the positive balances."""
    out: dict[str, dict[str, int]] = {}
    for person, tier, rounds in conn.execute(_POSITIVE):
        out.setdefault(person, {})[tier] = int(rounds)
    return out
