"""The time-driven stages, caught up to `as_of` exactly as their schedules would have fired."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.stages.context import StageContext
from leadflow.store.models import ScheduleMark

TIMED_STAGES: tuple[str, ...] = ()


def mark_start(conn: Connection, start: dt.datetime) -> None:
    """Record where the schedules start, so nothing before the records began is run."""
    have = set(conn.execute(select(ScheduleMark.stage)).scalars())
    rows = [{"stage": s, "ran_to": start} for s in TIMED_STAGES if s not in have]
    if rows:
        conn.execute(ScheduleMark.__table__.insert(), rows)


def catch_up(ctx: StageContext, as_of: dt.datetime) -> dict:
    """Run every time-driven stage due up to `as_of`; each is idempotent in its `as_of`."""
    return {}
