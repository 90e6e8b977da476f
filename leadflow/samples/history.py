"""The sample period as it happened, and the new registrations while the main job serves.

History (`deliver_history`, the main job's first start): the front desk's exports of registrations
(`leadflow.samples.generate.write_sample`: a few a day, the time in the file name) reach LeadFlow each at its
own time, and the owners' activity between them is delivered as their systems export it
(`leadflow.samples.feed.backfill`), so the store's clock moves forward day by day and every salesperson gets a
few leads a day, as in a real organisation. Through the Python entry points (`leadflow.engine.register`,
`record_file`): one Prefect flow run per export would take minutes. The last export, in the inbox, is the
lifecycle flow's (the UI shows it). Each file is one batch named by its content, as the intake flow names it,
so a second start (or `leadflow register` of the same file) registers nothing twice; and the clock never goes
back: an export not taken yet (after an interrupted start) reaches LeadFlow at the store's clock.

Live (`register_new`, the `sample-activity` deployment): the registrations taken since the last run
(`leadflow.samples.generate.live_leads`), one batch a run.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from leadflow import engine
from leadflow.clock import local, zone
from leadflow.intake.readers import read_registration_file
from leadflow.policy import Policy
from leadflow.samples import feed
from leadflow.samples.activity import SEED
from leadflow.samples.generate import live_leads, slot_of
from leadflow.stages.context import StageContext
from leadflow.store.models import IntakeBatch

REGISTRATIONS = "registrations"  # the sample period's exports, but the last (that one is in the inbox)
SOURCE_LIVE = "sample-live"
LIVE_CATCH_UP = dt.timedelta(minutes=10)  # after a pause in serving, the live feed starts again this far back
# The history's activity exports: at every SLA deadline (so a record made in time is never a breach) and with
# each export of registrations, else at least daily (fewer engine runs than the live main job's 4-hourly ones).
EXPORT_EVERY = dt.timedelta(days=1)
SUMS = ("rows_in", "accepted", "attached", "quarantined")
ACTIVITY_SUMS = ("rows", "applied", "duplicate", "waiting", "refused")


def aware(t: dt.datetime, policy: Policy) -> dt.datetime:
    """A business-time wall-clock time (naive) as an aware one."""
    return t.replace(tzinfo=zone(policy))


def wall(t: dt.datetime, policy: Policy) -> dt.datetime:
    """An aware time as business-time wall-clock time (naive)."""
    return local(t, policy).replace(tzinfo=None)


def file_batch(path: Path) -> tuple[str, str]:
    """A file's batch id and digest, as the intake flow names it (`tasks.intake.batch_id_for`, R-REG-4)."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return f"file-{digest[:20]}", digest


def registered(conn, batch_id: str) -> bool:
    return conn.execute(select(IntakeBatch.id).where(IntakeBatch.id == batch_id,
                                                     IntakeBatch.finished_at.is_not(None))).first() is not None


def exports(folder: Path, policy: Policy) -> list[tuple[dt.datetime, Path]]:
    """The registration exports in `folder` and in its `done/` (where the inbox moves what it took, issue 9.3),
    by the time in their names; an export in both (the same name) counts once, the one still in `folder`.
    A copy kept under a suffixed name in done/ (`… (2).csv`) is no export of its own."""
    found = {}
    for where in (folder / "done", folder):  # the folder's own copy wins
        if where.is_dir():
            found.update({p.name: (t, p) for p in where.glob("registrations-*") if (t := slot_of(p.name))})
    return sorted((aware(t, policy), p) for t, p in found.values())


def clock(ctx: StageContext) -> dt.datetime | None:
    with ctx.engine.connect() as conn:
        return engine.clock(conn)


def _add(total: dict, part: dict, keys: tuple[str, ...]) -> None:
    for k in keys:
        total[k] = total.get(k, 0) + (part.get(k) or 0)


def deliver_history(ctx: StageContext, sample_dir: Path, until: dt.datetime, *, seed: int = SEED,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Every export in `sample_dir/registrations` not taken yet, each at its own time (never before the clock),
    the owners' activity before each (export files in `sample_dir/activity`), then the activity up to `until`
    (the inbox's export time). Returns what was delivered: exports, their rows (accepted, attached, quarantined),
    allocations, the activity (rows, applied, …, files), and where the clock stands. `progress(exports done,
    exports)` is called after each export, taken now or before (leadflow.progress)."""
    files = exports(sample_dir / REGISTRATIONS, ctx.policy)
    now = clock(ctx)
    if now is None and files:  # a new store: its records begin with the sample period
        start = aware(dt.datetime.combine(wall(files[0][0], ctx.policy).date(), dt.time(0)), ctx.policy)
        engine.tick(ctx, start)
        now = start
    out = {"exports": 0, "allocated": 0, "activity": {"files": 0}}
    t = now
    for done, (at, path) in enumerate(files, 1):
        if progress is not None:  # before the export: a skipped one (taken by an earlier start) counts as done
            progress(done - 1, len(files))
        batch_id, digest = file_batch(path)
        with ctx.engine.connect() as conn:
            if registered(conn, batch_id):
                continue
        if t is not None:
            _activity(ctx, t, at, sample_dir, seed, out)
        as_of = max(at, clock(ctx) or at)
        summary = engine.register(ctx, batch_id, path.name, read_registration_file(path), as_of, digest)
        out["exports"] += 1
        _add(out, summary, SUMS)
        out["allocated"] += summary.get("allocation", {}).get("allocated", 0) + \
            summary["run"].get("pool", {}).get("allocated", 0)
        t = as_of
    if t is not None and t < until:
        _activity(ctx, t, until, sample_dir, seed, out)
    if progress is not None and files:
        progress(len(files), len(files))
    out["clock"] = clock(ctx)
    return out


def _activity(ctx: StageContext, start: dt.datetime, end: dt.datetime, sample_dir: Path, seed: int,
              out: dict) -> None:
    for d in feed.backfill(ctx, start, end, seed=seed, folder=sample_dir / "activity", every=EXPORT_EVERY):
        _add(out["activity"], d, ACTIVITY_SUMS)
        out["activity"]["files"] += len(d["files"])


def register_new(ctx: StageContext, as_of: dt.datetime, *, seed: int = SEED) -> dict:
    """The registrations taken since the last run (at most LIVE_CATCH_UP back; the first run: one EVERY back),
    registered as one batch at `as_of` and allocated. Returns the intake summary (rows_in 0: nothing new) with
    the allocation's ledger entries (`decisions`)."""
    with ctx.engine.connect() as conn:
        last = conn.execute(select(func.max(IntakeBatch.started_at))
                            .where(IntakeBatch.source == SOURCE_LIVE)).scalar()
    since = max(last, as_of - LIVE_CATCH_UP) if last is not None else as_of - feed.EVERY
    rows = live_leads(wall(since, ctx.policy), wall(as_of, ctx.policy), seed)
    if not rows:
        return {"rows_in": 0, "accepted": 0, "attached": 0, "quarantined": 0, "allocated": 0, "decisions": []}
    batch_id = f"{SOURCE_LIVE}-{wall(as_of, ctx.policy):%Y%m%d-%H%M%S}"
    summary = engine.register(ctx, batch_id, SOURCE_LIVE, [{**r, "row_number": i + 1} for i, r in enumerate(rows)],
                              as_of)
    decisions = summary.get("allocation", {}).get("decisions", [])
    return {**{k: summary.get(k, 0) for k in SUMS}, "allocated": summary.get("allocation", {}).get("allocated", 0),
            "decisions": decisions}
