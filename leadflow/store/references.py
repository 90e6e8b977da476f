"""References of the high-volume tables, checked per batch instead of per row (issue 10, migrations 0007, 0010).

A foreign key checks each written row on its own: a lookup and a row lock on the referenced row, about 10 µs, nine
times per lead on its way in. The rows referenced here are never deleted (customers and assignments stay; a person
who leaves is marked departed, R-CONV-6; departments stay), so what a foreign key guarantees reduces to "every id
written exists". `check` proves that for a whole bulk write with one statement for every referenced table, inside
the writer's transaction: a write naming a missing id fails (`MissingReference`, one sentence) and the transaction
with it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from leadflow.store.arrays import any_of

# table -> {column: referenced table (by its `id`)}: the references migrations 0007 and 0010 took out of the schema
CHECKED: dict[str, dict[str, str]] = {
    "registrations": {"customer_id": "customers"},
    "customers": {"owner_id": "people", "department_id": "departments"},
    "customer_phones": {"customer_id": "customers"},
    "assignments": {"customer_id": "customers", "person_id": "people", "department_id": "departments"},
    "ledger": {"customer_id": "customers"},
    # migration 0010: the SLA breaches and audit listings (R-SLA-1..5), tens of thousands per run at 1 M leads
    "breaches": {"customer_id": "customers", "person_id": "people", "assignment_id": "assignments"},
}

_IN_LIST = 5000  # values per IN list on SQLite (each is a bound variable)


class MissingReference(ValueError):
    """A write names a customer, person or department that does not exist. The message is one sentence with
    the table, the column and up to three of the missing ids (ids only: never a phone)."""


def check(conn: Connection, table: str, rows: Iterable[Mapping]) -> None:
    """Raise MissingReference when a row of `rows` (about to be, or just, written to `table` in this
    transaction) names an id absent from the referenced table. `rows`: mappings with the same keys; the
    columns of CHECKED[table] among them are checked, None allowed. Nothing for a table without checked
    references. One statement, whatever the number of rows and referenced tables (a second only when a run
    of ids has a gap in the table: `_counts`); none for ids an earlier check in this transaction proved
    (`_verified`)."""
    refs = CHECKED.get(table)
    if not refs:
        return
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return
    wanted: dict[str, tuple[str, set]] = {}
    for column, referred in refs.items():
        if column not in rows[0]:
            continue
        values = {r[column] for r in rows}
        values.discard(None)
        if values:
            _, seen = wanted.setdefault(referred, (column, set()))
            seen.update(values)
    verified = _verified(conn)
    wanted = {referred: (column, values) for referred, (column, values) in wanted.items()
              if not values <= verified.get(referred, frozenset())}
    if not wanted:
        return
    counts, expected = [], []  # one scalar subquery each, and the count it gives when every id is there
    for referred, (_, values) in wanted.items():
        for query, n in _counts(conn, referred, values):
            counts.append(query)
            expected.append((referred, n))
    found = conn.execute(select(*counts)).one()
    short = {referred for (referred, n), got in zip(expected, found) if got != n}
    for referred, (column, values) in wanted.items():
        if referred not in short:
            continue
        missing = sorted(values - _found(conn, referred, values), key=str)[:3]
        if missing:  # (else a run had a gap the values are not in: all there)
            raise MissingReference(f"{table}.{column} names {referred} that do not exist: "
                                   f"{', '.join(map(str, missing))}.")
    verified = _verified(conn)  # (the statement above may have begun the transaction)
    for referred, (_, values) in wanted.items():
        verified[referred] = values


def proved(conn: Connection, ids: Mapping[str, Iterable]) -> None:
    """Record, for the rest of this transaction, ids of referenced tables ({referred table: ids}) that the
    transaction read from the store: from the table itself, or from a checked column (CHECKED) of a row it read,
    whose reference was proved when that row was written. The rows referenced are never deleted, so these ids
    exist, and a write naming only them needs no statement (`check`). Issue 10: the SLA check's breaches and
    the audit's listings name the assignments, customers and people of the assignments they were judged from;
    proving them again cost 50-180 ms of a 0.7-1.3 s SLA tick at 1 M open leads. The ids join the set of the
    table's last check (`_verified`: one set per table, replaced by each check)."""
    verified = _verified(conn)  # (outside a transaction: a throwaway, nothing is kept)
    for referred, values in ids.items():
        values = {v for v in values if v is not None}
        if values:
            verified[referred] = verified.get(referred, set()) | values


