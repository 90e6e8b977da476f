"""The registration (intake) flow: a file of leads in, a summary out (R-REG, R-VAL, R-ALLOC).

One engine run at `as_of` (`flows.clock.engine_run`): the clock catches up first, then the file is read,
staged, validated, settled and allocated, then waiting events and the pool get their turn.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.clock import engine_run, outcome_state
from leadflow.rules.registration import mask_phones_in_text
from tasks import intake, reporting


def _run_name() -> str:
    return mask_phones_in_text(f"intake {Path(flow_run.parameters.get('path', 'file')).name}")


@flow(name="intake", flow_run_name=_run_name, log_prints=False)
def intake_flow(path: str, as_of: dt.datetime | None = None):
    """Register a file of leads: catch up, read, stage, validate, settle, allocate, publish."""
    name = mask_phones_in_text(Path(path).name)
    batch_id, digest = intake.batch_id_for(path)
    summary = intake.previous_summary(batch_id)
    if summary is not None:
        reporting.publish_intake(name, batch_id, summary)
        return summary
    rows = intake.read_file(path)
    if isinstance(rows, str):
        return Failed(message=rows)

    def act(run_after, now):
        intake.stage(batch_id, name, rows, digest, now)
        gate = intake.validate(batch_id)
        reporting.publish_validation(gate)
        return intake.settle(batch_id, gate, now, run_after)

    out, summary = engine_run(as_of, act)
    if "batch_error" in summary:  # R-VAL-3: every row quarantined, the run fails plainly
        return Failed(message=summary["batch_error"])
    reporting.publish_allocations(name, summary["allocation"]["decisions"])
    reporting.notify_owners(summary["allocation"]["decisions"])
    reporting.publish_intake(name, batch_id, summary)
    if summary["allocation"].get("pooled"):
        return reporting.pool_warning(summary["allocation"], summary)
    state = outcome_state(out, {k: v for k, v in summary.items() if k != "allocation"})
    return state if state.is_failed() else summary
