"""Lifecycle events into production: an event file (the CRM, the 400 call system, HR, finance), or events
given as parameters (the `record-events` deployment: integrations, on-demand corrections).

Each delivery is one engine run at `as_of`: the clock catches up, the events are applied in time order
(judged by their `at`, R-SLA-7), waiting events are retried, and the pool is offered.
Rows in = applied + duplicate + waiting + refused, with every refused row's reason in the artifact.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from tasks.masked import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.clock import engine_run, outcome_state
from flows.params import AsOf, Events, FilePath, Operator
from leadflow.events.record import batch_id_for, payload_digest
from leadflow.rules.registration import mask_phones_in_text
from tasks import engine as steps
from tasks.reporting import _key, publishing

PHONE_REFUSED = ("a phone number cannot be a flow parameter (Prefect stores and shows parameters): name the "
                 "customer by id or registration reference, deliver the event in an event file, or use "
                 "`leadflow record` on the command line, which resolves and records phones locally.")


@publishing("publish event summary")
def publish_events(source: str, summary: dict) -> None:
    lines = [f"# Events: {source}", "",
             f"rows in **{summary['rows_in']}** = applied **{summary['applied']}** + duplicate "
             f"**{summary['duplicate']}** + waiting **{summary['waiting']}** + refused **{summary['refused']}**",
             ""]
    if summary.get("already_recorded"):
        lines += ["This delivery was recorded before: nothing changed.", ""]
    if summary["reasons"]:
        lines += ["| refused because | rows |", "|---|---|"] + [f"| {r} | {n} |" for r, n in summary["reasons"].items()]
        lines += [""]
    if summary["problems"]:
        lines += ["| row | type | status | reason | customer | detail |", "|---|---|---|---|---|---|"]
        lines += [f"| {p['row']} | {p['type'] or ''} | {p['status']} | {p['reason']} | {p['customer'] or ''} | "
                  f"{p['detail'] or ''} |" for p in summary["problems"]]
    create_markdown_artifact(mask_phones_in_text("\n".join(lines)), key=_key(f"events-{source}"),
                             description=f"what became of each event row of {source}")


def _file_run_name() -> str:
    return mask_phones_in_text(f"events {Path(flow_run.parameters.get('path', 'file')).name}")


@flow(name="events-file", flow_run_name=_file_run_name)
def events_file_flow(path: FilePath, as_of: AsOf = None, operator: Operator = None):
    """Record a file of lifecycle events (CSV in UTF-8/BOM/GBK, JSON Lines, .xlsx); the same file twice
    is one delivery, and a row already delivered in another file is a duplicate."""
    name = mask_phones_in_text(Path(path).name)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    batch = batch_id_for(digest.encode(), prefix="events")
    summary = steps.previous_events(batch)
    if summary is None:
        out, summary = engine_run(as_of, lambda run_after, now: steps.record_file(batch, name, path, now, run_after,
                                                                                 operator, digest))
        if isinstance(summary, str):
            return Failed(message=summary)
        publish_events(name, summary)
        return _state(out, summary)
    publish_events(name, summary)
    return summary


def _state(out: dict, summary: dict):
    """The summary, or a Failed state that needs a person (pool, mass breach) still carrying the summary."""
    state = outcome_state(out, summary)
    return state if state.is_failed() else summary


def _phone_in(events: list[dict]) -> bool:
    return any(mask_phones_in_text(str(v)) != str(v) for e in events for k, v in e.items()
               if k not in ("at", "recorded_at") and v is not None)


@flow(name="record-events", flow_run_name=lambda: f"record {len(flow_run.parameters.get('events') or [])} events")
def record_events_flow(events: Events, as_of: AsOf = None, operator: Operator = None):
    """Record events given as parameters: each a mapping of `type`, `at`, `customer` (id or registration
    reference — never a phone), `by`, and the type's fields (SCENARIOS.md event types)."""
    if _phone_in(events):
        return Failed(message=PHONE_REFUSED)
    rows = [{**e, "row_number": i + 1} for i, e in enumerate(events)]
    digest = payload_digest(rows)

    def act(run_after, now):
        batch = batch_id_for(f"{digest}|{now.isoformat()}", prefix="deployment")
        return steps.record_events(batch, "deployment", rows, now, run_after, operator, digest)

    out, summary = engine_run(as_of, act)
    publish_events("record-events", summary)
    return _state(out, summary)
