"""The whole lifecycle in one run: intake of every file in the inbox, allocation, and the time-driven checks."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from tasks.masked import flow
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.clock import run_name, tick_flow
from flows.events import events_file_flow
from flows.intake import intake_flow
from flows.reports import weekly_rotation_report_flow
from leadflow.spool import display_name, spooled

PATTERNS = ("*.csv", "*.jsonl", "*.ndjson", "*.xlsx")


def inbox_files(inbox: str) -> list[str]:
    folder = Path(inbox)
    return sorted(str(p) for pattern in PATTERNS for p in folder.glob(pattern)) if folder.is_dir() else []


def _is_event_file(path: str) -> bool:
    from leadflow.events.readers import IntakeFileError, is_event_file

    try:
        return is_event_file(path)
    except IntakeFileError:
        return False  # the intake flow says in one sentence why the file cannot be read


@flow(name="inbox", flow_run_name=lambda: f"inbox {display_name(flow_run.parameters['inbox'])}")
def inbox_flow(inbox: str, as_of: dt.datetime | None = None) -> dict:
    """Take every file dropped in the inbox, in name order: an event file (it has a `type` column) is
    recorded, any other is registered; a file taken before changes nothing (R-REG-4)."""
    results = {}
    for path in inbox_files(inbox):
        sub = events_file_flow if _is_event_file(path) else intake_flow
        with spooled(path) as given:  # R-REG-7: a phone in a file's name never reaches Prefect
            state = sub(path=given, as_of=as_of, return_state=True)
        results[display_name(path)] = state.type.value
    return results


@flow(name="lifecycle", flow_run_name=run_name("lifecycle"))
def lifecycle_flow(inbox: str, as_of: dt.datetime | None = None) -> dict:
    """Every file in the inbox (registrations and events), the global catch-up, and the fairness report."""
    now = as_of or dt.datetime.now(dt.timezone.utc)
    out = {"intake": inbox_flow(inbox, as_of=now)}
    for name, sub in (("clock", tick_flow), ("report", weekly_rotation_report_flow)):
        out[name] = sub(as_of=now, return_state=True).type.value
    failed = [name for name, state in {**out["intake"], **{k: v for k, v in out.items() if k != "intake"}}.items()
              if state != "COMPLETED"]
    if failed:  # a parent whose child failed is not Completed
        return Failed(message=f"{len(failed)} step(s) did not complete: {', '.join(failed)}; "
                              "their runs say why.", data=out)
    return out
