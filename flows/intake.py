"""The registration (intake) flow: a file of leads in, a summary out (R-REG, R-VAL, R-ALLOC).

One engine run at `as_of` (`flows.clock.engine_run`): the clock catches up first, then the file is read
streamed and staged in batches of the policy's `intake.batch_rows` rows, and each batch is validated,
settled and offered the pool in turn; then waiting events and the pool get their turn. The file's rows
never travel through Prefect: tasks take its path and batch ids and return counts, ids and a bounded sample
of the allocations, so a file of a million rows costs a few tasks per batch, never one per lead.

A batch is finished only when decided in full (one transaction). Delivering the same file again after a
crash completes what is missing: the batches never decided are staged afresh and decided, the others are
counted as they were decided, any lead left in the pool is offered by this run (as by every run), and the
summary says so.
"""
from __future__ import annotations

from pathlib import Path

from prefect.runtime import flow_run
from prefect.states import Failed

from flows.clock import engine_run, outcome_state
from flows.params import AsOf, FilePath
from leadflow.intake.readers import IntakeFileError
from leadflow.rules.registration import mask_phones_in_text
from tasks import intake, reporting
from tasks.masked import flow

COUNTS = ("rows_in", "accepted", "attached", "quarantined")


def _run_name() -> str:
    return mask_phones_in_text(f"intake {Path(flow_run.parameters.get('path', 'file')).name}")


def _add_offer(total: dict, offer: dict) -> None:
    """Sum an offer into the run's allocation: counts added, a bounded sample of allocations kept, the pool
    as the last offer left it."""
    total["offered"] += offer.get("offered", 0)
    total["allocated"] += offer.get("allocated", 0)
    total["decisions_total"] += offer.get("decisions_total", len(offer.get("decisions") or []))
    room = intake.SAMPLE_DECISIONS - len(total["decisions"])
    total["decisions"] += (offer.get("decisions") or [])[:max(room, 0)]
    total["pooled"] = offer.get("pooled", 0)
    total["pooled_leads"] = offer.get("pooled_leads", [])


def refused_batches(errors: list[str], batches: int) -> str:
    """One sentence for the batches of a file refused as a whole (R-VAL-3): a file of one batch, its own; else how
    many of the file's batches, and the first one's reason (a rejected file's `reason.txt` starts with this line;
    each row's reason follows it there)."""
    if batches <= 1 and len(errors) == 1:
        return errors[0]
    first = errors[0].rstrip(".")
    first = first[:1].lower() + first[1:]
    was = "was" if len(errors) == 1 else "were"
    rest = batches - len(errors)
    others = ("" if not rest else "; the other batch was registered" if rest == 1
              else f"; the other {rest} batches were registered")
    return (f"{len(errors)} of the file's {batches} batches {was} refused as a whole (R-VAL-3), the first because "
            f"{first}{others}.")


@flow(name="intake", flow_run_name=_run_name, log_prints=False)
def intake_flow(path: FilePath, as_of: AsOf = None):
    """Register a file of leads: catch up, then per batch stage, validate, settle, allocate; publish."""
    name = mask_phones_in_text(Path(path).name)
    try:
        batch_id, digest = intake.batch_id_for(path)
    except IntakeFileError as e:
        return Failed(message=str(e))

    def act(run_after, now):
        staged = intake.stage_file(path, name, digest, now)
        if "file_error" in staged:
            return staged
        allocation = {"offered": 0, "allocated": 0, "pooled": 0, "pooled_leads": [], "decisions": [],
                      "decisions_total": 0}
        if "already_registered" in staged:
            summary = dict(staged["already_registered"])
            _add_offer(allocation, intake.offer(now, run_after))
            return {**summary, "allocation": allocation, "batch_id": batch_id}
        summary = {**dict.fromkeys(COUNTS, 0), "batches": [], "errors": []}
        for batch in staged["batches"]:
            if batch["decided"]:  # decided by an earlier delivery that crashed later in the file
                outcome = intake.decided(batch["batch_id"])
            else:
                gate = intake.validate(batch["batch_id"])
                reporting.publish_validation(gate)
                outcome = intake.settle(batch["batch_id"], gate, now, run_after)
                if "batch_error" in outcome:  # R-VAL-3: this batch quarantined as a whole; the others go on
                    summary["errors"].append(outcome["batch_error"])
                    outcome = intake.decided(batch["batch_id"])
                else:
                    summary["docs"] = outcome.get("docs")
            for k in COUNTS:
                summary[k] += outcome.get(k, 0)
            summary["batches"].append(batch["batch_id"])
            _add_offer(allocation, intake.offer(now, run_after))
        if summary["errors"]:
            summary["batch_error"] = refused_batches(summary["errors"], len(summary["batches"]))
        return {**summary, "allocation": allocation, "batch_id": batch_id}  # quarantined rows counted by reason

    out, summary = engine_run(as_of, act)
    if "allocation" in summary:  # what the offer before the act allocated (a crashed run's leads) counts too
        before = out.get("pool_before") or {}
        counted = {"offered": before.get("offered", 0), "allocated": before.get("allocated", 0)}
        summary["allocation"] = {**summary["allocation"],
                                 **{k: summary["allocation"][k] + v for k, v in counted.items()}}
    if "file_error" in summary:
        return Failed(message=summary["file_error"])
    if "batch_error" in summary and len(summary.get("errors", ())) == len(summary.get("batches", ())):
        return Failed(message=summary["batch_error"])  # R-VAL-3: every row quarantined, the run fails plainly
    allocation = summary["allocation"]
    reporting.publish_allocations(name, allocation["decisions"], total=allocation["decisions_total"])
    reporting.publish_intake(name, summary.get("batches") or [batch_id], summary)
    # R-ALLOC-5: what this run left in the pool, every lead and why (this batch's and older ones re-offered)
    pool = {**out["pool"], **reporting.final_pool(out, summary)}
    state = outcome_state({**out, "pool": pool}, summary)
    if state.is_failed() or "batch_error" not in summary:
        return state if state.is_failed() else summary
    return Failed(message=summary["batch_error"])  # some batches refused as a whole (R-VAL-3)
