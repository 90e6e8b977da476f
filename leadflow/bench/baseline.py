"""The raw baseline: what the database itself does with the same rows, on the same server, in the same run.

Three steps, each timed on its own, in a fresh table (a new PostgreSQL schema, dropped after; or a new SQLite file
beside the bench's store, removed after):

1. load: the rows of `baseline.csv` into a fresh table — COPY on PostgreSQL; on SQLite, Python's csv reader and one
   executemany in one transaction (SQLite has no COPY);
2. tier: one `UPDATE … SET tier = CASE …` with the policy's thresholds (R-TIER-1: non-target, unclassified, A–D,
   below D);
3. allocate: one `INSERT … SELECT` handing the leads out round robin over the salespeople, per tier, with
   `row_number()` over a people table.

The baseline reads the amount from a numeric column `amount_yuan` the generator wrote beside the raw one (it knows
the value): parsing "约85万" is the pipeline's work (R-REG-3), not the database's, so the baseline is the database's
bare speed on the same rows — no validation, no dedupe, no ledger, no rule beyond the tier thresholds.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

from leadflow.policy import Policy

TABLE_SQL = ("CREATE TABLE bench_leads (row_number integer PRIMARY KEY, channel text, name text, phone text, "
             "amount text, amount_yuan {numeric}, inquiry text, registered_at {timestamp}, registered_by text, "
             "target {boolean}, region text, external_ref text, tier text)")
PEOPLE_SQL = "CREATE TABLE bench_people (id text PRIMARY KEY, role text, grade text)"
ASSIGN_SQL = "CREATE TABLE bench_assignments (row_number integer PRIMARY KEY, person_id text, tier text)"


def tier_case(policy: Policy) -> str:
    """R-TIER-1 as one SQL CASE over (target, amount_yuan): the policy's thresholds, highest tier first."""
    t = policy.tiers
    return ("CASE WHEN target IS NOT NULL AND NOT target THEN 'non_target' "
            "WHEN target IS NULL OR amount_yuan IS NULL THEN 'unclassified' "
            + " ".join(f"WHEN amount_yuan >= {float(t[g])!r} THEN '{g}'" for g in ("A", "B", "C", "D"))
            + " ELSE 'below_d' END")


ALLOCATE_SQL = """
INSERT INTO bench_assignments (row_number, person_id, tier)
SELECT l.row_number, p.id, l.tier
FROM (SELECT row_number, tier,
             (row_number() OVER (PARTITION BY tier ORDER BY row_number) - 1) % (SELECT count(*) FROM bench_people
                                                                              WHERE role = 'sales') AS turn
      FROM bench_leads) AS l
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS turn FROM bench_people WHERE role = 'sales') AS p
  ON p.turn = l.turn
"""


def measure(engine, path: Path, policy: Policy, people: list[dict]) -> dict:
    """Load `path` (baseline.csv), tier and allocate it with the database's own statements, in a fresh table on the
    server `engine` points at. Returns {"load", "tier", "allocate": seconds, "total": their sum, "rows": rows loaded,
    "allocated": rows allocated}."""
    if engine.dialect.name == "postgresql":
        return _postgresql(engine, path, policy, people)
    return _sqlite(engine, path, policy, people)


def _steps(conn, policy: Policy, people: list[dict], timings: dict) -> None:
    """The tier UPDATE and the allocating INSERT…SELECT (shared: the same SQL on both databases)."""
    from sqlalchemy import text

    conn.execute(text(PEOPLE_SQL))
    conn.execute(text(ASSIGN_SQL))
    conn.execute(text("INSERT INTO bench_people VALUES (:id, :role, :grade)"),  # the org chart: ~45 rows, untimed
                 [{"id": p["id"], "role": p["role"], "grade": p.get("grade")} for p in people])
    t = time.perf_counter()
    conn.execute(text(f"UPDATE bench_leads SET tier = {tier_case(policy)}"))
    timings["tier"] = time.perf_counter() - t
    t = time.perf_counter()
    conn.execute(text(ALLOCATE_SQL))
    timings["allocate"] = time.perf_counter() - t


def _counts(conn) -> tuple[int, int]:
    return (conn.exec_driver_sql("SELECT count(*) FROM bench_leads").scalar(),
            conn.exec_driver_sql("SELECT count(*) FROM bench_assignments").scalar())


def _postgresql(engine, path: Path, policy: Policy, people: list[dict]) -> dict:
    from sqlalchemy import text

    from leadflow.store.db import create_schema, drop_schema, make_engine

    url = engine.url.render_as_string(hide_password=False)
    schema = create_schema(url, prefix="bench_baseline")
    own = make_engine(url, schema=schema)
    timings: dict = {}
    try:
        with own.begin() as conn:
            conn.execute(text(TABLE_SQL.format(numeric="numeric", timestamp="timestamp", boolean="boolean")))
        with own.begin() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            t = time.perf_counter()
            with open(path, encoding="utf-8") as f:
                cursor.copy_expert(f"COPY bench_leads ({', '.join(_columns(path))}) FROM STDIN WITH (FORMAT csv, "
                                   "HEADER true)", f)
            timings["load"] = time.perf_counter() - t
            cursor.close()
        with own.begin() as conn:
            _steps(conn, policy, people, timings)
        with own.connect() as conn:
            rows, allocated = _counts(conn)
    finally:
        own.dispose()
        drop_schema(url, schema)
    return _result(timings, rows, allocated)


def _sqlite(engine, path: Path, policy: Policy, people: list[dict]) -> dict:
    from leadflow.store.db import make_engine

    database = Path(engine.url.database or "bench.db")
    file = database.with_name(database.stem + "-baseline.db")
    file.unlink(missing_ok=True)
    own = make_engine(f"sqlite:///{file}")
    timings: dict = {}
    try:
        with own.begin() as conn:
            conn.exec_driver_sql(TABLE_SQL.format(numeric="real", timestamp="text", boolean="integer"))
        columns = _columns(path)
        insert = f"INSERT INTO bench_leads ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        t = time.perf_counter()
        with own.begin() as conn, open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            next(reader)
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.executemany(insert, (_sqlite_row(r) for r in reader))  # streamed: one statement, one transaction
            cursor.close()
        timings["load"] = time.perf_counter() - t
        with own.begin() as conn:
            _steps(conn, policy, people, timings)
        with own.connect() as conn:
            rows, allocated = _counts(conn)
    finally:
        own.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{file}{suffix}").unlink(missing_ok=True)
    return _result(timings, rows, allocated)


def _columns(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return next(csv.reader(f))


def _sqlite_row(r: list[str]) -> list:
    """A CSV row as SQLite values: blanks as NULL, the amount as a number, the flag as 1/0."""
    out: list = [v if v != "" else None for v in r]
    out[0] = int(r[0])
    out[5] = float(r[5]) if r[5] else None
    out[9] = {"t": 1, "f": 0}.get(r[9])
    return out


def _result(timings: dict, rows: int, allocated: int) -> dict:
    return {**{k: round(timings[k], 4) for k in ("load", "tier", "allocate")},
            "total": round(sum(timings[k] for k in ("load", "tier", "allocate")), 4), "rows": rows,
            "allocated": allocated}
