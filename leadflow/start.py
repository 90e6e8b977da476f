"""`leadflow start`: the main job on the embedded default — a local Prefect server with its UI, the database,
the sample organisation and four weeks of its leads as they happened, one lifecycle run, the organisation's
activity since, then every deployment served (with the sample organisation still at work: `sample-activity`).

Time: the sample period (`leadflow.samples.generate.DAYS`, up to the front desk's last export before now) is
delivered as it would have happened (`leadflow.samples.history`): each export of registrations reaches LeadFlow
at its own time, a few a day, and is allocated then; the owners' activity between the exports is delivered as
the CRM, the 400 system and HR export it. That history runs through the Python entry points (fast); the last
export, in the inbox, goes through the lifecycle flow, and the activity since through the `sample-history` flow,
so the UI shows them. The store's clock never goes back: on a store that already ran, the exports (already
taken, recognised by content) are skipped and the activity continues from its clock."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.parse
import urllib.request
from pathlib import Path

from leadflow.progress import progress
from leadflow.settings import PROJECT_DIR, get_settings

UI = "http://127.0.0.1:{port}"


def prefect_toml() -> dict:
    """The Prefect settings file this command follows: ./prefect.toml, as Prefect itself reads it, else the
    repository's (a command run from another folder reaches the same server). Parsed TOML; {} when neither exists."""
    for path in (Path("prefect.toml"), PROJECT_DIR / "prefect.toml"):
        if path.is_file():
            return tomllib.loads(path.read_text(encoding="utf-8"))
    return {}


def default_port() -> int:
    """The port prefect.toml gives the server (`[server.api] port`; 4200, Prefect's own default, without one)."""
    return int(prefect_toml().get("server", {}).get("api", {}).get("port", 4200))


def prefect_env(port: int | None = None) -> dict[str, str]:
    """Prefect's settings for this project's processes, put in os.environ before Prefect is imported; returns them.

    The same values as prefect.toml (the API address is read from it), with absolute paths, so a `leadflow` command
    works from any folder: the home is LEADFLOW_DATA_DIR/prefect (prefect.toml's `data/prefect` by default). What
    the environment sets already wins (PREFECT_API_URL for a server on another port, the tests' own homes), except
    that `port` — the server `start` runs or reuses — is the API address of its own processes whatever is set.

    R-REG-7: Prefect's log handlers carry the masking filter (leadflow/logging.yml), and no task result is
    persisted under PREFECT_HOME/storage even when the server names a default result storage (a task's result
    lives in memory; a failed flow's exception is persisted by Prefect whatever the setting, masked at its source).
    No command starts a temporary server of its own (server.ephemeral.enabled = false): use_server says why not.
    """
    from leadflow.privacy import LOGGING_CONFIG

    home = get_settings().data_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    api = f"{UI.format(port=port)}/api" if port is not None else \
        prefect_toml().get("api", {}).get("url", f"{UI.format(port=4200)}/api")
    env = {"PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_UI_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
           "PREFECT_LOGGING_SETTINGS_PATH": str(LOGGING_CONFIG), "PREFECT_TASKS_DEFAULT_PERSIST_RESULT": "false"}
    for key, value in env.items():
        if port is not None and key in ("PREFECT_API_URL", "PREFECT_UI_API_URL"):
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in env}


