"""Issue 10: the C-speed COPY (COPY's text format built with str.join, JSON by orjson) keeps every value exactly —
on PostgreSQL a batch of COPY_THRESHOLD rows or more goes through `_copy`, on SQLite through executemany (with the
engines' orjson `json_serializer`): the same values must come back from both."""
from __future__ import annotations

import datetime as dt
import json
import pickle

import pytest
from sqlalchemy import JSON, BigInteger, Boolean, Column, Float, Integer, MetaData, String, Table, Text, bindparam, select

from leadflow.store import ledger
from leadflow.store.bulk import COPY_THRESHOLD, insert_rows, json_text, update_rows
from leadflow.store.models import Ledger, UTCDateTime

UTC = dt.timezone.utc
HOSTILE = ["\\N", "", None, "None", "NULL", 'say "hi", then\nleave', "a\r\nb\rc", "tab\there", "\\", "\\\\N",
           "ctrl\x01\x1f\x7f", " lead and trail ", ",", '"', '""', "=1+2", "普通话 ✓ 𝄞", "\u00a0nbsp", "'"]
DOCS = [None, {}, [], {"registration": 1, "reasons": ["R-REG-3", "dup"]}, {"名": "张三", "q": 'a "b", c\n'},
        {"nested": {"deep": [1, 2.5, -0.0, True, False, None, "\\N"]}}, ["r", 7], {"big": 2 ** 70},
        {"f": 0.1, "e": 1e-07, "n": -3}, "just text", 12]
OFFSETS = [dt.timezone(dt.timedelta(hours=8)), dt.timezone(dt.timedelta(hours=-5, minutes=-30)), UTC]


def _probe(engine, name: str) -> Table:
    meta = MetaData()
    table = Table(name, meta, Column("id", Integer, primary_key=True), Column("txt", Text),
                  Column("at", UTCDateTime), Column("data", JSON), Column("flag", Boolean),
                  Column("amount", Float), Column("n", BigInteger))
    meta.create_all(engine)
    return table


def _rows(n: int) -> list[dict]:
    base = dt.datetime(2026, 3, 2, 9, 30, 15, 123456)
    return [{"id": i, "txt": HOSTILE[i % len(HOSTILE)],
             "at": None if i % 7 == 3 else (base + dt.timedelta(minutes=i)).replace(tzinfo=OFFSETS[i % 3]),
             "data": DOCS[i % len(DOCS)], "flag": None if i % 5 == 4 else i % 2 == 0,
             "amount": None if i % 4 == 1 else i / 3, "n": None if i % 6 == 5 else (i - 250) * 10 ** 12}
            for i in range(n)]


def _expected(row: dict) -> dict:
    """What reading back gives: the same instants in UTC (the store's UTCDateTime), JSON as json.dumps then
    json.loads would give (int keys become str keys)."""
    at = row["at"]
    data = row["data"]
    return {**row, "at": None if at is None else at.astimezone(UTC),
            "data": None if data is None else json.loads(json.dumps(data))}


def test_issue_10_r_reg_7_hostile_text_times_and_json_come_back_exactly_through_insert_rows(store_engine):
    """NULL, '', a literal `\\N`, quotes, newlines, CR, tabs, control characters, commas, non-ASCII, times with
    offsets (stored as UTC) and JSON documents (nested, non-ASCII, ints beyond 64 bits) survive the bulk path."""
    table = _probe(store_engine, "copy_values_probe")
    rows = _rows(COPY_THRESHOLD + len(HOSTILE) * len(DOCS))
    with store_engine.begin() as conn:
        assert insert_rows(conn, table, rows) == len(rows)
    with store_engine.connect() as conn:
        back = {r.id: r._asdict() for r in conn.execute(select(table))}
    for row in rows:
        got = back[row["id"]]
        assert got == _expected(row), row["id"]
        assert got["at"] is None or got["at"].tzinfo == UTC
    assert [back[i]["txt"] for i in range(len(HOSTILE))] == HOSTILE  # None is the only NULL


