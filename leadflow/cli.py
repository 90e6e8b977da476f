"""The `leadflow` command: simulate, db, org, register, and the operator's commands."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from sqlalchemy.exc import SQLAlchemyError

from leadflow.errors import USER_ERRORS, ArgumentError, one_line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="leadflow", description="Fair, on-the-record lead allocation.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate", help="replay a scenario through the pipeline's stage code")
    s.add_argument("scenario")
    s.add_argument("--json", action="store_true", help="print the final state as one JSON document")
    s.add_argument("--policy", help="a policy file replacing the default policy")
    s.add_argument("--database-url", help="a PostgreSQL URL; the replay uses a fresh schema there")
    db = sub.add_parser("db", help="the database").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="migrate the database to the newest schema")
    org = sub.add_parser("org", help="the org chart").add_subparsers(dest="org_command", required=True)
    org.add_parser("load", help="load departments and people from a YAML file").add_argument("file")
    r = sub.add_parser("register", help="register files of leads (CSV, JSON Lines, .xlsx), one flow run each")
    r.add_argument("files", nargs="+", metavar="FILE")
    r.add_argument("--as-of", help="when the files reach LeadFlow (default now; never before the clock)")
    rc = sub.add_parser("record", help="record lifecycle events: event files, or one event given as options")
    rc.add_argument("what", nargs="+", metavar="FILE|TYPE",
                    help="event files (CSV, JSON Lines, .xlsx), or one event type (contact, deal, leave, …)")
    for name in ("customer", "by", "at", "recorded-at", "step", "amount", "person", "to", "kind", "reason",
                 "with-customer", "relation", "phone", "share", "department", "event-id"):
        rc.add_argument(f"--{name}", help=argparse.SUPPRESS if name in ("event-id",) else None)
    rc.add_argument("--knowingly", action="store_true", help="a claim made knowing the customer was held")
    rc.add_argument("--as-of", help="when the events reach LeadFlow (default now; never before the clock)")
    tk = sub.add_parser("tick", help="bring the store to a time: every due check, expiry, audit and review")
    tk.add_argument("--as-of", help="the time (default now; never before the clock)")
    sa = sub.add_parser("state", help="where we stand: the store in the shape of `simulate --json`")
    sa.add_argument("--json", action="store_true", help="one JSON document")
    sa.add_argument("--as-of", help="the time the state is read at (default: the store's clock)")
    st = sub.add_parser("start", help="the main job: Prefect server + UI, sample data, lifecycle, deployments")
    st.add_argument("--port", type=int, default=4200)
    st.add_argument("--leads", type=int, default=None,
                    help="how many sample leads to generate over the sample period (default 2000: four weeks)")
    st.add_argument("--no-serve", action="store_true", help="stop after the lifecycle run")
    sv = sub.add_parser("serve", help="serve every deployment from this process")
    sv.add_argument("--inbox", default=None, help="the folder the intake micro-batch watches")
    d = sub.add_parser("dispute", help="re-run the dispute for one customer as a flow run (R-DISP-8)")
    d.add_argument("customer", help="customer id, registration reference, or phone (resolved locally)")
    d.add_argument("--claimant", action="append", default=[], help="a person claiming credit (repeatable)")
    d.add_argument("--as-of", help="when the rerun happens (default now; never before the clock)")
    rp = sub.add_parser("report", help="allocations, breaches or fairness for a period")
    rp.add_argument("what", choices=["allocations", "breaches", "fairness", "customers"])
    rp.add_argument("--since", help="start date YYYY-MM-DD (default: 7 days ago)")
    rp.add_argument("--until", help="end date YYYY-MM-DD, exclusive (default: tomorrow)")
    rp.add_argument("--format", choices=["table", "csv", "json"], default="table")
    rp.add_argument("--full-phones", action="store_true",
                    help="customers only: full numbers instead of 138****8000, recorded on the ledger (R-REG-7)")
    rp.add_argument("--by", help="with --full-phones: who exports (default: your login name)")
    fg = sub.add_parser("forget", help="erase a customer's name and phone numbers on request (PIPL), on the ledger")
    fg.add_argument("customer", help="customer id, registration or external reference, or phone")
    fg.add_argument("--by", help="who carries out the request (default: your login name)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    parser.error = lambda message: _fail(f"{message} (see 'leadflow --help').", 2)  # one sentence, no usage dump
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LEADFLOW_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    from leadflow.privacy import install_log_masking  # R-REG-7: every handler, Prefect's too; uncaught errors

    install_log_masking()
    try:
        return COMMANDS[args.command](args)
    except (*USER_ERRORS, ArgumentError) as e:
        return _fail(one_line(e), 2)
    except KeyboardInterrupt:
        return _fail("interrupted.", 130)
    except SQLAlchemyError as e:  # issue 8.7: a database error is one sentence, never SQL and its parameters
        if os.environ.get("LEADFLOW_DEBUG"):
            raise
        from leadflow.store.transient import database_sentence

        return _fail(database_sentence(e), 1)
    except Exception as e:  # never a traceback for the operator; LEADFLOW_DEBUG=1 shows it
        if os.environ.get("LEADFLOW_DEBUG"):
            raise
        return _fail(f"internal error: {type(e).__name__}: {one_line(e)}", 1)


def _fail(message: str, code: int) -> int:
    from leadflow.privacy import mask_phones_in_text

    print(f"leadflow: {mask_phones_in_text(message)}", file=sys.stderr)  # R-REG-7, whatever failed
    sys.exit(code)


def cmd_simulate(args) -> int:
    from leadflow.scenario import load_scenario
    from leadflow.simulate import simulate
    from leadflow.wiring import make_gate

    scenario = load_scenario(args.scenario)
    state = simulate(scenario, args.policy, args.database_url,
                     gate_factory=lambda url, schema, policy: make_gate(url, schema, policy))
    text = json.dumps(state, ensure_ascii=False, indent=None if args.json else 2)
    print(text)
    return 0


def cmd_db(args) -> int:
    from leadflow.settings import get_settings
    from leadflow.store.migrate import upgrade

    url = get_settings().effective_database_url
    upgrade(url)
    print(f"database migrated: {url.split('@')[-1]}")
    return 0


def cmd_org(args) -> int:
    from leadflow.orgfile import load_org_file

    summary = load_org_file(args.file)
    print(f"org chart loaded: {summary['departments']} departments, {summary['people']} people "
          f"({summary['people_added']} new).")
    return 0


def _use_prefect() -> None:
    """The project's Prefect home; the local server when one answers, else an ephemeral one on the same home."""
    from leadflow.start import prefect_env, server_answers

    prefect_env()
    if not server_answers(os.environ["PREFECT_API_URL"]):
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.pop("PREFECT_UI_API_URL", None)


