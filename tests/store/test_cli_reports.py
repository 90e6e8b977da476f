"""Issue 9.6 / 9.8: `leadflow report` through the command line on a real store (SQLite and PostgreSQL) — empty
results say so, tables fit 80 columns, times are business time with their offset, people and departments carry
their names, dates read `today`/`yesterday`/`YYYY-MM`, a long period is read a month at a time."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from urllib.parse import quote

import pytest
from rich.cells import cell_len

from expectations import gate as gate_module
from leadflow import cli, engine as engines
from leadflow.policy import load_policy
from leadflow.register import register_lead
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.wiring import make_gate

CST = dt.timezone(dt.timedelta(hours=8))
EARLY = dt.datetime(2026, 3, 2, 7, 30, tzinfo=CST)  # 2026-03-01 23:30 UTC: a UTC date would call it the 1st
REASON = "a reason long enough to need folding in a narrow terminal, " * 2


@pytest.fixture
def store(database_url, tmp_path, monkeypatch):
    """The command line pointed at a fresh store: named people, two leads allocated on 2 March (business time),
    the first at 07:31 (still 1 March in UTC), and the R-SLA-1 breaches of both."""
    from leadflow.settings import get_settings
    from leadflow.store.db import create_all, make_engine

    url, schema = database_url
    cli_url = f"{url}?options={quote(f'-csearch_path={schema}')}" if schema else url
    engine = make_engine(url, schema=schema)
    create_all(engine)
    policy = load_policy()
    with engine.begin() as conn:
        load_org(conn, [{"id": "d1", "name": "华东销售一部"}],
                 [{"id": "s1", "name": "张伟", "department": "d1", "role": "sales", "grade": "A", "rank": 1},
                  {"id": "s2", "name": "李娜", "department": "d1", "role": "sales", "grade": "A", "rank": 2},
                  {"id": "m1", "name": "王芳", "department": "d1", "role": "manager"},
                  {"id": "k1", "department": "d1", "role": "receptionist"}])
    ctx = StageContext(engine=engine, policy=policy, gate=make_gate(url, schema, policy))
    for i, at in enumerate((EARLY, EARLY + dt.timedelta(hours=2))):
        register_lead({"channel": "hotline", "name": f"客户{i}", "phone": f"139 1234 000{i}", "amount": "85万",
                       "registered_by": "k1", "registered_at": at.isoformat(), "external_ref": f"R-{i}",
                       "inquiry": REASON}, now=at + dt.timedelta(minutes=1), ctx=ctx)
    engines.tick(ctx, EARLY + dt.timedelta(hours=5))  # no contact within 10 minutes: R-SLA-1 breaches
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", cli_url)
    monkeypatch.setenv("LEADFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "80")
    get_settings.cache_clear()
    yield engine
    get_settings.cache_clear()
    gate_module.clear_cache()
    engine.dispose()


def leadflow(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


MARCH_2 = ["--since", "2026-03-02", "--until", "2026-03-02"]
WHAT = ("allocations", "breaches", "fairness", "customers")


@pytest.mark.parametrize("what, says", [("allocations", "no allocations"), ("breaches", "no breaches"),
                                        ("customers", "no customers registered")])
def test_issue9_8_an_empty_report_says_so_in_one_line_with_its_business_dates(store, capsys, what, says):
    code, out, err = leadflow(capsys, "report", what, "--since", "2026-11-23", "--until", "2026-11-29")
    assert (code, out, err) == (0, f"{says} between 2026-11-23 and 2026-11-29.\n", "")
    code, out, _ = leadflow(capsys, "report", what, "--since", "2026-11-23", "--until", "2026-11-29", "--format",
                            "json")
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = leadflow(capsys, "report", what, "--since", "2026-11-23", "--format", "csv")
    assert code == 0 and len(list(csv.reader(io.StringIO(out)))) == 1 and out.startswith(("at,", "customer,"))


def test_issue9_8_since_yesterday_is_a_date_and_since_after_until_is_one_sentence(store, capsys):
    code, out, err = leadflow(capsys, "report", "breaches", "--since", "yesterday")
    assert code == 0 and err == "" and out.startswith("no breaches between ") and out.count("\n") == 1
    code, out, err = leadflow(capsys, "report", "allocations", "--since", "2026-03-03", "--until", "2026-03-02")
    assert (code, out) == (2, "") and err == ("leadflow: --since 2026-03-03 is after --until 2026-03-02: the period "
                                              "would be empty.\n")


@pytest.mark.parametrize("what", WHAT)
def test_issue9_8_every_report_table_fits_80_columns_with_no_header_or_cell_cut(store, capsys, what):
    code, out, err = leadflow(capsys, "report", what, *MARCH_2)
    assert code == 0 and err == "", err
    lines = out.splitlines()
    assert "…" not in out and max(cell_len(line) for line in lines) <= 80, out
    assert "2026-03-02 – 2026-03-02: business days and times, UTC+08:00" in lines[0]
    if what != "breaches":  # a breach names the person, not the owner
        assert "张伟 (s1)" in out
    code, wide, _ = leadflow(capsys, "report", what, *MARCH_2, "--wide")
    assert code == 0 and "…" not in wide
    if what == "allocations":  # every column, unfolded, however narrow the terminal
        assert "department" in wide and "华东销售一部 (d1)" in wide and "policy" in wide
        assert "allocate" in out and "reason" in out


def test_issue9_6_times_in_csv_and_json_are_business_time_with_the_offset_and_names_beside_ids(store, capsys):
    for what in ("allocations", "breaches", "customers"):
        code, out, _ = leadflow(capsys, "report", what, *MARCH_2, "--format", "json")
        rows = json.loads(out)
        assert code == 0 and len(rows) == 2, (what, rows)
        times = [r.get("at") or r["created"] for r in rows]
        assert all(t.startswith("2026-03-02T") and t.endswith("+08:00") for t in times), times
        code, text, _ = leadflow(capsys, "report", what, *MARCH_2, "--format", "csv")
        assert [r.get("at") or r["created"] for r in csv.DictReader(io.StringIO(text))] == times
    allocations = json.loads(leadflow(capsys, "report", "allocations", *MARCH_2, "--format", "json")[1])
    assert allocations[0]["at"] == "2026-03-02T07:31:00+08:00"  # allocated 23:31 UTC on 1 March
    assert {(r["owner"], r["owner_name"], r["department_name"]) for r in allocations} <= {
        ("s1", "张伟", "华东销售一部"), ("s2", "李娜", "华东销售一部")}
    breaches = json.loads(leadflow(capsys, "report", "breaches", *MARCH_2, "--format", "json")[1])
    assert {r["person_name"] for r in breaches} <= {"张伟", "李娜"} and breaches[0]["rule"] == "R-SLA-1"


def test_issue9_6_the_fairness_window_is_business_days(store, capsys):
    """The lead allocated at 07:31 on 2 March in Shanghai is 2 March's, never 1 March's."""
    def leads(*period):
        rows = json.loads(leadflow(capsys, "report", "fairness", *period, "--format", "json")[1])
        return sum(r["leads"] for r in rows if r["tier"] == "A")

    assert leads("--since", "2026-03-01", "--until", "2026-03-01") == 0
    assert leads(*MARCH_2) == 2
    assert leads("--since", "2026-03", "--until", "2026-03") == 2


def test_issue9_8_a_period_over_several_months_is_read_a_month_at_a_time_and_stdout_stays_clean(store, capsys,
                                                                                                 monkeypatch):
    from leadflow import reports

    calls = []
    real = reports.allocations
    monkeypatch.setattr(reports, "allocations", lambda conn, s, e, policy=None: calls.append((s, e))
                        or real(conn, s, e, policy))
    code, out, err = leadflow(capsys, "report", "allocations", "--since", "2026-01", "--until", "2026-04",
                              "--format", "csv")
    assert code == 0 and len(calls) == 4 and err == ""  # the progress bar is transient, on stderr
    assert len(list(csv.DictReader(io.StringIO(out)))) == 2
