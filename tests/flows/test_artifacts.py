"""Issue 9 section 4, findings 4, 5, 7 and 9: artifacts an operator can act on, read back through Prefect's API.

The sample org (`leadflow/samples/org.yaml`, with names) on a fresh SQLite store; files written here.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "leadflow" / "samples"
CST = dt.timezone(dt.timedelta(hours=8))
MONDAY = dt.datetime(2026, 3, 2, 10, 0, tzinfo=CST)
HEADER = "来电编号,渠道,客户姓名,电话,预计成交金额,咨询内容,来电时间,接听客服,是否目标客户,地区\n"


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def project(harness, tmp_path, monkeypatch):
    """A fresh, migrated SQLite store with the named sample org; caches cleared so the flows see it."""
    from leadflow.orgfile import load_org_file
    from leadflow.settings import get_settings
    from leadflow.store.migrate import upgrade
    from tasks.context import _base

    monkeypatch.setenv("LEADFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'artifacts.db'}")
    get_settings.cache_clear()
    _base.cache_clear()
    upgrade(get_settings().effective_database_url)
    load_org_file(SAMPLES / "org.yaml")
    yield tmp_path
    get_settings.cache_clear()
    _base.cache_clear()


def _file(folder: Path, name: str, rows: list[str]) -> str:
    path = folder / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _pause(person: str, tier: str, rounds: int = 5) -> None:
    """A pause on record (R-ALLOC-4), as an SLA penalty would have left it."""
    from leadflow.store import pauses
    from tasks.context import stage_ctx

    with stage_ctx().engine.begin() as conn:
        pauses.append(conn, [dict(person_id=person, tier=tier, rounds=rounds, at=MONDAY, rule_id="R-SUSP-5",
                                  reason="test: no first contact")])


def _artifacts(state) -> list[dict]:
    """The flow run's artifacts straight from the API, oldest first."""
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            body = {"limit": 200, "offset": 0, "sort": "CREATED_DESC",
                    "artifacts": {"flow_run_id": {"any_": [str(state.state_details.flow_run_id)]}}}
            return (await client._client.post("/artifacts/filter", json=body)).json()
    return list(reversed(asyncio.run(read())))


def _table(artifacts: list[dict], prefix: str) -> list[dict]:
    found = [a for a in artifacts if (a["key"] or "").startswith(prefix)]
    assert found, [a["key"] for a in artifacts]
    data = found[-1]["data"]
    return json.loads(data) if isinstance(data, str) else data


def test_issue9_5_allocation_rows_name_people_and_departments_and_give_each_skip_its_reason(project):
    from flows.intake import intake_flow

    _pause("s3", "C")  # 陈静, the only C-grade salesperson: the C lead goes one grade up, to 张伟 (s1)
    path = _file(project, "leads.csv", ["H-001,400,周先生,13800138000,25万,展厅,2026-03-02 09:00,k1,是,上海"])
    state = intake_flow(path=path, as_of=MONDAY, return_state=True)
    assert state.is_completed(), state.message
    rows = _table(_artifacts(state), "allocation-")
    assert len(rows) == 1
    row = rows[0]
    assert row["customer"].endswith("(ref H-001)") and "周" not in row["customer"]
    assert (row["owner"], row["department"], row["rule"]) == ("张伟 (s1)", "营销一部 (d1)", "R-ALLOC-2")
    assert "陈静 (s3): paused for a round (R-ALLOC-4)" in row["explanation"]
    assert "张伟 (s1): chosen" in row["explanation"]
    assert "next grade up" in row["why"] and "营销一部 (d1)" in row["why"]
    assert "13800138000" not in json.dumps(rows, ensure_ascii=False)


def test_issue9_5_an_r_alloc_3_row_says_manager_not_rotation_in_the_ledger_and_the_artifact(project):
    from sqlalchemy import select

    from flows.intake import intake_flow
    from leadflow.store.models import Ledger
    from tasks.context import stage_ctx

    path = _file(project, "leads.csv", ["H-002,400,吴女士,13900139000,45万,门店,2026-03-02 09:10,k1,否,杭州"])
    state = intake_flow(path=path, as_of=MONDAY, return_state=True)
    assert state.is_completed(), state.message
    row = _table(_artifacts(state), "allocation-")[0]
    assert (row["rule"], row["owner"]) == ("R-ALLOC-3", "王建国 (m1)")
    assert "manager" in row["why"] and "rotation:" not in row["why"] and "R-ALLOC-3" in row["why"]
    with stage_ctx().engine.connect() as conn:
        reason = conn.execute(select(Ledger.reason).where(Ledger.action == "allocate")).scalar_one()
    assert "manager" in reason and reason != "allocated by rotation"


