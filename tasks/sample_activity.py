"""Tasks of the sample organisation at work (`leadflow.samples.feed`, `.history`): only the main job uses them."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from tasks.masked import task
from prefect.cache_policies import NO_CACHE

from tasks.context import stage_ctx


@task(name="deliver sample activity", cache_policy=NO_CACHE)
def deliver(as_of: dt.datetime | None, lookahead_minutes: float = 0, folder: str | None = None) -> dict:
    """The activity due by `as_of` (default: now, + lookahead), pushed as events or written as export files and
    recorded. Without `as_of`, a run that moved the clock past our "now" meanwhile is no failure: we ask again."""
    from leadflow import engine
    from leadflow.samples import feed

    for attempt in range(3):
        try:
            return feed.deliver(stage_ctx(), as_of or dt.datetime.now(dt.timezone.utc),
                                folder=Path(folder) if folder else None,
                                lookahead=dt.timedelta(minutes=lookahead_minutes))
        except engine.ClockError:
            if as_of is not None or attempt == 2:
                raise


@task(name="register new sample leads", cache_policy=NO_CACHE)
def register_new(as_of: dt.datetime | None) -> dict:
    """The registrations the front desk and the web chat took since the last run, registered and allocated
    (`leadflow.samples.history.register_new`). Without `as_of`, a run that moved the clock past our "now"
    meanwhile is no failure: we ask again."""
    from leadflow import engine
    from leadflow.samples import history

    for attempt in range(3):
        try:
            return history.register_new(stage_ctx(), as_of or dt.datetime.now(dt.timezone.utc))
        except engine.ClockError:
            if as_of is not None or attempt == 2:
                raise


@task(name="next delivery", cache_policy=NO_CACHE)
def next_stop(after: dt.datetime, until: dt.datetime) -> dt.datetime:
    """The next export time: the next SLA deadline of a recent allocation, else four hours on, at most `until`."""
    from leadflow import engine
    from leadflow.samples import feed

    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        return max(feed.next_stop(conn, ctx.policy, after, until), engine.clock(conn) or after)


@task(name="how the sample organisation stands", cache_policy=NO_CACHE)
def standing(as_of: dt.datetime) -> dict:
    """How the salespeople stand at `as_of`: how many are paused, and the R-SLA-1 breaches so far."""
    from leadflow.samples import feed

    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        return feed.standing(conn, ctx.policy, as_of)
