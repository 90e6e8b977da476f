"""Bulk writes: COPY on PostgreSQL, executemany elsewhere — never one statement per row."""
from __future__ import annotations

import datetime as dt
import itertools
import json
import operator
from collections.abc import Iterable

import orjson
import psycopg2.extensions

from sqlalchemy import JSON, Table, bindparam
from sqlalchemy.engine import Connection

from leadflow.privacy import masked_driver_error
from leadflow.store import references

COPY_THRESHOLD = 500
# orjson would write datetimes and dataclasses itself, json.dumps refuses them: hand them back (JSONEncodeError)
# so `json_text` raises TypeError for them as it always did — a datetime in an explanation stays a bug.
_ORJSON_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _copy_value(value):
    """The text (or None) the old per-value COPY path sent for `value`: kept as the fallback converter."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, (dict, list)):
        return json_text(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    return value


def json_text(value) -> str:
    """`value` (JSON-able: dicts, lists, str, numbers, bool, None) as compact JSON text, non-ASCII kept.

    orjson encodes in C (issue 10: the ledger's explanations, registrations' raw and reasons, ~500k per 100k
    leads); whatever it refuses (a dict key that is not a str, an int beyond 64 bits, a Decimal …) goes through
    json.dumps exactly as before, which converts or raises TypeError as it always did. Read back, both parse to
    the same value; only the spacing of the text differs. One difference: NaN/Infinity floats, which json.dumps
    wrote as the non-JSON tokens NaN/Infinity (refused by PostgreSQL's json), become null. Also the engines'
    `json_serializer` (leadflow.store.db), so JSON columns written by executemany (SQLite) gain too. Reading
    stays json.loads: orjson.loads would turn an int beyond 64 bits into a float, silently."""
    try:
        return orjson.dumps(value, option=_ORJSON_STRICT).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False)


def insert_rows(conn: Connection, table: Table, rows: Iterable[dict], count: int | None = None,
                same: dict | None = None) -> int:
    """Insert `rows` (all with the same keys) in one round trip where the database allows; returns how many.

    The rows' references (`leadflow.store.references.CHECKED`) are checked first, one statement per referenced
    table: raises references.MissingReference (one sentence) for an id that does not exist.
    `rows` may be an iterator with `count` its length: on PostgreSQL, when it is large and names no checked
    reference, each row is made (and formatted) only as COPY reads it, while the server inserts the ones before
    (issue 10: the intake stage normalises a batch as it is sent). Otherwise it is read into a list first.
    `same`: columns with one value for every row (a run's time, its policy version), not repeated in each row
    (COPY sends the value's text for each row, formatted once); checked references are not among them."""
    same = same or {}
    if not isinstance(rows, list):
        it = iter(rows)
        first = next(it, None)
        if first is None:
            return 0
        if (conn.dialect.name == "postgresql" and (count or 0) >= COPY_THRESHOLD
                and not references.CHECKED.get(table.name, {}).keys() & first.keys()):
            return _copy_rows(conn, table, first, itertools.chain([first], it), count, same)
        rows = [first, *it]
    if not rows:
        return 0
    references.check(conn, table.name, rows)
    if conn.dialect.name != "postgresql" and len(rows) >= COPY_THRESHOLD and _plain_defaults(table, rows[0]):
        return _executemany(conn, table, rows, same)
    if conn.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        conn.execute(table.insert(), [{**r, **same} for r in rows] if same else rows)
        return len(rows)
    return _copy_rows(conn, table, rows[0], rows, len(rows), same)


def _constants(table: Table, first: dict, same: dict | None) -> dict:
    """The columns every row of a bulk write gets one value for: the table's plain Python-side defaults of the
    columns the rows leave out (COPY and the driver's own executemany skip what SQLAlchemy's insert would apply),
    then `same`."""
    constants = {c.name: c.default.arg for c in table.columns
                 if c.default is not None and c.default.is_scalar and c.name not in first}
    constants.update(same or {})
    return constants


def _plain_defaults(table: Table, first: dict) -> bool:
    """Whether every Python-side default of a column the rows leave out is a plain value (the bulk path on
    SQLite fills those in; a callable default is left to SQLAlchemy's own insert)."""
    return all(c.default.is_scalar for c in table.columns if c.default is not None and c.name not in first)


def _executemany(conn: Connection, table: Table, rows: list[dict], same: dict) -> int:
    """Insert `rows` with one executemany of the driver's own statement (SQLite): each column's values go through
    the column type's bind processor, as SQLAlchemy's insert would send them, but column by column and once per
    distinct value (issue 10: SQLAlchemy's per-row parameter processing was a third of the SQLite pipeline)."""
    constants = _constants(table, rows[0], same)
    columns = [c for c in rows[0] if c not in constants]
    cells = [_bound(conn, table.c[c], list(map(operator.itemgetter(c), rows))) for c in columns]
    cells += [_bound(conn, table.c[c], [v]) * len(rows) for c, v in constants.items()]  # processed once
    names = ", ".join(f'"{c}"' for c in [*columns, *constants])
    marks = ", ".join("?" * (len(columns) + len(constants)))
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', list(zip(*cells)))
    return len(rows)


def _bound(conn: Connection, column, values: list) -> list:
    """`values` of `column` as the driver gets them from SQLAlchemy (its type's bind processor), each distinct
    hashable value processed once."""
    process = column.type._cached_bind_processor(conn.dialect)
    if process is None:
        return values
    memo: dict = {}

    def once(v):
        key = (v.__class__, v)  # 1, 1.0 and True are processed apart (a JSON column tells them apart)
        try:
            return memo[key]
        except KeyError:
            out = memo[key] = process(v)
            return out
        except TypeError:  # a JSON dict or list: unhashable, processed each time
            return process(v)

    return list(map(once, values))


def _copy_rows(conn: Connection, table: Table, first: dict, rows: Iterable[dict], count: int,
               same: dict | None = None) -> int:
    constants = _constants(table, first, same)
    columns = [c for c in first if c not in constants] + list(constants)
    _copy(conn, table.name, columns, rows, _json_columns(table), constants)
    return count


def _json_columns(table: Table) -> frozenset[str]:
    """The names of `table`'s JSON columns: COPY encodes every value there as JSON, as executemany does."""
    return frozenset(c.name for c in table.columns if isinstance(getattr(c.type, "impl", c.type), JSON))


_PIECE_ROWS = 2_000  # rows encoded at a time: small enough that the server always has the last piece to insert
_PLAIN = frozenset({str, int, float, bool, type(None)})  # sent as str(value): COPY reads True/False, 1.5, nan
_EMPTY_FOR_NONE = {None: ""}.get  # .get(v, text): None -> "", any other (hashable) value -> text, in C
_NULL_FOR_NONE = {None: "\\N"}.get  # .get(v, text): None -> COPY's NULL, any other value -> its escaped text
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))  # COPY text format; backslash first


def _copy_texts(cell: list) -> list[str]:
    """`cell` (one column: str, int, float, bool, None) as COPY text-format fields: None -> `\\N`, every other
    value str()'d with backslash, tab, newline and CR escaped — so a str that reads `\\N` is sent as `\\\\N`,
    text. The escaping runs over the column joined into one string (C speed: no Python call per value).
    Raises ValueError for a NUL character (PostgreSQL text cannot hold one: the old path failed in COPY)."""
    kinds = set(map(type, cell))
    nulls = type(None) in kinds
    kinds.discard(type(None))
    if kinds <= {str}:  # the common case: no str() call per value
        texts = list(map(_EMPTY_FOR_NONE, cell, cell)) if nulls else cell
    else:
        texts = list(map(_EMPTY_FOR_NONE, cell, map(str, cell)))
    joined = "\0".join(texts)
    if joined.count("\0") != len(texts) - 1:
        raise ValueError("a text value holds a NUL character, which PostgreSQL cannot store")
    escaped = False
    for char, escape in _ESCAPES:
        if char in joined:
            joined = joined.replace(char, escape)
            escaped = True
    if escaped:
        texts = joined.split("\0")
    return list(map(_NULL_FOR_NONE, cell, texts)) if nulls else texts


def _copy(conn: Connection, table_name: str, columns: list[str], rows: Iterable[dict],
          json_columns: frozenset[str] = frozenset(), constants: dict | None = None) -> None:
    """COPY `rows` (dicts with at least the `columns` not in `constants`) into `table_name` (resolved on the
    search path); a column in `constants` takes that value in every row (the table's Python-side defaults).

    Values: None -> NULL; in `json_columns` any other value -> JSON text (`json_text`: a str too, as SQLAlchemy's
    JSON type encodes it on executemany); elsewhere str, int, float, bool as their text (`\\N` and "" stay text),
    aware datetimes -> naive UTC text, dicts/lists -> JSON text, anything else -> str(value).
    The per-value work runs in C (issue 10: 8.9M Python calls per 100k leads before): each column is picked
    with itemgetter, only a JSON column or one holding a datetime or other non-plain type is converted in
    Python, a column is escaped as one string (`_copy_texts`) and rows are joined with str.join, in COPY's text
    format. Errors: the driver's COPY error, masked (R-REG-7); ValueError for a NUL character in a value or
    one the connection's encoding cannot hold (a lone surrogate), naming no value."""
    columns = list(columns)
    it = iter(rows)
    first = list(itertools.islice(it, _PIECE_ROWS))
    if not first:
        return
    codec = copy_codec(conn)
    # The text is made piece by piece while COPY reads it (`_Pieces`): the server inserts one piece while
    # Python makes and formats the next, on the other core (issue 10: formatting all first left one idle).
    constants = constants or {}
    _send(conn, table_name, columns, (_piece_text(piece, columns, json_columns, constants, codec)
                                      for piece in itertools.chain(
                                          [first], iter(lambda: list(itertools.islice(it, _PIECE_ROWS)), []))))


def copy_codec(conn: Connection) -> str:
    """The Python codec of the bytes COPY expects on `conn` (its client encoding), as psycopg2 would encode."""
    return psycopg2.extensions.encodings.get(conn.connection.dbapi_connection.encoding, "utf-8")


def _send(conn: Connection, table_name: str, columns: list[str], pieces: Iterable[bytes]) -> None:
    """COPY the text `pieces` (each whole lines of `columns`, in COPY's text format) into `table_name`.
    Errors: the driver's COPY error, masked (R-REG-7); a piece's own error (ValueError) as it was raised."""
    pieces = _Pieces(pieces)
    cols = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(f'COPY "{table_name}" ({cols}) FROM STDIN', pieces, size=1 << 20)
    except Exception as e:  # R-REG-7: a COPY error quotes the failing row (its CONTEXT line): masked, no chain
        if pieces.error is not None:  # our own refusal (a NUL, an encoding) or an interrupt, raised inside the
            raise pieces.error from None  # driver's read
        raise masked_driver_error(e) from None
    finally:
        cursor.close()


def copy_text(table: Table, columns: list[str], rows: list[dict], codec: str) -> list[bytes]:
    """`rows` (dicts holding `columns`) as COPY text pieces of `table`'s `columns`, made before the COPY — in
    another thread, while the connection works on something else (issue 10: a file's next chunk is formatted
    while this one is decided) — and sent by `copy_lines`. Values as `_copy` sends them; raises ValueError as
    it does (a NUL, a value `codec` cannot hold)."""
    json_columns = _json_columns(table)
    return [_piece_text(rows[i:i + _PIECE_ROWS], columns, json_columns, {}, codec)
            for i in range(0, len(rows), _PIECE_ROWS)]


def copy_lines(conn: Connection, table: Table, columns: list[str], pieces: list[bytes], ids: list[int],
               same: dict | None = None) -> int:
    """COPY `pieces` (`copy_text` of `columns`, `len(ids)` lines in all) into `table`, each line given its row's
    id from `ids` (in order) and the values of `same` (one for every row, formatted once). Returns the rows
    sent. Raises ValueError when the pieces do not hold one line per id (nothing is sent then), and the COPY's
    errors as `_copy` does. Checks no references: `columns` and `same` must name none (`references.CHECKED`)."""
    same = same or {}
    if references.CHECKED.get(table.name, {}).keys() & {*columns, *same}:
        raise ValueError(f"copy_lines cannot check the references of {table.name}")
    if sum(piece.count(b"\n") for piece in pieces) != len(ids):
        raise ValueError("the COPY text does not hold one line per id")
    codec = copy_codec(conn)
    # the same values' text, made once: a line of one row of constants, without its newline
    suffix = b"\t" + _piece_text([{}], list(same), _json_columns(table), same, codec)[:-1] if same else b""
    tail = [str(i).encode(codec) + suffix for i in ids]

    def lined():
        start = 0
        for piece in pieces:
            lines = piece.split(b"\n")
            lines.pop()  # after the last newline: nothing (a value's own newline is escaped, \\n)
            yield b"".join(map(b"%b\t%b\n".__mod__, zip(lines, tail[start:start + len(lines)])))
            start += len(lines)

    _send(conn, table.name, [*columns, "id", *same], lined())
    return len(ids)


class _Pieces:
    """A file for COPY FROM STDIN: `read` returns the next piece's bytes, made only when asked for, and b"" at
    the end. psycopg2 sends each piece (the GIL released) before asking for the next. An error making a piece
    is kept in `error` (the driver reports it as its own) and the COPY is abandoned."""

    def __init__(self, pieces: Iterable[bytes]):
        self._pieces = iter(pieces)
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            return next(self._pieces, b"")
        except BaseException as e:  # a Ctrl-C or `kill` (KeyboardInterrupt) too: the driver would report it as
            self.error = e          # its own QueryCanceled, not the interrupt it is
            raise

    readline = read


def _piece_text(rows: list[dict], columns: list[str], json_columns: frozenset[str], constants: dict,
                codec: str) -> bytes:
    """One piece of `_copy`'s COPY text (see there), encoded in `codec`, ending in a newline."""
    memo: dict = {}  # an instant in many rows (a run's `now`) is converted to UTC text once

    def convert(v):  # a column with a type other than the plain ones
        if v.__class__ is dt.datetime:
            out = memo.get(v)
            if out is None:  # astimezone: aware UTC, so isoformat ends "+00:00" (cut); a naive one reads as local
                out = memo[v] = v.astimezone(dt.timezone.utc).isoformat(" ")[:-6]
            return out
        if v is None or v.__class__ in _PLAIN:
            return v
        return str(_copy_value(v))  # dict/list -> JSON; date, Decimal, UUID … -> their text, as before

    def encode(v):  # a JSON column's value: json_text, inlined (one call less for ~500k values per 100k leads)
        if v is None:
            return None
        try:
            return orjson.dumps(v, option=_ORJSON_STRICT).decode()
        except orjson.JSONEncodeError:
            return json.dumps(v, ensure_ascii=False)

    # Column by column, never a tuple per row kept alive: 50k live tuples set off the cyclic GC's full
    # collections over the whole process heap (measured: COPY's Python time doubled in the pipeline).
    cells = []
    for c in columns:
        one = c in constants  # one value for every row: formatted once
        cell = [constants[c]] if one else list(map(operator.itemgetter(c), rows))
        if c in json_columns:
            cell = list(map(encode, cell))
        elif not set(map(type, cell)) <= _PLAIN:
            cell = list(map(convert, cell))
        cells.append(_copy_texts(cell) * len(rows) if one else _copy_texts(cell))
    try:  # (a piece's text may be "": one row of one empty str)
        return ("\n".join(map("\t".join, zip(*cells))) + "\n").encode(codec)
    except UnicodeEncodeError as e:  # R-REG-7: its `.object` is the whole piece (phones): not kept
        raise ValueError(f"a text value cannot be encoded as {codec} ({e.reason})") from None


_SCRATCH = itertools.count(1)


def update_rows(conn: Connection, table: Table, key: str, rows: list[dict]) -> int:
    """Set each row's other columns on the `table` row whose `key` column equals the row's `key` value.

    `rows`: dicts with the same keys, `key` among them. On PostgreSQL a large set is COPYed into a scratch table
    and applied with one UPDATE … FROM (psycopg2's executemany is one round trip per row); elsewhere, and for a
    few rows, one executemany (SQLite runs in process). Returns the number of rows given. The new values'
    references are checked first (`insert_rows`); raises references.MissingReference."""
    if not rows:
        return 0
    references.check(conn, table.name, rows)
    columns = [c for c in rows[0] if c != key]
    if conn.dialect.name != "postgresql" and len(rows) >= COPY_THRESHOLD and not any(
            table.c[c].onupdate is not None for c in table.c.keys() if c not in columns):
        # as `_executemany`: each column's values through its type's bind processor, once per distinct value
        cells = [_bound(conn, table.c[c], list(map(operator.itemgetter(c), rows))) for c in [*columns, key]]
        sets = ", ".join(f'"{c}" = ?' for c in columns)
        conn.exec_driver_sql(f'UPDATE "{table.name}" SET {sets} WHERE "{key}" = ?', list(zip(*cells)))
        return len(rows)
    if conn.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        stmt = table.update().where(table.c[key] == bindparam("_key")).values(
            {c: bindparam(f"_v_{c}") for c in columns})
        conn.execute(stmt, [{"_key": r[key], **{f"_v_{c}": r[c] for c in columns}} for r in rows])
        return len(rows)
    scratch = f"_lf_update_{next(_SCRATCH)}"
    names = ", ".join(f'"{c}"' for c in [key, *columns])
    conn.exec_driver_sql(f'CREATE TEMPORARY TABLE "{scratch}" ON COMMIT DROP AS SELECT {names} '
                         f'FROM "{table.name}" WITH NO DATA')
    _copy(conn, scratch, [key, *columns], rows, _json_columns(table))
    sets = ", ".join(f'"{c}" = u."{c}"' for c in columns)
    conn.exec_driver_sql(f'UPDATE "{table.name}" AS t SET {sets} FROM "{scratch}" AS u WHERE t."{key}" = u."{key}"')
    conn.exec_driver_sql(f'DROP TABLE "{scratch}"')
    return len(rows)


def claim(conn: Connection, table: Table, values: dict) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on the primary key: True when this call claimed the row, False when
    another run had (the database decides, whatever the timing of concurrent runs).

    The statement is built once per table and dialect (every delivery claims its batch; building it cost more
    than running it) and takes `values` as parameters."""
    key = (conn.dialect.name, table)
    stmt = claim.built.get(key)  # type: ignore[attr-defined]
    if stmt is None:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = claim.built[key] = insert(table).on_conflict_do_nothing()  # type: ignore[attr-defined]
    result = conn.execute(stmt, values)
    return result.rowcount == 1


claim.built = {}  # type: ignore[attr-defined]  # (dialect, table) -> the claim statement