def test_issue9_9_the_pool_warning_lists_every_pooled_lead_a_reoffered_one_included_and_the_state_says_why(project):
    from flows.intake import intake_flow

    for person in ("s1", "s2", "s3", "s4"):  # everyone who could take a below-D lead is paused
        _pause(person, "below_d")
    first = _file(project, "first.csv", ["H-003,400,郑先生,13700137000,3万,写字楼,2026-03-02 09:20,k1,是,苏州"])
    assert intake_flow(path=first, as_of=MONDAY, return_state=True).is_failed()
    second = _file(project, "second.csv", ["H-004,400,王女士,13600136000,2万,会议室,2026-03-02 09:30,k1,是,南京"])
    state = intake_flow(path=second, as_of=MONDAY + dt.timedelta(minutes=5), return_state=True)
    assert state.is_failed()
    # issue 9.5: the run fails for the lead it pooled itself; the one an earlier run pooled still waits (said)
    assert state.message == ("1 lead was left in the company pool (R-ALLOC-5): 1 with all 4 who could take a "
                             "below-d lead paused for a round (R-ALLOC-4) (1 more pooled by an earlier run still "
                             "wait)."), state.message
    warning = [a for a in _artifacts(state) if a["key"] == "pool-warning"]
    assert len(warning) == 1
    text = warning[0]["data"]
    assert text.startswith("# 2 leads left in the company pool")
    assert "(ref H-003)" in text and "(ref H-004)" in text  # H-003 was re-offered: no new ledger row for it
    assert text.count("paused for a round (R-ALLOC-4)") == 2


def test_issue9_7_artifact_descriptions_and_cells_carry_business_time(project):
    from flows.clock import tick_flow
    from flows.intake import intake_flow

    path = _file(project, "leads.csv", ["H-005,400,周先生,13800138000,25万,展厅,2026-03-02 09:00,k1,是,上海"])
    intake = intake_flow(path=path, as_of=MONDAY, return_state=True)
    tick = tick_flow(as_of=MONDAY + dt.timedelta(days=2), return_state=True)  # nobody contacted: R-SLA breaches
    artifacts = _artifacts(intake) + _artifacts(tick)
    said = [a["description"] or "" for a in artifacts]
    timed = [d for d in said if " as of " in d]
    assert any(k["key"] == "sla-breaches" for k in artifacts) and len(timed) >= 2, said
    assert all("+08:00" in d for d in timed), timed
    text = json.dumps([(a["description"], a["data"]) for a in artifacts], ensure_ascii=False)
    assert "+00:00" not in text and "T01:00:00" not in text
    breaches = _table(_artifacts(tick), "sla-breaches")
    assert breaches and all(b["due"].endswith("+08:00") and b["owner"] == "陈静 (s3)" for b in breaches)


def test_issue9_4_every_engine_run_has_one_run_summary_of_its_own_that_matches_its_state(project):
    from flows.clock import tick_flow
    from flows.events import record_events_flow
    from flows.intake import intake_flow

    path = _file(project, "leads.csv", ["H-006,400,周先生,13800138000,25万,展厅,2026-03-02 09:00,k1,是,上海",
                                        "H-007,400,吴女士,12345,25万,展厅,2026-03-02 09:05,k1,是,上海"])
    intake = intake_flow(path=path, as_of=MONDAY, return_state=True)
    events = record_events_flow(events=[{"type": "contact", "customer": "H-006", "at": MONDAY.isoformat()}],
                                as_of=MONDAY + dt.timedelta(minutes=1), return_state=True)
    tick = tick_flow(as_of=MONDAY + dt.timedelta(days=2), return_state=True)
    for state in (intake, events, tick):
        summaries = [a for a in _artifacts(state) if a["key"] == "run-summary"]
        assert len(summaries) == 1 and summaries[0]["task_run_id"] is None  # the run's own: listed first
        text = summaries[0]["data"]
        assert text.startswith("# ") and "## Needs a person" in text and "## Key numbers" in text
        assert ("Nothing: the run is Completed." in text) == state.is_completed(), (state.message, text)
    intake_text = [a for a in _artifacts(intake) if a["key"] == "run-summary"][0]["data"]
    assert "1 row(s) quarantined (R-VAL-2): phone_format × 1" in intake_text
    assert "registration rows in | 2 = accepted 1 + attached 0 + quarantined 1" in intake_text
    tick_text = [a for a in _artifacts(tick) if a["key"] == "run-summary"][0]["data"]
    assert "SLA breach(es) (R-SLA-1..4): 营销一部 (d1)" in tick_text


