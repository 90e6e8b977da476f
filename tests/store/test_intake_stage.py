"""The registration stage as the flow and the replay run it — `leadflow.stages.intake.run_intake` with the
Great Expectations gate wired in (leadflow.wiring.make_gate) — on SQLite and PostgreSQL.

R-VAL-3 cannot be expressed as a scenario (a replay delivers every `register` event as a one-row
batch), so the batch-level failure is proven here; with it R-VAL-2 (nothing dropped, corrected
re-submission) and R-REG-4 (idempotent re-delivery) on whole batches."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from leadflow.policy import load_policy
from leadflow.stages import people
from leadflow.stages.context import StageContext
from leadflow import engine
from leadflow.stages.intake import StageFailure
from leadflow.store.models import Assignment, Customer, IntakeBatch, Registration
from leadflow.wiring import make_gate

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
BAD = {  # row index -> (phone, amount, expected reasons)
    1: ("12345", "30万", ["phone_format"]),
    4: ("13800000004", "-5万", ["amount"]),
    7: (None, "30万", ["missing_field"]),
    10: ("1380000001", "30万", ["phone_format"]),
    13: ("13800000013", "abc", ["amount"]),
    16: ("+1 415 555 0100", "30万", ["phone_format"]),
    19: ("13800000019", "11亿", ["amount"]),
    20: ("", "30万", ["missing_field"]),
    22: ("138OO000022", "1,2,3", ["amount", "phone_format"]),
    24: ("12800000024", "30万", ["phone_format"]),
}


GOOD = object()



def run_intake(ctx, batch_id: str, source: str, rows: list[dict], now: dt.datetime) -> dict:
    """The registration stage as production runs it: one engine run (stage, gate, decide, then the offer)."""
    return engine.register(ctx, batch_id, source, rows, now)


def row(i: int, phone=GOOD, amount: str = "30万", ref_prefix: str = "r", at=NOW, base: str = "138") -> dict:
    """A delivered registration row, as the readers and the replay hand it to the stage; a good one by default."""
    return {"ref": f"{ref_prefix}{i}", "row_number": i + 1, "channel": "marketplace", "name": f"客户{i}",
            "phone": f"{base}{i:08d}" if phone is GOOD else phone, "amount": amount,
            "inquiry": "绿植租摆", "registered_at": at + dt.timedelta(minutes=i), "registered_by": "k1",
            "region": "上海", "external_ref": f"TB-{i:04d}", "target": "yes", "raw": {"name": f"客户{i}"}}


def batch(n: int = 25, bad: dict | None = None, ref_prefix: str = "r", base: str = "138") -> list[dict]:
    bad = BAD if bad is None else bad
    return [row(i, *bad[i][:2], ref_prefix=ref_prefix, base=base) if i in bad
            else row(i, ref_prefix=ref_prefix, base=base) for i in range(n)]


@pytest.fixture
def ctx(store_engine, store_target):
    """A StageContext wired as leadflow.simulate does: the store, the default policy, the GX gate."""
    from expectations import gate as gate_module

    url, schema = store_target
    policy = load_policy()
    with store_engine.begin() as conn:
        people.load_org(conn, [{"id": "d1", "name": "营销一部"}, {"id": "d2", "name": "营销二部"}], [
            {"id": "m1", "department": "d1", "role": "manager"},
            {"id": "m2", "department": "d2", "role": "manager"},
            {"id": "s1", "department": "d1", "role": "sales", "grade": "C", "rank": 1},
            {"id": "s2", "department": "d2", "role": "sales", "grade": "C", "rank": 1},
            {"id": "k1", "department": "d1", "role": "receptionist"}])
    try:
        yield StageContext(engine=store_engine, policy=policy, flow_run_id="test-intake",
                           gate=make_gate(url, schema, policy))
    finally:
        gate_module.clear_cache()


def registrations(ctx, batch_id: str, status: str | None = None) -> dict[str, dict]:
    """ref -> outcome of the batch's rows (of one status, when given: a re-run batch holds both runs)."""
    q = select(Registration.ref, Registration.status, Registration.reasons,
               Registration.customer_id).where(Registration.batch_id == batch_id)
    if status:
        q = q.where(Registration.status == status)
    with ctx.engine.connect() as conn:
        rows = conn.execute(q).all()
    return {r.ref: {"status": r.status, "reasons": sorted(r.reasons or []), "customer": r.customer_id} for r in rows}


