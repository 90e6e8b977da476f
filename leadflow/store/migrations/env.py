"""Alembic environment: the URL comes from the caller (leadflow.store.migrate), never from a file."""
from alembic import context

from leadflow.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        from leadflow.store.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url"))
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            _sqlite_for_migrations(engine)
        with engine.begin() as connection:
            _run(connection)
            if sqlite:  # what the foreign keys would have refused, before the migration commits
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    from leadflow.store.db import StoreError

                    raise StoreError(f"the migration would leave {len(broken)} rows of {broken[0][0]} naming rows of "
                                     f"{broken[0][2]} that do not exist; nothing was changed.")
        engine.dispose()
    else:
        _run(connectable)


def _sqlite_for_migrations(engine) -> None:
    """SQLite, for a migration: foreign keys off while it runs, and every statement in one transaction.

    Batch mode changes a table by copying it, dropping the old one and renaming the copy; with foreign keys on,
    the drop is refused while other tables reference it (any store holding data). The pragma works only outside
    a transaction, so it is set as each connection opens; `PRAGMA foreign_key_check` then proves the result
    before the commit. The driver's own transaction handling leaves DDL outside transactions (a failed migration
    left its `_alembic_tmp_*` copy behind): it is turned off and BEGIN is emitted explicitly, as SQLAlchemy's
    documentation for pysqlite advises, so a failed migration changes nothing."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):  # after make_engine's pragmas (listeners run in order)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN")


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
