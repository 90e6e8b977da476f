"""Tasks over the time-driven and on-demand stages: one transaction each, a summary back."""
from __future__ import annotations

import datetime as dt

from tasks.masked import task

from leadflow.stages import audit, conversion, disputes, review, sla, validation
from leadflow.stages.allocation import allocate_pool
from tasks.context import stage_ctx


def _in_transaction(fn, as_of: dt.datetime) -> dict:
    ctx = stage_ctx()
    with ctx.engine.begin() as conn:
        return fn(conn, ctx, as_of)


@task(name="registration records in play")
def records_in_play(scope: str = "open") -> list[int]:
    """The registration ids a stage reads: those of customers with an open assignment, or in the pool."""
    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        return validation.records_in_play(conn, scope)


@task(name="validate")
def validate(stage: str, ids: list[int]):
    """R-VAL-1: the stage's expectation suite over the registration records it will read."""
    return stage_ctx().gate(stage, ids=ids)


@task(name="allocate the pool", retries=2, retry_delay_seconds=[2, 5, 15])
def allocate(as_of: dt.datetime) -> dict:
    return _in_transaction(allocate_pool, as_of)


@task(name="SLA check", retries=2, retry_delay_seconds=[2, 5, 15])
def sla_check(as_of: dt.datetime) -> dict:
    return _in_transaction(sla.run, as_of)


@task(name="monthly audit listing", retries=2, retry_delay_seconds=[2, 5, 15])
def audit_listing(as_of: dt.datetime) -> dict:
    return _in_transaction(audit.run_audit, as_of)


@task(name="audit re-allocation", retries=2, retry_delay_seconds=[2, 5, 15])
def audit_grace(as_of: dt.datetime) -> dict:
    return _in_transaction(audit.run_grace, as_of)


@task(name="conversion expiry", retries=2, retry_delay_seconds=[2, 5, 15])
def expiry(as_of: dt.datetime) -> dict:
    return _in_transaction(conversion.run, as_of)


@task(name="quarterly review", retries=2, retry_delay_seconds=[2, 5, 15])
def quarterly_review(as_of: dt.datetime) -> dict:
    return _in_transaction(review.run, as_of)


@task(name="dispute rerun", retries=2, retry_delay_seconds=[2, 5, 15])
def dispute(customer_id: int, as_of: dt.datetime) -> dict:
    return _in_transaction(lambda conn, ctx, at: disputes.rerun(conn, ctx, customer_id, at), as_of)


@task(name="find the customer")
def resolve_customer(key: str) -> int | None:
    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        return disputes.resolve_customer(conn, key)


@task(name="registrations of the customer")
def registrations_of(customer_id: int) -> list[int]:
    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        return validation.registrations_of(conn, customer_id)


@task(name="the dispute decision on record")
def last_dispute_decision(customer_id: int) -> dict | None:
    """R-DISP-8: the latest decision the ledger holds for the customer."""
    from leadflow.stages.disputes import _last_decision

    with stage_ctx().engine.connect() as conn:
        return _last_decision(conn, customer_id)
