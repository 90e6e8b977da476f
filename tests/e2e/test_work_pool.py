"""Issue 10.3 — past one machine: two Prefect process workers on one work pool, one LeadFlow store on PostgreSQL.

A real Prefect server (its own home, a free port, its database on PostgreSQL as the README advises), the
`leadflow` process work pool (created by the first worker, as `prefect worker start` does when it is missing) and
the `intake-file` deployment exactly as prefect.yaml declares it (`prefect deploy`), two `prefect worker start
--pool leadflow --type process --limit 2` workers with names of their own, and four intake runs created at once,
each for a different generated registration file of 300 leads. Every run must complete; both workers must run
some of them; the runs' own start and end times (Prefect's) must show at least two of them live at one instant.

Then the store (a PostgreSQL database of its own, created and dropped here) must be what one process makes of the
same files one after another in the order the runs took (the engine's clock lock gives them one order), in a
second fresh database: the same owners, ledger (rule, action) counts, rotation pointers and per-tier counts per
person, hence the same per-tier spread (R-ALLOC-1, R-ALLOC-2); no customer with two open assignments; every
accepted lead allocated or pooled once, one ledger `allocate` row per assignment made; rows in = accepted +
attached + quarantined per file (R-REG).

Workers are stopped whatever happens (SIGTERM to both process groups at once, SIGKILL after 20 s), and no process
the test started (server, workers, the runs' own processes) outlives it.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import require_postgres
from tests.e2e.conftest import BIN, ROOT, prefect_server, wait

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
POOL = "leadflow"  # prefect.yaml's work pool (definitions.work_pool)
DEPLOYMENT = "intake/intake-file"
FILES, LEADS = 4, 300  # four runs at once, a few hundred leads each
CST = dt.timezone(dt.timedelta(hours=8))
AS_OF = dt.datetime(2026, 3, 3, 9, 0, tzinfo=CST)  # every run at one instant: the registrations are of 2 March
SUBMITTING = re.compile(r"Worker '[^']+' submitting flow run '([0-9a-f-]{36})'")
ABORTED = re.compile(r"Aborted submission of flow run '([0-9a-f-]{36})'")  # the other worker took it first
TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@contextmanager
def database(admin: str, prefix: str):
    """A PostgreSQL database of its own; yields its URL (the admin URL's driver); dropped after, WITH (FORCE): a
    connection left behind by a killed process does not keep it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin_engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


@contextmanager
def fresh_store(admin: str, prefix: str):
    """A LeadFlow store in a database of its own, migrated, holding the sample organisation; yields its URL."""
    from leadflow.samples.generate import org
    from leadflow.stages.people import load_org
    from leadflow.store.db import make_engine
    from leadflow.store.migrate import upgrade

    with database(admin, prefix) as url:
        upgrade(url)
        engine = make_engine(url)
        chart = org()
        with engine.begin() as conn:
            load_org(conn, chart["departments"], chart["people"])
        engine.dispose()
        yield url


def registration_files(folder: Path) -> list[Path]:
    """FILES front-desk exports of LEADS leads each, all of 2 March, each from its own seed (a few bad rows, some
    callers in two files: attached to the customer another run may have just accepted, R-REG-5)."""
    from leadflow.samples.generate import leads, write_registrations

    files = []
    for k in range(FILES):
        rows = leads(dt.date(2026, 3, 2), n=LEADS, seed=100 + k, days=1)
        for r in rows:
            r["external_ref"] = f"F{k}-{r['external_ref']}"
        files.append(write_registrations(folder / f"registrations-2026-03-02-f{k}.csv", rows))
    return files


def api(client: httpx.Client, method: str, url: str, **kw) -> httpx.Response:
    """The Prefect API, retried on 5xx as Prefect's own client does (a busy server answers 503 for a moment)."""
    for _ in range(15):
        response = client.request(method, url, **kw)
        if response.status_code < 500:
            return response
        time.sleep(1)
    return response


def prefect(env: dict, *args: str) -> None:
    done = subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"prefect {' '.join(args)}: {(done.stdout + done.stderr)[-1500:]}"


def start_worker(env: dict, name: str, log: Path) -> subprocess.Popen:
    """`prefect worker start --pool leadflow --type process --name <name> --limit 2`, in a session of its own."""
    with open(log, "wb") as out:
        return subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process",
                                 "--name", name, "--limit", "2"],
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_all(processes: list[subprocess.Popen], timeout: float = 20) -> None:
    """SIGTERM to every process group at once, then SIGKILL to those still there after `timeout` seconds."""
    for p in processes:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for p in processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def overlaps(runs: list[dict]) -> list[tuple[str, str, float]]:
    """Every pair of runs live at one instant: (name, name, seconds both were running), from Prefect's times."""
    spans = [(r["name"], dt.datetime.fromisoformat(r["start_time"]), dt.datetime.fromisoformat(r["end_time"]))
             for r in runs]
    out = []
    for i, (a, s1, e1) in enumerate(spans):
        for b, s2, e2 in spans[i + 1:]:
            both = (min(e1, e2) - max(s1, s2)).total_seconds()
            if both > 0:
                out.append((a, b, round(both, 1)))
    return out


