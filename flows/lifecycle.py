"""The whole lifecycle in one run: intake of every file in the inbox, allocation, and the time-driven checks."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from flows.intake import intake_flow
from flows.reports import weekly_rotation_report_flow
from flows.timed import (
    run_name,
    allocation_flow, conversion_expiry_flow, monthly_audit_flow, quarterly_review_flow, sla_check_flow,
)

PATTERNS = ("*.csv", "*.jsonl", "*.ndjson", "*.xlsx")


def inbox_files(inbox: str) -> list[str]:
    folder = Path(inbox)
    return sorted(str(p) for pattern in PATTERNS for p in folder.glob(pattern)) if folder.is_dir() else []


@flow(name="inbox", flow_run_name=lambda: f"inbox {Path(flow_run.parameters['inbox']).name}")
def inbox_flow(inbox: str) -> dict:
    """Register every file dropped in the inbox; a file already registered changes nothing (R-REG-4)."""
    results = {}
    for path in inbox_files(inbox):
        state = intake_flow(path=path, return_state=True)
        results[Path(path).name] = state.type.value
    return results


@flow(name="lifecycle", flow_run_name=run_name("lifecycle"))
def lifecycle_flow(inbox: str, as_of: dt.datetime | None = None) -> dict:
    """Intake, allocation, SLA check, monthly audit, conversion expiry, review and the fairness report."""
    now = as_of or dt.datetime.now(dt.timezone.utc)
    out = {"intake": inbox_flow(inbox)}
    for name, sub in (("allocation", allocation_flow), ("sla", sla_check_flow), ("audit", monthly_audit_flow),
                      ("expiry", conversion_expiry_flow), ("review", quarterly_review_flow),
                      ("report", weekly_rotation_report_flow)):
        out[name] = sub(as_of=now, return_state=True).type.value
    return out