def count(ctx, model) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def batch_summary(ctx, batch_id: str) -> dict:
    with ctx.engine.connect() as conn:
        b = conn.execute(select(IntakeBatch).where(IntakeBatch.id == batch_id)).mappings().one()
    return {k: b[k] for k in ("rows_in", "accepted", "attached", "quarantined")}


def assert_nothing_dropped(summary: dict) -> None:
    """R-VAL-2: rows in = accepted + attached + quarantined."""
    assert summary["rows_in"] == summary["accepted"] + summary["attached"] + summary["quarantined"], summary


# --------------------------------------------------------------------------------------- R-VAL-3


def test_r_val_3_a_batch_of_25_rows_40_percent_bad_fails_the_stage_and_every_row_is_quarantined(ctx):
    rows = batch()
    with pytest.raises(StageFailure) as failure:
        run_intake(ctx, "b-bad", "test", rows, NOW)
    message = str(failure.value)
    assert "\n" not in message and message.endswith(".")
    assert "10 of 25" in message and "40%" in message and "20%" in message, message
    assert "138" not in message  # a plain sentence, no row values (R-REG-7)
    regs = registrations(ctx, "b-bad")
    assert len(regs) == 25  # none dropped
    assert {r["status"] for r in regs.values()} == {"quarantined"}
    for i, (_, _, reasons) in BAD.items():
        assert set(reasons) <= set(regs[f"r{i}"]["reasons"]), (i, regs[f"r{i}"])
    good = [r for i, r in enumerate(regs[f"r{i}"] for i in range(25)) if i not in BAD]
    assert all(r["reasons"] and r["customer"] is None for r in good)  # held back with a reason, not dropped
    summary = batch_summary(ctx, "b-bad")
    assert summary == {"rows_in": 25, "accepted": 0, "attached": 0, "quarantined": 25}
    assert count(ctx, Customer) == 0 and count(ctx, Assignment) == 0  # the stage did not run


def test_r_val_3_the_threshold_is_a_proportion_above_20_percent_in_batches_of_at_least_20_rows(ctx):
    at_threshold = {i: BAD[i] for i in (1, 4, 7, 10)}  # 4 of 20 = 20 %: not above the threshold
    summary = run_intake(ctx, "b-20", "test", batch(20, at_threshold, "a"), NOW)
    assert (summary["accepted"], summary["quarantined"]) == (16, 4)
    assert_nothing_dropped(summary)
    small = {i: BAD[i] for i in (1, 4, 7, 10, 13, 16)}  # 6 of 19 bad: too small a batch to fail as a whole
    summary = run_intake(ctx, "b-19", "test", [dict(r, external_ref=f"S-{i}") for i, r in
                                               enumerate(batch(19, small, "s", base="139"))],
                         NOW + dt.timedelta(days=1))
    assert (summary["accepted"], summary["quarantined"]) == (13, 6)
    assert_nothing_dropped(summary)


def test_r_val_3_a_rejected_batch_corrected_and_resubmitted_is_accepted(ctx):
    with pytest.raises(StageFailure):
        run_intake(ctx, "b-bad", "test", batch(), NOW)
    fixed = batch(bad={})  # the same rows (same channel and external references), corrected
    summary = run_intake(ctx, "b-fixed", "test", fixed, NOW)
    assert (summary["accepted"], summary["attached"], summary["quarantined"]) == (25, 0, 0)
    assert count(ctx, Customer) == 25


# --------------------------------------------------------------------------------------- R-REG-4


