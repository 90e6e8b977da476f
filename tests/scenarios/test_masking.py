"""R-REG-7 end to end: the r-reg-7-masking scenario puts phone numbers in every free-text field and makes
the pipeline talk about phones; no unmasked number may leave the store — not on stdout (the JSON),
not in logs (stderr), not in the ledger a report is built from, not in the allocation report, not in
the Data Docs. The scenario's own `expect:` (tests/scenarios/test_scenarios.py) covers what the JSON
can show."""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from leadflow.policy import load_policy
from leadflow.scenario import load_scenario
from leadflow.simulate import Replay
from leadflow.stages.context import StageContext
from leadflow.store.models import Ledger
from leadflow.wiring import make_gate

HERE = Path(__file__).parent
SCENARIO = HERE / "r-reg-7-masking.yaml"
ROOT = HERE.parents[1]

# Every number the scenario types (normalised digits), and the spellings it types them in.
NUMBERS = ["13800138000", "13900139000", "02161234567", "13700137000", "1370013700", "137001370"]
SPELLINGS = ["138 0013 8000", "139-0013-9000", "021 6123 4567", "021-61234567", "137-0013-7000",
             "+86 139 0013 9000", "+86 138 0013 8000", "137-0013-70"]
_SEPARATORS = re.compile(r"[\s\-.()（）+]")


def leaks(text: str) -> list[str]:
    """The scenario's numbers found unmasked in `text`, also with separators between the digits."""
    squeezed = _SEPARATORS.sub("", text)
    found = [n for n in NUMBERS if n in text or n in squeezed]
    found += [s for s in SPELLINGS if s in text]
    return found


def test_r_reg_7_cli_output_and_logs_show_no_unmasked_phone(tmp_path):
    env = {**os.environ, "LEADFLOW_LOG_LEVEL": "DEBUG"}
    cli = Path(sys.executable).with_name("leadflow")
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "leadflow.cli"]
    done = subprocess.run([*cmd, "simulate", str(SCENARIO), "--json"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    state = json.loads(done.stdout)
    assert state["registrations"]["q1"] == {"status": "quarantined", "customer": None, "reasons": ["phone_format"]}
    assert leaks(done.stdout) == []
    assert leaks(done.stderr) == [], done.stderr
    # the refused link talks about the number: masked, first 3 + last 4 (前三后四)
    assert "138****8000" in done.stderr


@pytest.fixture
def replayed(store_engine, store_target, tmp_path, caplog):
    """The scenario replayed on a fresh store (SQLite and PostgreSQL) with Data Docs written."""
    from expectations import gate as gate_module

    url, schema = store_target
    scenario = load_scenario(SCENARIO)
    policy = load_policy(None, scenario.policy)
    docs = tmp_path / "docs"
    ctx = StageContext(engine=store_engine, policy=policy, flow_run_id="r-reg-7-run",
                       gate=make_gate(url, schema, policy, docs_dir=docs))
    caplog.set_level(logging.DEBUG)
    try:
        state = Replay(scenario, ctx).run()
        yield store_engine, state, docs, caplog
    finally:
        gate_module.clear_cache()


def test_r_reg_7_ledger_reports_logs_and_data_docs_show_no_unmasked_phone(replayed):
    from leadflow import reports

    engine, state, docs, caplog = replayed
    assert leaks(json.dumps(state, ensure_ascii=False)) == []
    with engine.connect() as conn:
        rows = conn.execute(select(Ledger.reason, Ledger.explanation)).all()
        assert rows, "the replay wrote no ledger entries"
        for reason, explanation in rows:
            text = f"{reason} {json.dumps(explanation, ensure_ascii=False, default=str)}"
            assert leaks(text) == [], text
        import datetime as dt

        report = reports.allocations(conn, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                                     dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc))
        assert report and leaks(json.dumps(report, ensure_ascii=False)) == []
    messages = "\n".join(r.getMessage() for r in caplog.get_records("setup") + caplog.get_records("call"))
    assert leaks(messages) == [], messages
    assert "138****8000" in messages
    pages = [p for p in docs.rglob("*") if p.is_file()]
    assert pages, "no Data Docs were written"
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="ignore")
        assert leaks(text) == [], page
