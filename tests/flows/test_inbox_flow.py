"""Issue 9.3 and 9.5 through Prefect's test harness, on SQLite and PostgreSQL: the inbox is quiet when nothing is
new, files what it took into done/ and what it refused into rejected/ (with the reason), recovers a file whose
run committed before the process died, and a parent whose child did not complete is Failed in one sentence."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from flows.states import result_of
from tests.conftest import require_postgres

SAMPLES = Path(__file__).resolve().parents[2] / "leadflow" / "samples"
CST = dt.timezone(dt.timedelta(hours=8))
COLUMNS = "channel,name,phone,amount,inquiry,registered_at,registered_by\n"


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """A fresh database: a SQLite file, or a PostgreSQL database of its own (dropped after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'inbox.db'}"
        return
    admin = require_postgres()
    name = f"lf_inbox_{uuid.uuid4().hex[:10]}"
    eng = create_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
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
def store(harness, store_url, tmp_path, monkeypatch):
    """The flows' settings pointed at a fresh, migrated store (no org chart yet); yields the inbox folder."""
    from leadflow.settings import get_settings
    from leadflow.store.migrate import upgrade
    from tasks.context import _base

    monkeypatch.setenv("LEADFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", store_url)
    get_settings.cache_clear()
    _base.cache_clear()
    upgrade(store_url)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    yield inbox
    get_settings.cache_clear()
    _base.cache_clear()


@pytest.fixture
def inbox(store):
    """The store with the sample organisation; yields the inbox folder."""
    from leadflow.orgfile import load_org_file

    load_org_file(SAMPLES / "org.yaml")
    return store


def _drop(inbox: Path, name: str, source: Path | str) -> Path:
    """A file dropped in the inbox a while ago (settled: the inbox leaves a file being written alone)."""
    target = inbox / name
    if isinstance(source, Path):
        shutil.copyfile(source, target)
    else:
        target.write_text(source, encoding="utf-8")
    old = time.time() - 60
    os.utime(target, (old, old))
    return target


