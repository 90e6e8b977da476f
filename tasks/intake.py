"""Intake tasks: stage a file, gate it, settle it, offer the pool (R-REG, R-VAL, R-ALLOC).

No lead data travels through Prefect: tasks take a file path, batch ids and times, and return counts, ids
and masked summaries, so nothing with a phone number is ever a parameter or a persisted result. A big file
is read streamed, in batches of the policy's `intake.batch_rows` rows (`leadflow.engine.register_file`
names them the same way): tasks run per batch, never per lead, and what they return does not grow with the
file (an offer's allocations come back as counts and a bounded sample; every one is on the ledger). Each
task is idempotent in its inputs and retried on a transient database error (a dropped connection, a deadlock).
"""
from __future__ import annotations

import datetime as dt

from prefect.cache_policies import NO_CACHE

from leadflow.intake.readers import IntakeFileError, file_digest, registration_rows
from leadflow.stages import intake
from leadflow.store.transient import retry_transient
from tasks.context import stage_ctx
from tasks.reporting import SHOWN_ROWS
from tasks.masked import task

RETRY = {"retries": 2, "retry_delay_seconds": [2, 5], "retry_condition_fn": retry_transient,
         "cache_policy": NO_CACHE}
SAMPLE_DECISIONS = SHOWN_ROWS  # allocations an offer returns to the flow for its artifact


def batch_id_for(path: str) -> tuple[str, str]:
    """A file's batch id is its content digest: the same file delivered twice is one batch (R-REG-4).

    A file larger than `intake.batch_rows` is several batches; this is the id of its last one (the only
    one of a smaller file), which is finished only when the whole file is (`intake.file_batch_id`). The
    digest is read streamed. Raises IntakeFileError (one sentence) when the file cannot be read."""
    digest = file_digest(path)
    return intake.file_batch_id(digest, 0, True), digest


@task(name="stage rows", **RETRY)
def stage_file(path: str, source: str, digest: str, now: dt.datetime) -> dict:
    """Read the file streamed, in batches of the policy's `intake.batch_rows` rows, and stage each batch not
    decided before (one transaction each; a batch staged but never decided is staged afresh). Under the
    engine's clock lock.

    Returns {"batches": [{"batch_id", "rows", "decided"}] in file order, "rows_in"}, {"already_registered":
    the file's earlier summary} when every batch was decided before, or {"file_error": one sentence} for a
    file that cannot be read."""
    from leadflow import failpoints

    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        earlier = intake.file_summary(conn, digest)
        size = intake.file_batch_size(conn, digest, ctx.policy.intake.batch_rows)
    if earlier is not None:
        return {"already_registered": earlier}
    batches, rows_in = [], 0
    try:
        for number, last, rows in intake.file_chunks(registration_rows(path), size):
            batch_id = intake.file_batch_id(digest, number, last)
            with ctx.engine.connect() as conn:
                decided = intake.previous_summary(conn, batch_id) is not None
            if not decided:
                with ctx.engine.begin() as conn:
                    intake.stage_rows(conn, ctx, batch_id, source, rows, now, digest)
            batches.append({"batch_id": batch_id, "rows": len(rows), "decided": decided})
            rows_in += len(rows)
    except IntakeFileError as e:
        return {"file_error": str(e)}
    failpoints.hit("intake.staged")
    return {"batches": batches, "rows_in": rows_in}


@task(name="validate (intake suite)", **RETRY)
def validate(batch_id: str):
    return stage_ctx().gate("intake", batch_id=batch_id)


@task(name="accept, attach, quarantine", **RETRY)
def settle(batch_id: str, gate, now: dt.datetime, run_after: dt.datetime | None = None) -> dict:
    """The batch's outcome: counts, and how many new customers (their ids stay in the store); a batch
    decided before comes back with its counts and `already_registered`; a batch broken as a whole (R-VAL-3)
    comes back with its one-sentence error."""
    from tasks.engine import run_ctx

    try:
        summary = intake.settle(run_ctx(run_after), batch_id, gate, now)
    except intake.StageFailure as e:
        return {"batch_error": str(e)}
    summary["new_customers"] = len(summary.get("new_customers") or ())
    return summary


def decided(batch_id: str) -> dict:
    """The counts of a batch decided before (a redelivery after a crash mid-file)."""
    with stage_ctx().engine.connect() as conn:
        return intake.previous_summary(conn, batch_id) or {}


@task(name="allocate from the pool", **RETRY)
def offer(now: dt.datetime, run_after: dt.datetime | None = None) -> dict:
    """R-ALLOC-5: offer the pool (this batch's new leads and any left waiting), oldest first; the new owners are
    told here. Returns the offer's counts and pooled leads, with at most SAMPLE_DECISIONS of its allocations
    (`decisions`; `decisions_total` says how many there were): every one is on the ledger."""
    from leadflow import engine
    from tasks import reporting
    from tasks.engine import run_ctx

    result = engine.offer_pool(run_ctx(run_after), now)
    decisions = result.get("decisions") or []
    if decisions:
        reporting.notify_owners.fn(decisions)
    return bounded(result)


def bounded(offer_: dict) -> dict:
    """An offer's summary with at most SAMPLE_DECISIONS allocations (`decisions_total` counts them all)."""
    decisions = offer_.get("decisions") or []
    return {**offer_, "decisions": decisions[:SAMPLE_DECISIONS],
            "decisions_total": offer_.get("decisions_total", len(decisions))}