def server_answers(api_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


class ServerUnavailable(Exception):
    """The Prefect server the command needs does not answer: one sentence, exit 2 (issue 9.1)."""


def use_server() -> str:
    """Point Prefect at the project's server (prefect.toml / PREFECT_API_URL) for a command that runs flows;
    returns the API URL. Raises ServerUnavailable, in one sentence, when nothing answers there: a flow run
    never starts a temporary server of its own (one that a killed command would leave behind)."""
    prefect_env()
    api = os.environ["PREFECT_API_URL"]
    if not server_answers(api):
        raise ServerUnavailable(f"no Prefect server answers at {api.removesuffix('/api')}: start it with "
                                "`python3 manage.py start` (or `leadflow serve`) and run this again.")
    return api


def ensure_server(port: int | None = None, wait: float = 90.0) -> subprocess.Popen | None:
    """Start a Prefect server on SQLite in the background unless one answers; return it if we started it (the caller
    stops it). `port`: the server's; default the one PREFECT_API_URL names, else prefect.toml's (4200).
    Raises RuntimeError, pointing at its log, when the server stops or does not answer within `wait` seconds."""
    env = prefect_env(port)
    api = env["PREFECT_API_URL"]
    if server_answers(api):
        return None
    port = urllib.parse.urlsplit(api).port or default_port()
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


def sample_period(now: dt.datetime) -> tuple[dt.date, dt.datetime]:
    """The sample period on a new store: (its first day, the front desk's last export at or before `now`, in
    business time) — `DAYS` days up to that export."""
    from leadflow.samples.generate import DAYS, last_slot
    from leadflow.samples.history import wall
    from leadflow.settings import configured_policy

    until = last_slot(wall(now, configured_policy()))
    return until.date() - dt.timedelta(days=DAYS - 1), until


def prepare(sample_dir: Path, leads: int, now: dt.datetime) -> Path:
    """Migrate, load the sample organisation, and write the sample files once (a rerun reuses them)."""
    from leadflow.clock import is_working_day
    from leadflow.orgfile import load_org_file
    from leadflow.samples.generate import write_sample
    from leadflow.settings import configured_policy
    from leadflow.store.migrate import upgrade

    upgrade(get_settings().effective_database_url)
    if not (sample_dir / "org.yaml").exists():
        policy = configured_policy()
        first_day, until = sample_period(now)
        with progress("sample data: the front desk's exports", "files") as update:
            write_sample(sample_dir, first_day, until, leads, working_day=lambda d: is_working_day(d, policy),
                         progress=update)
    load_org_file(sample_dir / "org.yaml")
    return sample_dir / "inbox"


def history_context():
    """The context the sample history runs in: the configured database and policy, the validation gate without
    a Data Docs page per export (the lifecycle's runs have theirs)."""
    import dataclasses

    from leadflow.wiring import make_gate, stage_context

    ctx = stage_context(with_gate=False)
    return dataclasses.replace(ctx, gate=make_gate(get_settings().effective_database_url, None, ctx.policy))


def deliver_history(sample_dir: Path, inbox: Path, now: dt.datetime) -> tuple[dt.datetime, dict]:
    """The sample period up to the inbox's export (`leadflow.samples.history`); returns (when the lifecycle runs:
    that export's time, or now when the inbox has none, never before the store's clock; the history's summary)."""
    from leadflow.samples.history import clock, deliver_history as deliver, exports

    ctx = history_context()
    try:
        last = [t for t, _ in exports(inbox, ctx.policy) if t <= now]
        with progress("sample history: each export at its time", "exports") as update:
            summary = deliver(ctx, sample_dir, last[-1] if last else now, progress=update)
        at = clock(ctx)
    finally:
        ctx.engine.dispose()
    since = last[-1] if last else now
    return (since if at is None else max(at, since)), summary


def _history_line(h: dict, seconds: float) -> str:
    a = h["activity"]
    return (f"{h['exports']} exports of registrations, each at its time ({h.get('rows_in', 0)} rows: "
            f"{h.get('accepted', 0)} accepted, {h.get('attached', 0)} attached, {h.get('quarantined', 0)} "
            f"quarantined; {h['allocated']} allocated), with {a.get('rows', 0)} activity records in {a['files']} "
            f"export files ({a.get('refused', 0)} refused), in {seconds:.0f} s")


def _describe(state) -> str:
    """One line on the sample organisation's activity run."""
    try:
        h = state.result()
    except Exception:
        return f"{state.type.value} — its run says why"
    return (f"{h['rows']} records in {h['files']} export files, {h['applied']} applied, {h['refused']} refused; "
            f"{h['first_contact_breaches']} of {h['allocations']} allocations missed the 10-minute first contact "
            f"(R-SLA-1); {h['paused']} of {h['salespeople']} salespeople have paused rounds, "
            f"{h['paused_own_tier']} of them in the tier of their own grade (where they take their turns)")


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
        description="The sample organisation at work (main job only): a few new registrations every run, and "
                    "its people's contacts, entries, follow-ups, deals for the leads allocated in the last days.")
    serve(*deployments(inbox), live, limit=4)


def _flush_logs() -> None:
    """Send the runs' remaining log lines before the server we started goes away."""
    try:
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()  # an instance method: sends what is queued, within 5 s
    except Exception:
        pass


def _interrupt(signum, frame):
    if signum == signal.SIGTERM:  # once: a second `kill` must not interrupt the cleanup the first one started
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """`kill` (SIGTERM) stops a long command as Ctrl-C does: a KeyboardInterrupt, so its cleanup runs (the
    server it started, the bench's temporary folder and PostgreSQL schema) and it ends "interrupted." (130). A
    second SIGTERM while it cleans up is ignored (SIGKILL still ends it)."""
    signal.signal(signal.SIGTERM, _interrupt)


def start(port: int | None = None, leads: int | None = None, serve: bool = True) -> int:
    """The main job (the module's docstring); `port`: its Prefect server's (default: PREFECT_API_URL's, else
    prefect.toml's 4200). Prints one line per step on stdout (`Prefect UI: …`, …, `ready in N s`), progress on
    stderr (leadflow.progress). Returns 0 once stopped (Ctrl-C or SIGTERM), stopping the server it started."""
    began = time.monotonic()
    stop_on_sigterm()
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background by a shell
        signal.signal(signal.SIGINT, _interrupt)
    started = ensure_server(port)
    ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
    print(f"Prefect UI: {ui}  (server {'started' if started else 'already running'})", flush=True)
    try:
        from leadflow.samples.generate import LEADS

        sample = get_settings().data_dir / "sample"
        now = dt.datetime.now(dt.timezone.utc)
        inbox = prepare(sample, LEADS if leads is None else leads, now)
        from flows.lifecycle import lifecycle_flow
        from flows.sample_activity import sample_history_flow

        took = time.monotonic()
        since, summary = deliver_history(sample, inbox, now)
        print(f"sample history: {_history_line(summary, time.monotonic() - took)}", flush=True)
        state = lifecycle_flow(inbox=str(inbox), as_of=since, return_state=True)
        said = f": {state.message}" if state.message and not state.is_completed() else ""
        print(f"lifecycle run: {state.type.value}{said} — see {ui}/runs", flush=True)
        now = dt.datetime.now(dt.timezone.utc)  # the history took a while: its activity too, up to now
        history = sample_history_flow(start=since, end=now, folder=str(sample / "activity"), return_state=True)
        print(f"sample activity: {_describe(history)}", flush=True)
        print(f"ready in {time.monotonic() - began:.0f} s", flush=True)
        if serve:
            print(f"serving every deployment; the UI is at {ui}/deployments — Ctrl-C stops.", flush=True)
            serve_with_sample_activity(str(inbox))
    except KeyboardInterrupt:
        print("stopped.", flush=True)
    finally:
        _flush_logs()
        stop_server(started)
    return 0


def stop_server(started: subprocess.Popen | None) -> None:
    """Stop the Prefect server `ensure_server` started (None: it was running already, and keeps running)."""
    if started is None:
        return
    started.terminate()
    try:
        started.wait(timeout=15)
    except subprocess.TimeoutExpired:
        started.kill()
