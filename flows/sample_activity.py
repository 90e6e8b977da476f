"""The sample organisation at work (the main job only, never in production): its people's contacts, entries,
follow-ups, sales steps, deals and leaves for the leads they were allocated (`leadflow.samples.feed`)."""
from __future__ import annotations

import datetime as dt

from prefect import flow

from flows.clock import run_name
from leadflow.samples.feed import LOOKAHEAD
from tasks import sample_activity as steps


@flow(name="sample-history", flow_run_name=run_name("sample history"))
def sample_history_flow(start: dt.datetime, end: dt.datetime, folder: str) -> dict:
    """The activity of (start, end] as the CRM, the 400 system and HR export it, each export recorded at its
    time (every four hours and at every SLA deadline), so records made in time are never breaches."""
    t, deliveries = start, []
    while t < end:
        t = steps.next_stop(t, end)
        deliveries.append(steps.deliver(t, folder=folder))
    totals = {k: sum(d[k] for d in deliveries) for k in ("rows", "applied", "duplicate", "waiting", "refused")}
    return {**totals, "files": sum(len(d["files"]) for d in deliveries), "deliveries": len(deliveries),
            **steps.people_paused(end)}


@flow(name="sample-activity", flow_run_name=run_name("sample activity"))
def sample_activity_flow(as_of: dt.datetime | None = None) -> dict:
    """What the sample organisation's people did by now for the leads allocated in the last days (every 2 min)."""
    return steps.deliver(as_of, lookahead_minutes=LOOKAHEAD.total_seconds() / 60)
