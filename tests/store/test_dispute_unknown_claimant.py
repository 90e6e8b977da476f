"""Issue 9.8: `leadflow dispute 149 --claimant nobody` ended in ~130 lines and an IntegrityError (FOREIGN KEY). An
unknown person never reaches a foreign key: the command refuses the claimant in one sentence before any run, and
the events path refuses such a row `unknown_person` however it was staged (R-DISP-4 claims; SQLite and PostgreSQL).
"""
from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from expectations import gate as gate_module
from leadflow import cli
from leadflow.events import record
from leadflow.events.api import record_events
from leadflow.events.normalise import dedupe_key, normalise_event
from leadflow.policy import load_policy
from leadflow.register import register_lead
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.store.bulk import insert_rows
from leadflow.store.models import Activity, Claim, Event, EventBatch, Ledger
from leadflow.wiring import make_gate

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)


@pytest.fixture
def store(database_url, tmp_path, monkeypatch):
    """One customer (id 1, owned by s1) on a fresh store, the command line's settings pointed at it."""
    from leadflow.settings import get_settings
    from leadflow.store.db import create_all, make_engine

    url, schema = database_url
    engine = make_engine(url, schema=schema)
    create_all(engine)
    policy = load_policy()
    with engine.begin() as conn:
        load_org(conn, [{"id": "d1"}], [{"id": "s1", "department": "d1", "role": "sales", "grade": "A", "rank": 1},
                                        {"id": "k1", "department": "d1", "role": "receptionist"}])
    ctx = StageContext(engine=engine, policy=policy, gate=make_gate(url, schema, policy))
    register_lead({"channel": "hotline", "name": "周先生", "phone": "139 1234 0001", "amount": "85万",
                   "registered_by": "k1", "registered_at": "2026-03-02 09:00", "external_ref": "H-1"},
                  now=T0 + dt.timedelta(minutes=1), ctx=ctx)
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", f"{url}?options={quote(f'-csearch_path={schema}')}" if schema else url)
    monkeypatch.setenv("LEADFLOW_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield ctx
    get_settings.cache_clear()
    gate_module.clear_cache()
    engine.dispose()


def _count(ctx, model, *where) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model).where(*where)).scalar()


def test_issue9_8_dispute_with_an_unknown_claimant_is_one_sentence_exit_2_before_any_run(store, capsys, monkeypatch):
    import leadflow.start

    def no_run():
        raise AssertionError("a flow run was about to start")

    monkeypatch.setattr(leadflow.start, "use_server", no_run)
    ledger = _count(store, Ledger)
    code = cli.main(["dispute", "1", "--claimant", "s1", "--claimant", "nobody"])
    out = capsys.readouterr()
    assert (code, out.out) == (2, "")
    assert out.err == "leadflow: --claimant nobody: no such person in the org chart.\n"
    assert (_count(store, Claim), _count(store, Ledger)) == (0, ledger)


def test_issue9_8_the_dispute_runs_claim_rows_refuse_an_unknown_person_and_the_rerun_still_applies(store):
    """The rows the dispute flow records (flows/dispute.py): a claim per claimant, then the dispute."""
    now = T0 + dt.timedelta(minutes=5)
    summary = record_events([{"type": "claim", "customer": "1", "person": "nobody", "at": now},
                             {"type": "dispute", "customer": "1", "at": now}], as_of=now, source="dispute", ctx=store)
    assert (summary["applied"], summary["refused"], summary["reasons"]) == (1, 1, {"unknown_person": 1})
    assert summary["problems"][0]["detail"] == "person" and _count(store, Claim) == 0


def test_issue9_8_an_event_staged_with_a_person_unknown_to_the_org_chart_is_refused_not_a_foreign_key_error(store):
    """However a row was staged (an older run, a stale view of the org chart), applying it never hits the
    foreign key: the claim's person and a contact's `by` are refused `unknown_person` when applied."""
    now = T0 + dt.timedelta(minutes=5)
    rows = [{"type": "claim", "customer": "1", "person": "nobody", "at": now, "row_number": 1},
            {"type": "contact", "customer": "1", "by": "ghost", "at": now, "row_number": 2},
            {"type": "leave", "person": "nobody", "kind": "sick", "at": now, "row_number": 3}]
    stale = {"s1", "k1", "nobody", "ghost"}  # the people as someone believed them to be
    records = [normalise_event(r, as_of=now, policy=store.policy, people=stale, departments={"d1"}) for r in rows]
    assert [r["status"] for r in records] == [None, None, None]
    with store.engine.begin() as conn:
        conn.execute(EventBatch.__table__.insert().values(id="stale", source="test", started_at=now))
        insert_rows(conn, Event.__table__, [record._row({**r, "dedupe_key": dedupe_key(r),
                                                         "customer_id": 1 if r["type"] != "leave" else None},
                                                        "stale", None) for r in records])
    record.apply_pending(store, now, "stale")
    summary = record.finish(store, "stale", now)
    assert (summary["refused"], summary["reasons"]) == (3, {"unknown_person": 3})
    assert (_count(store, Claim), _count(store, Activity, Activity.person_id == "ghost")) == (0, 0)
