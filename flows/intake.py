"""The registration (intake) flow: a file of leads in, a summary out (R-REG, R-VAL, R-ALLOC)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Failed

from tasks import intake, reporting


def _run_name() -> str:
    return f"intake {Path(flow_run.parameters.get('path', 'file')).name}"


@flow(name="intake", flow_run_name=_run_name, log_prints=False)
def intake_flow(path: str, as_of: dt.datetime | None = None):
    """Register a file of leads: read, stage, validate, settle, allocate, publish."""
    now = as_of or dt.datetime.now(dt.timezone.utc)
    batch_id, digest = intake.batch_id_for(path)
    summary = intake.previous_summary(batch_id)
    if summary is None:
        rows = intake.read_file(path)
        if isinstance(rows, str):
            return Failed(message=rows)
        intake.stage(batch_id, Path(path).name, rows, digest, now)
        gate = intake.validate(batch_id)
        reporting.publish_validation(gate)
        summary = intake.settle(batch_id, gate, now)
        if "batch_error" in summary:  # R-VAL-3: every row quarantined, the run fails plainly
            return Failed(message=summary["batch_error"])
        reporting.publish_allocations(Path(path).name, summary["allocation"]["decisions"])
        reporting.notify_owners(summary["allocation"]["decisions"])
    reporting.publish_intake(Path(path).name, batch_id, summary)
    if summary.get("allocation", {}).get("pooled"):
        return reporting.pool_warning(summary["allocation"])
    return summary