def _finish(state, describe) -> int:
    if state.is_completed():
        print(describe(state.result()))
        return 0
    return _fail(one_line(state.message) if state.message else f"the flow run ended {state.type.value}.", 1)


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


def _check_clock(as_of) -> None:
    """Refuse a time before the store's clock here, in one sentence, before any flow run starts."""
    if as_of is None:
        return
    from leadflow import engine
    from leadflow.wiring import stage_context

    ctx = stage_context(with_gate=False)
    with ctx.engine.connect() as conn:
        now = engine.clock(conn)
    if now is not None and as_of < now:
        from leadflow.clock import iso

        raise engine.ClockError(f"--as-of {iso(as_of, ctx.policy)} is before the store's clock "
                                f"({iso(now, ctx.policy)}); LeadFlow never goes back in time.")


def _flow_per_file(files: list[str], what: str, hint: str, run, describe, precheck=None, as_of=None) -> int:
    """One flow run per file with a progress bar; each file's outcome in one line (phones masked).

    A file that cannot be taken at all (missing, unreadable, the wrong kind) is one sentence, exit 2,
    before anything runs; a run that ends needing a person (leads in the pool) shows its outcome and
    then why, exit 1."""
    from pathlib import Path

    from rich.console import Console
    from rich.progress import Progress

    from leadflow.intake.readers import IntakeFileError
    from leadflow.privacy import mask_phones_in_text
    from leadflow.spool import spooled

    for f in files:
        if not Path(f).is_file():
            raise IntakeFileError(f"{Path(f).name}: no such file{hint}.")
        if precheck is not None:
            precheck(f)
    _check_clock(as_of)
    _use_prefect()
    errors = Console(stderr=True)
    failed = 0
    with Progress(transient=True) as progress:
        bar = progress.add_task(what, total=len(files))
        for f in files:
            name = mask_phones_in_text(Path(f).name)
            with spooled(f) as given:  # R-REG-7: a phone in the file's name never reaches Prefect
                state = run(given)
            result = state.result(raise_on_failure=False)
            if isinstance(result, dict) and "rows_in" in result:
                progress.console.print(describe(name, result), soft_wrap=True, markup=False)
            if not state.is_completed():
                failed += 1
                why = one_line(state.message) if state.message else state.type.value
                errors.print(why if why.startswith(f"{name}:") else f"{name}: {why}", style="red",
                             soft_wrap=True, markup=False)
            progress.advance(bar)
    return 1 if failed else 0


