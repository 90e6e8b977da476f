"""The weekly rotation report (Mondays 00:00): the new week's order and last week's fairness."""
from __future__ import annotations

import datetime as dt

from tasks.masked import flow, task
from prefect.artifacts import create_table_artifact

from flows.params import AsOf
from flows.timed import run_name

from leadflow import reports
from tasks.context import stage_ctx
from tasks.reporting import when


@task(name="fairness table")
def fairness_table(start: dt.datetime, end: dt.datetime) -> list[dict]:
    """R-ALLOC-7: leads per person per tier in [start, end) against their eligible share, people by name; the
    window in business days (issue 9.4)."""
    from leadflow.clock import business_date
    from tasks.reporting import labels_for

    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        rows = reports.fairness(conn, start, end)
    labels = labels_for([r["person"] for r in rows])
    table = [{"tier": r["tier"], "person": labels.person(r["person"]), "leads": r["leads"],
              "eligible share": r["eligible_share"], "difference": r["difference"]} for r in rows]
    last_day = business_date(end - dt.timedelta(microseconds=1), ctx.policy)
    create_table_artifact(table or [{"result": "no allocations in the period"}], key="fairness",
                          description=f"Leads per person per tier against their eligible share, "
                                      f"{business_date(start, ctx.policy)} to {last_day} (business days, "
                                      f"{when(start)} to {when(end)})")
    return rows


@task(name="rotation order")
def rotation_order(as_of: dt.datetime) -> list[str]:
    from sqlalchemy import select

    from leadflow.clock import week_index, week_start
    from tasks.reporting import labels_for
    from leadflow.rules.allocation import week_order
    from leadflow.stages.context import rotation_epoch
    from leadflow.store.models import Department

    ctx = stage_ctx()
    with ctx.engine.begin() as conn:
        depts = tuple(conn.execute(select(Department.id).order_by(Department.position)).scalars())
        order = list(week_order(depts, week_index(as_of, rotation_epoch(conn, ctx, as_of), ctx.policy)))
    labels = labels_for((), order)
    monday = week_start(as_of, ctx.policy)
    create_table_artifact([{"position": i + 1, "department": labels.department(d)} for i, d in enumerate(order)],
                          key="rotation-order",
                          description=f"R-ALLOC-1 department order for the week of Monday {monday.date()} "
                                      f"(from {when(monday)})")
    return order


@flow(name="weekly-rotation-report", flow_run_name=run_name("rotation report"))
def weekly_rotation_report_flow(as_of: AsOf = None) -> dict:
    """R-ALLOC-1 shift and R-ALLOC-7 publication: this week's order, last week's fairness (Monday 00:00 to
    Monday 00:00 business time)."""
    from leadflow.clock import last_week

    now = as_of or dt.datetime.now(dt.timezone.utc)
    order = rotation_order(now)
    rows = fairness_table(*last_week(now, stage_ctx().policy))  # last Monday 00:00 to this Monday 00:00
    return {"order": order, "fairness_rows": len(rows)}
