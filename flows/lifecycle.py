"""The inbox micro-batch and the whole lifecycle in one run (issue 9.3, 9.5).

The inbox takes the files dropped in it, each in a run of its own, then files them away (`leadflow.inbox`):
done/ what was taken, rejected/ what was refused as a whole (with the reason), and what failed for a passing
reason stays to be tried next minute. A minute with nothing new creates nothing but its own run. A parent whose
child did not complete is Failed, in one sentence naming each (`flows.states.parent_state`).
"""
from __future__ import annotations

import datetime as dt

from tasks.masked import flow
from prefect.exceptions import FailedRun
from prefect.runtime import flow_run
from prefect.states import Completed, State

from flows.clock import run_name, tick_flow
from flows.events import events_file_flow
from flows.intake import intake_flow
from flows.params import AsOf, Folder
from flows.reports import weekly_rotation_report_flow
from flows.states import parent_state, result_of, sentence
from leadflow import inbox as box
from leadflow.spool import display_name, spooled
from tasks import inbox as steps


def inbox_files(inbox: str) -> list[str]:
    """The settled files lying in the inbox itself, by name (`leadflow.inbox.candidates`)."""
    return [str(p) for p in box.candidates(inbox)]


def _is_event_file(path: str) -> bool:
    from leadflow.events.readers import IntakeFileError, is_event_file

    try:
        return is_event_file(path)
    except IntakeFileError:
        return False  # the intake flow says in one sentence why the file cannot be read


def _refused(state: State) -> bool:
    """A run that refused its file as a whole ends Failed with a sentence of its own and no exception (a file
    that cannot be read, an empty one); a run that raised (the database gone) did not judge the file."""
    if not state.is_failed():
        return False
    try:  # a returned Failed carries no result (None; FailedRun when read back), a raised one its exception
        value = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - a result that cannot be read judged nothing
        return False
    return value is None or isinstance(value, FailedRun)


def _said(filed: list[dict], before: list[dict]) -> str:
    done = sum(f["verdict"] == box.DONE for f in filed)
    moved = sum(f["verdict"] == box.DONE for f in before)
    parts = [f"{done} file(s) taken (moved to done/)"] if done else []
    parts += [f"{moved} file(s) taken by an earlier run moved to done/"] if moved else []
    return "inbox: " + ("; ".join(parts) or "nothing new")


def _inbox_name() -> str:
    """`inbox` for a folder named so, else `inbox <folder>` (phones masked by display_name)."""
    folder = display_name(flow_run.parameters["inbox"])
    return "inbox" if folder == "inbox" else f"inbox {folder}"


@flow(name="inbox", flow_run_name=_inbox_name)
def inbox_flow(inbox: Folder, as_of: AsOf = None) -> dict:
    """Take every new file in the inbox, in name order: an event file (it has a `type` column) is recorded,
    any other is registered; then each is filed away (done/, rejected/ with its reason, or left to be tried
    again). Nothing new: no subflow, no artifact, Completed "inbox: nothing new"."""
    if not box.candidates(inbox):  # issue 9.3: nothing new is nothing to see
        return Completed(message="inbox: nothing new", data={})
    with box.exclusive(inbox) as mine:
        if not mine:  # a run still taking the files (a long one, or the lifecycle): never the same file twice
            return Completed(message="inbox: another run is taking the files", data={})
        return _take(inbox, as_of)


def _take(inbox: str, as_of: dt.datetime | None) -> State:
    """The inbox run's work, with the inbox to itself: move what was taken before, run each new file, file away."""
    before = steps.file_away(inbox)  # taken by a run that died between its commit and the move: no new run
    states, refusals, left = {}, {}, {}
    for path in inbox_files(inbox):
        sub = events_file_flow if _is_event_file(path) else intake_flow
        with spooled(path) as given:  # R-REG-7: a phone in a file's name never reaches Prefect
            state = sub(path=given, as_of=as_of, return_state=True)
        name = display_name(path)
        states[name] = state
        if _refused(state):
            refusals[box.digest(path)] = sentence(state)
    filed = steps.file_away(inbox, refusals) if states else []
    for f in filed:
        if f["verdict"] == box.NEW and f["name"] in states and not states[f["name"]].is_completed():
            left[f["name"]] = "left in the inbox: tried again next minute"
    more = [(f["name"], f["reason"]) for f in before + filed
            if f["verdict"] == box.REJECTED and (f["name"] not in states or states[f["name"]].is_completed())]
    return parent_state(states, "files", data={n: s.type.value for n, s in states.items()},
                        done=_said(filed, before), more=more, notes=left)


@flow(name="lifecycle", flow_run_name=run_name("lifecycle"))
def lifecycle_flow(inbox: Folder, as_of: AsOf = None) -> dict:
    """Every file in the inbox (registrations and events), the global catch-up, and the fairness report;
    Failed, naming each step that did not complete, when one did not (issue 9.5)."""
    began = dt.datetime.now(dt.timezone.utc)  # the summary lists what the ledger recorded from here on
    now = as_of or began
    states = {"inbox": inbox_flow(inbox, as_of=now, return_state=True)}
    for name, sub in (("clock", tick_flow), ("report", weekly_rotation_report_flow)):
        states[name] = sub(as_of=now, return_state=True)
    out = {"intake": result_of(states["inbox"], {}) or {}, **{n: states[n].type.value for n in ("clock", "report")}}
    from tasks.reporting import publish_parent_summary  # issue 9.4: the run's summary, each step and its sentence

    publish_parent_summary({n: (s.type.value, sentence(s) if s.message else None) for n, s in states.items()},
                           began)
    return parent_state(states, "steps", data=out,
                        done="; ".join(s.message for s in states.values() if s.message) or "lifecycle completed")
