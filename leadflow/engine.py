"""One engine: every entry point that acts — register, record, tick, the flows, the inbox, the replay —
runs the same sequence on the same clock (R-SLA-6, R-ALLOC-5):

1. take the clock lock (concurrent runs wait for each other) and move the clock to `as_of`
   (never backwards: an earlier `as_of` is refused in one sentence; the same one again changes nothing);
2. catch up every time-driven stage due up to `as_of`, in global time order (`leadflow.stages.timed`);
3. act: stage a registration batch, or record events (the held records are re-validated first, R-VAL-2);
4. apply waiting events whose customer is now known, and anything left pending by a crash;
5. offer the pool (R-ALLOC-5): leads pooled in this very run wait for the next one.

`leadflow simulate` calls these functions for every scenario event, so a passing scenario proves
what production does.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from sqlalchemy import exists, or_, select, text
from sqlalchemy.engine import Connection

from leadflow import failpoints
from leadflow.clock import local
from leadflow.memory import bulk_work, release_free_memory
from leadflow.events import record as events
from leadflow.events.kinds import EventStatus
from leadflow.stages import allocation, intake, pool_quiet, timed, validation
from leadflow.stages.context import StageContext, get_meta, set_meta_once
from leadflow.store.models import Customer, Event, Meta, ValidationHold

CLOCK_KEY = "clock"


class ClockError(ValueError):
    """An `as_of` before the clock: LeadFlow never goes back in time. One sentence."""


@contextmanager
def clock_lock(ctx: StageContext):
    """Serialise runs on one store: an advisory lock on PostgreSQL, a lock file beside a SQLite database."""
    engine = ctx.engine
    if engine.dialect.name == "postgresql":
        key = "hashtext('leadflow-clock|' || current_database() || '|' || current_schema())"
        with engine.connect() as conn:
            conn.execute(text(f"SELECT pg_advisory_lock({key})"))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text(f"SELECT pg_advisory_unlock({key})"))
                conn.commit()
        return
    database = engine.url.database
    path = Path(database).with_suffix(".clock.lock") if database and database != ":memory:" else None
    if path is None:
        yield
        return
    with _file_lock(str(path)):
        yield


_FILE_LOCKS: dict = {}


def _file_lock(path: str):
    """One FileLock per lock file and process (thread-local, so threads still wait for each other): making
    one per run costs more than a whole run with nothing to do."""
    lock = _FILE_LOCKS.get(path)
    if lock is None:
        from filelock import FileLock

        if len(_FILE_LOCKS) > 64:  # many stores in one process (tests, replays): keep a few, not every one
            _FILE_LOCKS.clear()
        lock = _FILE_LOCKS.setdefault(path, FileLock(path))
    return lock


def clock(conn: Connection) -> dt.datetime | None:
    """The store's clock: the `as_of` of the latest run, or None before the first."""
    value = get_meta(conn, CLOCK_KEY)
    return None if value is None else dt.datetime.fromisoformat(value)


def start_clock(conn: Connection, ctx: StageContext, start: dt.datetime) -> None:
    """The first run on a store: the schedules, the records (R-TIER-4) and the rotation (R-ALLOC-1) begin here."""
    day = local(start, ctx.policy).date().isoformat()
    set_meta_once(conn, "records_begin", day)
    set_meta_once(conn, "rotation_epoch", day)
    timed.mark_start(conn, start)
    conn.execute(Meta.__table__.insert().values(key=CLOCK_KEY, value=start.isoformat()))


_MOVE_CLOCK = Meta.__table__.update().where(Meta.__table__.c.key == CLOCK_KEY)  # built once: every run moves it


