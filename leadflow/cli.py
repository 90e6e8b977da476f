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
    r = sub.add_parser("register", help="register a file of leads (CSV, JSON Lines, .xlsx) as a flow run")
    r.add_argument("file")
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


def cmd_register(args) -> int:
    from flows.intake import intake_flow

    summary = intake_flow(path=args.file)
    print(json.dumps({k: v for k, v in summary.items() if k != "new_customers"}, ensure_ascii=False, default=str))
    return 0


COMMANDS = {"simulate": cmd_simulate, "db": cmd_db, "org": cmd_org, "register": cmd_register}

if __name__ == "__main__":
    sys.exit(main())
