"""Shared fixtures: a fresh store on SQLite and on PostgreSQL.

- `database_url` -> (url, schema): a fresh, empty database, parametrised over ["sqlite", "postgresql"]:
  a temporary SQLite file (schema None), or a fresh PostgreSQL schema created with
  `leadflow.store.db.create_schema` and dropped after the test.
- `store_target` -> (url, schema) of the same database (what `run_gate` / `gate_for` take).
- `store_engine` -> a SQLAlchemy engine on it with every table created (`create_all`).

PostgreSQL is the one at $LEADFLOW_TEST_PG_URL (default postgresql+psycopg2://postgres@127.0.0.1:5432/test).
When it cannot be reached, its cases are skipped with the reason, unless CI=true: then they fail.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the project is not installed into the venv
    sys.path.insert(0, str(ROOT))

# The repository's prefect.toml points Prefect at the main job's server and home (data/prefect, issue 9.1): the
# suite keeps a Prefect home of its own and talks to no server it did not start (the harness and the e2e fixtures
# set theirs), so a main job running beside the tests is never written to.
if "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="leadflow-tests-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], True)
os.environ.setdefault("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing listens on port 9 (discard)

DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"

# Property tests (tests/strategies.py): `ci` (the default) is derandomised and bounded, so the suite's time and
# outcome are the same on every run; HYPOTHESIS_PROFILE=thorough searches ten times as long, at random. Neither
# keeps an example database: a failure prints its @reproduce_failure blob.
settings.register_profile("ci", derandomize=True, database=None, max_examples=60, deadline=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=600, deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pg_admin_url() -> str:
    """The test PostgreSQL URL; a driverless postgresql:// gets psycopg2 when psycopg (SQLAlchemy
    2.1's default driver) is not installed."""
    url = os.environ.get("LEADFLOW_TEST_PG_URL") or DEFAULT_PG_URL
    if url.startswith("postgresql://"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


_pg_problem: list[str | None] = []  # cached once per session: [None] reachable, [reason] not


def postgres_problem() -> str | None:
    """None when the test PostgreSQL answers, else why not (one line, no password)."""
    if not _pg_problem:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        url = pg_admin_url()
        where = make_url(url).render_as_string(hide_password=True)
        try:
            engine = create_engine(url, connect_args={"connect_timeout": 3})
            try:
                with engine.connect() as conn:
                    conn.execute(text("select 1"))
            finally:
                engine.dispose()
            _pg_problem.append(None)
        except Exception as e:
            _pg_problem.append(f"PostgreSQL unreachable at {where} ({type(e).__name__}: {str(e).strip().splitlines()[0][:120] if str(e).strip() else ''})")
    return _pg_problem[0]


def require_postgres() -> str:
    """The admin URL, or skip (fail when CI=true) with the reason."""
    problem = postgres_problem()
    if problem:
        if _in_ci():
            pytest.fail(f"{problem}; CI=true requires PostgreSQL.", pytrace=False)
        pytest.skip(f"{problem}; set CI=true to make this a failure.")
    return pg_admin_url()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """(url, schema) of a fresh, empty database: SQLite file or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}", None
        return
    from leadflow.store.db import create_schema, drop_schema

    admin = require_postgres()
    schema = create_schema(admin, prefix="lf_test")
    try:
        yield admin, schema
    finally:
        _release_gates()  # pooled gate connections would outlive the schema and exhaust the server
        drop_schema(admin, schema)


def _release_gates() -> None:
    if "expectations.gate" in sys.modules:
        sys.modules["expectations.gate"].clear_cache()


@pytest.fixture
def store_target(database_url):
    """(url, schema) for the same database as `store_engine`."""
    return database_url


@pytest.fixture
def store_engine(store_target):
    """An engine on a fresh database with every table created (SQLite and PostgreSQL)."""
    from leadflow.store.db import create_all, make_engine

    url, schema = store_target
    engine = make_engine(url, schema=schema)
    create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def gated_ctx(engine, target, policy, org_people: list[dict], flow_run_id: str):
    """A StageContext on `engine` with the GX gate on `target` (url, schema), after loading one department "d1"
    with `org_people`; the gate's cached connections are released after."""
    from expectations import gate as gate_module
    from leadflow.stages import people
    from leadflow.stages.context import StageContext
    from leadflow.wiring import make_gate

    url, schema = target
    with engine.begin() as conn:
        people.load_org(conn, [{"id": "d1", "name": "营销一部"}], org_people)
    try:
        yield StageContext(engine=engine, policy=policy, flow_run_id=flow_run_id, gate=make_gate(url, schema, policy))
    finally:
        gate_module.clear_cache()
