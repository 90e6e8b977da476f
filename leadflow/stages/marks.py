"""Schedule marks: how far each time-driven stage has run, so reruns and late runs act once."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from leadflow.store.models import ScheduleMark

# Built once: every run reads the marks, and a statement built per call costs more than the read itself.
_table = ScheduleMark.__table__
_GET = select(ScheduleMark.ran_to).where(ScheduleMark.stage == bindparam("stage"))
_INSERT = _table.insert()
_MOVE = _table.update().where(_table.c.stage == bindparam("stage_key")).values(ran_to=bindparam("ran_to"))


def get_mark(conn: Connection, stage: str) -> dt.datetime | None:
    return conn.execute(_GET, {"stage": stage}).scalar()


def set_mark(conn: Connection, stage: str, ran_to: dt.datetime) -> None:
    """Move the mark forward only: a late or repeated run never moves it back."""
    current = get_mark(conn, stage)
    if current is None:
        conn.execute(_INSERT, {"stage": stage, "ran_to": ran_to})
    elif ran_to > current:
        conn.execute(_MOVE, {"stage_key": stage, "ran_to": ran_to})