def store_facts(url: str) -> dict:
    """What the runs left: per-tier counts per person (R-ALLOC-2 rotation, R-ALLOC-3 manager) and the rotation's
    spread per tier (max - min leads per salesperson served), the pointers, ledger (rule, action) counts, owners
    by customer reference, and the accounting checks' inputs."""
    from leadflow.store.models import Assignment, Customer, IntakeBatch, Ledger, Registration, RotationPointer

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            per_person = Counter(conn.execute(sa.select(Assignment.tier, Assignment.rule_id, Assignment.person_id)
                                              .where(Assignment.rule_id.like("R-ALLOC-%"))).all())
            spread: dict[str, list[int]] = {}  # leads per salesperson the rotation served, per tier
            for (tier, rule, _), n in per_person.items():
                if rule == "R-ALLOC-2":
                    spread.setdefault(tier, []).append(n)
            return {
                "per_person": dict(sorted(per_person.items())),
                "spreads": {t: max(v) - min(v) for t, v in sorted(spread.items())},
                "pointers": dict(conn.execute(sa.select(RotationPointer.key, RotationPointer.value)).all()),
                "ledger": dict(sorted(Counter(conn.execute(sa.select(Ledger.rule_id, Ledger.action)).all()).items())),
                "owners": dict(conn.execute(sa.select(Registration.external_ref, Customer.owner_id)
                                            .join(Customer, Customer.id == Registration.customer_id)
                                            .where(Registration.status == "accepted")).all()),
                "assignments": conn.execute(sa.select(Assignment.customer_id, Assignment.kind,
                                                      Assignment.ended_at)).all(),
                "customers": conn.execute(sa.select(Customer.id, Customer.owner_id, Customer.status)).all(),
                "batches": conn.execute(sa.select(IntakeBatch.id, IntakeBatch.rows_in, IntakeBatch.accepted,
                                                  IntakeBatch.attached, IntakeBatch.quarantined,
                                                  IntakeBatch.finished_at)).all(),
                "statuses": Counter(conn.execute(sa.select(Registration.batch_id, Registration.status)).all()),
                "order": list(conn.execute(sa.select(Registration.batch_id).group_by(Registration.batch_id)
                                           .order_by(sa.func.min(Registration.id))).scalars()),
            }
    finally:
        engine.dispose()


def assert_accounted(facts: dict) -> None:
    """R-REG: rows in = accepted + attached + quarantined per file; R-ALLOC: at most one open assignment per
    customer, every accepted lead allocated (one assignment, one ledger `allocate` row) or pooled, once."""
    for batch_id, rows_in, accepted, attached, quarantined, finished in facts["batches"]:
        assert finished is not None, batch_id
        assert rows_in == accepted + attached + quarantined == LEADS, batch_id
        assert (facts["statuses"][(batch_id, "accepted")], facts["statuses"][(batch_id, "attached")],
                facts["statuses"][(batch_id, "quarantined")]) == (accepted, attached, quarantined), batch_id
    open_per_customer = Counter(c for c, _, ended in facts["assignments"] if ended is None)
    assert [c for c, n in open_per_customer.items() if n > 1] == []
    made = Counter(c for c, _, _ in facts["assignments"])
    assert [c for c, n in made.items() if n > 1] == []  # nobody allocated twice (no doubled turn)
    unallocated = [(c, owner, status) for c, owner, status in facts["customers"] if c not in made]
    assert [u for u in unallocated if u[1] is not None] == []  # not allocated: pooled, owner-less
    accepted = sum(b[2] for b in facts["batches"])
    assert len(facts["customers"]) == accepted == facts["ledger"][("R-TIER-1", "accepted")]
    by_kind = Counter(kind for _, kind, _ in facts["assignments"])
    allocate_rows = sum(n for (_, action), n in facts["ledger"].items() if action == "allocate")
    assert allocate_rows == by_kind["allocation"] + by_kind["manager"]
    assert facts["ledger"].get(("R-REG-8", "self_found"), 0) == by_kind["self"]