def test_r_reg_4_rerunning_the_same_rows_accepts_nothing_twice(ctx):
    rows = batch(bad={})
    first = run_intake(ctx, "b1", "test", rows, NOW)
    assert (first["rows_in"], first["accepted"], first["attached"], first["quarantined"]) == (25, 25, 0, 0)
    assert count(ctx, Customer) == 25 and count(ctx, Assignment) == 25
    again = run_intake(ctx, "b1", "test", rows, NOW + dt.timedelta(hours=1))  # the same batch re-run
    # issue 8.2: the same batch again is its earlier outcome, not 25 more registrations and ledger entries
    assert again["already_registered"] and (again["accepted"], again["attached"]) == (25, 0)
    assert count(ctx, Registration) == 25
    redelivered = run_intake(ctx, "b2", "test", rows, NOW + dt.timedelta(hours=2))  # a second delivery
    assert (redelivered["accepted"], redelivered["attached"], redelivered["quarantined"]) == (0, 25, 0)
    assert_nothing_dropped(redelivered)
    assert count(ctx, Customer) == 25 and count(ctx, Assignment) == 25  # no new customer, no new allocation
    originals = {ref: r["customer"] for ref, r in registrations(ctx, "b1", "accepted").items()}
    assert len(originals) == 25
    assert registrations(ctx, "b1", "attached") == {}
    assert {ref: r["customer"] for ref, r in registrations(ctx, "b2").items()} == originals


# --------------------------------------------------------------------------------------- R-VAL-2


def test_r_val_2_quarantined_rows_claim_no_key_and_their_correction_is_accepted(ctx):
    few_bad = {i: BAD[i] for i in (1, 4, 7)}  # 3 of 25: below the threshold, the stage runs on the rest
    summary = run_intake(ctx, "b1", "test", batch(bad=few_bad), NOW)
    assert (summary["rows_in"], summary["accepted"], summary["quarantined"]) == (25, 22, 3)
    assert_nothing_dropped(summary)
    regs = registrations(ctx, "b1")
    for i, (_, _, reasons) in few_bad.items():
        assert regs[f"r{i}"] == {"status": "quarantined", "reasons": reasons, "customer": None}
    corrected = [row(i) for i in few_bad]  # same channel, external reference and time; fixed values
    summary = run_intake(ctx, "b1-fix", "test", corrected, NOW + dt.timedelta(hours=1))
    assert (summary["rows_in"], summary["accepted"], summary["attached"], summary["quarantined"]) == (3, 3, 0, 0)
    assert count(ctx, Customer) == 25


# --------------------------------------------------------------------------------------- R-REG-1


def test_r_reg_1_a_channel_the_company_adds_to_its_policy_is_accepted(ctx, store_target):
    """`registration.company_channels` is the list of channels: one added there (douyin) is accepted; the
    default policy, which does not list it, quarantines the same row with reason `channel`."""
    url, schema = store_target
    douyin = load_policy(overrides={"registration": {"company_channels": [
        *ctx.policy.registration.company_channels, "douyin"]}})
    company = StageContext(engine=ctx.engine, policy=douyin, flow_run_id="test-intake",
                           gate=make_gate(url, schema, douyin))
    rows = [dict(row(0), channel="douyin"), dict(row(1), channel="热线")]
    summary = run_intake(company, "b-douyin", "test", rows, NOW)
    assert (summary["accepted"], summary["quarantined"]) == (2, 0)
    with ctx.engine.connect() as conn:
        channels = dict(conn.execute(select(Registration.ref, Registration.channel)
                                     .where(Registration.batch_id == "b-douyin")).all())
    assert channels == {"r0": "douyin", "r1": "hotline"}
    summary = run_intake(ctx, "b-default", "test", [dict(row(2, ref_prefix="d"), channel="douyin")], NOW)
    assert summary["quarantined"] == 1
    assert registrations(ctx, "b-default")["d2"]["reasons"] == ["channel"]


def test_r_val_3_an_empty_batch_from_the_python_api_is_one_sentence_and_leaves_no_batch(ctx):
    with pytest.raises(StageFailure, match="no rows"):
        run_intake(ctx, "b-empty", "api", [], NOW)
    assert count(ctx, IntakeBatch) == 0 and count(ctx, Registration) == 0
