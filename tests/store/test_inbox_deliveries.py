"""Issue 9.3 with issue 10's batches: a registration file larger than `intake.batch_rows` is registered in several
batches, and the inbox must judge and describe the whole file — its rows in, what was taken, every quarantined
row — not only its last batch (R-REG-4: one file is one delivery; R-VAL-2: each bad row with its reasons)."""
from __future__ import annotations

import csv
import datetime as dt

import pytest

from leadflow import engine, inbox
from leadflow.policy import load_policy
from tests.conftest import gated_ctx

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
ORG = [
    {"id": "m1", "department": "d1", "role": "manager"},
    {"id": "s1", "department": "d1", "role": "sales", "grade": "C", "rank": 1},
    {"id": "k1", "department": "d1", "role": "receptionist"}]


def write_file(path, n: int, bad) -> None:
    """`n` rows; the rows whose index is in `bad` have no phone (quarantined, R-VAL-2)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["channel", "name", "phone", "amount", "registered_at", "registered_by", "external_ref"])
        for i in range(n):
            w.writerow(["hotline", f"客户{i}", "" if i in bad else f"138{i:08d}", "30万",
                        (NOW + dt.timedelta(minutes=i)).isoformat(), "k1", f"HL-{i:05d}"])


@pytest.fixture
def ctx(store_engine, store_target):
    with gated_ctx(store_engine, store_target, load_policy(overrides={"intake": {"batch_rows": 7}}), ORG,
                   "test-inbox-deliveries") as ctx:
        yield ctx


def test_issue9_3_r_val_2_a_file_of_several_batches_whose_last_is_all_bad_is_taken_and_counted_whole(ctx, tmp_path):
    """16 rows in batches of 7, 7 and 2; rows 3 and the last two (the whole last batch) quarantined: the file was
    taken (done/, not rejected/), 16 rows in, 13 taken, and its note lists all three bad rows in file order."""
    path = tmp_path / "leads.csv"
    write_file(path, 16, bad={3, 14, 15})
    out = engine.register_file(ctx, path, "inbox", NOW)
    assert len(out["batches"]) == 3 and out["quarantined"] == 3
    with ctx.engine.connect() as conn:
        d = inbox.deliveries(conn, [inbox.digest(path)])[inbox.digest(path)]
    assert (d.rows_in, d.taken) == (16, 13)
    assert [p.split(":")[0] for p in d.problems] == ["row 4", "row 15", "row 16"]
    assert inbox.verdict(d) == inbox.DONE


def test_issue9_3_a_file_of_several_batches_with_every_row_bad_is_nothing_taken(ctx, tmp_path):
    """Every row of every batch quarantined: rejected, with the file's whole count in its sentence."""
    path = tmp_path / "leads.csv"
    write_file(path, 9, bad=set(range(9)))
    engine.register_file(ctx, path, "inbox", NOW)
    with ctx.engine.connect() as conn:
        d = inbox.deliveries(conn, [inbox.digest(path)])[inbox.digest(path)]
    assert (d.rows_in, d.taken, len(d.problems)) == (9, 0, 9)
    assert inbox.verdict(d) == inbox.REJECTED
    assert inbox.nothing_taken(d) == "nothing taken: every one of its 9 rows was quarantined (R-VAL-2)."


def test_issue9_3_a_file_whose_last_batch_is_not_finished_is_not_yet_delivered(ctx, tmp_path):
    """A file is delivered when its last batch is finished (a crash mid-file leaves the earlier ones finished):
    until then the inbox knows nothing of it, and leaves it to be tried again."""
    from sqlalchemy import update

    from leadflow.store.models import IntakeBatch

    path = tmp_path / "leads.csv"
    write_file(path, 16, bad=set())
    out = engine.register_file(ctx, path, "inbox", NOW)
    with ctx.engine.begin() as conn:
        conn.execute(update(IntakeBatch).where(IntakeBatch.id == out["batches"][-1]).values(finished_at=None))
        assert inbox.deliveries(conn, [inbox.digest(path)]) == {}


def test_r_val_3_r_reg_4_a_first_delivery_refused_as_a_whole_is_not_already_registered(ctx, tmp_path):
    """R-VAL-3: a file whose every batch is broken as a whole (every row bad, 30 rows: judged by its share) is
    quarantined and said so on its first delivery — not `already_registered`, which only its second delivery is
    (R-REG-4) (found by the fresh-clone trial)."""
    import dataclasses

    path = tmp_path / "leads.csv"
    write_file(path, 30, bad=set(range(30)))
    wide = dataclasses.replace(ctx, policy=load_policy(overrides={"intake": {"batch_rows": 50}}))
    first = engine.register_file(wide, path, "inbox", NOW)
    assert first["quarantined"] == 30 and first["errors"] and first["already_registered"] is False
    again = engine.register_file(wide, path, "inbox", NOW)
    assert again["already_registered"] is True and again["quarantined"] == 30
