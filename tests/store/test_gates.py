"""The validation gates (R-VAL-1..3, R-REG-7) on registration rows in the database, on SQLite and
PostgreSQL (the `store_engine` / `store_target` fixtures of tests/conftest.py)."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict

import pytest
from sqlalchemy import select, text

from expectations import STAGES, stage_module
from expectations import gate as gate_module
from expectations.gate import GateError, GateResult, gate_for, run_gate
from leadflow.policy import load_policy
from leadflow.store.models import Customer, Registration

PHONE = "13800138000"
RAW_PHONE = "+86 138-0013-8000"
MASKED = "138****8000"
NOW = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.timezone.utc)
POLICY = load_policy()


def reg(batch_id: str = "b1", row_number: int = 1, **over) -> dict:
    """A good, fully filled staged registration row; `over` spoils it."""
    row = {
        "batch_id": batch_id, "row_number": row_number, "ref": f"r{row_number}", "channel": "hotline",
        "channel_raw": "400热线", "external_ref": None, "name": "张三", "phone": PHONE, "phone_masked": MASKED,
        "phone_kind": "mobile", "amount_raw": "85万", "amount_yuan": 850000.0, "amount_status": "ok",
        "inquiry": f"call {PHONE}", "region": "上海", "target": True, "registered_at": NOW,
        "registered_by": "p_li", "by_known": True,
        "raw": {"phone": RAW_PHONE, "name": "张三", "note": f"call back {PHONE}"},
        "status": "staged", "reasons": [], "dedupe_key": None, "customer_id": None,
        "staged_at": NOW, "decided_at": None,
    }
    row.update(over)
    return row


def insert(engine, rows: list[dict]) -> list[int]:
    """Insert rows; their ids in the given order."""
    rt = Registration.__table__
    with engine.begin() as conn:
        return [conn.execute(rt.insert().values(**r)).inserted_primary_key[0] for r in rows]


@pytest.fixture
def target(store_engine, store_target):
    """(url, schema) with the tables created; the gate's cached context is dropped afterwards
    (before the PostgreSQL schema is)."""
    yield store_target
    gate_module.clear_cache()


def gate(target, stage="intake", **kw) -> GateResult:
    url, schema = target
    return run_gate(url, stage, schema=schema, **kw)


# ------------------------------------------------------------------ R-VAL-1: suites, one per stage


def test_r_val_1_every_stage_has_a_suite_whose_expectations_carry_reason_codes():
    import great_expectations as gx

    for stage in STAGES:
        module = stage_module(stage)
        suite = module.suite(POLICY)
        assert isinstance(suite, gx.ExpectationSuite)
        assert suite.expectations, stage
        for exp in suite.expectations:
            assert exp.meta and exp.meta.get("reason"), (stage, exp)
        assert set(module.REQUIRED) >= {c for c in module.SELECT if c in module.REQUIRED}
    # an expectation with `reasons_from` quarantines with the reasons staging noted on the row (issue 8)
    reasons = {r for e in stage_module("intake").suite(POLICY).expectations
               for r in (e.meta["reasons"] if "reasons_from" in e.meta else [e.meta["reason"]])}
    assert reasons == {"missing_field", "phone_format", "amount", "channel", "unknown_person",
                       "bad_time", "too_long", "bad_quote", "ragged", "bad_json", "bad_text"}


def test_r_reg_7_no_suite_selects_a_phone_raw_or_name_column():
    for stage in STAGES:
        for out, expr in stage_module(stage).SELECT.items():
            assert not gate_module._FORBIDDEN.search(out) and not gate_module._FORBIDDEN.search(expr), (stage, out)


def test_r_val_1_unknown_stage_or_no_selection_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(GateError):
        run_gate(url, "nonsense", batch_id="b1")
    with pytest.raises(GateError):
        run_gate(url, "intake")


# ------------------------------------------------------------------ R-VAL-2: rows are quarantined


def test_r_val_2_good_rows_pass(store_engine, target):
    ids = insert(store_engine, [reg(row_number=i) for i in range(1, 6)]
                 + [reg(row_number=6, phone_kind="landline", amount_status="blank", amount_raw=None,
                        amount_yuan=None, channel="self", channel_raw="自己")])
    result = gate(target, batch_id="b1")
    assert result.batch_error is None
    assert result.rows_in == 6
    assert result.passed == sorted(ids)
    assert result.quarantined == {}
    assert result.expectations_failed == {}


def test_r_val_2_bad_phone_is_quarantined_with_phone_format(store_engine, target):
    good, bad = insert(store_engine, [reg(row_number=1), reg(row_number=2, phone_kind="invalid", phone=None,
                                                              phone_masked=None)])
    result = gate(target, batch_id="b1")
    assert result.quarantined == {bad: ["phone_format"]}
    assert result.passed == [good]
    assert result.expectations_failed == {"expect_column_values_to_be_in_set(phone_kind)": 1}


def test_r_val_2_negative_amount_is_quarantined_with_amount(store_engine, target):
    good, bad = insert(store_engine, [reg(row_number=1), reg(row_number=2, amount_status="negative",
                                                              amount_raw="-5万", amount_yuan=None)])
    result = gate(target, batch_id="b1")
    assert result.quarantined == {bad: ["amount"]}
    assert result.passed == [good]


def test_r_val_2_missing_registered_by_is_quarantined_with_missing_field(store_engine, target):
    good, bad = insert(store_engine, [reg(row_number=1), reg(row_number=2, registered_by=None)])
    result = gate(target, batch_id="b1")
    assert result.quarantined == {bad: ["missing_field"]}
    assert result.passed == [good]


def test_r_val_2_missing_phone_and_registered_at_are_missing_field(store_engine, target):
    no_phone, no_time = insert(store_engine, [
        reg(row_number=1, phone=None, phone_masked=None, phone_kind="missing"),
        reg(row_number=2, registered_at=None)])
    result = gate(target, batch_id="b1")
    assert result.quarantined == {no_phone: ["missing_field"], no_time: ["missing_field"]}


def test_r_val_2_two_failures_on_one_row_give_both_reasons(store_engine, target):
    good, bad = insert(store_engine, [reg(row_number=1), reg(row_number=2, phone_kind="invalid",
                                                              amount_status="absurd")])
    result = gate(target, batch_id="b1")
    assert result.quarantined == {bad: ["amount", "phone_format"]}
    assert result.passed == [good]


def test_r_val_2_unrecognised_channel_is_channel_and_absent_channel_is_missing_field(store_engine, target):
    unknown, absent, bogus, ok = insert(store_engine, [
        reg(row_number=1, channel=None, channel_raw="某网站"),
        reg(row_number=2, channel=None, channel_raw=None),
        reg(row_number=3, channel="bogus"),
        reg(row_number=4)])
    result = gate(target, batch_id="b1")
    assert result.quarantined == {unknown: ["channel"], absent: ["missing_field"], bogus: ["channel"]}
    assert result.passed == [ok]


def test_r_val_2_unknown_registrant_is_unknown_person(store_engine, target):
    ok, unknown = insert(store_engine, [reg(row_number=1), reg(row_number=2, registered_by="nobody",
                                                                by_known=False)])
    result = gate(target, batch_id="b1")
    assert result.quarantined == {unknown: ["unknown_person"]}
    assert result.passed == [ok]


def test_r_val_2_rows_in_is_passed_plus_quarantined_and_only_the_batch_is_read(store_engine, target):
    insert(store_engine, [reg(batch_id="other", row_number=1, phone_kind="invalid")])
    ids = insert(store_engine, [reg(row_number=i, phone_kind="invalid" if i % 4 == 0 else "mobile",
                                    amount_status="negative" if i % 6 == 0 else "ok") for i in range(1, 13)])
    result = gate(target, batch_id="b1")
    assert result.rows_in == 12 == len(result.passed) + len(result.quarantined)
    assert set(result.passed) | set(result.quarantined) == set(ids)
    assert result.quarantined[ids[11]] == ["amount", "phone_format"]  # row 12: both
    assert result.expectations_failed == {"expect_column_values_to_be_in_set(phone_kind)": 3,
                                          "expect_column_values_to_be_in_set(amount_status)": 2}


def test_r_val_2_selection_by_ids(store_engine, target):
    ids = insert(store_engine, [reg(row_number=i, phone_kind="invalid" if i == 3 else "mobile")
                                for i in range(1, 9)])
    chosen = [ids[0], ids[2], ids[3], ids[4], ids[7]]  # a gap, a run and a single
    result = gate(target, ids=chosen)
    assert result.rows_in == 5
    assert result.quarantined == {ids[2]: ["phone_format"]}
    assert result.passed == sorted(set(chosen) - {ids[2]})


def test_r_val_2_quarantined_row_can_be_corrected_and_resubmitted(store_engine, target):
    (bad,) = insert(store_engine, [reg(row_number=1, amount_status="invalid")])
    assert gate(target, batch_id="b1").quarantined == {bad: ["amount"]}
    with store_engine.begin() as conn:
        conn.execute(Registration.__table__.update().where(Registration.id == bad).values(amount_status="ok"))
    again = gate(target, batch_id="b1")
    assert again.passed == [bad] and again.quarantined == {}


# ------------------------------------------------------------------ R-VAL-1: the later stages


def _customer(engine) -> int:
    ct = Customer.__table__
    with engine.begin() as conn:
        return conn.execute(ct.insert().values(tier="A", channel="hotline", status="pool",
                                               created_at=NOW)).inserted_primary_key[0]


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "intake"])
def test_r_val_1_later_stages_pass_decided_rows_and_quarantine_the_rest(store_engine, target, stage):
    cid = _customer(store_engine)
    decided = dict(status="accepted", customer_id=cid, decided_at=NOW)
    ok, attached, staged, no_customer = insert(store_engine, [
        reg(row_number=1, **decided),
        reg(row_number=2, **{**decided, "status": "attached"}),
        reg(row_number=3),
        reg(row_number=4, **{**decided, "customer_id": None})])
    result = gate(target, stage, batch_id="b1")
    assert result.batch_error is None
    assert result.passed == [ok, attached]
    assert "not_accepted" in result.quarantined[staged]
    assert result.quarantined[no_customer] == ["no_customer"]
    assert result.rows_in == 4


def test_r_val_1_tiering_quarantines_a_bad_phone_of_a_decided_row(store_engine, target):
    cid = _customer(store_engine)
    (bad,) = insert(store_engine, [reg(row_number=1, status="accepted", customer_id=cid, decided_at=NOW,
                                       phone_kind="missing")])
    assert gate(target, "tiering", ids=[bad]).quarantined == {bad: ["phone_format"]}


# ------------------------------------------------------------------ R-VAL-3: whole-batch failures


def test_r_val_3_empty_batch_is_a_batch_error(store_engine, target):
    insert(store_engine, [reg(batch_id="other")])
    result = gate(target, batch_id="b1")
    assert result.batch_error and "empty" in result.batch_error
    assert result.rows_in == 0 and result.passed == [] and result.quarantined == {}
    empty_ids = gate(target, ids=[])
    assert empty_ids.batch_error and "empty" in empty_ids.batch_error


def test_r_val_3_forty_percent_bad_in_25_rows_is_a_batch_error(store_engine, target):
    insert(store_engine, [reg(row_number=i, phone_kind="invalid" if i <= 10 else "mobile") for i in range(1, 26)])
    result = gate(target, batch_id="b1")
    assert result.batch_error and "10 of 25" in result.batch_error and "20%" in result.batch_error
    assert len(result.quarantined) == 10 and len(result.passed) == 15  # still reported, nothing dropped


def test_r_val_3_threshold_is_strict_and_needs_min_rows(store_engine, target):
    insert(store_engine, [reg(row_number=i, phone_kind="invalid" if i <= 5 else "mobile") for i in range(1, 26)])
    insert(store_engine, [reg(batch_id="small", row_number=i, phone_kind="invalid" if i <= 8 else "mobile")
                          for i in range(1, 11)])
    assert gate(target, batch_id="b1").batch_error is None  # exactly 20% is not above 20%
    assert gate(target, batch_id="small").batch_error is None  # 80% bad, but fewer than 20 rows
    assert gate(target, batch_id="b1", max_bad_fraction=0.1).batch_error  # the policy's threshold
    assert gate(target, batch_id="small", min_rows_for_fraction=5).batch_error


def test_r_val_3_missing_column_is_a_batch_error(store_engine, target):
    (rid,) = insert(store_engine, [reg(row_number=1)])
    with store_engine.begin() as conn:
        conn.execute(text("ALTER TABLE registrations DROP COLUMN registered_by"))
    result = gate(target, batch_id="b1")
    assert result.batch_error and "registered_by" in result.batch_error
    # nothing passes unchecked, nothing is dropped: rows in = passed + quarantined
    assert result.passed == [] and result.quarantined == {rid: ["unvalidated"]} and result.rows_in == 1
    # a stage that does not read the column still runs
    assert gate(target, "sla_check", batch_id="b1").batch_error is None


def test_r_val_3_missing_table_is_a_batch_error(store_engine, target):
    with store_engine.begin() as conn:  # validation_holds refers to it: PostgreSQL drops that key too
        conn.execute(text("DROP TABLE registrations" + (" CASCADE" if conn.dialect.name == "postgresql" else "")))
    result = gate(target, batch_id="b1")
    assert result.batch_error and "registrations table does not exist" in result.batch_error


def test_r_val_3_requested_ids_not_in_the_store_is_a_batch_error(store_engine, target):
    (rid,) = insert(store_engine, [reg(row_number=1)])
    result = gate(target, ids=[rid, rid + 1000])
    assert result.batch_error and str(rid + 1000) in result.batch_error
    assert result.passed == [rid]


# ------------------------------------------------------------------ R-REG-7: no phone leaves the store


def test_r_reg_7_data_docs_and_gate_result_contain_no_unmasked_phone(store_engine, target, tmp_path):
    insert(store_engine, [reg(row_number=1), reg(row_number=2, phone_kind="invalid", phone="1380013800"),
                          reg(row_number=3, registered_by=None), reg(row_number=4, amount_status="negative")])
    docs = tmp_path / "docs"
    url, schema = target
    result = run_gate(url, "intake", batch_id="b1", schema=schema, docs_dir=docs)
    assert len(result.quarantined) == 3
    assert result.docs_path == str((docs / "index.html").resolve())
    files = [p for p in docs.rglob("*") if p.is_file()]
    pages = [p for p in files if p.suffix == ".html"]
    assert (docs / "index.html").is_file() and len(pages) >= 2  # index + the validation page
    for p in files:
        body = p.read_bytes()
        for needle in (PHONE, "1380013800", "0013-8000", "张三"):
            assert needle.encode() not in body, f"{needle} in {p}"
    dumped = json.dumps(asdict(result), ensure_ascii=False, default=str) + repr(result)
    assert PHONE not in dumped and "1380013800" not in dumped


def test_r_val_1_data_docs_keep_earlier_runs_across_processes(store_engine, target, tmp_path):
    insert(store_engine, [reg(row_number=1), reg(row_number=2, phone_kind="invalid")])
    docs = tmp_path / "docs"
    url, schema = target
    run_gate(url, "intake", batch_id="b1", schema=schema, docs_dir=docs)
    gate_module.clear_cache()  # a new process: a new ephemeral context
    run_gate(url, "intake", batch_id="b1", schema=schema, docs_dir=docs)
    pages = sorted((docs / "validations").rglob("*.html"))
    assert len(pages) == 2
    index = (docs / "index.html").read_text()
    assert all(p.relative_to(docs).as_posix() in index for p in pages)
    assert len(list((docs / "expectations").glob("*.html"))) == len(STAGES)
    for p in docs.rglob("*"):
        assert not p.is_file() or PHONE.encode() not in p.read_bytes()


# ------------------------------------------------------------------ wiring and speed


def test_r_val_1_gate_for_binds_the_database_and_reuses_one_context(store_engine, target):
    (rid,) = insert(store_engine, [reg(row_number=1)])
    url, schema = target
    bound = gate_for(url, schema=schema)
    first = bound("intake", batch_id="b1")
    contexts = {id(t.context) for t in gate_module._TARGETS.values()}
    second = bound("intake", ids=[rid])
    assert first.passed == second.passed == [rid]
    assert {id(t.context) for t in gate_module._TARGETS.values()} == contexts
    assert not any(name.startswith("intake_") for t in gate_module._TARGETS.values()
                   for name in t.datasource.get_asset_names())  # per-run assets are removed


def test_r_reg_1_a_gate_under_a_policy_with_another_channel_has_its_own_suites(store_engine, target):
    """The suites' channel ids are the policy's: a channel a company adds passes its gate, not the default's."""
    ids = insert(store_engine, [reg(row_number=1), reg(row_number=2, channel="douyin", channel_raw="douyin")])
    url, schema = target
    douyin = load_policy(overrides={"registration": {"company_channels": [
        *POLICY.registration.company_channels, "douyin"]}})
    assert gate_for(url, schema=schema, policy=POLICY)("intake", batch_id="b1").quarantined == {ids[1]: ["channel"]}
    assert gate_for(url, schema=schema, policy=douyin)("intake", batch_id="b1").passed == ids
    assert len(gate_module._TARGETS) == 2  # one context per suite values, both kept
    gate_module.release(url, schema)  # a database's gates go together, whatever their policy
    assert not gate_module._TARGETS


def test_r_val_1_gate_prints_no_progress_bars(store_engine, target, capfd):
    insert(store_engine, [reg(row_number=i) for i in range(1, 4)])
    gate(target, batch_id="b1")
    out, err = capfd.readouterr()
    assert "Calculating Metrics" not in err + out
    assert "%|" not in err


def test_r_val_2_gate_reads_the_database_not_a_copy(store_engine, target):
    """The rows are read at the gate's time from the database (a GX SQL datasource)."""
    (rid,) = insert(store_engine, [reg(row_number=1)])
    assert gate(target, batch_id="b1").passed == [rid]
    with store_engine.begin() as conn:
        conn.execute(Registration.__table__.update().values(phone_kind="invalid"))
    assert gate(target, batch_id="b1").quarantined == {rid: ["phone_format"]}
    url, schema = target
    t = next(t for (u, s, *_), t in gate_module._TARGETS.items() if (u, s) == (url, schema))
    assert type(t.datasource).__name__ in ("SqliteDatasource", "PostgresDatasource")
    with store_engine.connect() as conn:
        assert conn.execute(select(Registration.status)).scalar() == "staged"  # the gate writes nothing
