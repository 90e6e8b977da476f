"""Issue 10: the high-volume tables' references are checked per bulk write, not by a foreign key per row
(migration 0007). A write naming a customer, person or department that does not exist still fails, and its
transaction with it, on SQLite and PostgreSQL alike."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, inspect, select

from leadflow.stages.people import load_org
from leadflow.store import ledger
from leadflow.store.bulk import COPY_THRESHOLD, insert_rows, update_rows
from leadflow.store.models import Assignment, Customer, Ledger
from leadflow.store.references import CHECKED, MissingReference, check

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _store(conn, customers: int = 3) -> list[int]:
    load_org(conn, [{"id": "d1"}], [{"id": "s1", "department": "d1", "role": "sales", "grade": "A", "rank": 1}])
    ids = []
    for i in range(customers):
        ids.append(conn.execute(Customer.__table__.insert().values(
            ref=f"c{i}", tier="A", channel="hotline", status="pool", created_at=T0)).inserted_primary_key[0])
    return ids


def _assignment(cid, person="s1", dept="d1"):
    return {"customer_id": cid, "person_id": person, "department_id": dept, "kind": "allocation",
            "rule_id": "R-ALLOC-2", "tier": "A", "started_at": T0, "clock_start": T0, "policy_version": "test"}


@pytest.mark.parametrize("size", [2, COPY_THRESHOLD + 10], ids=["few rows", "COPY"])
def test_r_alloc_7_an_assignment_for_a_customer_that_does_not_exist_is_refused_with_its_batch(store_engine, size):
    with store_engine.begin() as conn:
        ids = _store(conn)
    rows = [_assignment(ids[i % len(ids)]) for i in range(size - 1)] + [_assignment(999_999)]
    for i, r in enumerate(rows):  # one open assignment per customer: the others are ended
        r["ended_at"] = None if i == len(rows) - 1 else T0
    with pytest.raises(MissingReference, match=r"assignments\.customer_id .*999999"):
        with store_engine.begin() as conn:
            insert_rows(conn, Assignment.__table__, rows)
    with store_engine.connect() as conn:  # nothing of the batch was kept
        assert conn.execute(select(func.count()).select_from(Assignment)).scalar() == 0


def test_r_alloc_2_an_assignment_to_a_person_or_department_not_in_the_org_chart_is_refused(store_engine):
    with store_engine.begin() as conn:
        ids = _store(conn)
    for bad, field in ((_assignment(ids[0], person="nobody"), "person_id"),
                       (_assignment(ids[0], dept="nowhere"), "department_id")):
        with pytest.raises(MissingReference, match=field):
            with store_engine.begin() as conn:
                insert_rows(conn, Assignment.__table__, [bad])


def test_r_alloc_7_a_ledger_entry_for_an_unknown_customer_is_refused(store_engine):
    with store_engine.begin() as conn:
        ids = _store(conn)
    entries = [ledger.entry(T0, "R-ALLOC-2", "allocate", "x", customer_id=c) for c in ids]
    with store_engine.begin() as conn:  # the known ones and a customer-less entry go in
        ledger.append(conn, entries + [ledger.entry(T0, "R-VAL-2", "quarantine", "y")], "v", None)
    with pytest.raises(MissingReference, match="ledger.customer_id"):
        with store_engine.begin() as conn:
            ledger.append(conn, [ledger.entry(T0, "R-ALLOC-2", "allocate", "x", customer_id=-5)], "v", None)
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Ledger)).scalar() == len(ids) + 1


def test_r_alloc_2_an_owner_set_on_customers_in_bulk_must_be_in_the_org_chart(store_engine):
    with store_engine.begin() as conn:
        ids = _store(conn)
    with pytest.raises(MissingReference, match="customers.owner_id"):
        with store_engine.begin() as conn:
            update_rows(conn, Customer.__table__, "id", [{"id": ids[0], "owner_id": "ghost", "department_id": "d1"}])
    with store_engine.begin() as conn:
        update_rows(conn, Customer.__table__, "id", [{"id": i, "owner_id": "s1", "department_id": "d1"} for i in ids])
        assert set(conn.execute(select(Customer.owner_id)).scalars()) == {"s1"}


def test_issue10_the_checked_references_have_no_per_row_foreign_key_left(store_engine):
    """What migration 0007 took out is exactly what `references.CHECKED` checks, and nothing else."""
    inspector = inspect(store_engine)
    for table, refs in CHECKED.items():
        keys = {fk["constrained_columns"][0] for fk in inspector.get_foreign_keys(table)}
        assert not keys & set(refs), table


def test_check_is_one_statement_whatever_the_rows_and_referenced_tables(store_engine):
    from sqlalchemy import event

    with store_engine.begin() as conn:
        ids = _store(conn, customers=5)
    statements = []
    event.listen(store_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with store_engine.connect() as conn:
        check(conn, "assignments", [_assignment(ids[i % 5]) for i in range(2000)])
        conn.rollback()  # (a new transaction: nothing proved yet)
        check(conn, "assignments", [_assignment(c) for c in range(1, 6)] * 2)  # dense ids: one range read
    assert len(statements) == 2  # per call: customers, people and departments counted together


@pytest.mark.parametrize("step", [2, 20], ids=["dense run", "sparse run"])
def test_r_alloc_7_a_missing_customer_is_found_among_thousands_of_scattered_ones(store_engine, step):
    """Beyond one IN list on SQLite (several counted together), one array on PostgreSQL. One id in 20 (the audit's
    listings) is too sparse to count as a range of the key: looked up id by id, with the same answer."""
    with store_engine.begin() as conn:
        _store(conn, customers=0)
        conn.execute(Customer.__table__.insert(), [{"ref": f"c{i}", "tier": "A", "channel": "hotline",
                                                    "status": "pool", "created_at": T0} for i in range(12_001)])
        ids = list(conn.execute(select(Customer.id).order_by(Customer.id)).scalars())
    scattered = ids[::step]  # gaps: not one range
    entries = [ledger.entry(T0, "R-ALLOC-2", "allocate", "x", customer_id=c) for c in scattered]
    with store_engine.begin() as conn:
        check(conn, "ledger", entries)  # all there: no error
    with pytest.raises(MissingReference, match=str(ids[-1] + 7)):
        with store_engine.begin() as conn:
            check(conn, "ledger", entries + [ledger.entry(T0, "R-ALLOC-2", "allocate", "x", customer_id=ids[-1] + 7)])


def test_r_alloc_7_a_run_of_ids_with_a_gap_in_the_table_is_checked_value_by_value(store_engine):
    """Dense runs of ids are read as one range of the key; where the table has a gap in the run (a rolled-back
    insert left a hole in the sequence), the values are looked up one by one: present ones pass, the hole fails."""
    with store_engine.begin() as conn:
        _store(conn, customers=0)
        conn.execute(Customer.__table__.insert(), [{"ref": f"c{i}", "tier": "A", "channel": "hotline",
                                                    "status": "pool", "created_at": T0} for i in range(2_000)])
        ids = list(conn.execute(select(Customer.id).order_by(Customer.id)).scalars())
        hole = ids[1_000]
        conn.execute(Customer.__table__.delete().where(Customer.id == hole))  # as a rolled-back insert leaves it
    present = [c for c in ids if c != hole]
    with store_engine.begin() as conn:
        check(conn, "ledger", [ledger.entry(T0, "R-ALLOC-2", "allocate", "x", customer_id=c) for c in present])
    with pytest.raises(MissingReference, match=str(hole)):
        with store_engine.begin() as conn:
            check(conn, "ledger", [ledger.entry(T0, "R-ALLOC-2", "allocate", "x", customer_id=c) for c in ids])


def _breach(cid, aid, person="s1", rule="R-SLA-5"):
    return {"key": f"{aid}:{rule}:{cid}:{person}", "customer_id": cid, "person_id": person, "assignment_id": aid,
            "rule_id": rule, "at": T0}


@pytest.mark.parametrize("size", [2, COPY_THRESHOLD + 10], ids=["few rows", "COPY"])
def test_r_sla_5_r_sla_6_a_breach_or_listing_naming_a_missing_customer_person_or_assignment_is_refused(store_engine,
                                                                                                      size):
    """Migration 0010: `breaches` (R-SLA-1..4 breaches, R-SLA-5 audit listings) has no per-row foreign key left;
    a bulk write naming a customer, person or assignment that does not exist fails with its whole batch."""
    from leadflow.store.models import Breach

    with store_engine.begin() as conn:
        ids = _store(conn)
        insert_rows(conn, Assignment.__table__, [dict(_assignment(c), ended_at=None) for c in ids])
        aids = list(conn.execute(select(Assignment.id).order_by(Assignment.id)).scalars())
    good = [_breach(ids[i % 3], aids[i % 3], rule=f"R-SLA-5:{i}") for i in range(size - 1)]
    for bad, field in ((_breach(999_999, aids[0]), r"breaches\.customer_id .*999999"),
                       (_breach(ids[0], aids[0], person="ghost"), r"breaches\.person_id .*ghost"),
                       (_breach(ids[0], 888_888), r"breaches\.assignment_id .*888888")):
        with pytest.raises(MissingReference, match=field):
            with store_engine.begin() as conn:
                insert_rows(conn, Breach.__table__, good + [bad])
        with store_engine.connect() as conn:  # nothing of the batch was kept
            assert conn.execute(select(func.count()).select_from(Breach)).scalar() == 0
    with store_engine.begin() as conn:  # the good ones, and a listing without an assignment, go in
        insert_rows(conn, Breach.__table__, good + [_breach(ids[1], None, rule="R-SLA-5:none")])
        assert conn.execute(select(func.count()).select_from(Breach)).scalar() == size


def test_r_alloc_7_ids_proved_in_a_transaction_are_not_looked_up_again_in_it(store_engine):
    """The ledger entries of rows just written name the same customers: no second statement in the same
    transaction; a new transaction looks again, and a missing id among proved ones is still refused."""
    from sqlalchemy import event

    with store_engine.begin() as conn:
        ids = _store(conn, customers=4)
    statements = []
    event.listen(store_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    entries = [ledger.entry(T0, "R-ALLOC-2", "allocate", "x", customer_id=c) for c in ids]
    with store_engine.connect() as conn:
        check(conn, "assignments", [_assignment(c) for c in ids])
        check(conn, "ledger", entries[:2])  # proved by the assignments' check
        assert len(statements) == 1
        with pytest.raises(MissingReference, match="ledger.customer_id .*424242"):
            check(conn, "ledger", entries + [ledger.entry(T0, "R-ALLOC-2", "allocate", "x", customer_id=424242)])
        conn.rollback()
        check(conn, "ledger", entries)
        assert len(statements) == 4


def test_r_alloc_7_a_customer_proved_inside_a_savepoint_rolled_back_is_refused_after_it(store_engine):
    with store_engine.begin() as conn:
        _store(conn, customers=1)
    with pytest.raises(MissingReference, match="ledger.customer_id"):
        with store_engine.begin() as conn:
            savepoint = conn.begin_nested()
            cid = conn.execute(Customer.__table__.insert().values(
                ref="gone", tier="A", channel="hotline", status="pool", created_at=T0)).inserted_primary_key[0]
            check(conn, "ledger", [ledger.entry(T0, "R-ALLOC-2", "allocate", "x", customer_id=cid)])
            savepoint.rollback()  # the customer is gone, and the proof with it
            check(conn, "ledger", [ledger.entry(T0, "R-ALLOC-2", "allocate", "x", customer_id=cid)])


def test_r_sla_6_ids_read_from_the_store_in_a_transaction_are_proved_without_a_statement(store_engine):
    """The SLA check's breaches name the assignments it read (their ids, customers and owners): `proved` records
    them for the transaction, so their write looks nothing up; an id not read is still looked up and refused
    when missing, and a new transaction proves nothing."""
    from sqlalchemy import event

    from leadflow.store.references import proved

    with store_engine.begin() as conn:
        ids = _store(conn, customers=3)
    statements = []
    event.listen(store_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    entries = [ledger.entry(T0, "R-SLA-1", "breach", "x", customer_id=c) for c in ids]
    with store_engine.connect() as conn:
        conn.execute(select(Customer.id))  # a read begins the transaction
        statements.clear()
        proved(conn, {"customers": ids, "people": ["s1", None]})
        check(conn, "ledger", entries)
        assert statements == []
        with pytest.raises(MissingReference, match="ledger.customer_id .*424242"):
            check(conn, "ledger", entries + [ledger.entry(T0, "R-SLA-1", "breach", "x", customer_id=424242)])
        conn.rollback()
        statements.clear()
        check(conn, "ledger", entries)
        assert len(statements) == 1
