"""The sample organisation at work (the main job only, never in production): its people's contacts, entries,
follow-ups, sales steps, deals and leaves for the leads they were allocated (`leadflow.samples.feed`), and, while
the main job serves, a few new registrations every run (`leadflow.samples.history.register_new`)."""
from __future__ import annotations

from tasks.masked import flow

from flows.clock import catch_up, run_name
from flows.params import AsOf, Folder, Time
from leadflow.samples.feed import LOOKAHEAD
from tasks import reporting
from tasks import sample_activity as steps


@flow(name="sample-history", flow_run_name=run_name("sample history"))
def sample_history_flow(start: Time, end: Time, folder: Folder) -> dict:
    """The activity of (start, end] as the CRM, the 400 system and HR export it, each export recorded at its
    time (every four hours and at every SLA deadline), so records made in time are never breaches."""
    t, deliveries = start, []
    while t < end:
        t = steps.next_stop(t, end)
        deliveries.append(steps.deliver(t, folder=folder))
    totals = {k: sum(d[k] for d in deliveries) for k in ("rows", "applied", "duplicate", "waiting", "refused")}
    return {**totals, "files": sum(len(d["files"]) for d in deliveries), "deliveries": len(deliveries),
            **steps.standing(end)}


@flow(name="sample-activity", flow_run_name=run_name("sample activity"))
def sample_activity_flow(as_of: AsOf = None) -> dict:
    """Every 2 minutes: the few registrations taken since the last run (registered and allocated), then what the
    sample organisation's people did by now for the leads allocated in the last days, these included."""
    # first the checks due by now, as every time-driven run does them: their breaches get their artifacts and the
    # run its summary (the engine runs below would otherwise record them with nothing to see; issue 9.4)
    caught = catch_up(as_of)
    registered = steps.register_new(as_of)
    decisions = registered.pop("decisions")
    if decisions:  # R-ALLOC-7: published as the intake flow publishes a file's
        reporting.publish_allocations("new sample leads", decisions[:reporting.SHOWN_ROWS], total=len(decisions))
        reporting.notify_owners(decisions)
    done = {**steps.deliver(as_of, lookahead_minutes=LOOKAHEAD.total_seconds() / 60), "registered": registered}
    return caught if caught.is_failed() else done  # what needs a person is not Completed (issue 9.5)
