"""Issue 8 (items 3, 5, 6): the hostile-input corpus through the production entry points, on SQLite and PostgreSQL.

Every file of `tests/hostile/corpus.py` — as a registration file (the readers + `leadflow.engine.register`, as
`leadflow register` runs them) and as an event file (`leadflow.events.api.record_file`) — gets per-row reasons
or one plain sentence: never an exception, never a lost row, and a bad row never takes its good neighbours with
it (R-VAL-2, INTAKE.md). One store per database serves the whole corpus (a fresh store per file would cost a
Great Expectations context each); every case has its own phones, references and event ids.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools

import pytest
from sqlalchemy import inspect, select

from leadflow import engine
from leadflow.events.api import record_file
from leadflow.intake.cells import MAX_CELL_CHARS
from leadflow.intake.readers import IntakeFileError, read_registration_file
from leadflow.policy import load_policy
from leadflow.rules.registration import mask_phones_in_text
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.store.models import Event, EventBatch, IntakeBatch, Registration
from leadflow.wiring import make_gate
from tests.hostile.corpus import CASES, EVENT_CUSTOMERS, EVT, OK, REG, SQL_TEXT, Entry, write_case

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=CST)
ORG = ([{"id": "d1", "name": "营销一部"}],
       [{"id": "m1", "department": "d1", "role": "manager"},
        {"id": "s1", "department": "d1", "role": "sales", "grade": "A", "rank": 1},
        {"id": "s2", "department": "d1", "role": "sales", "grade": "A", "rank": 2},
        {"id": "k1", "department": "d1", "role": "receptionist"}])


class Store:
    """One store for the whole corpus on one database; its clock moves a minute per delivery."""

    def __init__(self, ctx: StageContext, folder):
        self.ctx, self.folder, self._minutes = ctx, folder, itertools.count(1)

    def next_time(self) -> dt.datetime:
        return T0 + dt.timedelta(minutes=next(self._minutes))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path_factory):
    from expectations import gate as gate_module
    from leadflow.store.db import create_all, create_schema, drop_schema, make_engine
    from tests.conftest import require_postgres

    folder = tmp_path_factory.mktemp(f"hostile-{request.param}")
    if request.param == "sqlite":
        url, schema = f"sqlite:///{folder / 'store.db'}", None
    else:
        url = require_postgres()
        schema = create_schema(url, prefix="lf_hostile")
    store_engine = make_engine(url, schema=schema)
    create_all(store_engine)
    policy = load_policy()
    with store_engine.begin() as conn:
        load_org(conn, *ORG)
    ctx = StageContext(engine=store_engine, policy=policy, flow_run_id="hostile-corpus",
                       gate=make_gate(url, schema, policy))
    customers = [{"row_number": i, "channel": "hotline", "phone": phone, "registered_at": "2026-03-02 08:00",
                  "registered_by": "k1", "amount": "30万", "external_ref": ref, "name": f"老客户{i}"}
                 for i, (ref, phone) in enumerate(EVENT_CUSTOMERS.items(), start=1)]
    summary = engine.register(ctx, "hostile-customers", "customers", customers, T0, None)
    assert summary["accepted"] == len(EVENT_CUSTOMERS)
    try:
        yield Store(ctx, folder)
    finally:
        gate_module.clear_cache()
        store_engine.dispose()
        if schema:
            drop_schema(url, schema)


def assert_one_sentence(message: str, entry: Entry) -> None:
    assert entry.sentence in message
    assert message.startswith(mask_phones_in_text(entry.path.name) + ": ") and message.endswith(".")
    assert "\n" not in message and "Traceback" not in message and "Error" not in message


# --- registration files ---------------------------------------------------------------------------


def register_file(store: Store, entry: Entry) -> dict:
    """What `leadflow register FILE` does: read the file, then one engine run with the file's digest as batch."""
    rows = read_registration_file(entry.path)
    digest = hashlib.sha256(entry.path.read_bytes()).hexdigest()
    return engine.register(store.ctx, f"file-{digest[:20]}", mask_phones_in_text(entry.path.name), rows,
                           store.next_time(), digest)


def registration_outcomes(store: Store, batch_id: str) -> dict[int, object]:
    with store.ctx.engine.connect() as conn:
        rows = conn.execute(select(Registration.row_number, Registration.status, Registration.reasons)
                            .where(Registration.batch_id == batch_id)).all()
    return {n: OK if status == "accepted" else frozenset(reasons or [status]) for n, status, reasons in rows}


@pytest.mark.parametrize("case", list(CASES))
def test_issue_8_every_registration_file_gets_per_row_reasons_or_one_sentence(store, case):
    entry = write_case(REG, case, store.folder)
    if entry.sentence is not None:
        with pytest.raises(IntakeFileError) as e:
            register_file(store, entry)
        assert_one_sentence(str(e.value), entry)
        return
    summary = register_file(store, entry)
    assert summary["rows_in"] == entry.rows_in == summary["accepted"] + summary["attached"] + summary["quarantined"]
    batch_id = f"file-{hashlib.sha256(entry.path.read_bytes()).hexdigest()[:20]}"
    assert registration_outcomes(store, batch_id) == entry.expect
    REGISTRATION_CHECKS.get(case, lambda *_: None)(store, batch_id)


def _stored(store: Store, batch_id: str, *columns) -> list[tuple]:
    with store.ctx.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(*columns).where(Registration.batch_id == batch_id)
                                               .order_by(Registration.row_number)).all()]


def _nul_is_stripped(store, batch_id):
    names = [n for (n,) in _stored(store, batch_id, Registration.name)]
    assert names[0] == "张三" and names[2] == "abc"
    assert [b for (b,) in _stored(store, batch_id, Registration.registered_by)][1] == "k1"


