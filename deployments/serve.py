"""Serve every deployment from one process, schedules in Asia/Shanghai (the same set prefect.yaml declares)."""
from __future__ import annotations

import datetime as dt

from prefect import serve
from prefect.schedules import Cron, Interval

from flows.dispute import dispute_flow
from flows.intake import intake_flow
from flows.lifecycle import inbox_flow, lifecycle_flow
from flows.reports import weekly_rotation_report_flow
from flows.timed import (
    allocation_flow, conversion_expiry_flow, monthly_audit_flow, quarterly_review_flow, sla_check_flow,
)

TZ = "Asia/Shanghai"


def deployments(inbox: str):
    """The deployments, by name; `inbox` is the folder the micro-batch intake watches."""
    return [
        intake_flow.to_deployment(name="intake-file", description="Register one file (parameter: path)."),
        inbox_flow.to_deployment(name="intake-inbox", parameters={"inbox": inbox},
                                 schedules=[Interval(dt.timedelta(minutes=1), timezone=TZ)],
                                 description="Micro-batch: register files dropped in the inbox within a minute."),
        sla_check_flow.to_deployment(name="sla-check", schedules=[Cron("*/5 * * * *", timezone=TZ)]),
        allocation_flow.to_deployment(name="allocation", schedules=[Cron("*/15 * * * *", timezone=TZ)]),
        monthly_audit_flow.to_deployment(name="monthly-audit", schedules=[Cron("0 0 1 * *", timezone=TZ)]),
        conversion_expiry_flow.to_deployment(name="conversion-expiry", schedules=[Cron("0 0 * * *", timezone=TZ)]),
        weekly_rotation_report_flow.to_deployment(name="weekly-rotation-report",
                                                  schedules=[Cron("0 0 * * 1", timezone=TZ)]),
        quarterly_review_flow.to_deployment(name="quarterly-review",
                                            schedules=[Cron("0 0 1 1,4,7,10 *", timezone=TZ)]),
        dispute_flow.to_deployment(name="dispute-rerun",
                                   description="On demand: parameters customer (id or registration reference) "
                                               "and optional claimants."),
        lifecycle_flow.to_deployment(name="lifecycle", parameters={"inbox": inbox},
                                     description="The whole lifecycle once, on demand."),
    ]


def serve_all(inbox: str) -> None:
    serve(*deployments(inbox), limit=4)
