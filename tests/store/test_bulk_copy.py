"""Bulk writes keep every value exactly (issue 8.5: a hostile cell never changes meaning on the way in)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Column, DateTime, Integer, MetaData, Table, Text, select

from leadflow.store.bulk import COPY_THRESHOLD, insert_rows


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
