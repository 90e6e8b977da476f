"""Bulk writes keep every value exactly (issue 8.5: a hostile cell never changes meaning on the way in)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Column, DateTime, Integer, MetaData, Table, Text, select

from leadflow.store.bulk import _PIECE_ROWS, COPY_THRESHOLD, insert_rows


def test_issue_8_5_a_cell_that_reads_null_or_is_empty_stays_what_it_was_through_copy(store_engine):
    """On PostgreSQL a batch this size goes through COPY; `\\N`, `""`, quotes, commas and newlines are text
    there, and only None is NULL (SQLite takes the executemany path with the same outcome)."""
    meta = MetaData()
    table = Table("bulk_probe", meta, Column("id", Integer, primary_key=True), Column("txt", Text),
                  Column("flag", Boolean), Column("at", DateTime(timezone=True)), Column("data", JSON))
    meta.create_all(store_engine)
    texts = ["\\N", "", None, 'say "hi", then\nleave', "=1+2", "NULL", "普通"]
    at = dt.datetime(2026, 3, 2, 9, tzinfo=dt.timezone.utc)
    rows = [{"id": i, "txt": texts[i % len(texts)], "flag": i % 2 == 0, "at": at, "data": {"i": i, "t": "\\N"}}
            for i in range(COPY_THRESHOLD + 10)]
    with store_engine.begin() as conn:
        assert insert_rows(conn, table, rows) == len(rows)
    with store_engine.connect() as conn:
        back = {r.id: r for r in conn.execute(select(table))}
    assert [back[i].txt for i in range(len(texts))] == texts
    assert all(back[r["id"]].flag == r["flag"] and back[r["id"]].data == r["data"] for r in rows)


def test_issue_10_update_rows_sets_each_rows_values_in_one_statement_whatever_the_count(store_engine):
    """Issue 10 (set-based writes, R-ALLOC-7's bulk outcomes): `update_rows` changes exactly the rows named by
    their key, keeps hostile text, JSON and times exact, and on PostgreSQL sends one UPDATE … FROM for a large
    set (psycopg2's executemany would be one round trip per row)."""
    from sqlalchemy import event

    from leadflow.store.bulk import update_rows

    meta = MetaData()
    table = Table("bulk_update_probe", meta, Column("id", Integer, primary_key=True), Column("txt", Text),
                  Column("at", DateTime(timezone=True)), Column("data", JSON))
    meta.create_all(store_engine)
    n = COPY_THRESHOLD * 2 + 7
    with store_engine.begin() as conn:
        insert_rows(conn, table, [{"id": i, "txt": "old", "at": None, "data": None} for i in range(n)])
    at = dt.datetime(2026, 3, 2, 9, tzinfo=dt.timezone.utc)
    changed = [{"id": i, "txt": ['\\N', 'a "b", c', "普通"][i % 3], "at": at, "data": ["r", i]}
               for i in range(0, n, 2)]
    updates: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    event.listen(store_engine, "before_cursor_execute", count)
    try:
        with store_engine.begin() as conn:
            assert update_rows(conn, table, "id", changed) == len(changed)
    finally:
        event.remove(store_engine, "before_cursor_execute", count)
    assert len(updates) == 1  # one statement: UPDATE … FROM on PostgreSQL, one executemany on SQLite
    with store_engine.connect() as conn:
        back = {r.id: r for r in conn.execute(select(table))}
    for row in changed:
        got = back[row["id"]]
        assert (got.txt, got.data) == (row["txt"], row["data"])
        assert got.at.replace(tzinfo=dt.timezone.utc) == at
    assert all(back[i].txt == "old" and back[i].at is None for i in range(1, n, 2))


def test_issue_10_an_interrupt_while_rows_stream_into_copy_is_the_interrupt_not_a_database_error(store_engine):
    """A Ctrl-C or `kill` (KeyboardInterrupt) that lands while COPY reads the next rows (on PostgreSQL they are made
    inside the driver's read) reaches the caller as itself, so the command ends "interrupted." and cleans up —
    not as the driver's QueryCanceled, which read as a bug (found by the fresh-clone trial). Nothing is written."""
    import pytest

    meta = MetaData()
    table = Table("bulk_interrupt_probe", meta, Column("id", Integer, primary_key=True), Column("txt", Text))
    meta.create_all(store_engine)

    n = 3 * _PIECE_ROWS  # the interrupt lands in the third piece: read by the driver, inside its COPY

    def rows():
        for i in range(n):
            if i == 2 * _PIECE_ROWS + 7:
                raise KeyboardInterrupt
            yield {"id": i, "txt": f"row {i}"}

    with pytest.raises(KeyboardInterrupt):
        with store_engine.begin() as conn:
            insert_rows(conn, table, rows(), n)
    with store_engine.connect() as conn:
        assert conn.execute(select(table)).all() == []
