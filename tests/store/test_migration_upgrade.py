"""Issue 10: a store holding data upgrades from 0006 (foreign keys on the high-volume tables, no pause balances) to
the newest schema on SQLite and PostgreSQL, keeping every row; on SQLite batch mode rebuilds tables that other
tables reference, which foreign keys on would refuse (found by the fresh-clone trial)."""
from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import func, inspect, select, text

from leadflow.store.db import make_engine
from leadflow.store.migrate import alembic_config
from leadflow.store.models import PauseBalance
from leadflow.store.references import CHECKED

T0 = dt.datetime(2026, 3, 2, 1, 0)
TABLES = ("departments", "people", "customers", "customer_phones", "registrations", "assignments", "activities",
          "pauses", "ledger", "breaches")


def _fill(conn) -> None:
    """A little of everything the dropped keys and the balances touch, written as a 0006 store held it."""
    conn.execute(text("INSERT INTO departments (id, name, position) VALUES ('d1', 'd1', 0)"))
    conn.execute(text("INSERT INTO people (id, department_id, role, grade, rank, active) VALUES "
                      "('s1', 'd1', 'sales', 'C', 1, true), ('s2', 'd1', 'sales', 'C', 2, true)"))
    for i in (1, 2, 3):
        conn.execute(text("INSERT INTO customers (id, tier, channel, status, owner_id, department_id, self_found, "
                          "created_at) VALUES (:i, 'C', 'hotline', 'assigned', 's1', 'd1', false, :t)"),
                     {"i": i, "t": T0})
        conn.execute(text("INSERT INTO customer_phones (phone, customer_id, relation, linked_at) "
                          "VALUES (:p, :i, 'primary', :t)"), {"p": f"1380013800{i}", "i": i, "t": T0})
        conn.execute(text("INSERT INTO registrations (batch_id, row_number, phone_kind, amount_status, status, "
                          "staged_at, customer_id, by_known) VALUES ('b', :i, 'mobile', 'ok', 'accepted', :t, :i, true)"),
                     {"i": i, "t": T0})
        conn.execute(text("INSERT INTO assignments (customer_id, person_id, department_id, kind, rule_id, tier, "
                          "started_at, clock_start, exempt, bound, policy_version) VALUES "
                          "(:i, 's1', 'd1', 'allocation', 'R-ALLOC-2', 'C', :t, :t, false, true, 'v')"),
                     {"i": i, "t": T0})
        conn.execute(text("INSERT INTO breaches (key, customer_id, person_id, assignment_id, rule_id, at) VALUES "
                          "(:k, :i, 's1', :i, 'R-SLA-1', :t)"), {"k": f"{i}:R-SLA-1", "i": i, "t": T0})
        conn.execute(text("INSERT INTO activities (customer_id, person_id, kind, at, recorded_at) "
                          "VALUES (:i, 's1', 'contact', :t, :t)"), {"i": i, "t": T0})
        conn.execute(text("INSERT INTO ledger (at, rule_id, action, customer_id, reason, policy_version, recorded_at)"
                          " VALUES (:t, 'R-ALLOC-2', 'allocate', :i, 'x', 'v', :t)"), {"i": i, "t": T0})
    conn.execute(text("INSERT INTO pauses (person_id, tier, rounds, at, rule_id, reason) VALUES "
                      "('s1', 'C', 3, :t, 'R-SUSP-5', 'g'), ('s1', 'C', -1, :t, 'R-ALLOC-4', 'u'), "
                      "('s1', 'D', 2, :t, 'R-SUSP-5', 'g'), ('s2', 'C', 1, :t, 'R-SUSP-5', 'g'), "
                      "('s2', 'C', -1, :t, 'R-ALLOC-4', 'u')"), {"t": T0})


def _counts(engine) -> dict:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES}


def test_issue10_a_0006_store_with_data_upgrades_keeping_every_row_with_balances_equal_to_the_pauses(database_url):
    url, schema = database_url
    engine = make_engine(url, schema=schema)
    cfg = alembic_config(url)
    if schema:  # the migrations run inside the test's schema, as `leadflow db upgrade` does inside its database
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0006")
            _fill(conn)
            command.upgrade(cfg, "head")
    else:
        command.upgrade(cfg, "0006")
        with engine.begin() as conn:
            _fill(conn)
        before = _counts(engine)
        command.upgrade(cfg, "head")  # the CLI's way: its own engine, foreign keys off while it runs
        assert _counts(engine) == before
        with engine.connect() as conn:  # the app's connections have them on again, and nothing dangles
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    with engine.connect() as conn:
        balances = {(p, t): n for p, t, n in conn.execute(select(PauseBalance.person_id, PauseBalance.tier,
                                                                 PauseBalance.rounds))}
        sums = {(p, t): n for p, t, n in conn.execute(text(
            "SELECT person_id, tier, SUM(rounds) FROM pauses GROUP BY person_id, tier"))}
        assert balances == sums == {("s1", "C"): 2, ("s1", "D"): 2, ("s2", "C"): 0}
        assert conn.execute(select(func.count()).select_from(PauseBalance)).scalar() == 3
    inspector = inspect(engine)
    for table, refs in CHECKED.items():
        assert not {fk["constrained_columns"][0] for fk in inspector.get_foreign_keys(table)} & set(refs), table
    assert {fk["referred_table"] for fk in inspector.get_foreign_keys("activities")} == {"customers", "people",
                                                                                          "events"}
    engine.dispose()


