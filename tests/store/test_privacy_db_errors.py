"""R-REG-7 (issue 8, item 4): a database error never carries a phone — not in its message, not in its bound
parameters, not in the driver error inside it, not in its pickle (a failed flow run's persisted result), not in
a COPY error's CONTEXT line — on SQLite and PostgreSQL, through LeadFlow's engines."""
from __future__ import annotations

import pickle

import pytest
import sqlalchemy as sa

from leadflow.store.bulk import COPY_THRESHOLD, insert_rows
from leadflow.store.db import make_engine

PHONE = "13800138000"
_meta = sa.MetaData()
_people = sa.Table("privacy_probe", _meta, sa.Column("phone", sa.String(11), primary_key=True),
                   sa.Column("note", sa.String(5)))


@pytest.fixture
def probe(database_url):
    url, schema = database_url
    engine = make_engine(url, schema=schema)
    _meta.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _leaks(error: BaseException) -> list[str]:
    texts = {"str": str(error), "pickle": pickle.dumps(error).decode("latin-1")}
    orig = getattr(error, "orig", None)
    if orig is not None:
        texts.update({"orig": str(orig), "pgerror": str(getattr(orig, "pgerror", "") or "")})
    return [where for where, text in texts.items() if PHONE in text]


def test_r_reg_7_a_unique_violation_names_no_phone_in_message_parameters_or_pickle(probe):
    with probe.begin() as conn:
        conn.execute(_people.insert(), [{"phone": PHONE, "note": "a"}])
    with pytest.raises(sa.exc.IntegrityError) as caught:  # PostgreSQL's DETAIL quotes the key
        with probe.begin() as conn:
            conn.execute(_people.insert(), [{"phone": PHONE, "note": "b"}])
    assert _leaks(caught.value) == []
    assert caught.value.params is None
    assert "138****8000" in str(caught.value) or probe.dialect.name == "sqlite"


def test_r_reg_7_a_failed_executemany_keeps_its_parameters_to_itself(probe):
    rows = [{"phone": f"1390013{i:04d}", "note": "x"} for i in range(3)] + [{"phone": PHONE, "note": None}] * 2
    with pytest.raises(sa.exc.IntegrityError) as caught:
        with probe.begin() as conn:
            conn.execute(_people.insert(), rows)
    assert _leaks(caught.value) == [] and "1390013" not in pickle.dumps(caught.value).decode("latin-1")


@pytest.mark.postgres
def test_r_reg_7_a_copy_error_quotes_its_row_masked_and_keeps_its_sqlstate(database_url, probe):
    if probe.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    rows = [{"phone": f"1370013{i:04d}", "note": "ok"} for i in range(COPY_THRESHOLD)]
    rows[-1] = {"phone": f"{PHONE}/13900139000", "note": "ok"}  # too long for varchar(11): the CONTEXT quotes it
    with pytest.raises(Exception) as caught:
        with probe.begin() as conn:
            insert_rows(conn, _people, rows)
    assert getattr(caught.value, "pgcode", None) == "22001"  # the transient-error check still sees the SQLSTATE
    assert "COPY" in str(caught.value) and _leaks(caught.value) == []
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
