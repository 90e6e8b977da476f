"""The commands that need no Prefect server (simulate, db, org, state) and the ones that run it (start, serve)."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from leadflow.cli import common
from leadflow.cli.app import app, db_app, org_app
from leadflow.cli.output import say
from leadflow.errors import ArgumentError


@app.command()
def simulate(scenario: Annotated[str, typer.Argument(help="a scenario file (SCENARIOS.md)")],
             as_json: Annotated[bool, typer.Option("--json", help="print the final state as one JSON document")]
             = False,
             policy: Annotated[Optional[str], typer.Option(help="a policy file replacing the default policy")] = None,
             database_url: Annotated[Optional[str], typer.Option(
                 help="a PostgreSQL URL; the replay uses a fresh schema there")] = None) -> int:
    """Replay a scenario through the pipeline's stage code."""
    from leadflow.scenario import load_scenario
    from leadflow.simulate import simulate as replay
    from leadflow.wiring import make_gate

    state = replay(load_scenario(scenario), policy, database_url,
                   gate_factory=lambda url, schema, p: make_gate(url, schema, p))
    print(json.dumps(state, ensure_ascii=False, indent=None if as_json else 2))  # machine output: no Rich
    return 0


@db_app.command()
def upgrade() -> int:
    """Migrate the database to the newest schema."""
    from leadflow.settings import get_settings
    from leadflow.store.db import check_connection, make_engine
    from leadflow.store.migrate import upgrade as migrate

    url = get_settings().effective_database_url
    engine = make_engine(url)
    try:  # a database that cannot be reached is the input's fault: one sentence, exit 2, as every command says it
        check_connection(engine)
    finally:
        engine.dispose()
    migrate(url)
    say(f"database migrated: {url.split('@')[-1]}")
    return 0


@org_app.command()
def load(file: Annotated[str, typer.Argument(help="an org file (YAML): departments and people")]) -> int:
    """Load departments and people from a YAML file, idempotently."""
    from leadflow.orgfile import load_org_file

    summary = load_org_file(file)
    say(f"org chart loaded: {summary['departments']} departments, {summary['people']} people "
        f"({summary['people_added']} new).")
    return 0


@app.command()
def state(as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
          as_of: Annotated[Optional[str], typer.Option(
              "--as-of", help="the time the state is read at (as for register; default: the store's clock)")]
          = None) -> int:
    """Where we stand: the production store in the shape of `simulate --json`."""
    from leadflow import engine
    from leadflow.state import world_state
    from leadflow.store.db import snapshot
    from leadflow.wiring import stage_context

    ctx = stage_context(with_gate=False)
    when = common.time_arg(as_of)
    with snapshot(ctx.engine) as conn:  # runs may commit meanwhile: one snapshot, one consistent state
        clock = engine.clock(conn)
        when = when or clock or common.now()
        if clock is not None and when < clock:
            raise ArgumentError("--as-of is before the store's clock: the store holds what is, not what was "
                                "(replay history with `leadflow simulate`).")
        result = world_state(conn, ctx.policy, "production", when)
    result.pop("scenario")
    print(json.dumps(result, ensure_ascii=False, indent=None if as_json else 2))
    return 0


@app.command()
def start(port: Annotated[Optional[int], typer.Option(
              min=1, max=65535, help="the Prefect server's port (default: prefect.toml's, 4200)")] = None,
          leads: Annotated[Optional[int], typer.Option(
              min=1, help="how many sample leads to generate over the sample period (default 2000: four weeks)")]
          = None,
          no_serve: Annotated[bool, typer.Option("--no-serve", help="stop after the lifecycle run")] = False) -> int:
    """The main job: Prefect server + UI, sample data, the lifecycle, every deployment served."""
    from leadflow.start import start as main_job

    return main_job(port=port, leads=leads, serve=not no_serve)


@app.command()
def serve(inbox: Annotated[Optional[str], typer.Option(help="the folder the intake micro-batch watches")]
          = None) -> int:
    """Serve every deployment from this process."""
    from leadflow.settings import get_settings
    from leadflow.start import ensure_server, stop_server

    started = ensure_server()  # stopped again when serving ends (Ctrl-C): none is left behind
    try:
        from deployments.serve import serve_all

        serve_all(inbox or str(get_settings().data_dir / "inbox"))
    finally:
        stop_server(started)
    return 0
