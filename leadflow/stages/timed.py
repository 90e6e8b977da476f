"""The time-driven stages, caught up to `as_of` exactly as their schedules would have fired."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from sqlalchemy.engine import Connection

from leadflow import failpoints
from leadflow.rules import sla as sla_rules
from leadflow.stages import audit, conversion, review, sla, validation
from leadflow.stages.context import StageContext
from leadflow.stages.marks import read_together, set_mark


@dataclass(frozen=True)
class TimedStage:
    name: str
    next_due: Callable[[Connection, StageContext, dt.datetime], dt.datetime | None]
    run: Callable[[Connection, StageContext, dt.datetime], dict]


# Order breaks ties at one instant: reviews and expiries before the checks that follow from them.
TIMED_STAGES = (
    TimedStage(review.STAGE, review.next_due, review.run),
    TimedStage(conversion.STAGE, conversion.next_due, conversion.run),
    TimedStage(audit.STAGE, audit.next_audit, audit.run_audit),
    TimedStage("audit_grace", audit.next_grace, audit.run_grace),
    TimedStage(sla.STAGE, sla.next_due, sla.run),
)
MARKED = (review.STAGE, audit.STAGE, sla.STAGE)
# Stages that hand leads over (and so read the pauses and breaches recorded before them).
REALLOCATING = (conversion.STAGE, "audit_grace")
# Stages whose due instants, with no re-allocation between them, run as one set-based batch: each breach
# is dated at its own deadline, so one run up to the next hand-over records exactly what many would.
BATCHED = (sla.STAGE,)
TICK = dt.timedelta(microseconds=1)


def expiries_until(ctx: StageContext, t: dt.datetime, others: list[dt.datetime], as_of: dt.datetime) -> dt.datetime:
    """R-CONV-2 in one pass: the latest instant up to which the conversion expiries falling due from `t` (the
    earliest, `conversion.next_due`) run as ONE `conversion.run`, deciding exactly what one run per expiry instant
    would (R-SLA-6: every due instant in global time order). `others`: the other stages' due instants.

    `conversion.run` hands each instant's leads over in time order, each at its own expiry, with the roster as it
    stands then (the earlier instants' bars and allocations written, R-SUSP-7): what separate runs do, provided no
    other stage runs between them. So the pass ends before the next other stage due (one due at `t` itself runs
    after the expiries at `t`: no pass), and before any SLA check of the leads it re-allocates can fall due: a lead
    handed over at expiry e owes nothing before e + `shortest_window` (R-SLA-1..4), recorded only past that plus
    the evidence grace (R-SLA-7), so the expiries within that window of the first are all handed over before a check
    could pause (R-SUSP-5) a new owner. With the dormant return on (R-CONV-5, run after a pass's expiries) or no
    window bound, one instant per run, as before. Returns an instant in [t, as_of]."""
    policy = ctx.policy
    window = sla_rules.shortest_window(policy)
    if window is None or policy.conversion.dormant_return.enabled:
        return t
    first = sla_rules.without_grace(t, policy)  # the earliest expiry: next_due gives it plus the evidence grace
    last = sla_rules.with_grace(first.astimezone(dt.timezone.utc) + window, policy)  # elapsed time, as deadlines
    return max(t, min([as_of, last] + [max(u - TICK, t) for u in others]))


def _work(ctx: StageContext, stage: TimedStage, t: dt.datetime) -> Callable[[], dict]:
    def work() -> dict:
        with ctx.engine.begin() as conn:
            summary = stage.run(conn, ctx, t)
            failpoints.hit("timed.stage")
            return summary
    return work


def mark_start(conn: Connection, start: dt.datetime) -> None:
    """Schedules start where the records start: nothing before is run."""
    for stage in MARKED:
        set_mark(conn, stage, start)


def _run_directly(name: str, at: dt.datetime, work: Callable[[], dict]) -> dict:
    return work()


def _due(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> list[tuple[dt.datetime, int, TimedStage]]:
    """(instant, order, stage) of every stage due at or before `horizon` (each stage's earliest instant)."""
    due = []
    with read_together(conn):  # the stages' marks: one read, not one each
        for i, stage in enumerate(TIMED_STAGES):
            t = stage.next_due(conn, ctx, horizon)
            if t is not None and t <= horizon:
                due.append((t, i, stage))
    return due


def next_instant(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    """The earliest instant at or before `horizon` at which a time-driven stage falls due (what `catch_up` to
    `horizon` would run first), or None when none does: a catch-up to any time up to `horizon` runs nothing."""
    return min((t for t, _, _ in _due(conn, ctx, horizon)), default=None)


def catch_up(ctx: StageContext, as_of: dt.datetime, limit: int = 100_000,
             runner: Callable[[str, dt.datetime, Callable[[], dict]], dict] | None = None) -> list[dict]:
    """Run each time-driven stage at every time it fell due up to `as_of`, earliest first (R-SLA-6).

    Every stage's due instants go into one global time order, whatever the schedules and however long
    nothing ran; instants that provably decide the same together run as one pass (the SLA check's up to the
    next hand-over, `BATCHED`; conversion expiries falling due together, `expiries_until`). Each run is
    idempotent in its `as_of`, so catching up late or twice records nothing twice.
    `runner(stage, at, work)` runs one due instant's `work()` (a Prefect flow wraps it in a task run, so
    the UI shows each stage's work as its own run); by default it is called directly.
    Returns [{"stage", "at", "summary"}] in the order run.
    """
    runner = runner or _run_directly
    ran: list[dict] = []
    validated: set[str] = set()
    for _ in range(limit):
        with ctx.engine.begin() as conn:
            due = _due(conn, ctx, as_of)
            if not due:
                return ran
            t, _, stage = min(due, key=lambda d: (d[0], d[1]))
            if stage.name in BATCHED:
                t = min([as_of] + [u - TICK for u, _, other in due if other.name in REALLOCATING and u - TICK >= t])
            elif stage.name == conversion.STAGE:  # a day's expiries: one pass, not one run per instant
                t = expiries_until(ctx, t, [u for u, _, other in due if other is not stage], as_of)
            ids = validation.records_in_play(conn) if validation.SUITE_OF[stage.name] not in validated else []
        if ids:  # R-VAL-1: each suite once per catch-up, on the records the stages read, before they run
            validation.check(ctx, validation.SUITE_OF[stage.name], ids, t)
            validated.add(validation.SUITE_OF[stage.name])
        ran.append({"stage": stage.name, "at": t, "summary": runner(stage.name, t, _work(ctx, stage, t))})
    raise RuntimeError("the time-driven stages did not settle; a stage keeps falling due")
