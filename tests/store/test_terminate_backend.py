"""A connection cut mid-stage (issue 8, items 1 and 3: `pg_terminate_backend`), PostgreSQL only.

The worker runs a step of the crash scenario (`tests/crash_worker.py`) with `<point>:pause` and its own
application name: at the failpoint, inside the stage's transaction, it stops; the test terminates every backend
of that application name, and the worker goes on into a dead connection. The Python entry points have no
Prefect retries, so the worker ends as the command line ends on a database error: one sentence that says to run
the command again (leadflow.store.transient.database_sentence) — no traceback, no SQL, no phone number. Running
the step again must then leave the store equal to the uncrashed reference's, and the next step too.
"""
from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import text

from tests import crash_worker as scenario
from tests.store.test_crash_recovery import (  # noqa: F401  (fixtures)
    assert_recovered_and_goes_on, forker, live_through, references,
)

pytestmark = [pytest.mark.crash, pytest.mark.postgres]

CUTS = [
    ("register-1", "intake.decide"),     # the decide transaction: customers written, outcomes not
    ("register-1", "allocation.write"),  # the allocation transaction
    ("events-1", "events.apply"),        # an apply group's transaction
    ("tick-1", "timed.stage"),           # the SLA check's transaction
    ("tick-1", "allocation.write"),      # the pool allocation's transaction
]
PAUSE_SECONDS = "4"  # how long the worker waits at the point for the test to cut its connections


@pytest.fixture
def pg_store():
    """(admin url, schema) of a fresh PostgreSQL schema."""
    from leadflow.store.db import create_schema, drop_schema
    from tests.conftest import require_postgres

    url = require_postgres()
    schema = create_schema(url, prefix="lf_test")
    yield url, schema
    from expectations.gate import clear_cache

    clear_cache()
    drop_schema(url, schema)


def terminate(admin_url: str, application: str) -> list[str]:
    """Terminate every backend of `application`; the states they were in."""
    from leadflow.store.db import make_engine

    engine = make_engine(admin_url)
    try:
        with engine.begin() as conn:
            found = conn.execute(text("SELECT pid, state FROM pg_stat_activity WHERE application_name = :a"),
                                 {"a": application}).all()
            for pid, _ in found:  # one by one: only the worker's own backends
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            return [state for _, state in found]
    finally:
        engine.dispose()


@pytest.mark.parametrize(("step", "point"), CUTS)
def test_issue_8_3_a_terminated_backend_ends_in_one_sentence_and_a_rerun_completes_the_step(
        step, point, forker, references, pg_store, tmp_path):
    url, schema = pg_store
    reference = references("postgresql")
    scenario.write_files(tmp_path)
    ctx = scenario.store_context(url, schema)
    try:
        scenario.prepare(ctx)
        live_through(ctx, tmp_path, step)
        marker, application = tmp_path / "paused", f"lf-cut-{uuid.uuid4().hex[:10]}"
        forker.start([url, schema, str(tmp_path), step], {
            "LEADFLOW_FAILPOINT": f"{point}:pause", "LEADFLOW_FAILPOINT_FILE": str(marker),
            "LEADFLOW_FAILPOINT_SECONDS": PAUSE_SECONDS, "PGAPPNAME": application}, tmp_path / "worker")
        deadline = time.monotonic() + 90
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        states = terminate(url, application) if marker.exists() else []
        rc, out, err = forker.wait()
        assert "idle in transaction" in states, f"no transaction cut at {point} ({states}); worker: {rc} {err[-500:]}"

        lines = err.strip().splitlines()
        assert rc == 1 and len(lines) == 1, f"exit {rc}, not one sentence: {err[-1500:]}"
        assert lines[0].startswith("leadflow: the database") and "run the same command again" in lines[0], lines[0]
        assert not any(w in err for w in ("Traceback", "[SQL", "SELECT ", "INSERT ", "UPDATE ", "[parameters"))
        assert not any(p in out + err for p in scenario.PHONES)

        summary = scenario.perform(ctx, tmp_path, step)
        assert_recovered_and_goes_on(ctx, tmp_path, step, summary, reference)
    finally:
        ctx.gate.close()
        ctx.engine.dispose()
