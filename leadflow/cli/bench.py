"""`leadflow bench`: the benchmark (issue 10) — the real path beside the database's own speed, in one run."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from leadflow.cli.app import app
from leadflow.cli.output import stdout
from leadflow.errors import ArgumentError

STEPS = 8  # generate, pipeline, events, tick, timed stages, baseline, latency, done
DEFAULT_LEADS = 100_000
MAX_LEADS = 10_000_000  # the file alone is about 1.5 GB at this size; more fills a disk, not a benchmark


@app.command()
def bench(leads: Annotated[Optional[int], typer.Option(
              min=1, max=MAX_LEADS, help="how many registrations to generate and register [default: 100000]")]
          = None,
          database_url: Annotated[Optional[str], typer.Option(
              help="a PostgreSQL URL (e.g. postgresql://postgres@127.0.0.1:5432/test): the bench works in a fresh "
                   "schema there, dropped after; default a temporary SQLite file")] = None,
          seed: Annotated[int, typer.Option(help="the generator's seed: the same seed, the same rows")] = 11,
          latency: Annotated[Optional[bool], typer.Option(
              "--latency/--no-latency", help="time single registrations through register_lead (and the intake "
                                             "flow when a Prefect server answers); default on for PostgreSQL")]
          = None,
          replay: Annotated[Optional[int], typer.Option(
              min=1, metavar="EVENTS", help="instead: generate a scenario of EVENTS events and time its replay")]
          = None,
          as_json: Annotated[bool, typer.Option("--json", help="print the figures as one JSON document")] = False
          ) -> int:
    """Measure the pipeline beside the raw database on the same rows; the last line is the ratio."""
    from leadflow.progress import progress
    from leadflow.start import stop_on_sigterm

    stop_on_sigterm()  # a `kill` drops the bench's schema and temporary folder too

    if database_url is not None and database_url.strip().lower().startswith("sqlite"):
        raise ArgumentError("--database-url takes a PostgreSQL URL; without it the bench runs on a temporary SQLite file.")
    if replay is not None:
        if leads is not None:
            raise ArgumentError("--leads and --replay are two benches (the pipeline, a replay): give one of them.")
        return _replay(replay, database_url, as_json)
    leads = DEFAULT_LEADS if leads is None else leads
    from leadflow.bench.run import bench as run_bench, render

    with progress("bench", "steps") as update:
        done = [0]

        def step(_: str) -> None:  # the bench says which step starts: the bar counts them
            update(done[0], STEPS)
            done[0] += 1

        figures = run_bench(leads, database_url, seed, latency, progress=step)
        update(STEPS, STEPS)
    if as_json:
        print(json.dumps(figures, ensure_ascii=False, default=str))  # machine output: no Rich
        return 0
    render(figures, stdout())
    return 0


def _replay(events: int, database_url: str | None, as_json: bool) -> int:
    try:
        from leadflow.bench.replay import measure
    except ImportError:
        stdout().print("replay skipped: leadflow.bench.replay is not there yet.")
        return 0
    from leadflow.bench.run import replay_line

    figures = measure(events, database_url)
    if as_json:
        print(json.dumps(figures, ensure_ascii=False))
    else:
        stdout().print(replay_line(figures))
    return 0