def cmd_register(args) -> int:
    """One intake flow run per file, with a progress bar over the files."""
    from pathlib import Path

    as_of = _time_arg(args.as_of)

    def run(f):
        from flows.intake import intake_flow

        return intake_flow(path=f, as_of=as_of, return_state=True)

    def precheck(f):
        from leadflow.events.readers import is_event_file
        from leadflow.intake.readers import REGISTRATIONS, IntakeFileError, header_names

        if is_event_file(f):
            raise IntakeFileError(f"{Path(f).name}: is an event file (it has a type column): use 'leadflow record'.")
        found = {REGISTRATIONS.canonical(h) for h in header_names(f)}
        missing = [c for c in REGISTRATIONS.required if c not in found]
        if missing:
            raise IntakeFileError(f"{Path(f).name}: required column '{missing[0]}' "
                                  f"({'/'.join(REGISTRATIONS.columns[missing[0]])}) is missing.")

    return _flow_per_file(args.files, "registering", "", run, _intake_line, precheck, as_of)


def cmd_dispute(args) -> int:
    from leadflow.stages.disputes import resolve_customer
    from leadflow.wiring import stage_context

    ctx = stage_context(with_gate=False)
    with ctx.engine.connect() as conn:
        customer_id = resolve_customer(conn, args.customer)
    if customer_id is None:
        return _fail("no customer matches that id, reference or phone.", 2)
    _check_clock(_time_arg(args.as_of))
    _use_prefect()
    from flows.dispute import dispute_flow

    state = dispute_flow(customer=str(customer_id), claimants=args.claimant or None, as_of=_time_arg(args.as_of),
                         return_state=True)
    return _finish(state, lambda d: f"customer {customer_id}: {d['rule']} decides "
                                    + ", ".join(f"{p} {s:.0%}" for p, s in d["decision"].items()))


def cmd_start(args) -> int:
    from leadflow.start import start

    return start(port=args.port, leads=args.leads, serve=not args.no_serve)


def cmd_serve(args) -> int:
    from leadflow.settings import get_settings
    from leadflow.start import ensure_server

    ensure_server()
    from deployments.serve import serve_all

    serve_all(args.inbox or str(get_settings().data_dir / "inbox"))
    return 0


def cmd_report(args) -> int:
    from leadflow.forget import ErasureError, operator
    from leadflow.report_cli import report

    if args.full_phones and args.what != "customers":
        raise ArgumentError("--full-phones applies to the customers report only (the others carry no phone).")
    try:
        by = operator(args.by) if args.full_phones else None
    except ErasureError:
        raise ArgumentError("say who exports the full numbers with --by.") from None
    return report(args.what, args.since, args.until, args.format, full_phones=args.full_phones, by=by)


def cmd_forget(args) -> int:
    """PIPL erasure on request: the customer's name and numbers leave the store; the ledger records it."""
    from leadflow.forget import ErasureError, describe, forget, operator
    from leadflow.wiring import stage_context

    try:
        erasure = forget(stage_context(with_gate=False), args.customer, by=operator(args.by))
    except ErasureError as e:
        raise ArgumentError(str(e)) from None
    print(describe(erasure))
    return 0


def _time_arg(value: str | None, what: str = "--as-of"):
    """An aware time from an argument (ISO-8601; a time without offset is business time), or None."""
    import datetime as dt

    from leadflow.policy import load_policy
    from leadflow.rules.registration import parse_registered_at
    from leadflow.settings import get_settings

    if value is None:
        return None
    t = parse_registered_at(value, load_policy(get_settings().policy_file).timezone)
    if t is None:
        raise ArgumentError(f"{what} {value!r} is not a time (write e.g. 2026-03-02T09:00+08:00).")
    return t.astimezone(dt.timezone.utc)


def _events_line(name: str, s: dict) -> str:
    line = (f"{name}: rows in {s['rows_in']} = applied {s['applied']} + duplicate {s['duplicate']} + "
            f"waiting {s['waiting']} + refused {s['refused']}")
    if s.get("already_recorded"):
        line += " (already recorded: nothing changed)"
    for p in s.get("problems", [])[:20]:
        line += f"\n  row {p['row']}: {p['status']} {p['reason']}" + (f" ({p['detail']})" if p.get("detail") else "")
    return line


