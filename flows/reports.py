"""The weekly rotation report (Mondays 00:00): the new week's order and last week's fairness."""
from __future__ import annotations

import datetime as dt

from tasks.masked import flow, task
from prefect.artifacts import create_table_artifact

from flows.timed import run_name

from leadflow import reports
from tasks.context import stage_ctx


@task(name="fairness table")
def fairness_table(start: dt.datetime, end: dt.datetime) -> list[dict]:
    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        rows = reports.fairness(conn, start, end)
    create_table_artifact(rows or [{"result": "no allocations in the period"}], key="fairness",
                          description=f"Leads per person per tier against their eligible share, "
                                      f"{start.date()} to {end.date()}")
    return rows


@task(name="rotation order")
def rotation_order(as_of: dt.datetime) -> list[str]:
    from sqlalchemy import select

    from leadflow.clock import week_index
    from leadflow.rules.allocation import week_order
    from leadflow.stages.context import rotation_epoch
    from leadflow.store.models import Department

    ctx = stage_ctx()
    with ctx.engine.begin() as conn:
        depts = tuple(conn.execute(select(Department.id).order_by(Department.position)).scalars())
        order = list(week_order(depts, week_index(as_of, rotation_epoch(conn, ctx, as_of), ctx.policy)))
    create_table_artifact([{"position": i + 1, "department": d} for i, d in enumerate(order)], key="rotation-order",
                          description=f"R-ALLOC-1 department order for the week of {as_of.date()}")
    return order


@flow(name="weekly-rotation-report", flow_run_name=run_name("rotation report"))
def weekly_rotation_report_flow(as_of: dt.datetime | None = None) -> dict:
    """R-ALLOC-1 shift and R-ALLOC-7 publication: this week's order, last week's fairness."""
    now = as_of or dt.datetime.now(dt.timezone.utc)
    order = rotation_order(now)
    rows = fairness_table(now - dt.timedelta(days=7), now)
    return {"order": order, "fairness_rows": len(rows)}
