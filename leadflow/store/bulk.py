"""Bulk writes: COPY on PostgreSQL, executemany elsewhere — never one statement per row."""
from __future__ import annotations

import datetime as dt
import io
import itertools
import json
from collections.abc import Iterable

from sqlalchemy import Table, bindparam
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
    _copy(conn, table.name, columns, rows)
    return len(rows)


def _copy(conn: Connection, table_name: str, columns: list[str], rows: Iterable[dict]) -> None:
    """COPY `rows` (dicts with at least `columns`) into `table_name` (resolved on the search path)."""
    memo: dict = {}  # an instant in many rows (a run's `now`) is converted to UTC text once

    def field(v) -> str:  # _quoted(_copy_value(v)), or \N, with the common types first (issue 10: a hot loop)
        cls = v.__class__
        if cls is str:
            return '"' + v.replace('"', '""') + '"'
        if v is None:
            return "\\N"
        if cls is int or cls is float:
            return '"' + str(v) + '"'
        if cls is dt.datetime:
            out = memo.get(v)
            if out is None:
                out = memo[v] = _quoted(_copy_value(v))
            return out
        v = _copy_value(v)
        return "\\N" if v is None else _quoted(v)

    buf = io.StringIO()
    for row in rows:  # every value quoted, NULL the only unquoted \N: a cell that is literally \N stays text
        buf.write(",".join([field(row[c]) for c in columns]))
        buf.write("\n")
    buf.seek(0)
    cols = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(f'COPY "{table_name}" ({cols}) FROM STDIN WITH (FORMAT csv, NULL \'\\N\')', buf)
    except Exception as e:  # R-REG-7: a COPY error quotes the failing row (its CONTEXT line): masked, no chain
        raise masked_driver_error(e) from None
    finally:
        cursor.close()


_SCRATCH = itertools.count(1)


def update_rows(conn: Connection, table: Table, key: str, rows: list[dict]) -> int:
    """Set each row's other columns on the `table` row whose `key` column equals the row's `key` value.

    `rows`: dicts with the same keys, `key` among them. On PostgreSQL a large set is COPYed into a scratch table
    and applied with one UPDATE … FROM (psycopg2's executemany is one round trip per row); elsewhere, and for a
    few rows, one executemany (SQLite runs in process). Returns the number of rows given."""
    if not rows:
        return 0
    columns = [c for c in rows[0] if c != key]
    if conn.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        stmt = table.update().where(table.c[key] == bindparam("_key")).values(
            {c: bindparam(f"_v_{c}") for c in columns})
        conn.execute(stmt, [{"_key": r[key], **{f"_v_{c}": r[c] for c in columns}} for r in rows])
        return len(rows)
    scratch = f"_lf_update_{next(_SCRATCH)}"
    names = ", ".join(f'"{c}"' for c in [key, *columns])
    conn.exec_driver_sql(f'CREATE TEMPORARY TABLE "{scratch}" ON COMMIT DROP AS SELECT {names} '
                         f'FROM "{table.name}" WITH NO DATA')
    _copy(conn, scratch, [key, *columns], rows)
    sets = ", ".join(f'"{c}" = u."{c}"' for c in columns)
    conn.exec_driver_sql(f'UPDATE "{table.name}" AS t SET {sets} FROM "{scratch}" AS u WHERE t."{key}" = u."{key}"')
    conn.exec_driver_sql(f'DROP TABLE "{scratch}"')
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
