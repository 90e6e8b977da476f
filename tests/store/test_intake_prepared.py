"""Issue 10: a file's next chunk is normalised and formatted as COPY text in the read-ahead thread while the run
before works (`intake.prepare_rows`), and its staging then only sends bytes. The staged registrations must be the
very rows staging would have made itself (R-REG-1..3), and a chunk prepared before the people changed is not used."""
from __future__ import annotations

import csv
import datetime as dt

import pytest
from sqlalchemy import func, select

from leadflow import engine as engines
from leadflow.intake import readers
from leadflow.policy import load_policy
from leadflow.stages import intake, people
from leadflow.store.bulk import COPY_THRESHOLD, copy_lines, copy_text
from leadflow.store.models import Registration
from tests.conftest import gated_ctx

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
ORG = [
    {"id": "m1", "department": "d1", "role": "manager"},
    {"id": "s1", "department": "d1", "role": "sales", "grade": "C", "rank": 1},
    {"id": "k1", "department": "d1", "role": "receptionist"}]
HEADER = ["channel", "name", "phone", "amount", "registered_at", "registered_by", "external_ref", "inquiry"]
ODD = ["tab\there", "two\nlines", "back\\slash \\N", "ctrl\x01\x7f", "普通话 ✓ 𝄞", "", " padded ", "x" * 12_000]


def write_file(path, n: int) -> None:
    """`n` rows with hostile text, amounts as people write them, bad and missing times, unknown registrars."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(n):
            w.writerow([("hotline", "web", "自找", "??")[i % 4], ODD[i % len(ODD)] + str(i),
                        "" if i % 13 == 5 else f"138{i % 400:08d}", ("30万", "约85万", "850,000", "", "-1")[i % 5],
                        "not a time" if i % 17 == 3 else (NOW + dt.timedelta(minutes=i)).isoformat(),
                        ("k1", "s1", "nobody", "")[i % 4], "" if i % 3 else f"EX-{i}", ODD[(i + 3) % len(ODD)]])


@pytest.fixture
def ctx(store_engine, store_target):
    with gated_ctx(store_engine, store_target, load_policy(overrides={"intake": {"batch_rows": COPY_THRESHOLD}}),
                   ORG, "test-intake-prepared") as ctx:
        yield ctx


def _staged(conn, batch_id: str) -> list[dict]:
    """The batch's staged rows without their id and batch, in row order."""
    rt = Registration.__table__
    rows = conn.execute(select(rt).where(rt.c.batch_id == batch_id).order_by(rt.c.row_number)).mappings()
    return [{k: v for k, v in r.items() if k not in ("id", "batch_id")} for r in rows]


def _stage_both_ways(ctx, rows, monkeypatch):
    """The same rows staged by `stage_rows` itself (batch "plain") and from `prepare_rows` (batch "prepared"),
    prepared with the store's people and COPY encoding (`intake.preparer`; SQLite keeps the records). Asserts that
    the prepared chunk was used: its COPY text sent as it was on PostgreSQL, its records inserted on SQLite."""
    kept_plain, kept_prepared = [], []
    prepared = intake.preparer(ctx)(rows)
    assert (prepared.pieces is None) == (prepared.records is not None) == (ctx.engine.dialect.name == "sqlite")
    sent: list[int] = []
    real = intake.copy_lines
    monkeypatch.setattr(intake, "copy_lines", lambda conn, table, columns, pieces, ids, same=None:
                        sent.append(len(ids)) or real(conn, table, columns, pieces, ids, same))
    with ctx.engine.begin() as conn:
        intake.stage_rows(conn, ctx, "plain", "test", rows, NOW, keep=kept_plain)
    with ctx.engine.begin() as conn:
        intake.stage_rows(conn, ctx, "prepared", "test", rows, NOW, keep=kept_prepared, prepared=prepared)
    with ctx.engine.connect() as conn:
        staged = _staged(conn, "plain"), _staged(conn, "prepared"), kept_plain, kept_prepared
    assert sent == ([len(rows)] if ctx.engine.dialect.name == "postgresql" else [])
    if prepared.records is not None:  # the very records were inserted, given the batch's constants
        assert {r["batch_id"] for r in prepared.records} == {"prepared"}
    return staged


