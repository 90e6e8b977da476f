"""`leadflow start`: the main job on the embedded default — a local Prefect server with its UI, the database,
the sample organisation and a quarter of leads, one lifecycle run, the organisation's activity since, then every
deployment served (with the sample organisation still at work: `sample-activity`).

Time: the quarter's leads reach LeadFlow two days ago (`HISTORY`), so they are allocated then; their owners'
contacts, entries, follow-ups, deals and leaves of the two days since are delivered as the CRM, the 400 system
and HR export them, each at its time. The store's clock never goes back: on a store that already ran, the
registrations (already taken, recognised by content) and the activity continue from its clock."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from leadflow.settings import get_settings

UI = "http://127.0.0.1:{port}"


def prefect_env(port: int = 4200) -> dict[str, str]:
    """Prefect's home and API address for this project (set before Prefect is imported)."""
    settings = get_settings()
    home = settings.data_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    env = {"PREFECT_HOME": str(home), "PREFECT_API_URL": f"{UI.format(port=port)}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_API_URL": f"{UI.format(port=port)}/api"}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    return env


def server_answers(api_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


def ensure_server(port: int = 4200, wait: float = 90.0) -> subprocess.Popen | None:
    """Start a Prefect server on SQLite in the background unless one answers; return it if we started it."""
    env = prefect_env(port)
    api = os.environ["PREFECT_API_URL"]
    if server_answers(api):
        return None
    log = open(get_settings().data_dir / "prefect-server.log", "ab")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=log, env={**os.environ, **env},
                            start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if server_answers(api):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"the Prefect server stopped at start; see {log.name}")
        time.sleep(1)
    proc.terminate()
    raise RuntimeError(f"the Prefect server did not answer within {wait:.0f} s; see {log.name}")


def quarter_start(today: dt.date) -> dt.date:
    """The quarter before this one: a whole quarter of history to run."""
    q_month = 3 * ((today.month - 1) // 3) + 1
    start = dt.date(today.year, q_month, 1)
    return dt.date(start.year - 1, 10, 1) if q_month == 1 else dt.date(start.year, q_month - 3, 1)


HISTORY = dt.timedelta(days=2)  # how long ago the sample quarter reached LeadFlow, on a new store


def intake_time(now: dt.datetime) -> dt.datetime:
    """When the sample registrations reach LeadFlow, and the activity starts: `HISTORY` ago, never before the
    store's clock (a second start: the files are taken already, and the activity goes on from the clock)."""
    from leadflow import engine
    from leadflow.wiring import stage_context

    ctx = stage_context(with_gate=False)
    try:
        with ctx.engine.connect() as conn:
            clock = engine.clock(conn)
    finally:
        ctx.engine.dispose()
    return now - HISTORY if clock is None else max(clock, now - HISTORY)


def prepare(sample_dir: Path, leads: int) -> Path:
    """Migrate, load the sample organisation, and write the sample files once (a rerun reuses them)."""
    from leadflow.orgfile import load_org_file
    from leadflow.samples.generate import write_sample
    from leadflow.store.migrate import upgrade

    upgrade(get_settings().effective_database_url)
    if not (sample_dir / "org.yaml").exists():
        write_sample(sample_dir, quarter_start(dt.date.today()), leads)
    load_org_file(sample_dir / "org.yaml")
    return sample_dir / "inbox"


def _describe(state) -> str:
    """One line on the sample organisation's activity run."""
    try:
        h = state.result()
    except Exception:
        return f"{state.type.value} — its run says why"
    return (f"{h['rows']} records in {h['files']} export files, {h['applied']} applied, {h['refused']} refused; "
            f"{h['first_contact_breaches']} of {h['allocations']} allocations missed the 10-minute first contact "
            f"(R-SLA-1); {h['paused']} of {h['salespeople']} salespeople have paused rounds")


def serve_with_sample_activity(inbox: str) -> None:
    """Every deployment prefect.yaml declares, plus the sample organisation at work (`sample-activity`, the main
    job's only: production's activity comes from its own systems)."""
    from prefect import serve
    from prefect.schedules import Interval

    from deployments.serve import deployments
    from flows.sample_activity import sample_activity_flow
    from leadflow.samples.feed import EVERY
    from leadflow.settings import configured_policy

    live = sample_activity_flow.to_deployment(
        name="sample-activity", schedules=[Interval(EVERY, timezone=configured_policy().timezone)],
        description="The sample organisation's people at work: contacts, entries, follow-ups, deals for the "
                    "leads allocated in the last days (main job only).")
    serve(*deployments(inbox), live, limit=4)


def _flush_logs() -> None:
    """Send the runs' remaining log lines before the server we started goes away."""
    try:
        from prefect.logging.handlers import APILogHandler

        APILogHandler.flush()
    except Exception:
        pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def start(port: int = 4200, leads: int = 5000, serve: bool = True) -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background by a shell
        signal.signal(signal.SIGINT, _interrupt)
    started = ensure_server(port)
    ui = UI.format(port=port)
    print(f"Prefect UI: {ui}  (server {'started' if started else 'already running'})", flush=True)
    try:
        sample = get_settings().data_dir / "sample"
        inbox = prepare(sample, leads)
        from flows.lifecycle import lifecycle_flow
        from flows.sample_activity import sample_history_flow

        now = dt.datetime.now(dt.timezone.utc)
        since = intake_time(now)
        state = lifecycle_flow(inbox=str(inbox), as_of=since, return_state=True)
        print(f"lifecycle run: {state.type.value} — see {ui}/runs", flush=True)
        history = sample_history_flow(start=since, end=now, folder=str(sample / "activity"), return_state=True)
        print(f"sample activity: {_describe(history)}", flush=True)
        if serve:
            print(f"serving every deployment; the UI is at {ui}/deployments — Ctrl-C stops.", flush=True)
            serve_with_sample_activity(str(inbox))
    except KeyboardInterrupt:
        print("stopped.", flush=True)
    finally:
        _flush_logs()
        if started is not None:
            started.terminate()
            try:
                started.wait(timeout=15)
            except subprocess.TimeoutExpired:
                started.kill()
    return 0
