"""The store on SQLite and PostgreSQL: migrations, constraints, bulk writes, the ledger."""
from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from leadflow.policy import load_policy
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.store import ledger
from leadflow.store.bulk import insert_rows
from leadflow.store.db import make_engine
from leadflow.store.migrate import alembic_config
from leadflow.store.models import Assignment, Base, Customer, Ledger, Registration

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _customer(conn, ref="c1") -> int:
    return conn.execute(Customer.__table__.insert().values(
        ref=ref, tier="A", channel="hotline", status="assigned", created_at=T0)).inserted_primary_key[0]


def _org(conn):
    load_org(conn, [{"id": "d1"}], [{"id": "s1", "department": "d1", "role": "sales", "grade": "A", "rank": 1},
                                    {"id": "s2", "department": "d1", "role": "sales", "grade": "A", "rank": 2}])


def _assignment(cid, person):
    return {"customer_id": cid, "person_id": person, "department_id": "d1", "kind": "allocation",
            "rule_id": "R-ALLOC-2", "tier": "A", "started_at": T0, "clock_start": T0, "policy_version": "test"}


def test_migrations_build_exactly_the_model_schema(database_url):
    url, schema = database_url
    engine = make_engine(url, schema=schema)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_r_alloc_7_at_most_one_open_assignment_per_customer_is_enforced_by_the_database(store_engine):
    with store_engine.begin() as conn:
        _org(conn)
        cid = _customer(conn)
        conn.execute(Assignment.__table__.insert().values(**_assignment(cid, "s1")))
    with pytest.raises(IntegrityError):
        with store_engine.begin() as conn:
            conn.execute(Assignment.__table__.insert().values(**_assignment(cid, "s2")))
    with store_engine.begin() as conn:  # an ended one does not count
        conn.execute(Assignment.__table__.update().values(ended_at=T0 + dt.timedelta(hours=1)))
        conn.execute(Assignment.__table__.insert().values(**_assignment(cid, "s2")))
        assert conn.execute(select(func.count()).select_from(Assignment)).scalar() == 2


def test_r_reg_4_a_dedupe_key_is_claimed_once(store_engine):
    row = {"batch_id": "b", "row_number": 1, "phone_kind": "mobile", "amount_status": "ok", "status": "accepted",
           "staged_at": T0, "dedupe_key": "k1"}
    with store_engine.begin() as conn:
        conn.execute(Registration.__table__.insert().values(**row))
    with pytest.raises(IntegrityError):
        with store_engine.begin() as conn:
            conn.execute(Registration.__table__.insert().values(**{**row, "row_number": 2}))


def test_bulk_insert_copies_many_rows_with_times_and_json_intact(store_engine):
    rows = [{"batch_id": "big", "row_number": i, "phone_kind": "mobile", "amount_status": "ok", "status": "staged",
             "staged_at": T0 + dt.timedelta(seconds=i), "raw": {"备注": f"第{i}行", "n": None}, "reasons": [],
             "target": i % 2 == 0, "amount_yuan": i * 1.5, "name": "王,先生\"引号\""} for i in range(1200)]
    with store_engine.begin() as conn:
        assert insert_rows(conn, Registration.__table__, rows) == 1200
    with store_engine.connect() as conn:
        got = conn.execute(select(Registration).where(Registration.row_number == 777)).mappings().one()
    assert got["staged_at"] == T0 + dt.timedelta(seconds=777)
    assert got["raw"] == {"备注": "第777行", "n": None} and got["name"] == "王,先生\"引号\""
    assert got["target"] is False and got["amount_yuan"] == 777 * 1.5


def test_r_alloc_7_ledger_entries_carry_rule_reason_flow_run_and_policy_version(store_engine):
    policy = load_policy()
    with store_engine.begin() as conn:
        _org(conn)
        cid = _customer(conn)
        ledger.append(conn, [ledger.entry(T0, "R-ALLOC-2", "allocate", "allocated by rotation", customer_id=cid,
                                          person_id="s1", explanation={"considered": []})],
                      policy.version, "flow-run-1")
    with store_engine.connect() as conn:
        e = conn.execute(select(Ledger)).mappings().one()
    assert (e["rule_id"], e["flow_run_id"], e["policy_version"]) == ("R-ALLOC-2", "flow-run-1", policy.version)
    assert e["at"] == T0 and e["explanation"] == {"considered": []}


def test_r_alloc_7_policy_version_changes_with_policy_content():
    assert load_policy().version == load_policy().version
    assert load_policy(overrides={"tiers": {"A": 900000}}).version != load_policy().version


def test_load_org_twice_changes_nothing(store_engine):
    ctx = StageContext(engine=store_engine, policy=load_policy())
    with ctx.engine.begin() as conn:
        _org(conn)
        second = load_org(conn, [{"id": "d1"}], [{"id": "s1", "department": "d1", "role": "sales", "grade": "A",
                                                  "rank": 1}])
    assert second["people_added"] == 0
