"""R-REG-7 (issue 8.6): a full-number export exists only behind `leadflow report customers --full-phones`, and each
use is on the ledger (who, when, how many numbers); without the flag every phone is masked. Through the command
line, with `leadflow forget` (PIPL erasure), on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import json
from urllib.parse import quote

import pytest
from sqlalchemy import select

from expectations import gate as gate_module
from leadflow import cli
from leadflow.events.api import record_events
from leadflow.policy import load_policy
from leadflow.register import register_lead
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.store.models import Ledger
from leadflow.wiring import make_gate

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)
ZHOU, LI, ALIAS = "13912340001", "13912340002", "13912340005"
PERIOD = ["--since", "2026-03-01", "--until", "2026-03-03"]


@pytest.fixture
def store(database_url, tmp_path, monkeypatch):
    """The command line's settings pointed at a fresh store holding two customers, one with an alias number."""
    from leadflow.settings import get_settings
    from leadflow.store.db import create_all, make_engine

    url, schema = database_url
    cli_url = f"{url}?options={quote(f'-csearch_path={schema}')}" if schema else url
    engine = make_engine(url, schema=schema)
    create_all(engine)
    policy = load_policy()
    with engine.begin() as conn:
        load_org(conn, [{"id": "d1"}], [{"id": "s1", "department": "d1", "role": "sales", "grade": "A", "rank": 1},
                                        {"id": "k1", "department": "d1", "role": "receptionist"}])
    ctx = StageContext(engine=engine, policy=policy, gate=make_gate(url, schema, policy))
    for i, (name, phone) in enumerate((("周先生", "139 1234 0001"), ("李女士", LI))):
        register_lead({"channel": "hotline", "name": name, "phone": phone, "amount": "85万", "registered_by": "k1",
                       "registered_at": f"2026-03-02 09:0{i}", "external_ref": f"H-{i + 1}"},
                      now=T0 + dt.timedelta(minutes=i + 1), ctx=ctx)
    record_events([{"type": "link", "customer": "H-1", "phone": ALIAS, "relation": "alias", "by": "s1",
                    "at": "2026-03-02T09:05+08:00"}], as_of=T0 + dt.timedelta(minutes=6), ctx=ctx)
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", cli_url)
    monkeypatch.setenv("LEADFLOW_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield engine
    get_settings.cache_clear()
    gate_module.clear_cache()
    engine.dispose()


def leadflow(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def exports(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(Ledger.__table__).where(Ledger.action == "export_full_phones")).all()


def test_r_reg_7_without_the_flag_the_customers_report_masks_every_number_and_records_nothing(store, capsys,
                                                                                                monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # the table unwrapped
    for fmt in ("csv", "json", "table"):
        code, out, err = leadflow(capsys, "report", "customers", *PERIOD, "--format", fmt)
        assert code == 0 and "139****0001" in out and "139****0002" in out, err
        assert not [n for n in (ZHOU, LI, ALIAS) if n in out.replace(" ", "")]
    assert exports(store) == []


def test_r_reg_7_the_full_export_shows_every_number_and_is_recorded_with_who_when_and_how_many(store, capsys):
    code, out, err = leadflow(capsys, "report", "customers", *PERIOD, "--format", "json", "--full-phones",
                              "--by", "alice")
    assert code == 0, err
    rows = json.loads(out)
    assert {r["name"]: r["phones"] for r in rows} == {"周先生": f"{ZHOU} / {ALIAS}", "李女士": LI}
    [entry] = exports(store)
    assert (entry.rule_id, entry.customer_id, entry.explanation["by"]) == ("R-REG-7", None, "alice")
    assert (entry.explanation["numbers"], entry.explanation["customers"], entry.explanation["format"]) == (3, 2, "json")
    assert entry.recorded_at is not None and "alice" in entry.reason
    leadflow(capsys, "report", "customers", *PERIOD, "--format", "csv", "--full-phones", "--by", "bob")
    assert [e.explanation["by"] for e in exports(store)] == ["alice", "bob"]  # every use is its own entry


def test_r_reg_7_the_flag_is_refused_on_reports_that_carry_no_phone(store, capsys):
    code, out, err = leadflow(capsys, "report", "allocations", *PERIOD, "--full-phones", "--by", "alice")
    assert code == 2 and out == "" and err.count("\n") == 1 and "customers report only" in err
    assert exports(store) == []


def test_pipl_forget_through_the_command_line_then_the_full_export_holds_no_number_of_the_customer(store, capsys):
    code, out, err = leadflow(capsys, "forget", "139-1234-0001", "--by", "dpo")
    assert code == 0 and out.count("\n") == 1 and "139****0001" in out and "139****0005" in out, err
    assert ZHOU not in out and ALIAS not in out
    code, out, _ = leadflow(capsys, "report", "customers", *PERIOD, "--format", "json", "--full-phones", "--by", "a")
    assert {r["name"]: r["phones"] for r in json.loads(out)} == {None: "", "李女士": LI}
    assert exports(store)[0].explanation["numbers"] == 1
    code, out, err = leadflow(capsys, "forget", ZHOU, "--by", "dpo")  # gone: nothing names that number any more
    assert code == 2 and out == "" and err.startswith("leadflow: no customer or stored record matches")
    assert ZHOU not in err and err.count("\n") == 1
