"""One engine through Prefect: the shared scenarios driven through the production flows in-process (Prefect's
test harness) end where `leadflow simulate` ends, on SQLite and on a PostgreSQL database of their own.

Registrations arrive as one-row registration files through the intake flow, events through the
`record-events` flow (a phone-carrying `link` through an event file and the events-file flow), ticks
through the tick flow — each at its delivery time (`as_of`).
"""
from __future__ import annotations

import csv
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import require_postgres
from tests.scenarios.test_parity import IGNORED, SHARED, lead_of

SCENARIOS = sorted(SHARED.glob("*.yaml"))
INTAKE_COLUMNS = ("channel", "name", "phone", "amount", "inquiry", "registered_at", "registered_by", "region",
                  "target", "external_ref", "备注")


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'parity.db'}"
        return
    admin = require_postgres()
    name = f"lf_parity_{uuid.uuid4().hex[:10]}"
    eng = create_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        import sys

        if "expectations.gate" in sys.modules:
            sys.modules["expectations.gate"].clear_cache()
        from tasks.context import _base

        for ctx in [_base(None, None)] if _base.cache_info().currsize else []:
            ctx.engine.dispose()
        _base.cache_clear()
        with eng.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()


@pytest.fixture
def production(harness, store_url, tmp_path, monkeypatch):
    """The flows' settings pointed at a fresh, migrated store."""
    from leadflow.settings import get_settings
    from leadflow.store.migrate import upgrade
    from tasks.context import _base

    monkeypatch.setenv("LEADFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", store_url)
    get_settings.cache_clear()
    _base.cache_clear()
    upgrade(store_url)
    yield tmp_path
    get_settings.cache_clear()
    _base.cache_clear()


def _registration_file(folder: Path, e) -> str:
    lead = lead_of(e)
    path = folder / f"registration-{e.index}.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(INTAKE_COLUMNS)
        w.writerow([lead.get(c) if c != "registered_at" else e.at.isoformat() for c in INTAKE_COLUMNS[:-1]]
                   + [f"event {e.index}"])
    return str(path)


def _event_file(folder: Path, row: dict, index: int) -> str:
    path = folder / f"events-{index}.jsonl"
    import json

    path.write_text(json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    return str(path)


def drive_flows(scenario, folder: Path) -> dict:
    from flows.clock import tick_flow
    from flows.events import events_file_flow, record_events_flow
    from flows.intake import intake_flow
    from leadflow.simulate import event_row
    from leadflow.stages.people import load_org
    from leadflow.state import world_state
    from tasks.context import stage_ctx

    ctx = stage_ctx()
    with ctx.engine.begin() as conn:
        load_org(conn, scenario.departments, scenario.people)
    tick_flow(as_of=scenario.start, return_state=True)
    for e in scenario.events:
        t = e.delivered_at
        if e.type == "tick":
            tick_flow(as_of=t, return_state=True)
        elif e.type == "register":
            intake_flow(path=_registration_file(folder, e), as_of=t, return_state=True)
        elif e.type == "link":
            events_file_flow(path=_event_file(folder, event_row(e), e.index), as_of=t, return_state=True)
        else:
            row = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in event_row(e).items()}
            record_events_flow(events=[row], as_of=t, return_state=True)
    last = scenario.events[-1].delivered_at if scenario.events else scenario.start
    tick_flow(as_of=last, return_state=True)
    with ctx.engine.connect() as conn:
        return world_state(conn, ctx.policy, scenario.name, last)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_r_sla_6_the_flows_end_where_the_replay_ends(production, store_url, path: Path):
    from leadflow.scenario import load_scenario
    from leadflow.simulate import simulate
    from leadflow.wiring import make_gate

    scenario = load_scenario(path)
    if scenario.policy:
        pytest.skip("the flows read the deployed policy file; this scenario overrides it")
    produced = drive_flows(scenario, production)
    pg = None if store_url.startswith("sqlite") else require_postgres()
    replayed = simulate(scenario, None, pg, gate_factory=lambda u, schema, policy: make_gate(u, schema, policy))
    differing = sorted(k for k in replayed if k not in IGNORED and replayed[k] != produced.get(k))
    assert not differing, "\n".join(f"{k}:\n  replay {replayed[k]}\n  flows  {produced.get(k)}"
                                    for k in differing[:3])
