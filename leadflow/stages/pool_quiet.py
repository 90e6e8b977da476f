"""When the pool holds only leads an offer would leave where they are (R-ALLOC-5): how long that lasts.

A lead stays in the pool when nobody can take it (R-ALLOC-3/4, R-SUSP): a tier nobody of the right grade is free
for. Every run offers the pool again, and while the roster stands still each re-offer changes nothing: no owner,
no paused round used (a re-offer uses none, R-ALLOC-4), no pointer moved, no ledger row. `quiet_until` says up to
when that holds, so `engine.quiet_until` (and with it the replay's delivery of records together) need not treat
such a pool as work. Read-only: the decisions are `next_owner`'s own, on the roster the offer would load.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from leadflow.clock import week_index, week_start
from leadflow.rules.allocation import RosterIndex, next_owner
from leadflow.stages import allocation
from leadflow.stages.context import StageContext, get_meta
from leadflow.stages.roster import load_roster
from leadflow.store.models import Leave, Suspension

# The next instant after `now` at which the roster changes by time alone: a leave or a suspension (of a person
# or a department) begins or ends. One read, built once.
_AFTER = bindparam("after", type_=Leave.__table__.c.at.type)
_NEXT_ROSTER_CHANGE = select(
    select(func.min(Leave.at)).where(Leave.at > _AFTER).scalar_subquery(),
    select(func.min(Leave.until)).where(Leave.until > _AFTER).scalar_subquery(),
    select(func.min(Suspension.starts_at)).where(Suspension.starts_at > _AFTER).scalar_subquery(),
    select(func.min(Suspension.ends_at)).where(Suspension.ends_at > _AFTER).scalar_subquery())


def quiet_until(conn: Connection, ctx: StageContext, now: dt.datetime, horizon: dt.datetime) -> dt.datetime | None:
    """For a store whose clock is `now` and whose pool is not empty: `now` when an offer after `now` would do
    anything (allocate a lead, pool a new one, use a paused round, serve a debt, move a pointer); otherwise the
    earliest instant in (`now`, `horizon`] at which time alone may change an offer's outcome — a leave or a
    suspension beginning or ending, a new rotation week (R-ALLOC-1) — or None when none falls by `horizon`.

    Only runs that change neither the org chart, the pauses, the debts nor the pool (deliveries of records) keep
    that answer true: each of their offers then decides as the one worked out here (R-ALLOC-5). Read-only."""
    leads = allocation.pool_leads(conn)
    if any(lead["pooled_at"] is None for lead in leads):  # a new lead: its first offer pools or allocates it
        return now
    policy = ctx.policy
    epoch = policy.allocation.rotation_epoch or get_meta(conn, "rotation_epoch")
    if epoch is None:
        return now
    epoch = epoch if isinstance(epoch, dt.date) else dt.date.fromisoformat(epoch)
    week = week_index(now, epoch, policy)
    before = allocation.load_pointers(conn)
    if before.get("week") != str(week):  # the offer would restart the week's pointers (a write)
        return now
    debts: dict[str, list] = {}
    for debt in allocation.load_debts(conn):
        debts.setdefault(debt.tier, []).append(debt)
    index = RosterIndex(load_roster(conn, policy, now))
    for lead in leads:
        d = next_owner(lead["tier"], index, before, week, frozenset(), debts.get(lead["tier"], ()), reoffer=True)
        if d.person is not None or d.consumed_pauses or d.debt_id is not None or d.pointer_updates:
            return now
    changes = [t for t in conn.execute(_NEXT_ROSTER_CHANGE, {"after": now}).one() if t is not None]
    changes.append(week_start(_week_after(now, policy), policy))
    first = min(changes)
    return first if first <= horizon else None


def _week_after(now: dt.datetime, policy) -> dt.datetime:
    """An instant in the rotation week after the one holding `now` (R-ALLOC-1: Monday to Monday, business time)."""
    return week_start(now, policy) + dt.timedelta(days=8)
