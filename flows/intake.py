"""The registration (intake) flow: a file of leads in, a summary out (R-REG, R-VAL, R-ALLOC).

One engine run at `as_of` (`flows.clock.engine_run`): the clock catches up first, then the file is read and
staged, validated, settled, and the pool offered; then waiting events and the pool get their turn. The
file's rows never travel through Prefect: tasks take its path and return counts and ids.

A batch is finished only when decided in full (one transaction). Delivering the same file again after a
crash completes what is missing: a batch never decided is staged afresh, and any lead left in the pool is
offered by this run (as by every run), and the summary says so.
"""
from __future__ import annotations

from pathlib import Path

from tasks.masked import flow
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.clock import engine_run, outcome_state
from flows.params import AsOf, FilePath
from leadflow import engine
from leadflow.rules.registration import mask_phones_in_text
from tasks import intake, reporting


def _run_name() -> str:
    return mask_phones_in_text(f"intake {Path(flow_run.parameters.get('path', 'file')).name}")


@flow(name="intake", flow_run_name=_run_name, log_prints=False)
def intake_flow(path: FilePath, as_of: AsOf = None):
    """Register a file of leads: catch up, stage, validate, settle, allocate, publish."""
    name = mask_phones_in_text(Path(path).name)
    batch_id, digest = intake.batch_id_for(path)

    def act(run_after, now):
        staged = intake.stage_file(batch_id, path, name, digest, now)
        if "file_error" in staged:
            return staged
        if "already_registered" in staged:
            summary = staged["already_registered"]
        else:
            gate = intake.validate(batch_id)
            reporting.publish_validation(gate)
            summary = intake.settle(batch_id, gate, now, run_after)
            if "batch_error" in summary:
                return summary
        summary["allocation"] = intake.offer(now, run_after)
        return {**summary, "batch_id": batch_id}  # the run summary counts its quarantined rows by reason

    out, summary = engine_run(as_of, act)
    if "allocation" in summary:  # what the offer before the act allocated (a crashed run's leads) counts too
        before = out.get("pool_before") or {}
        summary["allocation"] = engine.merge_offers({**before, "decisions": []}, summary["allocation"])
    if "file_error" in summary:
        return Failed(message=summary["file_error"])
    if "batch_error" in summary:  # R-VAL-3: every row quarantined, the run fails plainly
        return Failed(message=summary["batch_error"])
    reporting.publish_allocations(name, summary["allocation"]["decisions"])
    reporting.notify_owners(summary["allocation"]["decisions"])
    reporting.publish_intake(name, batch_id, summary)
    # R-ALLOC-5: what this run left in the pool, every lead and why (this batch's and older ones re-offered)
    pool = {**out["pool"], **reporting.final_pool(out, summary)}
    state = outcome_state({**out, "pool": pool}, summary)
    return state if state.is_failed() else summary
