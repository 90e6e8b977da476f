"""PIPL erasure on request (issue 8.6, `leadflow forget`), on SQLite and PostgreSQL: the customer's name and every
number reaching it leave the store — customers, customer_phones, registrations (raw rows included), events, the
masked numbers in ledger reasons and delivery names — while the facts the ledger needs stay; the erasure is a
ledger entry, idempotent, and R-REG-7 holds for what it prints."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from expectations import gate as gate_module
from leadflow import engine
from leadflow.events.api import record_events
from leadflow.forget import ErasureError, describe, forget
from leadflow.intake.readers import read_registration_file
from leadflow.policy import load_policy
from leadflow.register import register_lead
from leadflow.rules.registration import mask_phones_in_text
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.store.models import (
    Assignment, Base, Customer, CustomerPhone, Event, IntakeBatch, Ledger, Registration,
)
from leadflow.wiring import make_gate

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)
OWN, RELATIVE, OTHER = "13912340001", "13912340003", "13912340002"  # OTHER belongs to another customer
FILE = f"回访{OWN}.csv"  # a number in the file name too (issue 8.4)
CSV = (
    "渠道,客户姓名,电话,预计成交金额,咨询内容,地区,登记时间,登记人,来电编号\n"
    "hotline,周先生,139 1234 0001,85万,请回电 139-1234-0001,上海徐汇,2026-03-02 09:00,k1,H-1\n"
    f"hotline,李女士,{OTHER},30万,展厅,上海,2026-03-02 09:01,k1,H-2\n"
    f"hotline,周先生,{OWN},-5万,再次来电,上海,2026-03-02 09:02,k1,H-3\n"      # quarantined: no customer
    "web_chat,周太太,+86 139 1234 0001,,网聊,上海,2026-03-02 09:03,k1,\n"     # no reference: R-REG-4 key from the phone
)


def forms(number: str) -> list[str]:
    """The written forms of a number a leak could take (R-REG-2's), and its masked form."""
    a, b, c = number[:3], number[3:7], number[7:]
    return [number, f"{a} {b} {c}", f"{a}-{b}-{c}", f"+86{number}", f"{a}****{c}"]


def store_cells(conn) -> list[str]:
    """Every cell of every LeadFlow table, as text."""
    cells = []
    for table in Base.metadata.sorted_tables:
        for row in conn.execute(select(table)):
            cells += [json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, (dict, list)) else str(v)
                      for v in row if v is not None]
    return cells


def found(cells: list[str], number: str) -> list[str]:
    """Cells holding the number in any form (digits compared with separators removed)."""
    return [c for c in cells if number in re.sub(r"\D", "", c) or any(f in c for f in forms(number))]


@pytest.fixture
def ctx(store_engine, store_target, tmp_path) -> StageContext:
    """A store where customer C (OWN, a relative linked) and customer D (OTHER) are registered from a file whose
    name holds OWN, with a quarantined row and a reference-less row of OWN, and events naming C by phone."""
    policy = load_policy()
    url, schema = store_target
    with store_engine.begin() as conn:
        load_org(conn, [{"id": "d1"}], [{"id": "m1", "department": "d1", "role": "manager"},
                                        {"id": "s1", "department": "d1", "role": "sales", "grade": "A", "rank": 1},
                                        {"id": "k1", "department": "d1", "role": "receptionist"}])
    c = StageContext(engine=store_engine, policy=policy, gate=make_gate(url, schema, policy))
    path = tmp_path / FILE
    path.write_text(CSV, encoding="utf-8")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    summary = engine.register(c, digest[:32], mask_phones_in_text(path.name), read_registration_file(path),
                              T0 + dt.timedelta(minutes=5), digest)
    assert (summary["accepted"], summary["attached"], summary["quarantined"]) == (2, 1, 1)
    events = record_events([
        {"type": "contact", "customer": "139-1234-0001", "by": "s1", "at": "2026-03-02T09:07+08:00"},
        {"type": "link", "customer": "H-1", "phone": "139 1234 0003", "relation": "household", "by": "s1",
         "at": "2026-03-02T09:08+08:00"},
        {"type": "contact", "customer": "H-2", "by": "s1", "at": "2026-03-02T09:09+08:00"},
    ], as_of=T0 + dt.timedelta(minutes=10), operator="crm", ctx=c)
    assert events["applied"] == 3, events
    yield c
    gate_module.clear_cache()


