"""Bulk writes: COPY on PostgreSQL, executemany elsewhere — never one statement per row."""
from __future__ import annotations

import datetime as dt
import io
import json

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from leadflow.privacy import masked_driver_error

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


def _quoted(value) -> str:
    return '"' + str(value).replace('"', '""') + '"'


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
    for row in rows:  # every value quoted, NULL the only unquoted \N: a cell that is literally \N stays text
        buf.write(",".join("\\N" if (v := _copy_value(row[c])) is None else _quoted(v) for c in columns))
        buf.write("\n")
    buf.seek(0)
    cols = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(f'COPY "{table.name}" ({cols}) FROM STDIN WITH (FORMAT csv, NULL \'\\N\')', buf)
    except Exception as e:  # R-REG-7: a COPY error quotes the failing row (its CONTEXT line): masked, no chain
        raise masked_driver_error(e) from None
    finally:
        cursor.close()
    return len(rows)


def claim(conn: Connection, table: Table, values: dict) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on the primary key: True when this call claimed the row, False when
    another run had (the database decides, whatever the timing of concurrent runs)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    result = conn.execute(insert(table).values(**values).on_conflict_do_nothing())
    return result.rowcount == 1
