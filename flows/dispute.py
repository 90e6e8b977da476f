"""The dispute rerun (R-DISP-8), on demand for one customer: by id or registration reference.

A phone is never a parameter (R-REG-7: parameters are stored and shown); `leadflow dispute --phone`
resolves the phone locally and passes the customer id.
"""
from __future__ import annotations

import datetime as dt

from prefect import flow
from prefect.states import Failed

from tasks import reporting, stages


@flow(name="dispute", flow_run_name="dispute customer {customer}")
def dispute_flow(customer: int | str, claimants: list[str] | None = None, as_of: dt.datetime | None = None):
    """Decide who the customer's deal belongs to from the recorded history; same history, nothing new."""
    customer_id = stages.resolve_customer(str(customer))  # `--param customer=1` arrives as a number
    if customer_id is None:
        return Failed(message=f"no customer matches {customer!r} (give a customer id or a registration reference).")
    for person in claimants or []:
        stages.claim(customer_id, person, as_of or dt.datetime.now(dt.timezone.utc))
    gate = stages.validate("dispute", stages.registrations_of(customer_id))
    reporting.publish_validation(gate)
    if gate.batch_error:
        return Failed(message=gate.batch_error)
    decision = stages.dispute(customer_id, as_of or dt.datetime.now(dt.timezone.utc))
    reporting.publish_dispute(customer_id, decision)
    return decision
