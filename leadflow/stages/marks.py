"""Schedule marks: how far each time-driven stage has run, so reruns and late runs act once."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from leadflow.store.models import ScheduleMark

# Built once: every run reads the marks, and a statement built per call costs more than the read itself.
_table = ScheduleMark.__table__
_GET = select(ScheduleMark.ran_to).where(ScheduleMark.stage == bindparam("stage"))
_ALL = select(ScheduleMark.stage, ScheduleMark.ran_to)
_INSERT = _table.insert()
_MOVE = _table.update().where(_table.c.stage == bindparam("stage_key")).values(ran_to=bindparam("ran_to"))
_READ_TOGETHER = "leadflow.marks"  # conn.info key: the marks read by `read_together`, while its block runs


@contextmanager
def read_together(conn: Connection) -> Iterator[None]:
    """Within the block, `get_mark(conn, …)` answers from one read of every mark instead of one read each (the
    catch-up asks every stage when it is next due, on every run). `set_mark` on `conn` keeps the answers true;
    use it inside one transaction, where no other run can move a mark under it (the clock lock serialises runs)."""
    conn.info[_READ_TOGETHER] = dict(conn.execute(_ALL).all())
    try:
        yield
    finally:
        conn.info.pop(_READ_TOGETHER, None)


def get_mark(conn: Connection, stage: str) -> dt.datetime | None:
    known = conn.info.get(_READ_TOGETHER)
    if known is not None:
        return known.get(stage)
    return conn.execute(_GET, {"stage": stage}).scalar()


def set_mark(conn: Connection, stage: str, ran_to: dt.datetime) -> None:
    """Move the mark forward only: a late or repeated run never moves it back."""
    current = get_mark(conn, stage)
    if current is None:
        conn.execute(_INSERT, {"stage": stage, "ran_to": ran_to})
    elif ran_to > current:
        conn.execute(_MOVE, {"stage_key": stage, "ran_to": ran_to})
    else:
        return
    known = conn.info.get(_READ_TOGETHER)
    if known is not None:
        known[stage] = ran_to
