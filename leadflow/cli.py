"""The `leadflow` command: simulate, db, org, register, and the operator's commands."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from leadflow.errors import USER_ERRORS, one_line


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
    st = sub.add_parser("start", help="the main job: Prefect server + UI, sample data, lifecycle, deployments")
    st.add_argument("--port", type=int, default=4200)
    st.add_argument("--leads", type=int, default=5000, help="how many sample leads to generate")
    st.add_argument("--no-serve", action="store_true", help="stop after the lifecycle run")
    sv = sub.add_parser("serve", help="serve every deployment from this process")
    sv.add_argument("--inbox", default=None, help="the folder the intake micro-batch watches")
    d = sub.add_parser("dispute", help="re-run the dispute for one customer as a flow run (R-DISP-8)")
    d.add_argument("customer", help="customer id, registration reference, or phone (resolved locally)")
    d.add_argument("--claimant", action="append", default=[], help="a person claiming credit (repeatable)")
    rp = sub.add_parser("report", help="allocations, breaches or fairness for a period")
    rp.add_argument("what", choices=["allocations", "breaches", "fairness"])
    rp.add_argument("--since", help="start date YYYY-MM-DD (default: 7 days ago)")
    rp.add_argument("--until", help="end date YYYY-MM-DD, exclusive (default: tomorrow)")
    rp.add_argument("--format", choices=["table", "csv", "json"], default="table")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    parser.error = lambda message: _fail(f"{message} (see 'leadflow --help').", 2)  # one sentence, no usage dump
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LEADFLOW_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    from leadflow.wiring import install_log_masking

    install_log_masking()
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as e:
        return _fail(one_line(e), 2)
    except KeyboardInterrupt:
        return _fail("interrupted.", 130)
    except Exception as e:  # never a traceback for the operator; LEADFLOW_DEBUG=1 shows it
        if os.environ.get("LEADFLOW_DEBUG"):
            raise
        return _fail(f"internal error: {type(e).__name__}: {one_line(e)}", 1)


def _fail(message: str, code: int) -> int:
    print(f"leadflow: {message}", file=sys.stderr)
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
    return _fail(state.message or f"the flow run ended {state.type.value}.", 1)


def _intake_line(name: str, s: dict) -> str:
    return (f"{name}: rows in {s['rows_in']} = accepted {s['accepted']} + attached {s['attached']} + "
            f"quarantined {s['quarantined']}" + (" (already registered: nothing changed)" if s.get("already_registered")
                                                 else f"; allocated {s['allocation']['allocated']}, "
                                                      f"left in the pool {s['allocation']['pooled']}"))


def cmd_register(args) -> int:
    """One intake flow run per file, with a progress bar over the files."""
    from pathlib import Path

    from rich.progress import Progress

    from leadflow.intake.readers import IntakeFileError

    for f in args.files:
        if not Path(f).is_file():
            raise IntakeFileError(f"{Path(f).name}: no such file.")
    _use_prefect()
    from flows.intake import intake_flow

    failed = 0
    with Progress(transient=True) as progress:
        bar = progress.add_task("registering", total=len(args.files))
        for f in args.files:
            state = intake_flow(path=f, return_state=True)
            if state.is_completed():
                progress.console.print(_intake_line(Path(f).name, state.result()), soft_wrap=True)
            else:
                failed += 1
                progress.console.print(state.message or f"{Path(f).name}: {state.type.value}", style="red",
                                       soft_wrap=True)
            progress.advance(bar)
    return 1 if failed else 0


def cmd_dispute(args) -> int:
    from leadflow.stages.disputes import resolve_customer
    from leadflow.wiring import stage_context

    ctx = stage_context(with_gate=False)
    with ctx.engine.connect() as conn:
        customer_id = resolve_customer(conn, args.customer)
    if customer_id is None:
        return _fail("no customer matches that id, reference or phone.", 2)
    _use_prefect()
    from flows.dispute import dispute_flow

    state = dispute_flow(customer=str(customer_id), claimants=args.claimant or None, return_state=True)
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
    from leadflow.report_cli import report

    return report(args.what, args.since, args.until, args.format)


COMMANDS = {"simulate": cmd_simulate, "db": cmd_db, "org": cmd_org, "register": cmd_register,
            "dispute": cmd_dispute, "start": cmd_start, "serve": cmd_serve, "report": cmd_report}

if __name__ == "__main__":
    sys.exit(main())