def test_issue9_4_the_weekly_report_counts_last_monday_to_monday_in_business_time_and_names_the_monday(project):
    from flows.intake import intake_flow
    from flows.reports import weekly_rotation_report_flow

    path = _file(project, "leads.csv", ["H-008,400,周先生,13800138000,25万,展厅,2026-03-02 09:00,k1,是,上海",
                                        "H-009,400,吴女士,13900139000,90万,展厅,2026-03-02 09:05,k1,是,上海"])
    assert intake_flow(path=path, as_of=MONDAY, return_state=True).is_completed()
    # run on Tuesday morning (as the lifecycle may): the week before is Monday 2 to Monday 9 March
    state = weekly_rotation_report_flow(as_of=dt.datetime(2026, 3, 10, 9, 0, tzinfo=CST), return_state=True)
    assert state.is_completed(), state.message
    artifacts = _artifacts(state)
    fairness = _table(artifacts, "fairness")
    assert sum(r["leads"] for r in fairness) == 2
    assert any(r["person"] == "张伟 (s1)" and r["leads"] >= 1 for r in fairness)
    described = {a["key"]: a["description"] for a in artifacts}
    assert "2026-03-02 to 2026-03-08" in described["fairness"]
    assert "week of Monday 2026-03-09" in described["rotation-order"]
    assert "营销" in json.dumps(_table(artifacts, "rotation-order"), ensure_ascii=False)


def test_issue9_4_the_lifecycle_run_has_a_summary_naming_each_step(project):
    from flows.lifecycle import lifecycle_flow

    inbox = project / "inbox"
    inbox.mkdir()
    dropped = _file(inbox, "leads.csv", ["H-010,400,周先生,13800138000,25万,展厅,2026-03-02 09:00,k1,是,上海"])
    os.utime(dropped, (time.time() - 60, time.time() - 60))  # settled: the inbox takes no file still being written
    state = lifecycle_flow(inbox=str(inbox), as_of=MONDAY, return_state=True)
    summaries = [a for a in _artifacts(state) if a["key"] == "run-summary"]
    assert len(summaries) == 1 and summaries[0]["task_run_id"] is None
    text = summaries[0]["data"]
    assert all(f"| {step} |" in text for step in ("inbox", "clock", "report"))
    assert ("Nothing: the run is Completed." in text) == state.is_completed(), (state.message, text)
    # found by the operator trial: the dashboard and one click say what was allocated to whom and why
    assert "## Allocated in this run: 1" in text and "(ref H-010)" in text and "R-ALLOC-" in text, text
    assert "## SLA breaches recorded in this run: 0" in text


def test_issue10_a_stage_of_thousands_publishes_its_count_and_first_rows_never_every_row(project):
    """Issue 10 (R-SLA-1, R-SLA-5, R-CONV-2, R-ALLOC-5, R-ALLOC-7): at a million leads a tick breaches 200,000
    and an offer allocates as many; an artifact shows the count and the first SHOWN_ROWS rows, and says where
    every row is — never a table of every lead (Prefect's API and UI are not a report)."""
    from tasks import reporting
    from tasks.masked import flow

    n = reporting.SHOWN_ROWS + 50
    ids = range(1, n + 1)

    @flow(name="publish many")
    def publish_many():
        reporting.publish_breaches({"rows": [{"person_id": "s1", "customer_id": i, "rule_id": "R-SLA-1",
                                              "at": MONDAY} for i in ids], "breaches": n, "as_of": MONDAY})
        reporting.publish_audit({"listing": [{"manager": "m1", "owner": "s1", "department": "d1", "customer_id": i,
                                              "listed_at": MONDAY} for i in ids], "as_of": MONDAY})
        reporting.publish_expiry({"taken_back": [{"customer_id": i, "tier": "C", "from": "s1", "expired_at": MONDAY}
                                                 for i in ids], "decisions": [], "as_of": MONDAY})
        reporting.publish_allocations("pool", [{"at": MONDAY, "rule_id": "R-ALLOC-2", "reason": "rotation",
                                                "customer_id": i, "person_id": "s1", "department_id": "d1",
                                                "explanation": {}} for i in ids])
        reporting.publish_pool_warning({"pooled": n, "pooled_leads": [{"customer_id": i, "tier": "C",
                                                                       "reason": "nobody free"} for i in ids]})

    state = publish_many(return_state=True)
    assert state.is_completed(), state.message
    artifacts = _artifacts(state)
    for prefix, see in (("sla-breaches", "leadflow report breaches"), ("monthly-audit-listing", "audit_listing"),
                        ("conversion-expiry", "leadflow report allocations"), ("allocation-pool", "report allocations")):
        found = [a for a in artifacts if (a["key"] or "").startswith(prefix)][-1]
        assert len(_table(artifacts, prefix)) == reporting.SHOWN_ROWS, prefix
        assert f"of {n}" in found["description"] and see in found["description"], found["description"]
    pool = [a for a in artifacts if a["key"] == "pool-warning"][-1]
    assert pool["data"].count("| C |") == reporting.SHOWN_ROWS
    assert f"# {n} leads left in the company pool" in pool["data"] and f"of {n} shown" in pool["data"]
