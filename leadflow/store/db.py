"""Engines: SQLite by default, PostgreSQL by URL, optionally inside one schema of its own."""
from __future__ import annotations

import re
import uuid
from contextlib import contextmanager

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from leadflow.privacy import mask_db_error
from leadflow.store.bulk import json_text
from leadflow.store.models import UNSAMPLED_REGISTRATION_COLUMNS, Base


class StoreError(RuntimeError):
    """A database that cannot be used; the message is one sentence."""


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def driver_url(url: str) -> str:
    """`postgresql://` means psycopg2 here (SQLAlchemy 2.1 would pick psycopg 3, which we do not install)."""
    try:
        parsed = make_url(url)
    except Exception:
        raise StoreError(f"the database URL is not a valid SQLAlchemy URL: {url.split('@')[-1]!r}.") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, schema: str | None = None) -> Engine:
    """An engine for `url`; on PostgreSQL with `schema`, every connection works inside that schema."""
    parsed = make_url(driver_url(url))
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": 30}, hide_parameters=True, json_serializer=json_text)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "handle_error", mask_db_error)  # R-REG-7: no phone in a database error
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(f"unsupported database '{parsed.get_backend_name()}': use sqlite or postgresql.")
    args = {"connect_timeout": 5}
    if schema:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise StoreError(f"invalid schema name {schema!r}.")
        args["options"] = f"-csearch_path={schema}"
    # values_plus_batch: executemany UPDATEs go as psycopg2 batches, not one round trip per row.
    engine = create_engine(parsed, connect_args=args, pool_pre_ping=True, executemany_mode="values_plus_batch",
                           insertmanyvalues_page_size=5000, executemany_batch_page_size=2000, hide_parameters=True,
                           json_serializer=json_text)  # orjson, as COPY writes it (issue 10)
    event.listen(engine, "handle_error", mask_db_error)  # R-REG-7: no phone in a database error (DETAIL, params)
    return engine


def check_connection(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as e:
        where = engine.url.render_as_string(hide_password=True)
        raise StoreError(f"cannot connect to the database at {where} ({type(e).__name__}).") from None


def create_schema(admin_url: str, prefix: str = "leadflow") -> str:
    """A fresh PostgreSQL schema with a unique name; returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = make_engine(admin_url)
    check_connection(engine)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    engine.dispose()
    return name


def drop_schema(admin_url: str, name: str) -> None:
    engine = make_engine(admin_url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


def create_all(engine: Engine) -> None:
    """Create every table directly (fresh replay databases); real databases use the migrations (the same
    statistics targets as migration 0009 on PostgreSQL)."""
    Base.metadata.create_all(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for column in UNSAMPLED_REGISTRATION_COLUMNS:
                conn.exec_driver_sql(f'ALTER TABLE registrations ALTER COLUMN "{column}" SET STATISTICS 0')


@contextmanager
def snapshot(engine: Engine):
    """A connection whose every read sees one snapshot of the store while runs write beside it (REPEATABLE
    READ on PostgreSQL; an explicit BEGIN on SQLite, whose WAL serves it): a report, `leadflow state`."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        else:
            conn.exec_driver_sql("BEGIN")
        try:
            yield conn
        finally:
            conn.rollback()