def advance_clock(ctx: StageContext, as_of: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    """Move the clock to `as_of`; return (as_of, where the clock was). Raises ClockError going back.

    `as_of` None means now, read under the clock lock — or the clock itself when a run has moved it ahead
    of the wall clock — so a scheduled run never fails because another one moved the clock just before it."""
    if as_of is not None and as_of.tzinfo is None:
        raise ClockError(f"the time {as_of.isoformat()} has no UTC offset.")
    with ctx.engine.begin() as conn:
        before = clock(conn)
        if as_of is None:
            as_of = max(dt.datetime.now(dt.timezone.utc), before or dt.datetime.min.replace(tzinfo=dt.timezone.utc))
        if before is None:
            start_clock(conn, ctx, as_of)
            return as_of, as_of
        if as_of < before:
            raise ClockError(f"as of {local(as_of, ctx.policy).isoformat()} is before the store's clock "
                             f"({local(before, ctx.policy).isoformat()}); LeadFlow never goes back in time.")
        if as_of > before:
            conn.execute(_MOVE_CLOCK, {"value": as_of.isoformat()})
        return as_of, before


StageRunner = Callable[[str, dt.datetime, Callable[[], dict]], dict]


# Whether an offer has anything to do: a lead waiting in the pool, or a record the allocation suite holds
# (its re-validation may release it). Built once: the statement's compiled form is cached with it.
_OFFER_HAS_WORK = select(or_(
    exists().where(Customer.status == "pool"),
    exists().where(ValidationHold.suite == "allocation", ValidationHold.cleared_at.is_(None))))

# After the act, in one read: are there waiting or pending events to settle, a batch a crashed run staged and
# never decided, and has the offer work to do?
_AFTER_ACT = select(exists().where(Event.status.in_((EventStatus.WAITING.value, events.PENDING))),
                    intake.UNFINISHED_EXISTS, _OFFER_HAS_WORK.scalar_subquery())


# Whether a run would do more than catch up and act, before any stage is due: a hold to recheck (R-VAL-2) or
# events waiting or pending; and, apart, whether the pool holds a lead (R-ALLOC-5). One read.
_RUN_HAS_WORK = select(or_(
    exists().where(ValidationHold.cleared_at.is_(None), ValidationHold.suite.in_(validation.BATCH_SUITES)),
    exists().where(Event.status.in_((EventStatus.WAITING.value, events.PENDING))), intake.UNFINISHED_EXISTS),
    _OFFER_HAS_WORK.scalar_subquery())


def quiet_until(ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    """The earliest instant at or before `horizon` at which a run would do more than its own act, or None when
    every run up to `horizon` would only act: no time-driven stage falls due by then (`timed.next_instant`), no
    hold is open (R-VAL-2), no event waits or is pending, and no offer has work (R-ALLOC-5). With a hold or an
    event it is the store's clock (a run at once does more); before the first run, the earliest time there is
    (the first run starts the schedules at its own time). A pool whose every lead an offer would leave where it
    is does no work until the roster changes by time alone (`pool_quiet.quiet_until`: a leave or suspension
    beginning or ending, a new rotation week); one an offer would change is work at once. Read-only.

    Deliveries of records (which never make a stage due sooner, hold a record or pool a lead) made before that
    instant may then be recorded as one delivery at the last one's time with the same outcome, as a file of
    them would be: `leadflow simulate` delivers a scenario's consecutive on-time records so."""
    with ctx.engine.begin() as conn:
        now = clock(conn)
        if now is None:
            return dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        busy, pooled = conn.execute(_RUN_HAS_WORK).one()
        if busy:
            return now
        due = timed.next_instant(conn, ctx, horizon)
        if pooled and (due is None or due > now):
            idle = pool_quiet.quiet_until(conn, ctx, now, due or horizon)
            return min(t for t in (due, idle) if t is not None) if idle is not None or due is not None else None
        return due


def _no_offer() -> dict:
    """What `allocation.allocate_pool` returns for an empty pool."""
    return {"offered": 0, "allocated": 0, "pooled": 0, "decisions": []}


def offer_pool(ctx: StageContext, as_of: dt.datetime) -> dict:
    """R-VAL-1 on the waiting leads' records, then R-ALLOC-5: offer the pool, oldest first.

    Returns allocation.allocate_pool's summary {"offered", "allocated", "pooled", "decisions", …}. With no lead
    in the pool and no allocation hold it is one read and nothing else: the suite would validate no record and
    the offer would find no lead, so skipping both changes nothing."""
    with ctx.engine.connect() as conn:
        if not conn.execute(_OFFER_HAS_WORK).scalar():
            return _no_offer()
        waiting = validation.records_in_play(conn, "pool")
    validation.check(ctx, "allocation", waiting, as_of)
    with ctx.engine.begin() as conn:
        offered = allocation.allocate_pool(conn, ctx, as_of)
    # a large offer empties the pool the planner still believes full: the next run's "anything pooled?" and
    # records-in-play reads would scan every customer (seconds per registration at a million leads)
    intake.refresh_statistics(ctx.engine, offered.get("allocated", 0))
    return offered


def merge_offers(*offers: dict | None) -> dict:
    """One allocation summary for several pool offers of a run (the offer before the act allocates what a
    crashed earlier run left waiting; a rerun must say so)."""
    merged = {"offered": 0, "allocated": 0, "pooled": 0, "decisions": []}
    for o in offers:
        for k in ("offered", "allocated", "decisions"):
            merged[k] += (o or {}).get(k, 0 if k != "decisions" else [])
    merged["pooled"] = (offers[-1] or {}).get("pooled", 0) if offers else 0
    merged["pooled_leads"] = (offers[-1] or {}).get("pooled_leads", []) if offers else []  # who, and why
    return merged


def _settle_events(ctx: StageContext, as_of: dt.datetime) -> dict:
    """Waiting events whose customer is now known, then everything pending (a crash's leftovers)."""
    ready = events.retry_waiting(ctx, as_of)
    applied = events.apply_pending(ctx, as_of)
    return {"resolved": ready, "applied": applied}


@contextmanager
def run(ctx: StageContext, as_of: dt.datetime | None, runner: StageRunner | None = None, offer_first: bool = True):
    """One run: lock, clock, catch-up, (offer,) then the caller acts, then waiting events and the pool offer.

    Yields (the run's context, its outcome so far); `out["as_of"]` is the run's time (now when `as_of` is None)."""
    with clock_lock(ctx), bulk_work():  # bulk_work: the garbage collector during batches (leadflow.memory)
        as_of, before = advance_clock(ctx, as_of)
        failpoints.hit("engine.clock")
        rctx = replace(ctx, run_after=before)
        out: dict = {"as_of": as_of, "previous": before}
        validation.recheck_holds(rctx, as_of)  # R-VAL-2: a fixed record is released before the stages read
        out["timed"] = timed.catch_up(rctx, as_of, runner=runner)
        if offer_first:
            out["pool_before"] = offer_pool(rctx, as_of)
        yield rctx, out
        with ctx.engine.connect() as conn:  # most runs have none of these: one read instead of three
            unsettled, unfinished, pool_work = conn.execute(_AFTER_ACT).one()
        if unfinished:  # a crashed run's staged batch: decided now, its leads offered below (nothing lost)
            out["recovered"] = intake.recover_unfinished(rctx, as_of)
        out["events"] = _settle_events(rctx, as_of) if unsettled else {"resolved": 0, "applied": 0}
        out["pool"] = offer_pool(rctx, as_of) if unsettled or unfinished or pool_work else _no_offer()


def tick(ctx: StageContext, as_of: dt.datetime | None, runner: StageRunner | None = None) -> dict:
    """`leadflow tick`: bring the store to `as_of` (every due instant in time order), then offer the pool.

    Returns {"as_of", "previous", "timed": [{"stage", "at", "summary"}], "events", "pool"}.
    Raises ClockError when `as_of` is before the clock."""
    with run(ctx, as_of, runner, offer_first=False) as (_, out):
        pass
    return out


def register(ctx: StageContext, batch_id: str, source: str, rows: list[dict], as_of: dt.datetime | None,
             digest: str | None = None, runner: StageRunner | None = None) -> dict:
    """Register a batch of registration rows (INTAKE.md) as one run: catch up, intake + allocation, offer.

    The registration is allocated when it reaches LeadFlow (`as_of`); `registered_at` stays its own fact.
    Returns the intake summary (rows_in, accepted, attached, quarantined, allocation, docs) plus `run`;
    a batch decided before comes back with `already_registered`, and the offer still allocates whatever a
    crashed earlier run left waiting.
    Raises intake.StageFailure (one sentence) when the batch is broken as a whole (R-VAL-3)."""
    with run(ctx, as_of, runner) as (rctx, out):
        summary = intake.run_intake(rctx, batch_id, source, rows, out["as_of"], digest)
        summary["allocation"] = merge_offers(out.get("pool_before"), offer_pool(rctx, out["as_of"]))
    summary["run"] = out
    return summary


def record(ctx: StageContext, rows: Iterable[dict], as_of: dt.datetime | None, *, batch_id: str, source: str,
           operator: str | None = None, digest: str | None = None, runner: StageRunner | None = None) -> dict:
    """Record a delivery of lifecycle events as one run: catch up, stage + apply in time order, offer.

    Idempotent: a delivery recorded in full before returns its earlier summary with `already_recorded`.
    Returns {"batch_id", "rows_in", "applied", "duplicate", "waiting", "refused", "reasons", "problems"}."""
    with ctx.engine.connect() as conn:
        earlier = events.previous_summary(conn, batch_id)
    if earlier is not None:
        return earlier
    with run(ctx, as_of, runner) as (rctx, out):
        with ctx.engine.connect() as conn:  # under the clock lock: a delivery racing its twin sees it here
            earlier = events.previous_summary(conn, batch_id)
        if earlier is None:
            events.stage_events(rctx, batch_id, source, rows, out["as_of"], operator, digest)
            events.apply_pending(rctx, out["as_of"], batch_id)
    summary = earlier or events.finish(ctx, batch_id, out["as_of"])
    summary["run"] = out
    return summary


def register_file(ctx: StageContext, path: str | Path, source: str, as_of: dt.datetime | None = None, *,
                  runner: StageRunner | None = None) -> dict:
    """Register a registration file (INTAKE.md: .csv, .jsonl, .xlsx) streamed in batches of the policy's
    `intake.batch_rows` rows, each batch one run (`register`: catch up, intake, offer the pool), so the file is
    never in memory (R-REG-4, R-VAL-2).

    Batches are named by the file's digest (`intake.file_batch_id`; a file of one batch is `file-<digest20>`),
    so delivering the file again registers nothing twice, and after a crash completes only the batches that
    were never decided. R-VAL-3 judges each batch: a batch broken as a whole is quarantined, its sentence is
    in `errors`, and the other batches go on.

    Returns {"rows_in", "accepted", "attached", "quarantined" (rows in = the other three, over the file),
    "allocation": {"offered", "allocated", "pooled"} (what the runs' pool offers did; pooled: left after the
    last), "batches": [batch ids, in file order], "errors": [one sentence per batch refused as a whole],
    "already_registered": True when every batch was decided before, "docs" (the last gate's Data Docs),
    "as_of" (the last run's time), "timings": {"read", "stage", "gate", "decide", "allocate"} (seconds summed
    over the batches; allocate is the rest of each run: catch-up, the pool offers, waiting events)}.
    Raises IntakeFileError (one sentence) for a file that cannot be read or holds no data row, and
    ClockError for an `as_of` before the store's clock."""
    import time

    from leadflow.intake.readers import file_digest, registration_rows

    tick_ = time.perf_counter
    timings = dict.fromkeys(("read", "stage", "gate", "decide", "allocate"), 0.0)
    totals = dict.fromkeys(("rows_in", "accepted", "attached", "quarantined"), 0)
    allocation_ = {"offered": 0, "allocated": 0, "pooled": 0}
    out_: dict = {"batches": [], "errors": [], "docs": None, "as_of": None}

    def count_offers(*offers):
        for o in offers:
            allocation_["offered"] += (o or {}).get("offered", 0)
            allocation_["allocated"] += (o or {}).get("allocated", 0)
        allocation_["pooled"] = (offers[-1] or {}).get("pooled", 0)

    t0 = tick_()
    digest = file_digest(path)
    with ctx.engine.connect() as conn:
        earlier = intake.file_summary(conn, digest)
        size = intake.file_batch_size(conn, digest, ctx.policy.intake.batch_rows)
    timings["read"] += tick_() - t0
    if earlier is not None:  # R-REG-4: the whole file was registered before; the run still offers the pool
        t0 = tick_()
        with run(ctx, as_of, runner) as (_, out):
            pass
        count_offers(out.get("pool_before"), out.get("pool"))
        timings["allocate"] += tick_() - t0
        return {**{k: earlier[k] for k in totals}, "allocation": allocation_, "batches": earlier["batches"],
                "errors": [], "already_registered": True, "docs": None, "as_of": out["as_of"], "timings": timings}
    # the next chunk is read, normalised and formatted for COPY while this one runs (issue 10)
    chunks = intake.read_ahead(intake.prepared_chunks(intake.file_chunks(registration_rows(path), size),
                                                      intake.preparer(ctx)))
    every_earlier = True
    recovered: set[str] = set()  # batches of this file a crash left staged, decided by one of these runs
    while True:
        t0 = tick_()
        with bulk_work():  # a chunk of rows read: as in the run (leadflow.memory)
            item = next(chunks, None)
        timings["read"] += tick_() - t0
        if item is None:
            break
        number, last, rows, prepared = item
        batch_id = intake.file_batch_id(digest, number, last)
        t0 = tick_()
        steps: dict[str, float] = {}
        with run(ctx, as_of, runner) as (rctx, out):
            try:
                summary = intake.run_intake(rctx, batch_id, source, rows, out["as_of"], digest, steps,
                                            prepared)
            except intake.StageFailure as e:  # R-VAL-3: this batch is quarantined and finished; the rest go on
                out_["errors"].append(f"batch {number}: {e}")
                with ctx.engine.connect() as conn:  # its counts, as decided now: not an earlier delivery's
                    summary = {**(intake.previous_summary(conn, batch_id) or {}), "already_registered": False}
            after = offer_pool(rctx, out["as_of"])
        del rows, prepared  # the chunk is done: only one is ever held (and the next, read ahead)
        release_free_memory()  # and what it took goes back to the system: the resident set stays one chunk's
        count_offers(out.get("pool_before"), after, out.get("pool"))
        recovered.update((out.get("recovered") or {}).get("batches", ()))
        if batch_id in recovered:  # decided by an earlier batch's run of this delivery, not before it
            summary = {**summary, "already_registered": False}
        every_earlier = every_earlier and bool(summary.get("already_registered"))
        for k in totals:
            totals[k] += summary.get(k, 0)
        out_["batches"].append(batch_id)
        out_["docs"] = summary.get("docs") or out_["docs"]
        out_["as_of"] = out["as_of"]
        for step, seconds in steps.items():
            timings[step] += seconds
        timings["allocate"] += tick_() - t0 - sum(steps.values())
    return {**totals, "allocation": allocation_, **out_, "already_registered": every_earlier, "timings": timings}