def cmd_record(args) -> int:
    """Event files, one flow run each; or one event given as options (its phone resolved here, never sent)."""
    from pathlib import Path

    from leadflow.events.kinds import LIFECYCLE_TYPES

    first = args.what[0]
    if len(args.what) == 1 and first in LIFECYCLE_TYPES and not Path(first).exists():
        return _record_one(args)
    as_of = _time_arg(args.as_of)

    def run(f):
        from flows.events import events_file_flow

        return events_file_flow(path=f, as_of=as_of, return_state=True)

    def precheck(f):
        from leadflow.events.readers import EVENTS, is_event_file
        from leadflow.intake.readers import IntakeFileError, header_names

        if is_event_file(f):
            found = {EVENTS.canonical(h) for h in header_names(f)}
            if "at" not in found:
                raise IntakeFileError(f"{Path(f).name}: required column 'at' ({'/'.join(EVENTS.columns['at'])}) "
                                      "is missing.")
            return
        raise IntakeFileError(f"{Path(f).name}: is not an event file: it has no 'type' (类型) column, or it is a "
                              "registration file (use 'leadflow register').")

    return _flow_per_file(args.what, "recording", " (give event files, or one event type such as 'contact' with "
                                                  "--customer)", run, _events_line, precheck, as_of)


def _record_one(args) -> int:
    from leadflow.events.resolve import resolve_customer
    from leadflow.wiring import stage_context

    event = {"type": args.what[0]}
    for name in ("customer", "by", "step", "amount", "person", "to", "kind", "reason", "with_customer",
                 "relation", "phone", "share", "department", "event_id"):
        value = getattr(args, name)
        if value is not None:
            event[name] = value
    event["at"] = (_time_arg(args.at, "--at") or _time_arg(args.as_of) or _now()).isoformat()
    if args.recorded_at:
        event["recorded_at"] = _time_arg(args.recorded_at, "--recorded-at").isoformat()
    if args.knowingly:
        event["knowingly"] = "yes"
    for name in ("customer", "with_customer"):  # a phone is resolved here and never sent to Prefect
        if name in event:
            ctx = stage_context(with_gate=False)
            with ctx.engine.connect() as conn:
                cid = resolve_customer(conn, event[name])
            if cid is None:
                raise ArgumentError(f"--{name.replace('_', '-')}: no customer matches that id, reference or phone.")
            event[name] = str(cid)
    as_of = _time_arg(args.as_of)
    _check_clock(as_of)
    if "phone" in event:  # a link's number never becomes a flow parameter: recorded here, in this process
        from leadflow.events.api import record_events

        summary = record_events([event], as_of=as_of, source="cli")
        print(_events_line(event["type"], summary))
        return 0 if summary["applied"] + summary["duplicate"] == summary["rows_in"] else 1
    _use_prefect()
    from flows.events import record_events_flow

    state = record_events_flow(events=[event], as_of=as_of, operator=None, return_state=True)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, dict) and "rows_in" in summary:
        print(_events_line(event["type"], summary))
    if not state.is_completed():
        return _fail(one_line(state.message) if state.message else f"the flow run ended {state.type.value}.", 1)
    return 0 if summary["applied"] + summary["duplicate"] == summary["rows_in"] else 1


def _now():
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)


def cmd_tick(args) -> int:
    as_of = _time_arg(args.as_of)  # None: now, read under the clock lock
    _check_clock(as_of)
    _use_prefect()
    from flows.clock import tick_flow

    state = tick_flow(as_of=as_of, return_state=True)
    if not state.is_completed():
        return _fail(one_line(state.message) if state.message else f"the flow run ended {state.type.value}.", 1)
    print(state.message)
    return 0


def cmd_state(args) -> int:
    from leadflow import engine
    from leadflow.state import world_state
    from leadflow.store.db import snapshot
    from leadflow.wiring import stage_context

    ctx = stage_context(with_gate=False)
    with snapshot(ctx.engine) as conn:  # runs may commit meanwhile: one snapshot, one consistent state
        clock = engine.clock(conn)
        as_of = _time_arg(args.as_of) or clock or _now()
        if clock is not None and as_of < clock:
            raise ArgumentError("--as-of is before the store's clock: the store holds what is, not what was "
                                "(replay history with `leadflow simulate`).")
        state = world_state(conn, ctx.policy, "production", as_of)
    state.pop("scenario")
    print(json.dumps(state, ensure_ascii=False, indent=None if args.json else 2))
    return 0


COMMANDS = {"record": cmd_record, "tick": cmd_tick, "state": cmd_state, "simulate": cmd_simulate, "db": cmd_db, "org": cmd_org, "register": cmd_register,
            "dispute": cmd_dispute, "start": cmd_start, "serve": cmd_serve, "report": cmd_report,
            "forget": cmd_forget}

if __name__ == "__main__":
    sys.exit(main())