_VERIFIED = "leadflow.references.verified"  # conn.info: (transaction, {referred table: ids}) of the last checks


def _verified(conn: Connection) -> dict:
    """{referred table: the ids its last check proved}, for the connection's innermost transaction (a
    savepoint's own), else empty and forgotten. The rows referenced are never deleted, so ids proved in this
    transaction stay proved in it: a write whose ids are among them (the ledger entries of the breaches, the
    assignments or the listings just written, for the same customers) needs no second statement. One set per
    referred table, replaced by each check: memory stays that of one write. A savepoint rolled back takes its
    proofs with it (its own transaction); a new transaction starts empty."""
    tx = conn.get_nested_transaction() or conn.get_transaction()
    if tx is None or not tx.is_active:
        return {}
    slot = conn.info.get(_VERIFIED)
    if slot is None or slot[0] is not tx:
        slot = conn.info[_VERIFIED] = (tx, {})
    return slot[1]


_RUN_GAP = 64  # ids further apart than this start a new run
_RUN_MIN = 256  # a run with fewer ids is looked up id by id
# a run whose range is wider than this many times its ids is looked up id by id: the monthly audit's listings are
# one holding in 20 of the whole store (issue 10), and counting their 1 M-id range read 25 times the ids it checked
_RUN_SPREAD = 4


def _runs(values: set) -> tuple[list[tuple[int, int]], list[int]]:
    """`values` (ints) as dense runs [(low, high)] of at least _RUN_MIN of them each, spanning at most _RUN_SPREAD
    times as many ids as they hold, and the rest as a list."""
    ordered = sorted(values)
    runs, rest, start = [], [], 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] - ordered[i - 1] > _RUN_GAP:
            if i - start >= _RUN_MIN and ordered[i - 1] - ordered[start] + 1 <= _RUN_SPREAD * (i - start):
                runs.append((ordered[start], ordered[i - 1]))
            else:
                rest.extend(ordered[start:i])
            start = i
    return runs, rest


def _counts(conn: Connection, referred: str, values: set) -> list[tuple]:
    """[(scalar subquery, the count it gives when all of `values` are ids of `referred`)].

    Integer ids come mostly in dense runs (a batch's new customers, the pool offered oldest first, a batch's
    ledger): a run [low, high] of which the table holds high - low + 1 ids holds every id in it (ids are
    unique), read from one range of the primary key's index, never id by id. A run the table has a gap in (a
    rolled-back insert) gives less, and `check` then looks its values up one by one. The rest of the values are
    counted as given (`_listed`)."""
    column = _id(conn, referred)
    items: list = list(values)
    out = []
    if all(v.__class__ is int for v in values):
        runs, items = _runs(values)
        out = [(select(func.count()).where(column.between(low, high)).scalar_subquery(), high - low + 1)
               for low, high in runs]
    if items:
        out.append((_listed(conn, column, items), len(items)))
    return out


def _listed(conn: Connection, column, items: list):
    """How many of `items` are in `column`, as a scalar subquery: one array parameter on PostgreSQL; IN lists of
    a few thousand values on SQLite (each a bound variable)."""
    if conn.dialect.name == "postgresql":
        return select(func.count()).where(any_of(column, items)).scalar_subquery()
    parts = [select(func.count()).where(column.in_(items[i:i + _IN_LIST])).scalar_subquery()
             for i in range(0, len(items), _IN_LIST)]
    return parts[0] if len(parts) == 1 else sum(parts[1:], parts[0])


def _found(conn: Connection, referred: str, values: set) -> set:
    column = _id(conn, referred)
    items = list(values)
    found: set = set()
    for i in range(0, len(items), _IN_LIST):
        found.update(conn.execute(select(column).where(column.in_(items[i:i + _IN_LIST]))).scalars())
    return found


def _id(conn: Connection, referred: str):
    from leadflow.store.models import Base

    return Base.metadata.tables[referred].c.id