@contextmanager
def connections(admin: str, url: str):
    """Yields a list whose one item becomes the most connections to `url`'s database seen at once (sampled every
    0.1 s): what the README's connection budget counts."""
    name = url.rsplit("/", 1)[1]
    peak, done = [0], threading.Event()
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")  # pg_stat_activity: one snapshot per transaction

    def sample() -> None:
        with engine.connect() as conn:
            while not done.wait(0.1):
                peak[0] = max(peak[0], conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                                                    {"d": name}).scalar())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join(10)
        engine.dispose()


def warm_reference(url: str):
    """A store context on the reference database, its GX gate built (what each worker's run builds too)."""
    from tests.concurrent_runs import store_context

    ctx = store_context(url, None)
    ctx.gate("intake", batch_id="warm-up")
    return ctx


def sequential(ctx, files: list[Path]) -> None:
    """The reference: the same files, one after another in this process, at the same instant."""
    from tests.concurrent_runs import perform

    for path in files:
        perform(ctx, {"action": "register_file", "path": str(path), "as_of": AS_OF})


def test_r_alloc_two_process_workers_on_one_pool_run_intakes_at_once_and_allocate_as_one_process(tmp_path):
    """R-ALLOC-1, R-ALLOC-2, R-REG: two workers, four intake runs created at once, one correct store."""
    from leadflow.samples.history import file_batch
    from tests.concurrent_runs import close_context

    t0 = time.monotonic()
    admin = require_postgres()
    files = registration_files(tmp_path / "files")
    phases: dict[str, float] = {}
    with ExitStack() as stack:
        url = stack.enter_context(fresh_store(admin, "lf_pool"))
        reference = stack.enter_context(fresh_store(admin, "lf_seq"))
        prefect_db = stack.enter_context(database(admin, "lf_prefect"))  # the Prefect server's own database
        # the reference's store context (GX's context and suites) is built while the server starts; closed last
        stack.callback(lambda: warming.exception() is None and close_context(warming.result()))
        warming = stack.enter_context(ThreadPoolExecutor(1)).submit(warm_reference, reference)
        phases["stores"] = time.monotonic() - t0
        with connections(admin, url) as peak:
            runs, worker_of, started = run_on_two_workers(tmp_path, url, prefect_db, files, phases)
        # everything stopped: server, workers (their groups), and each run's own process (a session of its own)
        assert [p.pid for p in started if group_alive(p.pid)] == []
        pids = [int(r["infrastructure_pid"].rsplit(":", 1)[-1]) for r in runs if r.get("infrastructure_pid")]
        assert [p for p in pids if alive(p)] == []

        assert {r["name"]: r["state_type"] for r in runs} == {r["name"]: "COMPLETED" for r in runs}, \
            {r["name"]: r["state"]["message"] for r in runs if r["state_type"] != "COMPLETED"}
        assert sorted(worker_of) == sorted(r["id"] for r in runs), worker_of  # each run submitted once
        assert set(worker_of.values()) == {"worker-1", "worker-2"}, worker_of  # both workers ran runs
        pairs = overlaps(runs)
        on = {r["name"]: worker_of[r["id"]] for r in runs}
        across = [p for p in pairs if on[p[0]] != on[p[1]]]
        assert across, f"no two runs on different workers were live at one instant: {pairs}"
        mark = time.monotonic()
        actual = store_facts(url)
        assert_accounted(actual)
        phases["checks"] = time.monotonic() - mark

        mark = time.monotonic()
        batch_of = {file_batch(path)[0]: path for path in files}
        assert sorted(actual["order"]) == sorted(batch_of)
        # one process, the files in the order the runs took (the clock lock's order)
        sequential(warming.result(), [batch_of[b] for b in actual["order"]])
        expected = store_facts(reference)
        phases["one process"] = time.monotonic() - mark
        mark = time.monotonic()
    phases["teardown"] = time.monotonic() - mark  # DROP DATABASE waits for a checkpoint
    phases["test"] = time.monotonic() - t0
    assert_accounted(expected)
    for key in ("per_person", "spreads", "pointers", "ledger", "owners"):
        assert actual[key] == expected[key], f"{key}:\n  two workers {actual[key]}\n  one process {expected[key]}"
    print(f"\nwork pool: {len(runs)} runs, by worker {dict(Counter(worker_of.values()))}; overlapping pairs "
          f"(run, run, seconds both live) {pairs}, {len(across)} across workers; per-tier spread (max - min "
          f"leads per person) {actual['spreads']}, one process {expected['spreads']}; seconds "
          f"{ {k: round(v, 1) for k, v in phases.items()} }; at most {peak[0]} connections to the store at once")


