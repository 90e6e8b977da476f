"""The dispute rerun (R-DISP-8), on demand for one customer: by id or registration reference.

A phone is never a parameter (R-REG-7: parameters are stored and shown); `leadflow dispute PHONE`
resolves the phone locally and passes the customer id. The rerun is an engine run like any other: the
clock catches up, the claims and the `dispute` event are recorded and applied, then the pool is offered.
"""
from __future__ import annotations

from tasks.masked import flow
from prefect.states import Failed

from flows.clock import engine_run, outcome_state
from flows.events import PHONE_REFUSED
from flows.params import AsOf, CustomerRef, PersonIds
from leadflow.events.record import batch_id_for, payload_digest
from leadflow.privacy import mask_phones_in_text
from tasks import engine as steps
from tasks import reporting, stages


def _run_name() -> str:
    from prefect.runtime import flow_run

    return mask_phones_in_text(f"dispute customer {flow_run.parameters.get('customer')}")  # R-REG-7


@flow(name="dispute", flow_run_name=_run_name)
def dispute_flow(customer: CustomerRef, claimants: PersonIds = None, as_of: AsOf = None):
    """Decide who the customer's deal belongs to from the recorded history; same history, nothing new."""
    if mask_phones_in_text(str(customer)) != str(customer):
        return Failed(message=PHONE_REFUSED)
    customer_id = stages.resolve_customer(str(customer))  # `--param customer=1` arrives as a number
    if customer_id is None:
        return Failed(message=f"no customer matches {customer!r} (give a customer id or a registration reference).")

    def act(run_after, now):
        rows = [{"type": "claim", "customer": str(customer_id), "person": p, "at": now} for p in claimants or []]
        rows += [{"type": "dispute", "customer": str(customer_id), "at": now}]
        rows = [{**r, "row_number": i + 1} for i, r in enumerate(rows)]
        batch = batch_id_for(f"{payload_digest(rows)}|{now.isoformat()}", prefix="dispute")
        return steps.record_events(batch, "dispute", rows, now, run_after)

    out, summary = engine_run(as_of, act)
    if summary["refused"]:
        return Failed(message=mask_phones_in_text("; ".join(f"{p['type']} refused: {p['reason']} "
                                                            f"({p['detail'] or 'see the ledger'})"
                                                            for p in summary["problems"])))
    decision = stages.last_dispute_decision(customer_id)
    if decision is None:
        return Failed(message=f"customer {customer_id}: no decision was recorded (see the validation artifact).")
    reporting.publish_dispute(customer_id, decision)
    state = outcome_state(out, {"dispute": decision})  # issue 9.5: a pooled lead or a mass breach needs a person
    return state if state.is_failed() else decision