def test_r_reg_1_issue_10_a_prepared_chunk_stages_the_very_rows_staging_makes_itself(ctx, tmp_path, monkeypatch):
    """R-REG-1..3: hostile text (tabs, newlines, backslashes, `\\N`, control characters, 4-byte characters,
    over-long values cut), amounts as written, bad times and unknown registrars come out of the prepared chunk
    (COPY text on PostgreSQL, normalised records on SQLite) exactly as out of the usual staging, and `decide` is
    handed the same rows."""
    write_file(tmp_path / "leads.csv", COPY_THRESHOLD + 40)
    rows = list(readers.registration_rows(tmp_path / "leads.csv"))
    plain, prepared, kept_plain, kept_prepared = _stage_both_ways(ctx, rows, monkeypatch)
    assert len(plain) == len(rows) and prepared == plain
    assert any("too_long" in r["reasons"] for r in plain) and any("bad_time" in r["reasons"] for r in plain)
    assert {r["by_known"] for r in plain} == {True, False}
    assert [{k: v for k, v in r.items() if k != "id"} for r in kept_prepared] == \
        [{k: v for k, v in r.items() if k != "id"} for r in kept_plain]
    rt = Registration.__table__
    with ctx.engine.connect() as conn:  # and each kept row's id is the id its staged row got
        stored = dict(conn.execute(select(rt.c.id, rt.c.row_number).where(rt.c.batch_id == "prepared")).all())
    assert {r["id"]: r["row_number"] for r in kept_prepared} == stored and len(stored) == len(rows)


def test_r_reg_1_issue_10_a_chunk_prepared_before_the_people_changed_is_normalised_again(ctx, tmp_path):
    """R-REG-1: `by_known` is judged against the people when the batch is staged: a chunk prepared while "nobody"
    was unknown, staged after "nobody" joined, is not used, and their rows read as known."""
    write_file(tmp_path / "leads.csv", COPY_THRESHOLD)
    rows = list(readers.registration_rows(tmp_path / "leads.csv"))
    prepared = intake.preparer(ctx)(rows)
    with ctx.engine.begin() as conn:
        people.load_org(conn, [{"id": "d1", "name": "营销一部"}], [
            {"id": "m1", "department": "d1", "role": "manager"},
            {"id": "s1", "department": "d1", "role": "sales", "grade": "C", "rank": 1},
            {"id": "k1", "department": "d1", "role": "receptionist"},
            {"id": "nobody", "department": "d1", "role": "receptionist"}])
        intake.stage_rows(conn, ctx, "late", "test", rows, NOW, prepared=prepared)
    with ctx.engine.connect() as conn:
        staged = _staged(conn, "late")
    assert {r["by_known"] for r in staged if r["registered_by"] == "nobody"} == {True}


@pytest.mark.postgres
def test_issue_10_copy_lines_sends_nothing_unless_there_is_one_line_per_id(store_engine):
    """Ids are given to the prepared lines in order: text holding more or fewer lines than ids is refused before
    anything is sent, and so is a checked reference (it would go unchecked)."""
    if store_engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    from leadflow.store.models import Ledger

    table = Registration.__table__
    rows = [{"row_number": i, "phone_kind": "missing", "amount_status": "blank", "by_known": True}
            for i in range(3)]
    pieces = copy_text(table, ["row_number", "phone_kind", "amount_status", "by_known"], rows, "utf-8")
    with store_engine.begin() as conn:
        with pytest.raises(ValueError, match="one line per id"):
            copy_lines(conn, table, ["row_number", "phone_kind", "amount_status", "by_known"], pieces, [1, 2])
        with pytest.raises(ValueError, match="references"):
            copy_lines(conn, Ledger.__table__, ["customer_id"], pieces, [1, 2, 3])
        assert conn.execute(select(func.count()).select_from(table)).scalar() == 0
        copy_lines(conn, table, ["row_number", "phone_kind", "amount_status", "by_known"], pieces, [7, 8, 9],
                   same={"batch_id": "b", "staged_at": NOW, "status": "staged"})
        got = conn.execute(select(table.c.id, table.c.row_number, table.c.batch_id, table.c.staged_at)
                           .order_by(table.c.id)).all()
    assert [(i, n, b) for i, n, b, _ in got] == [(7, 0, "b"), (8, 1, "b"), (9, 2, "b")]
    assert {at for *_, at in got} == {NOW.astimezone(dt.timezone.utc)}


def test_r_reg_4_issue_10_a_file_registered_with_chunks_prepared_ahead_counts_every_row_once(ctx, tmp_path,
                                                                                             monkeypatch):
    """R-REG-4, R-VAL-2: a file of three batches (of COPY_THRESHOLD rows) registered by `register_file`, the next
    chunk prepared while a batch runs: rows in = accepted + attached + quarantined over the file, and on
    PostgreSQL every batch of a COPY's size was staged from its prepared chunk."""
    sent: list[int] = []
    real = intake.copy_lines
    monkeypatch.setattr(intake, "copy_lines", lambda conn, table, columns, pieces, ids, same=None:
                        sent.append(len(ids)) or real(conn, table, columns, pieces, ids, same))
    n = 2 * COPY_THRESHOLD + 30
    write_file(tmp_path / "leads.csv", n)
    out = engines.register_file(ctx, tmp_path / "leads.csv", "test", NOW)
    assert out["rows_in"] == n == out["accepted"] + out["attached"] + out["quarantined"]
    assert len(out["batches"]) == 3
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Registration)).scalar() == n
    # the last batch (30 rows) is below a COPY's size: staged the usual way
    assert sent == ([COPY_THRESHOLD, COPY_THRESHOLD] if ctx.engine.dialect.name == "postgresql" else [])
