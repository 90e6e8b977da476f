"""What every stage is given: the database, the policy, the flow run that acts, and the wired gate."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection, Engine

from leadflow.clock import local
from leadflow.policy import Policy
from leadflow.store.bulk import claim
from leadflow.store.models import Meta

# gate(stage, ids=None, batch_id=None) -> expectations.gate.GateResult (passed, quarantined, batch_error, docs_path)
Gate = Callable[..., dict[str, Any]]


@dataclass
class StageContext:
    engine: Engine
    policy: Policy
    flow_run_id: str | None = None
    gate: Gate | None = None
    notify: Callable[[list[dict]], None] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # R-ALLOC-5: the clock before this run began; a lead pooled after it (in this run) waits for the next run.
    run_after: dt.datetime | None = None


_GET_META = select(Meta.value).where(Meta.key == bindparam("key"))  # built once: every run reads the clock


def get_meta(conn: Connection, key: str) -> str | None:
    return conn.execute(_GET_META, {"key": key}).scalar()


def set_meta_once(conn: Connection, key: str, value: str) -> str:
    """Record a fact the first time it is known; later calls keep the first value and return it.

    The database decides (INSERT … ON CONFLICT DO NOTHING): two first runs at once agree on one value
    instead of one failing on the key (issue 8.2)."""
    current = get_meta(conn, key)
    if current is None and claim(conn, Meta.__table__, {"key": key, "value": value}):
        return value
    return current if current is not None else get_meta(conn, key)


def rotation_epoch(conn: Connection, ctx: StageContext, now: dt.datetime) -> dt.date:
    """R-ALLOC-1: the policy's epoch, else the first day allocation ran on this store."""
    if ctx.policy.allocation.rotation_epoch:
        return ctx.policy.allocation.rotation_epoch
    first_day = local(now, ctx.policy).date().isoformat()
    return dt.date.fromisoformat(set_meta_once(conn, "rotation_epoch", first_day))
