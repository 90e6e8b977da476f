"""Issue 9.4: people's names on record from the org file, and the one set-based lookup of labels (both databases)."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, select

from leadflow.names import load_labels
from leadflow.stages.people import OrgError, load_org
from leadflow.store.models import Customer, Person, Registration

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
DEPTS = [{"id": "d1", "name": "营销一部"}, {"id": "d2"}]
PEOPLE = [{"id": "s1", "name": "张伟", "department": "d1", "role": "sales", "grade": "A", "rank": 1},
          {"id": "s2", "department": "d2", "role": "sales", "grade": "B", "rank": 1}]


def _names(conn) -> dict:
    return dict(conn.execute(select(Person.id, Person.name)).all())


def test_issue9_4_names_load_from_the_org_file_idempotently_and_a_file_without_them_keeps_them(store_engine):
    with store_engine.begin() as conn:
        load_org(conn, DEPTS, PEOPLE)
        load_org(conn, DEPTS, PEOPLE)
        assert _names(conn) == {"s1": "张伟", "s2": None}
        load_org(conn, DEPTS, [{**PEOPLE[0], "name": "张伟明"}, {**PEOPLE[1], "name": "刘芳"}])
        assert _names(conn) == {"s1": "张伟明", "s2": "刘芳"}
        load_org(conn, DEPTS, [{k: v for k, v in p.items() if k != "name"} for p in PEOPLE])
        assert _names(conn) == {"s1": "张伟明", "s2": "刘芳"}


def test_issue9_4_a_name_that_is_not_text_is_one_sentence(store_engine):
    with store_engine.begin() as conn, pytest.raises(OrgError, match="^person 's1' has a name that is not text"):
        load_org(conn, DEPTS, [{**PEOPLE[0], "name": ["张", "伟"]}])


def test_issue9_4_labels_show_names_beside_ids_and_customers_by_reference_never_by_name(store_engine):
    with store_engine.begin() as conn:
        load_org(conn, DEPTS, PEOPLE)
        cid = conn.execute(Customer.__table__.insert().values(
            ref=None, name="周先生", tier="B", channel="hotline", status="pool", created_at=T0)).inserted_primary_key[0]
        conn.execute(Registration.__table__.insert().values(
            batch_id="b", row_number=1, external_ref="H-001", name="周先生", phone="13800138000",
            phone_kind="mobile", amount_status="ok", status="accepted", staged_at=T0, customer_id=cid))
    statements = []
    event.listen(store_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with store_engine.connect() as conn:
        labels = load_labels(conn, ["s1", "s2", "s9", None], ["d1", "d2"], [cid, cid])
    assert len(statements) == 3  # one query per kind, whatever the number of ids
    assert (labels.person("s1"), labels.person("s2"), labels.person("s9"), labels.person(None)) == \
        ("张伟 (s1)", "s2", "s9", "-")
    assert (labels.department("d1"), labels.department("d2")) == ("营销一部 (d1)", "d2")
    assert labels.customer(cid) == f"{cid} (ref H-001)" and labels.tiers[cid] == "B"
    assert labels.person_departments == {"s1": "d1", "s2": "d2"}
