"""The intake flow through Prefect's test harness, on a real database: files in, summary and artifacts out."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

SAMPLES = Path(__file__).resolve().parents[2] / "leadflow" / "samples"


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def project(harness, tmp_path, monkeypatch):
    """A fresh, migrated SQLite store with the sample org, and caches cleared so the flows see it."""
    from leadflow.orgfile import load_org_file
    from leadflow.settings import get_settings
    from leadflow.store.migrate import upgrade
    from tasks.context import _base

    monkeypatch.setenv("LEADFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'flows.db'}")
    get_settings.cache_clear()
    _base.cache_clear()
    upgrade(get_settings().effective_database_url)
    load_org_file(SAMPLES / "org.yaml")
    yield tmp_path
    get_settings.cache_clear()
    _base.cache_clear()


def _count(model):
    from tasks.context import stage_ctx

    with stage_ctx().engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def _phones_in(path: Path) -> set[str]:
    from leadflow.intake.readers import read_registration_file
    from leadflow.rules.registration import normalise_phone

    return {p for r in read_registration_file(path) if (p := normalise_phone(r["phone"])[0]) and len(p) >= 7}


async def _artifacts_and_runs() -> tuple[list[dict], list[dict]]:
    """Straight from the API (the 3.8 client sends nulls this server's filters refuse)."""
    from prefect.client.orchestration import get_client

    body = {"limit": 200, "offset": 0}
    async with get_client() as client:
        artifacts = (await client._client.post("/artifacts/filter", json={**body, "sort": "CREATED_DESC"})).json()
        runs = (await client._client.post("/flow_runs/filter", json={**body, "sort": "START_TIME_DESC"})).json()
    return artifacts, runs


def test_r_reg_4_r_val_2_gbk_csv_is_registered_counted_and_a_rerun_changes_nothing(project):
    from flows.intake import intake_flow
    from leadflow.store.models import Customer, Ledger, Registration

    path = SAMPLES / "hotline-2026-03-02.csv"
    state = intake_flow(path=str(path), return_state=True)
    assert state.is_completed(), state.message
    s = state.result()
    assert s["rows_in"] == 12 and s["rows_in"] == s["accepted"] + s["attached"] + s["quarantined"]
    assert s["quarantined"] >= 2 and s["attached"] >= 1
    customers, ledger_rows = _count(Customer), _count(Ledger)
    again = intake_flow(path=str(path), return_state=True).result()
    assert again["already_registered"] and again["rows_in"] == 12
    assert (_count(Customer), _count(Ledger), _count(Registration)) == (customers, ledger_rows, 12)


def test_r_reg_4_r_val_2_a_file_larger_than_a_batch_is_registered_batch_by_batch_and_counted_once(project, monkeypatch):
    """R-REG-4, R-VAL-2 (issue 10): with `intake.batch_rows` 5 the 12-row sample is three batches, each staged,
    validated, settled and offered by tasks of its own; rows in = accepted + attached + quarantined over the
    file, and delivering it again registers nothing twice."""
    from flows.intake import intake_flow
    from leadflow.settings import get_settings
    from leadflow.store.models import Customer, Ledger, Registration

    policy = project / "policy.yaml"
    policy.write_text("intake:\n  batch_rows: 5\n", encoding="utf-8")
    monkeypatch.setenv("LEADFLOW_POLICY_FILE", str(policy))
    get_settings.cache_clear()
    from tasks.context import _base

    _base.cache_clear()
    path = SAMPLES / "hotline-2026-03-02.csv"
    s = intake_flow(path=str(path), return_state=True).result()
    assert s["rows_in"] == 12 == s["accepted"] + s["attached"] + s["quarantined"] and len(s["batches"]) == 3
    assert s["quarantined"] >= 2 and s["attached"] >= 1
    assert sorted(r for r in _rows_in_batches()) == [2, 5, 5]
    counts = (_count(Customer), _count(Ledger), _count(Registration))
    again = intake_flow(path=str(path), return_state=True).result()
    assert again["already_registered"] and again["rows_in"] == 12 and again["accepted"] == s["accepted"]
    assert (_count(Customer), _count(Ledger), _count(Registration)) == counts


def _rows_in_batches() -> list[int]:
    from leadflow.store.models import IntakeBatch
    from tasks.context import stage_ctx

    with stage_ctx().engine.connect() as conn:
        return list(conn.execute(select(IntakeBatch.rows_in).where(IntakeBatch.finished_at.is_not(None))).scalars())


def test_r_reg_1_an_xlsx_file_is_registered(project):
    from flows.intake import intake_flow

    s = intake_flow(path=str(SAMPLES / "webchat-2026-03-02.xlsx"), return_state=True).result()
    assert s["rows_in"] == 6 and s["accepted"] + s["attached"] + s["quarantined"] == 6 and s["accepted"] >= 4


def test_a_file_missing_a_column_fails_the_run_with_one_sentence(project, tmp_path):
    from flows.intake import intake_flow

    bad = tmp_path / "no-phone.csv"
    bad.write_text("channel,registered_at,registered_by\nhotline,2026-03-02 09:00,k1\n", encoding="utf-8")
    state = intake_flow(path=str(bad), return_state=True)
    assert state.is_failed()
    assert state.message.startswith("no-phone.csv: required column 'phone'") and "\n" not in state.message


def test_r_reg_7_no_phone_appears_unmasked_in_artifacts_or_run_names(project):
    from flows.intake import intake_flow

    path = SAMPLES / "hotline-2026-03-02.csv"
    intake_flow(path=str(path), return_state=True)
    artifacts, runs = asyncio.run(_artifacts_and_runs())
    assert artifacts, "the intake run published no artifact"
    text = " ".join(f"{a['key']} {a['description']} {a['data']}" for a in artifacts)
    text += " ".join(f"{r['name']} {r['parameters']}" for r in runs)
    leaked = [p for p in _phones_in(path) if p in re.sub(r"\s", "", text)]
    assert leaked == []
    assert any(r["name"] == "intake hotline-2026-03-02.csv" for r in runs)


def test_r_val_1_the_lifecycle_runs_every_stage_flow_to_completion(project, tmp_path):
    """Intake of an inbox, then the global catch-up (every stage behind its gate) and the report."""
    import shutil

    from flows.lifecycle import lifecycle_flow

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("hotline-2026-03-02.csv", "webchat-2026-03-02.xlsx"):
        shutil.copy2(SAMPLES / name, inbox / name)  # its time kept: the inbox takes settled files (issue 9.3)
    state = lifecycle_flow(inbox=str(inbox), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert set(result["intake"].values()) == {"COMPLETED"} and len(result["intake"]) == 2
    assert {k: v for k, v in result.items() if k != "intake"} == {"clock": "COMPLETED", "report": "COMPLETED"}


def test_r_reg_7_an_error_with_a_phone_in_its_text_reaches_prefect_masked(harness):
    """Issue 8.4: whatever a task raises, the Failed states Prefect stores (flow and task run) carry no phone."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from tasks.masked import flow, task

    @task(name="parse a row")
    def parse():
        raise ValueError("row 3: '13800138000' is not an amount")

    @flow(name="masked-errors")
    def run():
        parse()

    state = run(return_state=True)

    async def stored():
        async with get_client() as client:
            flow_run = await client.read_flow_run(state.state_details.flow_run_id)
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
            return [flow_run.state.message] + [t.state.message for t in tasks]

    messages = asyncio.run(stored())
    assert state.is_failed() and len(messages) == 2
    assert all("13800138000" not in m and "138****8000" in m for m in messages), messages
