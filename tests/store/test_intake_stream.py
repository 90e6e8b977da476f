"""A registration file larger than a batch (`intake.batch_rows`), registered by `leadflow.engine.register_file`
streamed in batches, on SQLite and PostgreSQL: every row counted once over the file (R-REG-4, R-VAL-2),
duplicates across batches attached (R-REG-5), a redelivery or a crash mid-file counting nothing twice."""
from __future__ import annotations

import csv
import datetime as dt
import inspect

import pytest
from sqlalchemy import func, select

from leadflow import engine
from leadflow.intake import readers
from leadflow.policy import load_policy
from leadflow.stages import intake
from leadflow.store.models import Customer, IntakeBatch, Ledger, Registration
from tests.conftest import gated_ctx

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
HEADER = ["channel", "name", "phone", "amount", "registered_at", "registered_by", "external_ref"]


def write_file(path, n: int, bad=(3, 11), repeat: dict[int, int] | None = None) -> int:
    """A CSV of `n` rows: rows in `bad` have no phone (quarantined, R-VAL-2); row i in `repeat` calls from row
    repeat[i]'s phone (attached, R-REG-5). Returns n."""
    repeat = repeat or {}
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(n):
            phone = "" if i in bad else f"138{repeat.get(i, i):08d}"
            w.writerow(["hotline", f"客户{i}", phone, "30万", (NOW + dt.timedelta(minutes=i)).isoformat(), "k1",
                        f"HL-{i:05d}"])
    return n


@pytest.fixture
def ctx(store_engine, store_target):
    with gated_ctx(store_engine, store_target, load_policy(overrides={"intake": {"batch_rows": 7}}), [
            {"id": "m1", "department": "d1", "role": "manager"},
            {"id": "s1", "department": "d1", "role": "sales", "grade": "C", "rank": 1},
            {"id": "s2", "department": "d1", "role": "sales", "grade": "C", "rank": 2},
            {"id": "k1", "department": "d1", "role": "receptionist"}], "test-intake-stream") as ctx:
        yield ctx


def _counts(conn) -> dict:
    rt = Registration.__table__
    return dict(conn.execute(select(rt.c.status, func.count()).group_by(rt.c.status)).all())


def test_r_reg_4_r_val_2_a_file_larger_than_a_batch_registers_as_several_counting_every_row_once(ctx, tmp_path):
    """R-REG-4, R-VAL-2: 30 rows at 7 a batch are 5 batches; rows in = accepted + attached + quarantined over
    the file, and the last batch keeps the one-batch id `file-<digest20>`."""
    path = tmp_path / "leads.csv"
    n = write_file(path, 30, repeat={20: 2})
    out = engine.register_file(ctx, path, "leads.csv", NOW)
    assert out["rows_in"] == n == out["accepted"] + out["attached"] + out["quarantined"]
    assert (out["quarantined"], out["attached"]) == (2, 1)
    digest = readers.file_digest(path)
    assert out["batches"] == [f"file-{digest[:20]}-{i}" for i in range(1, 5)] + [f"file-{digest[:20]}"]
    assert out["errors"] == [] and not out["already_registered"]
    assert set(out["timings"]) == {"read", "stage", "gate", "decide", "allocate"}
    with ctx.engine.connect() as conn:
        assert _counts(conn) == {"accepted": 27, "attached": 1, "quarantined": 2}
        batches = conn.execute(select(IntakeBatch.rows_in).where(IntakeBatch.digest == digest)).scalars().all()
        assert sorted(batches) == [2, 7, 7, 7, 7]
        assert conn.execute(select(func.count()).select_from(Customer)).scalar() == 27
    assert out["allocation"]["allocated"] + out["allocation"]["pooled"] == 27


def test_r_reg_5_a_duplicate_in_a_later_batch_attaches_to_the_customer_of_an_earlier_one(ctx, tmp_path):
    """R-REG-5: row 15 (third batch) calls from row 1's phone (first batch): attached to that customer."""
    path = tmp_path / "leads.csv"
    write_file(path, 16, bad=(), repeat={15: 1})
    engine.register_file(ctx, path, "leads.csv", NOW)
    rt = Registration.__table__
    with ctx.engine.connect() as conn:
        first, dup = (conn.execute(select(rt.c.status, rt.c.customer_id, rt.c.batch_id)
                                   .where(rt.c.row_number == r)).one() for r in (2, 16))
    assert first.status == "accepted" and dup.status == "attached" and dup.customer_id == first.customer_id
    assert dup.batch_id != first.batch_id


