"""Intake tasks: stage a file, gate it, settle it, offer the pool (R-REG, R-VAL, R-ALLOC).

No lead data travels through Prefect: tasks take a file path, a batch id and times, and return counts, ids
and masked summaries, so nothing with a phone number is ever a parameter or a persisted result. Each task
is idempotent in its inputs and retried on a transient database error (a dropped connection, a deadlock).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from tasks.masked import task
from prefect.cache_policies import NO_CACHE

from leadflow.intake.readers import IntakeFileError, read_registration_file
from leadflow.stages import intake
from leadflow.store.transient import retry_transient
from tasks.context import stage_ctx

RETRY = {"retries": 2, "retry_delay_seconds": [2, 5], "retry_condition_fn": retry_transient,
         "cache_policy": NO_CACHE}


def batch_id_for(path: str) -> tuple[str, str]:
    """A file's batch id is its content digest: the same file delivered twice is one batch (R-REG-4)."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return f"file-{digest[:20]}", digest


@task(name="stage rows", **RETRY)
def stage_file(batch_id: str, path: str, source: str, digest: str, now: dt.datetime) -> dict:
    """Read the file here and stage its rows (under the engine's clock lock).

    Returns {"staged": n}, {"already_registered": summary} for a batch decided before, or
    {"file_error": one sentence} for a file that cannot be read."""
    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        earlier = intake.previous_summary(conn, batch_id)
    if earlier is not None:
        return {"already_registered": earlier}
    try:
        rows = read_registration_file(path)
    except IntakeFileError as e:
        return {"file_error": str(e)}
    with ctx.engine.begin() as conn:
        staged = intake.stage_rows(conn, ctx, batch_id, source, rows, now, digest)
    from leadflow import failpoints

    failpoints.hit("intake.staged")
    return {"staged": staged}


@task(name="validate (intake suite)", **RETRY)
def validate(batch_id: str):
    return stage_ctx().gate("intake", batch_id=batch_id)


@task(name="accept, attach, quarantine", **RETRY)
def settle(batch_id: str, gate, now: dt.datetime, run_after: dt.datetime | None = None) -> dict:
    """The batch's outcome (counts and new customer ids); a batch broken as a whole (R-VAL-3) comes back
    with its one-sentence error."""
    from tasks.engine import run_ctx

    try:
        return intake.settle(run_ctx(run_after), batch_id, gate, now)
    except intake.StageFailure as e:
        return {"batch_error": str(e)}


@task(name="allocate from the pool", **RETRY)
def offer(now: dt.datetime, run_after: dt.datetime | None = None) -> dict:
    """R-ALLOC-5: offer the pool (this batch's new leads and any left waiting), oldest first."""
    from leadflow import engine
    from tasks.engine import run_ctx

    return engine.offer_pool(run_ctx(run_after), now)
