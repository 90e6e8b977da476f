"""Schedule marks: how far each time-driven stage has run, so reruns and late runs act once."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.store.models import ScheduleMark


def get_mark(conn: Connection, stage: str) -> dt.datetime | None:
    return conn.execute(select(ScheduleMark.ran_to).where(ScheduleMark.stage == stage)).scalar()


def set_mark(conn: Connection, stage: str, ran_to: dt.datetime) -> None:
    """Move the mark forward only: a late or repeated run never moves it back."""
    table = ScheduleMark.__table__
    current = get_mark(conn, stage)
    if current is None:
        conn.execute(table.insert().values(stage=stage, ran_to=ran_to))
    elif ran_to > current:
        conn.execute(table.update().where(table.c.stage == stage).values(ran_to=ran_to))