def test_r_reg_4_redelivering_a_file_registers_nothing_twice(ctx, tmp_path):
    """R-REG-4: the same file again is the same batches, all decided: nothing staged, counted or ledgered."""
    path = tmp_path / "leads.csv"
    write_file(path, 20)
    first = engine.register_file(ctx, path, "leads.csv", NOW)
    with ctx.engine.connect() as conn:
        before = (_counts(conn), conn.execute(select(func.count()).select_from(Ledger)
                                              .where(Ledger.action.in_(["accepted", "attached"]))).scalar())
    again = engine.register_file(ctx, path, "leads.csv", NOW + dt.timedelta(minutes=5))
    assert again["already_registered"] and again["batches"] == first["batches"]
    assert {k: again[k] for k in ("rows_in", "accepted", "attached", "quarantined")} == \
        {k: first[k] for k in ("rows_in", "accepted", "attached", "quarantined")}
    with ctx.engine.connect() as conn:
        after = (_counts(conn), conn.execute(select(func.count()).select_from(Ledger)
                                             .where(Ledger.action.in_(["accepted", "attached"]))).scalar())
    assert after == before


def test_r_reg_4_after_a_crash_mid_file_a_redelivery_completes_only_the_missing_batches(ctx, tmp_path, monkeypatch):
    """R-REG-4, R-VAL-2: the process dies deciding the third batch; delivering the file again decides the third
    to last batches and counts every row once over the file."""
    path = tmp_path / "leads.csv"
    n = write_file(path, 25)
    real, calls = intake.settle, []

    def dies_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the process died")
        return real(*args, **kwargs)

    monkeypatch.setattr(intake, "settle", dies_on_the_third)
    with pytest.raises(RuntimeError):
        engine.register_file(ctx, path, "leads.csv", NOW)
    monkeypatch.setattr(intake, "settle", real)
    out = engine.register_file(ctx, path, "leads.csv", NOW + dt.timedelta(minutes=1))
    with ctx.engine.connect() as conn:
        counts = _counts(conn)
        finished = conn.execute(select(IntakeBatch.rows_in).where(IntakeBatch.finished_at.is_not(None))).scalars()
        assert sum(finished) == n
    assert sum(counts.values()) == n and counts.get("staged", 0) == 0
    assert counts == {"accepted": n - 2, "quarantined": 2}
    # the summary is the file's: the two batches decided before come back with their earlier counts
    assert out["rows_in"] == n and len(out["batches"]) == 4 and not out["already_registered"]


def test_the_reader_streams_the_file_and_never_holds_it(tmp_path):
    """A file of rows is read one row at a time (a generator), so a million-row file is never in memory."""
    path = tmp_path / "leads.csv"
    write_file(path, 10)
    rows = readers.registration_rows(path)
    assert inspect.isgenerator(rows)
    assert next(rows)["row_number"] == 1
    chunks = intake.file_chunks(readers.registration_rows(path), 4)
    assert inspect.isgenerator(chunks)
    assert [(number, last, len(c)) for number, last, c in chunks] == [(1, False, 4), (2, False, 4), (3, True, 2)]


def test_r_reg_4_chunks_read_ahead_come_in_file_order_and_a_read_error_stops_at_its_chunk():
    """Issue 10: the next chunk is read in a background thread while a batch runs; the batches are still the
    file's chunks in order (R-REG-4: the same file is the same batches), at most one read ahead, and an error
    reading chunk 3 reaches the caller after chunks 1 and 2, at chunk 3, as it did when read in turn."""
    import threading

    from leadflow.intake.readers import IntakeFileError

    asked: list[int] = []

    def chunks():
        for number in (1, 2):
            asked.append(number)
            yield number, False, [{"row_number": number}]
        asked.append(3)
        raise IntakeFileError("leads.csv: row 3 cannot be read.")

    ahead = intake.read_ahead(chunks())
    assert next(ahead)[0] == 1
    got = [1]
    for _ in range(50):  # chunk 2 is read meanwhile, chunk 3 not yet (one ahead)
        if asked == [1, 2]:
            break
        threading.Event().wait(0.01)
    assert asked == [1, 2]
    got.append(next(ahead)[0])
    with pytest.raises(IntakeFileError, match="row 3"):
        next(ahead)
    assert got == [1, 2]


def test_r_val_2_a_jsonl_file_with_half_an_emoji_registers_its_other_rows(ctx, tmp_path):
    """R-VAL-2: a line whose name holds a lone surrogate escape (half an emoji) is quarantined on its own; its
    neighbours are registered, on both databases (found by the fresh-clone trial: the file failed whole)."""
    import json

    lines = [json.dumps({"channel": "hotline", "name": f"客户{i}", "phone": f"1380000{i:04d}", "amount": "30万",
                         "registered_at": (NOW + dt.timedelta(minutes=i)).isoformat(), "registered_by": "k1",
                         "external_ref": f"J-{i}"}, ensure_ascii=True) for i in range(3)]
    lines[1] = lines[1].replace('"name": "', '"name": "\\ud83d', 1)
    path = tmp_path / "leads.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = engine.register_file(ctx, path, "test", NOW)
    assert (out["rows_in"], out["accepted"], out["quarantined"]) == (3, 2, 1)
