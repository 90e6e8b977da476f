"""The commands that act through a flow run on the project's Prefect server: register, record, tick, dispute."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from leadflow.cli import common
from leadflow.cli.app import app
from leadflow.cli.output import Failure, say
from leadflow.errors import ArgumentError, one_line

AsOf = Annotated[Optional[str], typer.Option("--as-of", metavar="TIME", help=common.AS_OF_HELP)]


def _intake_line(name: str, s: dict) -> str:
    head = (f"{name}: rows in {s['rows_in']} = accepted {s['accepted']} + attached {s['attached']} + "
            f"quarantined {s['quarantined']}")
    pool = s.get("allocation") or {}
    if s.get("already_registered"):
        if pool.get("allocated"):
            return head + (f" (already registered; {pool['allocated']} leads left waiting by an earlier run "
                           f"allocated now, {pool['pooled']} still in the pool)")
        return head + " (already registered: nothing changed)"
    return head + f"; allocated {pool.get('allocated', 0)}, left in the pool {pool.get('pooled', 0)}"


def _events_line(name: str, s: dict) -> str:
    line = (f"{name}: rows in {s['rows_in']} = applied {s['applied']} + duplicate {s['duplicate']} + "
            f"waiting {s['waiting']} + refused {s['refused']}")
    if s.get("already_recorded"):
        line += " (already recorded: nothing changed)"
    for p in s.get("problems", [])[:20]:
        line += f"\n  row {p['row']}: {p['status']} {p['reason']}" + (f" ({p['detail']})" if p.get("detail") else "")
    return line


def _registration_file(f: str) -> None:
    from leadflow.events.readers import is_event_file
    from leadflow.intake.readers import REGISTRATIONS, IntakeFileError, header_names

    if is_event_file(f):
        raise IntakeFileError(f"{Path(f).name}: is an event file (it has a type column): use 'leadflow record'.")
    found = {REGISTRATIONS.canonical(h) for h in header_names(f)}
    missing = [c for c in REGISTRATIONS.required if c not in found]
    if missing:
        raise IntakeFileError(f"{Path(f).name}: required column '{missing[0]}' "
                              f"({'/'.join(REGISTRATIONS.columns[missing[0]])}) is missing.")


@app.command()
def register(files: Annotated[list[str], typer.Argument(metavar="FILE...", help="CSV, JSON Lines or .xlsx")],
             as_of: AsOf = None) -> int:
    """Register files of leads, one flow run each (a progress bar over the files)."""
    when = common.time_arg(as_of)

    def run(f):
        from flows.intake import intake_flow

        return intake_flow(path=f, as_of=when, return_state=True)

    return common.flow_per_file(files, "registering", "", run, _intake_line, _registration_file, when)


def _event_file(f: str) -> None:
    from leadflow.events.readers import EVENTS, is_event_file
    from leadflow.intake.readers import IntakeFileError, header_names

    if not is_event_file(f):
        raise IntakeFileError(f"{Path(f).name}: is not an event file: it has no 'type' (类型) column, or it is a "
                              "registration file (use 'leadflow register').")
    if "at" not in {EVENTS.canonical(h) for h in header_names(f)}:
        raise IntakeFileError(f"{Path(f).name}: required column 'at' ({'/'.join(EVENTS.columns['at'])}) is missing.")


Opt = Annotated[Optional[str], typer.Option()]
EVENT_OPTIONS = ("customer", "by", "step", "amount", "person", "to", "kind", "reason", "with_customer", "relation",
                 "phone", "share", "department", "event_id")


@app.command()
def record(what: Annotated[list[str], typer.Argument(
               metavar="FILE...|TYPE", help="event files (CSV, JSON Lines, .xlsx), or one event type (contact, "
                                            "deal, leave, …) given with the options below")],
           customer: Opt = None, by: Opt = None,
           at: Annotated[Optional[str], typer.Option(help="when it happened (as --as-of; default: --as-of)")] = None,
           recorded_at: Opt = None, step: Opt = None, amount: Opt = None, person: Opt = None, to: Opt = None,
           kind: Opt = None, reason: Opt = None, with_customer: Opt = None, relation: Opt = None, phone: Opt = None,
           share: Opt = None, department: Opt = None,
           event_id: Annotated[Optional[str], typer.Option(hidden=True)] = None,
           knowingly: Annotated[bool, typer.Option("--knowingly", help="a claim made knowing the customer was held")]
           = False,
           as_of: AsOf = None) -> int:
    """Record lifecycle events: event files (one flow run each), or one event given as options (a phone given as
    --customer is resolved here, never sent to Prefect)."""
    from leadflow.events.kinds import LIFECYCLE_TYPES

    options = dict(customer=customer, by=by, step=step, amount=amount, person=person, to=to, kind=kind,
                   reason=reason, with_customer=with_customer, relation=relation, phone=phone, share=share,
                   department=department, event_id=event_id)
    if len(what) == 1 and what[0] in LIFECYCLE_TYPES and not Path(what[0]).exists():
        return _record_one(what[0], options, at, recorded_at, knowingly, as_of)
    when = common.time_arg(as_of)

    def run(f):
        from flows.events import events_file_flow

        return events_file_flow(path=f, as_of=when, return_state=True)

    return common.flow_per_file(what, "recording", " (give event files, or one event type such as 'contact' with "
                                                   "--customer)", run, _events_line, _event_file, when)


def _record_one(kind: str, options: dict, at, recorded_at, knowingly: bool, as_of) -> int:
    from leadflow.events.resolve import resolve_customer
    from leadflow.wiring import stage_context

    event = {"type": kind, **{k: v for k, v in options.items() if v is not None}}
    when = common.time_arg(as_of)
    event["at"] = (common.time_arg(at, "--at") or when or common.now()).isoformat()
    if recorded_at:
        event["recorded_at"] = common.time_arg(recorded_at, "--recorded-at").isoformat()
    if knowingly:
        event["knowingly"] = "yes"
    for name in ("customer", "with_customer"):  # a phone is resolved here and never sent to Prefect
        if name in event:
            with stage_context(with_gate=False).engine.connect() as conn:
                cid = resolve_customer(conn, event[name])
            if cid is None:
                raise ArgumentError(f"--{name.replace('_', '-')}: no customer matches that id, reference or phone.")
            event[name] = str(cid)
    common.check_clock(when)
    if _holds_phone(event):  # R-REG-7: a number in any field (a link's, a reason's) never becomes a flow parameter
        from leadflow.events.api import record_events

        summary = record_events([event], as_of=when, source="cli")
        say(_events_line(event["type"], summary))
        return _refused_exit(summary)
    common.use_server()
    from flows.events import record_events_flow

    state = record_events_flow(events=[event], as_of=when, operator=None, return_state=True)
    from flows.states import result_of

    summary = result_of(state)
    if isinstance(summary, dict) and "rows_in" in summary:
        say(_events_line(event["type"], summary))
    if not state.is_completed():
        raise Failure(one_line(state.message) if state.message else f"the flow run ended {state.type.value}.", 1)
    return _refused_exit(summary)


def _holds_phone(event: dict) -> bool:
    """Whether any value of the event is phone-shaped (after the customer was resolved to its id)."""
    from leadflow.privacy import has_phone

    return any(has_phone(str(v)) for v in event.values())


def _refused_exit(summary: dict) -> int:
    """The exit code of one event given as options: 0 taken (applied, duplicate or waiting), 2 refused (its
    reason was printed: the input was refused, the run itself did its work and Completed)."""
    return 2 if summary["refused"] else 0


@app.command()
def tick(as_of: Annotated[Optional[str], typer.Option("--as-of", help="the time (as for register; default now)")]
         = None) -> int:
    """Bring the store to a time: every check, audit, hand-over, expiry and review due, in time order."""
    when = common.time_arg(as_of)  # None: now, read under the clock lock
    common.check_clock(when)
    common.use_server()
    from flows.clock import tick_flow

    state = tick_flow(as_of=when, return_state=True)
    if not state.is_completed():
        raise Failure(one_line(state.message) if state.message else f"the flow run ended {state.type.value}.", 1)
    say(state.message)
    return 0


def unknown_people(ids: list[str]) -> list[str]:
    """The ids among `ids` that name nobody in the org chart (one query)."""
    from sqlalchemy import select

    from leadflow.store.models import Person
    from leadflow.wiring import stage_context

    with stage_context(with_gate=False).engine.connect() as conn:
        known = set(conn.execute(select(Person.id).where(Person.id.in_(sorted(set(ids))))).scalars())
    return [p for p in ids if p not in known]


@app.command()
def dispute(customer: Annotated[str, typer.Argument(help="customer id, registration reference, or phone "
                                                         "(resolved here, never sent as a parameter)")],
            claimant: Annotated[Optional[list[str]], typer.Option(
                help="a person claiming credit, by id (repeatable)")] = None,
            as_of: AsOf = None) -> int:
    """Re-run the dispute for one customer as a flow run (R-DISP-8)."""
    from leadflow.stages.disputes import resolve_customer
    from leadflow.wiring import stage_context

    with stage_context(with_gate=False).engine.connect() as conn:
        customer_id = resolve_customer(conn, customer)
    if customer_id is None:
        raise ArgumentError("no customer matches that id, reference or phone.")
    if unknown := unknown_people(claimant or []):  # issue 9.8: refused here, before any run (R-DISP-4 claims)
        raise ArgumentError(f"--claimant {unknown[0]}: no such person in the org chart.")
    when = common.time_arg(as_of)
    common.check_clock(when)
    common.use_server()
    from flows.dispute import dispute_flow

    state = dispute_flow(customer=str(customer_id), claimants=claimant or None, as_of=when, return_state=True)
    return common.finish(state, lambda d: f"customer {customer_id}: {d['rule']} decides "
                                          + ", ".join(f"{p} {s:.0%}" for p, s in d["decision"].items()))
