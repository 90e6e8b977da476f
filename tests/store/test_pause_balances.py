"""Issue 10: the paused rounds allocation reads (R-ALLOC-4) are kept as balances beside the pause rows, and always
equal the rows' sum, on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from leadflow.stages.people import load_org
from leadflow.stages.roster import load_paused
from leadflow.store import pauses
from leadflow.store.models import Pause

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


def _row(person, tier, rounds):
    return {"person_id": person, "tier": tier, "rounds": rounds, "at": T0, "rule_id": "R-ALLOC-4", "reason": "t"}


def _sums(conn) -> dict:
    out: dict = {}
    for p, t, n in conn.execute(select(Pause.person_id, Pause.tier, func.sum(Pause.rounds))
                                .group_by(Pause.person_id, Pause.tier)):
        if n > 0:
            out.setdefault(p, {})[t] = n
    return out


def test_r_alloc_4_the_paused_rounds_read_are_the_sum_of_every_grant_and_round_used(store_engine):
    with store_engine.begin() as conn:
        load_org(conn, [{"id": "d1"}], [{"id": p, "department": "d1", "role": "sales", "grade": "C", "rank": i}
                                        for i, p in enumerate(("s1", "s2", "s3"), 1)])
        pauses.append(conn, [_row("s1", "C", 2), _row("s1", "D", 2), _row("s2", "C", 1)])  # grants
    with store_engine.begin() as conn:
        pauses.append(conn, [_row("s1", "C", -1), _row("s1", "C", -1), _row("s2", "C", -1)])  # rounds used
        pauses.append(conn, [_row("s3", "C", 3)] + [_row("s3", "C", -1)] * 2)  # one write, several rows of a key
    with store_engine.connect() as conn:
        paused = load_paused(conn)
        assert paused == _sums(conn)
        assert paused == {"s1": {"D": 2}, "s3": {"C": 1}}  # used up (0) is not paused


def test_r_alloc_4_a_write_that_fails_adds_nothing_to_the_balances(store_engine):
    with store_engine.begin() as conn:
        load_org(conn, [{"id": "d1"}], [{"id": "s1", "department": "d1", "role": "sales", "grade": "C", "rank": 1}])
        pauses.append(conn, [_row("s1", "C", 2)])
    try:
        with store_engine.begin() as conn:
            pauses.append(conn, [_row("s1", "C", 5)])
            raise RuntimeError("the run fails after the pause was written")
    except RuntimeError:
        pass
    with store_engine.connect() as conn:
        assert load_paused(conn) == {"s1": {"C": 2}} == _sums(conn)