def customer_of(conn, ref: str) -> int:
    return conn.execute(select(Registration.customer_id).where(Registration.external_ref == ref)).scalar()


def test_pipl_erasure_removes_every_number_and_name_of_the_customer_and_keeps_the_ledger_facts(ctx):
    with ctx.engine.connect() as conn:
        c, d = customer_of(conn, "H-1"), customer_of(conn, "H-2")
        before = store_cells(conn)
        facts = conn.execute(select(Ledger.id, Ledger.rule_id, Ledger.action, Ledger.person_id, Ledger.at)
                             .where(Ledger.customer_id == c).order_by(Ledger.id)).all()
        owners = conn.execute(select(Assignment.person_id, Assignment.tier, Assignment.started_at)
                              .where(Assignment.customer_id == c)).all()
    assert found(before, OWN) and found(before, RELATIVE) and any("周先生" in x for x in before)  # the scan can fail

    erasure = forget(ctx, "139-1234-0001", by="dpo")

    assert erasure.customer_id == c and erasure.ledger_id is not None
    with ctx.engine.connect() as conn:
        after = store_cells(conn)
        assert not found(after, OWN) and not found(after, RELATIVE), found(after, OWN) + found(after, RELATIVE)
        assert not [x for x in after if "周先生" in x or "周太太" in x or "徐汇" in x]
        assert found(after, OTHER) and any("李女士" in x for x in after)  # the other customer is untouched
        assert conn.execute(select(Customer.name).where(Customer.id == d)).scalar() == "李女士"
        assert conn.execute(select(CustomerPhone.phone).where(CustomerPhone.customer_id == d)).scalar() == OTHER
        assert conn.execute(select(Customer.tier, Customer.name).where(Customer.id == c)).one() == ("A", None)
        assert conn.execute(select(func.count()).select_from(CustomerPhone).where(CustomerPhone.customer_id == c)
                            ).scalar() == 0
        regs = [r for r in conn.execute(select(Registration.__table__)) if r.external_ref != "H-2"]
        assert len(regs) == 3 and all(r.phone is None and r.raw is None and r.inquiry is None for r in regs)
        assert {r.status: r.phone_kind for r in regs} == {"accepted": "mobile", "quarantined": "mobile",
                                                          "attached": "mobile"}
        keyed = {r.external_ref: r.dedupe_key for r in regs if r.status != "quarantined"}
        assert keyed["H-1"] is not None and keyed[None] is None  # only the key made from the phone goes
        assert set(conn.execute(select(Event.customer_key).where(Event.customer_id == c)).scalars()) == {str(c), "H-1"}
        assert conn.execute(select(IntakeBatch.source)).scalar() == "回访(erased).csv"
        kept = conn.execute(select(Ledger.id, Ledger.rule_id, Ledger.action, Ledger.person_id, Ledger.at)
                            .where(Ledger.customer_id == c, Ledger.action != "erase").order_by(Ledger.id)).all()
        assert kept == facts  # tier, owners, rule ids, dates stay
        assert conn.execute(select(Assignment.person_id, Assignment.tier, Assignment.started_at)
                            .where(Assignment.customer_id == c)).all() == owners
        entry = conn.execute(select(Ledger.__table__).where(Ledger.action == "erase")).one()
    assert (entry.rule_id, entry.customer_id, entry.explanation["by"]) == ("PIPL-47", c, "dpo")
    assert entry.explanation["numbers"] == 2 and entry.explanation["removed"]["registrations"] == 3
    assert entry.explanation["removed"]["customer_phones"] == 2
    [delivered] = entry.explanation["files"]  # for its owner to delete: by name (scrubbed) and content digest
    assert delivered["name"] == "回访(erased).csv" and len(delivered["sha256"]) == 64
    line = describe(erasure)
    assert "139****0001" in line and "回访139****0001.csv" in line and OWN not in line and "\n" not in line


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL's files are the server's
def test_pipl_erasure_on_sqlite_leaves_no_byte_of_the_number_in_the_database_files(ctx, store_target):
    url, _ = store_target
    files = [Path(url.removeprefix("sqlite:///"))]
    files.append(files[0].with_name(files[0].name + "-wal"))
    ctx.engine.dispose()  # as on a SQLite built without SECURE_DELETE (Debian's has it on by default)
    event.listen(ctx.engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA secure_delete=OFF"))
    forget(ctx, "H-1", by="dpo")
    ctx.engine.dispose()
    data = b"".join(f.read_bytes() for f in files if f.exists())
    assert OTHER.encode() in data and "李女士".encode() in data  # the scan can fail
    leaks = [f for n in (OWN, RELATIVE) for f in forms(n) if f.encode() in data]
    assert not leaks and "周先生".encode() not in data, leaks


def test_pipl_erasure_is_idempotent_and_a_second_request_records_nothing(ctx):
    first = forget(ctx, "H-1", by="dpo")
    with ctx.engine.connect() as conn:
        cells = store_cells(conn)
    second = forget(ctx, str(first.customer_id), by="dpo")
    assert second.ledger_id is None and not any(second.removed.values()) and second.earlier is not None
    assert "nothing left to erase" in describe(second)
    with ctx.engine.connect() as conn:
        assert store_cells(conn) == cells
        assert conn.execute(select(func.count()).where(Ledger.action == "erase")).scalar() == 1
    with pytest.raises(ErasureError):  # the number is gone: nothing in the store names it any more
        forget(ctx, OWN, by="dpo")


def test_pipl_an_unknown_customer_is_one_sentence_and_changes_nothing(ctx):
    with ctx.engine.connect() as conn:
        cells = store_cells(conn)
    for key in ("13700000000", "no-such-ref", "99999"):
        with pytest.raises(ErasureError, match="^no customer or stored record matches"):
            forget(ctx, key, by="dpo")
    with ctx.engine.connect() as conn:
        assert store_cells(conn) == cells


def test_pipl_a_number_only_in_a_quarantined_row_is_erased_without_a_customer(ctx):
    lone = "13955550000"
    register_lead({"channel": "hotline", "name": "吴先生", "phone": lone, "amount": "abc",
                   "registered_at": "2026-03-02 09:20", "registered_by": "k1"},
                  now=T0 + dt.timedelta(minutes=30), ctx=ctx)
    erasure = forget(ctx, lone, by="dpo")
    assert erasure.customer_id is None and erasure.removed["registrations"] == 1
    with ctx.engine.connect() as conn:
        assert not found(store_cells(conn), lone)
        assert conn.execute(select(Ledger.customer_id).where(Ledger.action == "erase")).scalar_one() is None


def test_r_reg_5_a_forgotten_number_registered_again_is_a_new_customer(ctx):
    c = forget(ctx, "H-1", by="dpo").customer_id
    again = register_lead({"channel": "hotline", "name": "周先生", "phone": OWN, "amount": "85万",
                           "registered_at": "2026-03-02 10:00", "registered_by": "k1", "external_ref": "H-9"},
                          now=T0 + dt.timedelta(hours=1), ctx=ctx)
    assert again["status"] == "accepted" and again["customer_id"] != c and again["phone"] == "139****0001"


def test_r_reg_7_a_phone_given_as_who_erases_or_exports_is_kept_masked():
    """Found trying it from a fresh clone: `--by 13912340022` was written in full into the ledger."""
    from leadflow.forget import operator

    assert operator("13912340022") == "139****0022"
    assert operator("ops-lead") == "ops-lead"