def run_on_two_workers(tmp: Path, url: str, prefect_db: str, files: list[Path],
                       phases: dict[str, float]) -> tuple[list[dict], dict[str, str], list]:
    """Server, pool, deployment, two workers, one intake run per file created at once; returns (the runs as
    the API has them once all finished, {run id: the worker that submitted it}, the worker processes), every
    process stopped."""
    started: list[subprocess.Popen] = []
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        phases[name] = time.monotonic() - mark
        mark = time.monotonic()

    with ExitStack() as stack:
        env = stack.enter_context(prefect_server(
            tmp, LEADFLOW_DATABASE_URL=url, LEADFLOW_DATA_DIR=str(tmp / "data"),
            LEADFLOW_HOME=str(ROOT),  # prefect.yaml's pull step: the runs work in this checkout
            PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://" + prefect_db.split("://", 1)[1],
            PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="0",
            PREFECT_SERVER_UI_ENABLED="false", PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false"))
        phase("server")
        client = stack.enter_context(httpx.Client(base_url=env["PREFECT_API_URL"], timeout=30))
        logs = {name: tmp / f"{name}.log" for name in ("worker-1", "worker-2")}
        # the first worker creates the process pool (`prefect worker start` does when it is missing, as
        # `prefect work-pool create leadflow --type process` would); the second starts while the deployment is made
        stack.callback(stop_all, started)  # whatever happens: both at once, terminate, then kill
        started.append(start_worker(env, "worker-1", logs["worker-1"]))
        wait(lambda: api(client, "GET", f"/work_pools/{POOL}").status_code == 200, 60, "the work pool")
        started.append(start_worker(env, "worker-2", logs["worker-2"]))
        prefect(env, "--no-prompt", "deploy", "--name", "intake-file")  # as prefect.yaml declares it
        deployment = api(client, "GET", f"/deployments/name/{DEPLOYMENT}").json()
        assert deployment["work_pool_name"] == POOL
        # `prefect deploy` writes LEADFLOW_HOME into the pull step: every worker runs the flows in that folder
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}], deployment["pull_steps"]
        assert api(client, "GET", f"/work_pools/{POOL}").json()["type"] == "process"
        wait(lambda: {w["name"] for w in api(client, "POST", f"/work_pools/{POOL}/workers/filter", json={}).json()}
             >= set(logs), 60, "both workers to poll the pool")
        phase("pool, workers and deployment")
        ids = []
        for path in files:  # created at once, as a burst of deliveries would be
            response = api(client, "POST", f"/deployments/{deployment['id']}/create_flow_run",
                           json={"parameters": {"path": str(path), "as_of": AS_OF.isoformat()}})
            assert response.status_code < 300, response.text[:500]
            ids.append(response.json()["id"])

        def finished():
            found = api(client, "POST", "/flow_runs/filter", json={"flow_runs": {"id": {"any_": ids}}}).json()
            return found if len(found) == len(ids) and all(r["state_type"] in TERMINAL for r in found) else None

        runs = wait(finished, 150, "the intake runs to finish")
        phase("runs")
    phase("stop")
    return runs, runs_by_worker(logs), started


def runs_by_worker(logs: dict[str, Path]) -> dict[str, str]:
    """{run id: the worker that ran it}: what each worker's log says it submitted and was not refused (two
    workers polling at once both try a run; the server lets one move it to Pending and aborts the other)."""
    out: dict[str, str] = {}
    for name, log in logs.items():
        text = log.read_text(encoding="utf-8", errors="replace")
        for run_id in set(SUBMITTING.findall(text)) - set(ABORTED.findall(text)):
            assert run_id not in out, f"run {run_id} ran on {out[run_id]} and {name}"
            out[run_id] = name
    return out