def _lead_row(phone: str, amount: str = "450000") -> str:
    at = (dt.datetime.now(CST) - dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    return f"hotline,周先生,{phone},{amount},门店,{at},k1\n"


async def _api(run_id=None) -> tuple[int, int, list]:
    """(flow runs, artifacts, the child flow runs of `run_id`) straight from the harness's API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    async with get_client() as client:
        runs = await client.count_flow_runs()
        artifacts = len(await client.read_artifacts())
        children = [] if run_id is None else await client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])))
    return runs, artifacts, children


def _run_id(state):
    return state.state_details.flow_run_id


def test_issue9_3_a_minute_with_no_new_file_creates_no_subflow_and_no_artifact(inbox):
    from flows.lifecycle import inbox_flow

    _drop(inbox, "hotline-2026-03-02.csv", SAMPLES / "hotline-2026-03-02.csv")
    _drop(inbox, "webchat-2026-03-02.xlsx", SAMPLES / "webchat-2026-03-02.xlsx")
    first = inbox_flow(inbox=str(inbox), return_state=True)
    assert first.is_completed(), first.message
    assert len(asyncio.run(_api(_run_id(first)))[2]) == 2  # one run per new file
    runs, artifacts, _ = asyncio.run(_api())
    for _ in range(3):  # three quiet minutes
        state = inbox_flow(inbox=str(inbox), return_state=True)
        assert state.is_completed() and state.message == "inbox: nothing new"
        assert asyncio.run(_api(_run_id(state)))[2] == []
    assert asyncio.run(_api())[:2] == (runs + 3, artifacts)  # the inbox's own runs, nothing else


def test_issue9_3_taken_files_move_to_done_and_refused_ones_to_rejected_with_their_reason(inbox):
    from flows.lifecycle import inbox_flow
    from tests.flows.test_intake_flow import _phones_in

    _drop(inbox, "hotline-2026-03-02.csv", SAMPLES / "hotline-2026-03-02.csv")  # 2 rows quarantined
    _drop(inbox, "no-phone.csv", "channel,registered_at,registered_by\nhotline,2026-03-02 09:00,k1\n")
    _drop(inbox, "all-bad.csv", COLUMNS + _lead_row("12345") + _lead_row("13800"))  # every row quarantined
    state = inbox_flow(inbox=str(inbox), return_state=True)

    assert sorted(p.name for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")) == []
    done, rejected = inbox / "done", inbox / "rejected"
    assert sorted(p.name for p in done.iterdir()) == ["hotline-2026-03-02.csv",
                                                      "hotline-2026-03-02.csv.quarantined.txt"]
    quarantined = (done / "hotline-2026-03-02.csv.quarantined.txt").read_text(encoding="utf-8")
    assert "2 of 12 rows were quarantined" in quarantined and "phone_format" in quarantined
    assert not [p for p in _phones_in(SAMPLES / "hotline-2026-03-02.csv") if p in quarantined.replace(" ", "")]
    assert sorted(p.name for p in rejected.iterdir()) == ["all-bad.csv", "all-bad.csv.reason.txt", "no-phone.csv",
                                                           "no-phone.csv.reason.txt"]
    reason = (rejected / "no-phone.csv.reason.txt").read_text(encoding="utf-8")
    assert "required column 'phone'" in reason and reason.count("\n") == 1
    assert "nothing taken" in (rejected / "all-bad.csv.reason.txt").read_text(encoding="utf-8")
    # issue 9.5: a rejected file needs a person — the inbox says which and why, in one sentence
    assert state.is_failed() and "\n" not in state.message
    assert state.message.startswith("2 of 3 files did not complete: ")
    assert "no-phone.csv: required column 'phone'" in state.message and "all-bad.csv: nothing taken" in state.message

    # the same name again, other content: both kept
    _drop(inbox, "hotline-2026-03-02.csv", SAMPLES.joinpath("hotline-2026-03-02.csv").read_bytes().decode("gbk")
          + "\n")
    again = inbox_flow(inbox=str(inbox), return_state=True)
    assert again.is_completed(), again.message
    assert (done / "hotline-2026-03-02 (2).csv").exists() and (done / "hotline-2026-03-02.csv").exists()


def test_issue9_3_a_file_committed_before_the_process_died_is_moved_without_a_subflow(inbox):
    """The run committed, then died before the move: the next minute knows the file by its digest. (Also: the
    intake flow alone, as `leadflow register` runs it, moves nothing — it is not the inbox.)"""
    from flows.intake import intake_flow
    from flows.lifecycle import inbox_flow

    path = _drop(inbox, "hotline-2026-03-02.csv", SAMPLES / "hotline-2026-03-02.csv")
    assert intake_flow(path=str(path), return_state=True).is_completed()
    assert path.exists()  # committed, not moved
    runs, artifacts, _ = asyncio.run(_api())
    state = inbox_flow(inbox=str(inbox), return_state=True)
    assert state.is_completed(), state.message
    assert "taken by an earlier run" in state.message
    assert not path.exists() and (inbox / "done" / path.name).exists()
    assert (inbox / "done" / f"{path.name}.quarantined.txt").exists()
    assert asyncio.run(_api(_run_id(state)))[2] == []
    assert asyncio.run(_api())[:2] == (runs + 1, artifacts)


def test_issue9_3_a_file_whose_run_failed_for_a_passing_reason_stays_to_be_tried_again(inbox):
    from flows.clock import tick_flow
    from flows.lifecycle import inbox_flow

    now = dt.datetime.now(dt.timezone.utc)
    assert tick_flow(as_of=now, return_state=True).is_completed()
    path = _drop(inbox, "hotline-2026-03-02.csv", SAMPLES / "hotline-2026-03-02.csv")
    state = inbox_flow(inbox=str(inbox), as_of=now - dt.timedelta(hours=1), return_state=True)  # refused: no fault
    assert state.is_failed() and "left in the inbox" in state.message and "\n" not in state.message
    assert path.exists() and not (inbox / "rejected").exists()
    later = inbox_flow(inbox=str(inbox), return_state=True)  # next minute
    assert later.is_completed(), later.message
    assert (inbox / "done" / path.name).exists() and not path.exists()


def test_issue9_5_a_lifecycle_with_a_failing_child_ends_failed_with_one_sentence_naming_it(inbox):
    from flows.lifecycle import lifecycle_flow

    _drop(inbox, "no-phone.csv", "channel,registered_at,registered_by\nhotline,2026-03-02 09:00,k1\n")
    state = lifecycle_flow(inbox=str(inbox), return_state=True)
    assert state.is_failed() and "\n" not in state.message
    assert state.message.startswith("1 of 3 steps did not complete: inbox: 1 of 1 files did not complete: "
                                    "no-phone.csv: required column 'phone'"), state.message
    assert result_of(state)["clock"] == "COMPLETED"


def test_issue9_5_r_alloc_5_a_pooled_lead_in_an_inbox_file_makes_the_inbox_and_the_lifecycle_failed(store):
    from flows.lifecycle import lifecycle_flow
    from leadflow.stages.people import load_org
    from tasks.context import stage_ctx

    with stage_ctx().engine.begin() as conn:  # nobody who could take a lead: it waits in the pool
        load_org(conn, [{"id": "d1"}], [{"id": "k1", "department": "d1", "role": "receptionist"}])
    _drop(store, "lead.csv", COLUMNS + _lead_row("13800138000"))
    state = lifecycle_flow(inbox=str(store), return_state=True)
    assert state.is_failed() and "\n" not in state.message and "13800138000" not in state.message
    assert "inbox: 1 of 1 files did not complete: lead.csv: 1 lead" in state.message
    assert "left in the company pool" in state.message
    assert (store / "done" / "lead.csv").exists()  # taken: the lead is on record, waiting in the pool


def test_issue9_3_a_minute_while_another_run_takes_the_files_leaves_them_to_it(inbox):
    from flows.lifecycle import inbox_flow
    from leadflow import inbox as box

    path = _drop(inbox, "hotline-2026-03-02.csv", SAMPLES / "hotline-2026-03-02.csv")
    with box.exclusive(inbox) as mine:  # a long run (or the lifecycle) has the inbox
        assert mine
        state = inbox_flow(inbox=str(inbox), return_state=True)
    assert state.is_completed() and state.message == "inbox: another run is taking the files"
    assert asyncio.run(_api(_run_id(state)))[2] == [] and path.exists()


def test_issue9_3_r_reg_7_a_phone_in_a_files_name_never_reaches_prefect_and_the_file_keeps_its_name(inbox):
    from flows.lifecycle import inbox_flow

    path = _drop(inbox, "回访13912340009.csv", SAMPLES / "hotline-2026-03-02.csv")
    state = inbox_flow(inbox=str(inbox), return_state=True)
    assert state.is_completed(), state.message
    assert (inbox / "done" / path.name).exists() and (inbox / "done" / f"{path.name}.quarantined.txt").exists()
    (child,) = asyncio.run(_api(_run_id(state)))[2]
    assert "13912340009" not in f"{child.name} {child.parameters} {state.message} {state.result()}"
    assert child.name == "intake 回访139****0009.csv"


def test_issue9_3_a_file_still_being_written_is_left_for_the_next_minute(tmp_path):
    from leadflow import inbox as box

    fresh = tmp_path / "registrations-2026-03-02-1100.csv"
    fresh.write_text(COLUMNS, encoding="utf-8")
    assert box.candidates(tmp_path) == []
    assert box.candidates(tmp_path, now=time.time() + box.SETTLE_SECONDS) == [fresh]
    (tmp_path / "~$open.xlsx").write_bytes(b"lock")  # Excel's lock file is never a delivery
    assert box.candidates(tmp_path, now=time.time() + 60) == [fresh]


def test_issue9_3_the_sample_history_finds_the_inbox_export_in_done_after_a_first_start(tmp_path):
    """`leadflow.start.deliver_history` looks for the inbox's export: after a first start it lies in done/."""
    from leadflow.policy import load_policy
    from leadflow.samples.history import exports

    policy = load_policy()
    (tmp_path / "done").mkdir()
    taken = tmp_path / "done" / "registrations-2026-03-02-1100.csv"
    taken.write_text(COLUMNS, encoding="utf-8")
    (tmp_path / "done" / "registrations-2026-03-02-1100.csv.quarantined.txt").write_text("x", encoding="utf-8")
    (tmp_path / "done" / "registrations-2026-03-02-1100 (2).csv").write_text(COLUMNS, encoding="utf-8")
    assert [p for _, p in exports(tmp_path, policy)] == [taken]
    again = tmp_path / "registrations-2026-03-02-1100.csv"  # the same export dropped again: counted once
    again.write_text(COLUMNS, encoding="utf-8")
    newer = tmp_path / "registrations-2026-03-02-1400.csv"
    newer.write_text(COLUMNS, encoding="utf-8")
    assert [p for _, p in exports(tmp_path, policy)] == [again, newer]


def test_issue9_3_the_inbox_names_batches_as_the_intake_and_event_flows_do(tmp_path):
    from leadflow import inbox as box
    from leadflow.events.record import batch_id_for
    from tasks.intake import batch_id_for as intake_batch_id

    path = tmp_path / "x.csv"
    path.write_text(COLUMNS, encoding="utf-8")
    digest = box.digest(path)
    assert box.batch_ids(digest) == (intake_batch_id(str(path))[0], batch_id_for(digest.encode(), prefix="events"))
