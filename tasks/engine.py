"""Tasks of the one engine: a time-driven stage's due instant, the events of a delivery, the pool offer.

The flows hold the engine's run (`leadflow.engine.run`: clock lock, clock, catch-up, then the act, then
waiting events and the pool offer); these tasks are the steps the UI shows inside it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from tasks.masked import task
from prefect.cache_policies import NO_CACHE

from leadflow.clock import business_time_label
from leadflow.settings import configured_policy
from leadflow.stages.context import StageContext
from leadflow.store.transient import retry_transient
from tasks.context import stage_ctx

TITLES = {"sla_check": "SLA check", "monthly_audit": "monthly audit listing", "audit_grace": "audit hand-over",
          "conversion_expiry": "conversion expiry", "quarterly_review": "quarterly review"}


def run_ctx(run_after: dt.datetime | None) -> StageContext:
    """The task's stage context inside the flow's engine run (R-ALLOC-5 needs to know where the run began)."""
    return dataclasses.replace(stage_ctx(), run_after=run_after)


@task(name="time-driven stage", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5],
      retry_condition_fn=retry_transient)
def timed_stage(stage: str, at: dt.datetime, work: Callable[[], dict]) -> dict:
    """One due instant of one time-driven stage (idempotent in `at`, so a retry records nothing twice)."""
    return work()


def stage_runner(stage: str, at: dt.datetime, work: Callable[[], dict]) -> dict:
    """The engine's runner in a flow: each due instant is its own task run, its artifact beside it."""
    from tasks import reporting

    label = business_time_label(at, configured_policy())
    summary = timed_stage.with_options(task_run_name=f"{TITLES.get(stage, stage)} {label}")(stage, at, work)
    if stage == "sla_check" and summary.get("breaches"):
        reporting.publish_breaches(summary)
    elif stage == "monthly_audit" and summary.get("listed"):
        reporting.publish_audit(summary)
    elif stage == "audit_grace" and summary.get("taken_back"):
        reporting.publish_allocations("audit re-allocation", summary["decisions"][:reporting.SHOWN_ROWS],
                                      total=len(summary["decisions"]))
        reporting.notify_owners(summary["decisions"])
    elif stage == "conversion_expiry" and summary.get("decisions"):
        reporting.publish_expiry(summary)
        reporting.notify_owners(summary["decisions"])
    elif stage == "quarterly_review":
        reporting.publish_review(summary)
    return summary


@task(name="record events", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5],
      retry_condition_fn=retry_transient)
def record_events(batch_id: str, source: str, rows: list[dict], as_of: dt.datetime, run_after: dt.datetime | None,
                  operator: str | None = None, digest: str | None = None) -> dict:
    """Stage a delivery's events and apply them in time order; its summary (no phones)."""
    from leadflow.events import record

    ctx = run_ctx(run_after)
    record.stage_events(ctx, batch_id, source, rows, as_of, operator, digest)
    record.apply_pending(ctx, as_of, batch_id)
    return record.finish(ctx, batch_id, as_of)


@task(name="record an event file", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5],
      retry_condition_fn=retry_transient)
def record_file(batch_id: str, source: str, path: str, as_of: dt.datetime, run_after: dt.datetime | None,
                operator: str | None = None, digest: str | None = None) -> dict | str:
    """Read an event file here (its rows never travel through Prefect), stage and apply it; its summary,
    or the one sentence saying why the file cannot be read."""
    from leadflow.events.readers import IntakeFileError, iter_event_rows

    try:
        rows = list(iter_event_rows(path))
    except IntakeFileError as e:
        return str(e)
    return record_events.fn(batch_id, source, rows, as_of, run_after, operator, digest)


@task(name="earlier delivery")
def previous_events(batch_id: str) -> dict | None:
    from leadflow.events import record

    with stage_ctx().engine.connect() as conn:
        return record.previous_summary(conn, batch_id)
