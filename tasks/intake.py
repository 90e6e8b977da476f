"""Intake tasks: read a file, stage it, gate it, settle it (R-REG, R-VAL)."""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from prefect import task

from leadflow.intake.readers import IntakeFileError, read_registration_file
from leadflow.stages import intake
from tasks.context import stage_ctx


def batch_id_for(path: str) -> tuple[str, str]:
    """A file's batch id is its content digest: the same file delivered twice is one batch (R-REG-4)."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return f"file-{digest[:20]}", digest


@task(name="read registrations", retries=2, retry_delay_seconds=[2, 5])
def read_file(path: str) -> list[dict] | str:
    """The file's rows, or the one sentence saying why the file cannot be read (not retried)."""
    try:
        return read_registration_file(path)
    except IntakeFileError as e:
        return str(e)


@task(name="previous delivery")
def previous_summary(batch_id: str) -> dict | None:
    """The outcome of this very file if it was registered before; then nothing is done again."""
    from sqlalchemy import select

    from leadflow.store.models import IntakeBatch

    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        row = conn.execute(select(IntakeBatch).where(IntakeBatch.id == batch_id,
                                                     IntakeBatch.finished_at.is_not(None))).mappings().first()
    if row is None:
        return None
    return {"rows_in": row["rows_in"], "accepted": row["accepted"], "attached": row["attached"],
            "quarantined": row["quarantined"], "already_registered": True}


@task(name="stage rows", retries=2, retry_delay_seconds=[2, 5, 15])
def stage(batch_id: str, source: str, rows: list[dict], digest: str, now: dt.datetime) -> int:
    ctx = stage_ctx()
    with ctx.engine.begin() as conn:
        return intake.stage_rows(conn, ctx, batch_id, source, rows, now, digest)


@task(name="validate (intake suite)")
def validate(batch_id: str):
    return stage_ctx().gate("intake", batch_id=batch_id)


@task(name="accept, attach, quarantine and allocate")
def settle(batch_id: str, gate, now: dt.datetime, run_after: dt.datetime | None = None) -> dict:
    """The batch's outcome; a batch broken as a whole (R-VAL-3) comes back with its one-sentence error."""
    from tasks.engine import run_ctx

    try:
        return intake.settle(run_ctx(run_after), batch_id, gate, now)
    except intake.StageFailure as e:
        return {"batch_error": str(e)}