def test_issue10_sqlite_a_failed_migration_changes_nothing_and_leaves_no_copy_behind(tmp_path):
    """A row naming a customer that does not exist (possible only by hand with keys off) is found before the
    commit: the upgrade refuses in one sentence and the store stays at 0006, with no `_alembic_tmp_` table."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0006")
    engine = make_engine(url)
    with engine.begin() as conn:
        _fill(conn)
    raw = engine.raw_connection()
    try:  # an activity naming customer 99 (SQLite lets it in with the keys off on this connection)
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute("INSERT INTO activities (customer_id, person_id, kind, at, recorded_at) "
                    "VALUES (99, 's1', 'contact', '2026-03-02 01:00:00', '2026-03-02 01:00:00')")
        raw.commit()
    finally:
        raw.close()
    from leadflow.store.db import StoreError

    with pytest.raises(StoreError, match="activities naming rows of customers that do not exist"):
        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0006"
        names = [r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))]
        assert not [n for n in names if n.startswith("_alembic_tmp")] and "pause_balances" not in names
    engine.dispose()


def test_issue10_sqlite_downgrade_to_0006_and_upgrade_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'round.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "0006")
    command.upgrade(cfg, "head")
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == _head()
    engine.dispose()


def _head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _statistics_targets(conn) -> dict[str, int | None]:
    """{column: statistics target} of `registrations` on PostgreSQL (None or -1: the system default)."""
    return dict(conn.execute(text(
        "SELECT a.attname, a.attstattarget FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'registrations' "
        "AND n.nspname = current_schema() AND a.attnum > 0 AND NOT a.attisdropped")).all())


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["migrations", "create_all"])
def test_issue10_analyze_leaves_out_the_registration_columns_no_statement_looks_at(how):
    """Migration 0009 and `create_all` alike: the raw row and free text get statistics target 0 (ANALYZE after a
    large batch skips them); the columns statements filter and join on keep the default."""
    from leadflow.store.db import create_all, create_schema, drop_schema
    from leadflow.store.models import UNSAMPLED_REGISTRATION_COLUMNS
    from tests.conftest import require_postgres

    pg_url = require_postgres()
    schema = create_schema(pg_url, prefix="lf_stats")
    engine = make_engine(pg_url, schema=schema)
    try:
        if how == "create_all":
            create_all(engine)
        else:
            cfg = alembic_config(pg_url)
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        with engine.connect() as conn:
            targets = _statistics_targets(conn)
        assert {c: targets[c] for c in UNSAMPLED_REGISTRATION_COLUMNS} == dict.fromkeys(UNSAMPLED_REGISTRATION_COLUMNS, 0)
        for kept in ("id", "batch_id", "status", "customer_id", "dedupe_key", "phone", "registered_at"):
            assert targets[kept] in (None, -1), kept
    finally:
        engine.dispose()
        drop_schema(pg_url, schema)


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:1/postgres", "sqlite:////nonexistent/dir/x.db"],
                         ids=["unreachable port", "unwritable SQLite path"])
def test_db_upgrade_refuses_a_database_it_cannot_reach_in_one_sentence(monkeypatch, capsys, url):
    """Found by the fresh-clone trial: `leadflow db upgrade` said so with exit 1 where every other command exits 2
    for the same database; now one sentence, exit 2, no traceback, nothing migrated."""
    from leadflow import cli
    from leadflow.settings import get_settings

    monkeypatch.setenv("LEADFLOW_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        assert cli.main(["db", "upgrade"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot connect to the database" in err and "Traceback" not in err


def test_issue10_r_reg_4_after_0010_a_claimed_key_is_still_unique_and_unset_keys_and_customers_are_not_indexed(
        database_url):
    """0010: the registrations' key and customer indexes are partial (`… IS NOT NULL`): a staged row writes no entry
    in either, and R-REG-4 holds as before — a second row claiming a key already claimed is refused by the
    database, however many rows hold none."""
    from sqlalchemy.exc import IntegrityError

    url, schema = database_url
    engine = make_engine(url, schema=schema)
    cfg = alembic_config(url)
    row = ("INSERT INTO registrations (batch_id, row_number, phone_kind, amount_status, status, staged_at, by_known, "
           "dedupe_key) VALUES ('b', 1, 'mobile', 'ok', 'staged', :t, true, :k)")
    with engine.begin() as conn:
        if schema:
            cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        if engine.dialect.name == "postgresql":
            defs = dict(conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = "
                                          "current_schema() AND tablename = 'registrations'")).all())
        else:
            defs = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                                          "tbl_name = 'registrations' AND sql IS NOT NULL")).all())
        for _ in range(3):
            conn.execute(text(row), {"t": T0, "k": None})
        conn.execute(text(row), {"t": T0, "k": "k1"})
    assert "WHERE" in defs["uq_registrations_dedupe_key"] and "UNIQUE" in defs["uq_registrations_dedupe_key"]
    assert "WHERE" in defs["ix_registrations_customer_id"]
    assert not [d for d in defs.values() if "dedupe_key" in d and "WHERE" not in d]  # no full index left beside it
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(row), {"t": T0, "k": "k1"})
    engine.dispose()