def _sql_is_stored_verbatim(store, batch_id):
    assert _stored(store, batch_id, Registration.name)[0] == (SQL_TEXT,)
    assert _stored(store, batch_id, Registration.external_ref)[1] == ("1' OR '1'='1",)
    assert {"registrations", "customers"} <= set(inspect(store.ctx.engine).get_table_names())


def _formulas_are_data(store, batch_id):
    names = [n for (n,) in _stored(store, batch_id, Registration.name)]
    assert names[:3] == ["=1+2", "@SUM(1)", '=HYPERLINK("http://x")']  # read as written; unguarded once


def _amounts_read_as_yuan(store, batch_id):
    assert [a for (a,) in _stored(store, batch_id, Registration.amount_yuan)][:3] == [800_000, 800_000, 800_000]


def _long_values_are_cut(store, batch_id):
    for name, raw in _stored(store, batch_id, Registration.name, Registration.raw):
        assert len(name or "") <= MAX_CELL_CHARS and all(len(v or "") <= MAX_CELL_CHARS for v in raw.values())


def _file_name_phone_is_masked(store, batch_id):
    with store.ctx.engine.connect() as conn:
        source = conn.execute(select(IntakeBatch.source).where(IntakeBatch.id == batch_id)).scalar_one()
    assert source == "来电登记表回访139****0009.csv"


REGISTRATION_CHECKS = {"nul_in_json_value": _nul_is_stripped, "sql_looking_text": _sql_is_stored_verbatim,
                       "formula_leading_cells": _formulas_are_data,
                       "amounts_as_people_write_them": _amounts_read_as_yuan, "ten_mb_field": _long_values_are_cut,
                       "file_named_in_chinese_with_a_phone": _file_name_phone_is_masked}


# --- event files ----------------------------------------------------------------------------------


def event_outcomes(store: Store, batch_id: str) -> dict[int, object]:
    with store.ctx.engine.connect() as conn:
        rows = conn.execute(select(Event.row_number, Event.status, Event.reason)
                            .where(Event.batch_id == batch_id)).all()
    return {n: OK if status == "applied" else "waiting" if status == "waiting" else reason
            for n, status, reason in rows}


@pytest.mark.parametrize("case", list(CASES))
def test_issue_8_every_event_file_gets_per_row_reasons_or_one_sentence(store, case):
    entry = write_case(EVT, case, store.folder)
    if entry.sentence is not None:
        with pytest.raises(IntakeFileError) as e:
            record_file(entry.path, as_of=store.next_time(), operator="corpus", ctx=store.ctx)
        assert_one_sentence(str(e.value), entry)
        return
    summary = record_file(entry.path, as_of=store.next_time(), operator="corpus", ctx=store.ctx)
    assert summary["rows_in"] == entry.rows_in == (summary["applied"] + summary["duplicate"] + summary["waiting"]
                                                   + summary["refused"])
    assert event_outcomes(store, summary["batch_id"]) == entry.expect
    with store.ctx.engine.connect() as conn:
        keys = conn.execute(select(Event.customer_key, Event.source_event_id)
                            .where(Event.batch_id == summary["batch_id"])).all()
        source = conn.execute(select(EventBatch.source).where(EventBatch.id == summary["batch_id"])).scalar_one()
    for phone in EVENT_CUSTOMERS.values():  # R-REG-7: a customer named by phone is kept masked, even a bad one
        assert all(phone not in (k or "") for key in keys for k in key)
    assert "13712340009" not in source


# --- formula injection in exports (issue 8, item 6) ------------------------------------------------


def test_issue_8_report_csv_neutralises_formula_leading_org_ids(store_engine, store_target, monkeypatch, capsys):
    """`leadflow report … --format csv`: an org id `=1+2` or `@SUM(1)` comes out as text ('=1+2), never as a
    formula; a real negative number (the fairness difference) stays a number."""
    import csv
    import io

    from leadflow import cli, wiring

    url, schema = store_target
    policy = load_policy()
    with store_engine.begin() as conn:
        load_org(conn, [{"id": "=1+2", "name": "=HYPERLINK(\"http://x\")"}],
                 [{"id": "m1", "department": "=1+2", "role": "manager"},
                  {"id": "@SUM(1)", "department": "=1+2", "role": "sales", "grade": "A", "rank": 1},
                  {"id": "-2+3", "department": "=1+2", "role": "sales", "grade": "A", "rank": 2},
                  {"id": "k1", "department": "=1+2", "role": "receptionist"}])
    ctx = StageContext(engine=store_engine, policy=policy, gate=make_gate(url, schema, policy))
    leads = [{"row_number": i, "channel": "hotline", "phone": f"1380000000{i}", "registered_at": "2026-03-02 09:00",
              "registered_by": "k1", "amount": "30万", "external_ref": f"F-{i}"} for i in range(1, 4)]
    engine.register(ctx, "formulas", "formulas", leads, T0, None)
    engine.tick(ctx, T0 + dt.timedelta(minutes=1))  # the pool is offered: every lead has an owner
    monkeypatch.setattr(wiring, "stage_context", lambda **_: ctx)
    cells = []
    for what in ("allocations", "fairness"):
        assert cli.main(["report", what, "--since", "2026-03-01", "--until", "2026-03-03", "--format", "csv"]) == 0
        cells += [c for row in csv.reader(io.StringIO(capsys.readouterr().out)) for c in row]
    assert "'=1+2" in cells and "'@SUM(1)" in cells and "'-2+3" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    assert all(c.startswith("'") or _number(c) for c in cells if c.startswith("-"))
    assert any(_number(c) and c.startswith("-") for c in cells)  # a real negative difference, left a number


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
