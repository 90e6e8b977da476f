"""The gate validates each record content once per suite (R-VAL-1..3, issue 10): a record's outcome is a function
of what its suite reads of it, so the gate keeps outcomes by that key, runs Great Expectations only on contents it
has not seen (all of them in one call) and gives the same GateResult as a run that validated every row — on SQLite
and PostgreSQL. GX calls are counted with `expectations.gate.stats()`."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import text

from expectations import gate as gate_module
from expectations.gate import run_gate
from leadflow.policy import load_policy
from leadflow.stages import validation
from leadflow.stages.context import StageContext
from leadflow.store.models import Customer, Registration, ValidationHold
from leadflow.wiring import make_gate
from tests.store.test_gates import NOW, insert, reg

POLICY = load_policy()


@pytest.fixture
def target(store_engine, store_target):
    """(url, schema) with the tables created, an empty outcome cache and the GX counts at zero."""
    gate_module.clear_cache()
    gate_module.reset_stats()
    yield store_target
    gate_module.clear_cache()


def gate(target, stage="intake", **kw):
    url, schema = target
    return run_gate(url, stage, schema=schema, policy=POLICY, **kw)


def calls() -> int:
    return gate_module.stats()["calls"]


def _customer(engine) -> int:
    with engine.begin() as conn:
        return conn.execute(Customer.__table__.insert().values(tier="A", channel="hotline", status="pool",
                                                               created_at=NOW)).inserted_primary_key[0]


def _mixed_batch(engine, batch_id: str) -> list[int]:
    """25 rows: good ones, each kind of bad one, some bad twice over, reasons staging noted, a self-found lead."""
    kinds = [dict(), dict(phone_kind="invalid"), dict(amount_status="negative"), dict(registered_by=None),
             dict(by_known=False, registered_by="nobody"), dict(channel=None, channel_raw="某网站"),
             dict(channel=None, channel_raw=None), dict(phone_kind="invalid", amount_status="absurd"),
             dict(reasons=["too_long"]), dict(reasons=["bad_json"], registered_at=None),
             dict(channel="self", channel_raw="自己", registered_by="p_wang"), dict(registered_at=None)]
    rows = [reg(batch_id=batch_id, row_number=n, ref=f"{batch_id}-{n}",
                **{"registered_at": NOW + dt.timedelta(minutes=n), **(kinds[n // 2 % len(kinds)] if n % 2 else {})})
            for n in range(1, 26)]
    return insert(engine, rows)


def _strip(result) -> dict:
    out = result.as_dict()
    out.pop("docs_path")
    return out


# ------------------------------------------------------------------ R-VAL-1, R-VAL-2: the same GateResult


def test_r_val_1_r_val_2_cached_outcomes_give_the_same_gate_result_as_validating_every_row(store_engine, target):
    ids = _mixed_batch(store_engine, "b1")
    cold = gate(target, batch_id="b1")  # every content validated by GX
    assert calls() == 1
    assert cold.rows_in == 25 == len(cold.passed) + len(cold.quarantined)
    assert set(cold.passed) | set(cold.quarantined) == set(ids)
    assert cold.quarantined[ids[14]] == ["amount", "phone_format"]  # row 15: bad twice over
    assert cold.quarantined[ids[18]] == ["bad_json"]  # an unreadable row is judged by that alone
    assert cold.batch_error and "10 of 25" in cold.batch_error  # R-VAL-3 from the same counts
    warm = gate(target, batch_id="b1")  # every content from the cache
    assert calls() == 1
    assert _strip(warm) == _strip(cold)
    # a second batch of the same contents costs nothing and reads the same (other ids, same outcomes)
    others = _mixed_batch(store_engine, "b2")
    again = gate(target, batch_id="b2")
    assert calls() == 1
    assert again.quarantined == {others[ids.index(i)]: rs for i, rs in cold.quarantined.items()}
    assert again.expectations_failed == cold.expectations_failed
    # a fresh process (no cache) agrees with both
    gate_module.clear_cache()
    assert _strip(gate(target, batch_id="b2")) == _strip(again)


def test_r_val_3_too_many_bad_rows_fail_the_batch_from_cached_outcomes_too(store_engine, target):
    insert(store_engine, [reg(row_number=i, phone_kind="invalid" if i <= 10 else "mobile") for i in range(1, 26)])
    cold = gate(target, batch_id="b1")
    warm = gate(target, batch_id="b1")
    assert calls() == 1
    assert cold.batch_error and "10 of 25" in cold.batch_error
    assert _strip(warm) == _strip(cold)


def test_r_val_1_n_records_with_identical_content_cost_one_gx_call(store_engine, target):
    """The later suites read NULL-ness only of customer_id, registered_at, decided_at: records that differ only in
    their customer and times share one key, so 40 of them are one GX call (and a call validates one row)."""
    cids = [_customer(store_engine) for _ in range(40)]
    ids = insert(store_engine, [reg(row_number=n, status="accepted", customer_id=c, ref=f"r{n}",
                                    registered_at=NOW + dt.timedelta(hours=n), decided_at=NOW + dt.timedelta(days=n))
                                for n, c in enumerate(cids, start=1)])
    for stage in ("tiering", "sla_check", "allocation"):
        result = gate(target, stage, ids=ids)
        assert result.passed == sorted(ids) and result.batch_error is None
    assert calls() == 3  # one per suite, whatever N
    more = insert(store_engine, [reg(batch_id="b2", row_number=n, status="accepted", customer_id=cids[0],
                                     decided_at=NOW) for n in range(1, 31)])
    assert gate(target, "tiering", ids=more).passed == sorted(more)
    assert calls() == 3


def test_r_val_1_the_cache_is_one_gx_call_however_many_threads_ask(store_engine, target):
    ids = insert(store_engine, [reg(row_number=n) for n in range(1, 11)])
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(gate(target, ids=ids))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.passed for r in results] == [sorted(ids)] * 4
    assert calls() == 1


def test_r_val_1_prevalidated_contents_are_not_validated_again(store_engine, target):
    """`gate.prevalidate` validates contents not (yet) in the store in one call; nothing is written to the store."""
    url, schema = target
    bound = make_gate(url, schema, POLICY)
    staged = [reg(row_number=1), reg(row_number=2, phone_kind="invalid"), reg(row_number=3, reasons=["too_long"]),
              reg(row_number=4, channel="it's\\web")]  # a quote and a backslash survive the literal rows
    assert bound.prevalidate("intake", staged + staged) == 4
    assert calls() == 1
    assert bound.prevalidate("intake", staged) == 0 and calls() == 1
    with store_engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM registrations")).scalar() == 0
    ids = insert(store_engine, staged)
    result = bound("intake", batch_id="b1")
    assert calls() == 1
    assert result.passed == [ids[0]]
    assert result.quarantined == {ids[1]: ["phone_format"], ids[2]: ["too_long"], ids[3]: ["channel"]}


# ------------------------------------------------------------------ R-VAL-2: holds follow the record's content


def test_r_val_2_a_changed_record_is_validated_again_and_its_hold_is_released_or_kept(store_engine, target):
    url, schema = target
    ctx = StageContext(engine=store_engine, policy=POLICY, gate=make_gate(url, schema, POLICY))
    cid = _customer(store_engine)
    (rid,) = insert(store_engine, [reg(row_number=1, status="accepted", customer_id=cid, decided_at=NOW,
                                       phone_kind="invalid")])
    rt, ht = Registration.__table__, ValidationHold.__table__

    def holds() -> list:
        with store_engine.connect() as conn:
            return conn.execute(ht.select().where(ht.c.registration_id == rid).order_by(ht.c.id)).all()

    validation.check(ctx, "allocation", [rid], NOW)
    assert calls() == 1 and [(h.reasons, h.cleared_at) for h in holds()] == [(["phone_format"], None)]
    with store_engine.begin() as conn:  # fixed: a content not seen before, so GX runs again
        conn.execute(rt.update().where(rt.c.id == rid).values(phone_kind="mobile"))
    validation.check(ctx, "allocation", [rid], NOW + dt.timedelta(hours=1))
    assert calls() == 2 and holds()[0].cleared_at is not None
    with store_engine.begin() as conn:  # spoilt again: the content's outcome is known, the hold opens again
        conn.execute(rt.update().where(rt.c.id == rid).values(phone_kind="invalid"))
    validation.check(ctx, "allocation", [rid], NOW + dt.timedelta(hours=2))
    assert calls() == 2
    assert [(h.reasons, h.cleared_at is None) for h in holds()] == [(["phone_format"], False), (["phone_format"], True)]


# ------------------------------------------------------------------ R-VAL-3: a missing column, a warm cache


def test_r_val_3_a_missing_column_fails_the_batch_even_when_its_contents_are_cached(store_engine, target):
    (rid,) = insert(store_engine, [reg(row_number=1)])
    assert gate(target, batch_id="b1").passed == [rid]
    with store_engine.begin() as conn:
        conn.execute(text("ALTER TABLE registrations DROP COLUMN registered_by"))
    result = gate(target, batch_id="b1")
    assert result.batch_error and "registered_by" in result.batch_error
    assert result.passed == [] and result.quarantined == {rid: ["unvalidated"]} and result.rows_in == 1
    assert calls() == 1