def test_issue_10_one_column_and_one_type_per_column_batches_copy_too(store_engine):
    """A single-column batch (itemgetter gives scalars, not tuples) and columns holding only None."""
    meta = MetaData()
    table = Table("copy_one_column", meta, Column("id", Integer, primary_key=True, autoincrement=True),
                  Column("txt", String(20)))
    meta.create_all(store_engine)
    texts = [None, "", "\\N", "x,y", "普通"] * (COPY_THRESHOLD // 5 + 1)
    with store_engine.begin() as conn:
        insert_rows(conn, table, [{"txt": t} for t in texts])
    with store_engine.connect() as conn:
        assert [r.txt for r in conn.execute(select(table).order_by(table.c.id))] == texts
    if store_engine.dialect.name == "postgresql":  # one row of one empty str: COPY's text is a single empty line
        from leadflow.store.bulk import _copy

        with store_engine.begin() as conn:
            _copy(conn, table.name, ["txt"], [{"txt": ""}])
            _copy(conn, table.name, ["txt"], [{"txt": None}])
        with store_engine.connect() as conn:
            assert [r.txt for r in conn.execute(select(table).order_by(table.c.id))][-2:] == ["", None]


@pytest.mark.postgres
def test_r_reg_7_a_value_copy_cannot_send_fails_without_carrying_the_batch(store_engine):
    """A NUL character or a lone surrogate (PostgreSQL's text holds neither) fails the batch with a sentence that
    names no value: no phone from the other rows travels with the error (R-REG-7)."""
    if store_engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    meta = MetaData()
    table = Table("copy_bad_text", meta, Column("id", Integer, primary_key=True), Column("txt", Text))
    meta.create_all(store_engine)
    for bad in ["nul\x00inside", "lone \ud800 surrogate"]:
        rows = [{"id": i, "txt": PHONE} for i in range(COPY_THRESHOLD)] + [{"id": COPY_THRESHOLD, "txt": bad}]
        with pytest.raises(ValueError) as caught:
            with store_engine.begin() as conn:
                insert_rows(conn, table, rows)
        error = caught.value
        assert PHONE not in pickle.dumps(error).decode("latin-1") and PHONE not in str(error)
        assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_issue_10_update_rows_keeps_null_empty_and_literal_null_marker_distinct(store_engine):
    """update_rows (COPY into a scratch table, then UPDATE … FROM on PostgreSQL) with the same hostile values."""
    table = _probe(store_engine, "copy_update_probe")
    n = COPY_THRESHOLD + 40
    with store_engine.begin() as conn:
        insert_rows(conn, table, [{"id": i, "txt": "old", "at": None, "data": {"old": True}, "flag": True,
                                   "amount": 1.0, "n": 1} for i in range(n)])
    changed = _rows(n)[::-1]
    with store_engine.begin() as conn:
        assert update_rows(conn, table, "id", changed) == n
    with store_engine.connect() as conn:
        back = {r.id: r._asdict() for r in conn.execute(select(table))}
    for row in changed:
        assert back[row["id"]] == _expected(row), row["id"]


def test_r_alloc_7_ledger_explanations_round_trip_through_the_bulk_append(store_engine):
    """R-ALLOC-7: the ledger's explanations read back equal to what was appended (json.dumps semantics: int keys
    become str keys), whichever encoder wrote them, and `at` keeps its instant."""
    at = dt.datetime(2026, 3, 2, 17, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    explanations = [{"tier": "A", "week_order": ["d1", "d2"], "scores": {1: 0.5, 2: 1.25}, "why": "轮换 \"A\"\n"},
                    {"registration": 7, "reasons": []}, None, {"big": 2 ** 64 + 1, "n": None}]
    entries = [ledger.entry(at, "R-ALLOC-2", "allocate", f"entry {i}", person_id="s101",
                            explanation=explanations[i % len(explanations)]) for i in range(COPY_THRESHOLD + 3)]
    with store_engine.begin() as conn:
        assert ledger.append(conn, entries, "v1", None) == len(entries)
    t = Ledger.__table__
    with store_engine.connect() as conn:
        back = list(conn.execute(select(t.c.reason, t.c.explanation, t.c.at).order_by(t.c.id)))
    assert [r.reason for r in back] == [e["reason"] for e in entries]
    assert [r.explanation for r in back] == [json.loads(json.dumps(e["explanation"])) for e in entries]
    assert back[0].explanation["scores"] == {"1": 0.5, "2": 1.25}
    assert {r.at.astimezone(UTC) for r in back} == {at}


def test_issue_10_json_text_encodes_like_json_dumps_and_refuses_what_it_refused():
    """orjson where it can, json.dumps where orjson refuses (non-str keys, ints beyond 64 bits); a datetime in a
    document stays a TypeError (as with json.dumps), not a silently stored string."""
    for doc in [*DOCS, {1: "a", None: "b", True: "c", 2.5: "d"}, {"s": "\ud800"}]:
        assert json.loads(json_text(doc)) == json.loads(json.dumps(doc, ensure_ascii=False))
    assert json_text({"名": "张"}) == '{"名":"张"}'  # non-ASCII kept, not escaped
    with pytest.raises(TypeError):
        json_text({"at": dt.datetime(2026, 1, 1, tzinfo=UTC)})
    with pytest.raises(TypeError):
        json_text({"x": object()})


PHONE = "13800138000"


@pytest.mark.postgres
def test_r_reg_7_a_copy_error_stays_masked_when_the_phone_is_in_a_json_or_text_cell(store_engine):
    """R-REG-7: the failing row's CONTEXT line quotes the phone from a text and a JSON cell: masked, no chain."""
    if store_engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    meta = MetaData()
    table = Table("copy_mask_probe", meta, Column("id", Integer, primary_key=True), Column("note", String(5)),
                  Column("data", JSON))
    meta.create_all(store_engine)
    rows = [{"id": i, "note": "ok", "data": {"phone": PHONE}} for i in range(COPY_THRESHOLD)]
    rows[-1] = {"id": COPY_THRESHOLD, "note": f"{PHONE}!", "data": {"phone": PHONE}}  # too long for varchar(5)
    with pytest.raises(Exception) as caught:
        with store_engine.begin() as conn:
            insert_rows(conn, table, rows)
    error = caught.value
    assert getattr(error, "pgcode", None) == "22001"
    texts = [str(error), pickle.dumps(error).decode("latin-1"), str(getattr(error, "pgerror", "") or "")]
    assert all(PHONE not in text for text in texts) and "COPY" in str(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_issue_10_the_engines_encode_json_columns_with_orjson_on_executemany_too(store_engine):
    """A small batch (executemany, both databases) goes through the engines' `json_serializer` (json_text): the
    stored text is orjson's compact form, and it reads back equal."""
    table = _probe(store_engine, "json_serializer_probe")
    docs = [{"名": "张三", "n": [1, 2.5, None]}, {1: "int key"}, ["x"]]
    with store_engine.begin() as conn:
        insert_rows(conn, table, [{"id": i, "data": d} for i, d in enumerate(docs)])
    cast = "::text" if store_engine.dialect.name == "postgresql" else ""
    with store_engine.connect() as conn:
        raw = [r[0] for r in conn.exec_driver_sql(f"SELECT data{cast} FROM json_serializer_probe ORDER BY id")]
        back = [r.data for r in conn.execute(select(table.c.data).order_by(table.c.id))]
    assert raw[0] == '{"名":"张三","n":[1,2.5,null]}'  # json.dumps would have written ", " and ": "
    assert back == [json.loads(json.dumps(d)) for d in docs]


def test_issue_10_python_side_defaults_fill_every_copied_row(store_engine):
    """COPY skips the ORM's Python-side defaults: insert_rows applies a column's scalar default to every row
    that does not give the column (as executemany does), without copying each row's dict."""
    meta = MetaData()
    table = Table("copy_defaults", meta, Column("id", Integer, primary_key=True), Column("state", String(8),
                  default="new"), Column("flag", Boolean, default=False), Column("data", JSON, default=None))
    meta.create_all(store_engine)
    rows = [{"id": i} for i in range(COPY_THRESHOLD + 1)]
    with store_engine.begin() as conn:
        insert_rows(conn, table, rows)
    with store_engine.connect() as conn:
        got = {(r.state, r.flag, r.data) for r in conn.execute(select(table))}
    assert got == {("new", False, None)} and rows[0] == {"id": 0}


@pytest.mark.parametrize("size", [3, COPY_THRESHOLD + 7], ids=["few rows", "COPY"])
def test_r_alloc_7_values_shared_by_every_row_are_written_in_every_row(store_engine, size):
    """`insert_rows(same=…)`: a run's time, JSON and text given once land in each row exactly, beside the rows'
    own values (the ledger's policy version and recorded time)."""
    table = _probe(store_engine, "probe_same")
    at = dt.datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=OFFSETS[0])
    rows = [{"id": i, "txt": HOSTILE[i % len(HOSTILE)], "amount": i / 3} for i in range(size)]
    with store_engine.begin() as conn:
        assert insert_rows(conn, table, rows, same={"at": at, "data": DOCS[5], "flag": True, "n": None}) == size
    with store_engine.connect() as conn:
        back = [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]
    assert back == [{**r, "at": at, "data": DOCS[5], "flag": True, "n": None} for r in rows]
    assert "at" not in rows[0]  # the caller's rows are not changed


def test_issue_10_sqlite_bulk_path_stores_exactly_what_sqlalchemy_would(tmp_path):
    """On SQLite a large insert or update goes to the driver directly (`_executemany`, one bind processor call per
    distinct value): the stored values — times as text, JSON, booleans, NULL against 'null' — are byte for byte
    those SQLAlchemy's own executemany stores, so every comparison in SQL reads them alike."""
    from leadflow.store.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'same.db'}")
    ours, theirs = _probe(engine, "bulk_ours"), _probe(engine, "bulk_theirs")
    rows = _rows(COPY_THRESHOLD + 3 * len(DOCS))
    with engine.begin() as conn:
        insert_rows(conn, ours, rows)
        conn.execute(theirs.insert(), rows)
    changed = [{"id": r["id"], "txt": HOSTILE[(r["id"] + 1) % len(HOSTILE)], "data": DOCS[(r["id"] + 2) % len(DOCS)],
                "at": r["at"], "flag": not r["flag"] if r["flag"] is not None else None} for r in rows]
    with engine.begin() as conn:
        update_rows(conn, ours, "id", changed)
        conn.execute(theirs.update().where(theirs.c.id == bindparam("_id")).values(
            txt=bindparam("_txt"), data=bindparam("_data"), at=bindparam("_at"), flag=bindparam("_flag")),
            [{"_id": r["id"], "_txt": r["txt"], "_data": r["data"], "_at": r["at"], "_flag": r["flag"]} for r in changed])
    with engine.connect() as conn:
        raw = [conn.exec_driver_sql(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in ("bulk_ours", "bulk_theirs")]
    assert raw[0] == raw[1] and len(raw[0]) == len(rows)
    engine.dispose()
