"""Bulk writes: COPY on PostgreSQL, executemany elsewhere — never one statement per row."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json

from sqlalchemy import Table
from sqlalchemy.engine import Connection

COPY_THRESHOLD = 500


def _copy_value(value):
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "t" if value else "f"
    return value


def insert_rows(conn: Connection, table: Table, rows: list[dict]) -> int:
    """Insert `rows` (all with the same keys) in one round trip where the database allows."""
    if not rows:
        return 0
    if conn.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        conn.execute(table.insert(), rows)
        return len(rows)
    defaults = {c.name: c.default.arg for c in table.columns
                if c.default is not None and c.default.is_scalar and c.name not in rows[0]}
    columns = list(rows[0].keys()) + list(defaults)  # COPY skips the ORM's Python-side defaults: apply them
    rows = [{**row, **defaults} for row in rows] if defaults else rows
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow(["\\N" if (v := _copy_value(row[c])) is None else v for c in columns])
    buf.seek(0)
    cols = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(f'COPY "{table.name}" ({cols}) FROM STDIN WITH (FORMAT csv, NULL \'\\N\')', buf)
    finally:
        cursor.close()
    return len(rows)
