"""The one-lead Python entry point, on both databases (R-REG-1, R-REG-4, R-REG-7, R-REG-8)."""
from __future__ import annotations

import datetime as dt

from leadflow.policy import load_policy
from leadflow.register import register_lead
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.wiring import make_gate

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
LEAD = {"channel": "400", "name": "周先生", "phone": "+86 138-0013-8000", "amount": "85万", "inquiry": "展厅",
        "registered_at": "2026-03-02 09:00", "registered_by": "k1"}


def _ctx(store_engine, store_target) -> StageContext:
    policy = load_policy()
    url, schema = store_target
    with store_engine.begin() as conn:
        load_org(conn, [{"id": "d1"}], [{"id": "m1", "department": "d1", "role": "manager"},
                                        {"id": "s1", "department": "d1", "role": "sales", "grade": "A", "rank": 1},
                                        {"id": "k1", "department": "d1", "role": "receptionist"}])
    return StageContext(engine=store_engine, policy=policy, gate=make_gate(url, schema, policy))


def test_r_reg_1_one_lead_is_registered_tiered_and_allocated_with_its_phone_masked(store_engine, store_target):
    out = register_lead(LEAD, now=NOW, ctx=_ctx(store_engine, store_target))
    assert (out["status"], out["tier"], out["owner"], out["phone"]) == ("accepted", "A", "s1", "138****8000")


def test_r_reg_4_the_same_lead_delivered_twice_is_one_registration(store_engine, store_target):
    ctx = _ctx(store_engine, store_target)
    first = register_lead(LEAD, now=NOW, ctx=ctx)
    again = register_lead(LEAD, now=NOW + dt.timedelta(minutes=5), ctx=ctx)
    assert again["status"] == "attached" and again["customer_id"] == first["customer_id"]


def test_r_reg_8_a_self_found_lead_is_its_finders_without_allocation(store_engine, store_target):
    out = register_lead({**LEAD, "channel": "自己挖掘", "registered_by": "s1", "amount": "5万"}, now=NOW,
                        ctx=_ctx(store_engine, store_target))
    assert (out["status"], out["owner"], out["tier"]) == ("accepted", "s1", "D")


def test_r_val_2_a_bad_lead_is_quarantined_with_its_reason(store_engine, store_target):
    out = register_lead({**LEAD, "phone": "12345"}, now=NOW, ctx=_ctx(store_engine, store_target))
    assert (out["status"], out["reasons"], out["customer_id"]) == ("quarantined", ["phone_format"], None)


def test_r_val_2_a_lead_holding_half_an_emoji_is_quarantined_bad_text_and_its_neighbour_registered(
        store_engine, store_target):
    """A lone surrogate (a string cut inside an emoji) is no text no database stores: before, the call raised
    UnicodeEncodeError. Now the lead is quarantined `bad_text` (R-VAL-2) with U+FFFD kept in its place, and a
    neighbour registered in the same group is allocated as usual."""
    from sqlalchemy import select

    from leadflow.store.models import Registration

    ctx = _ctx(store_engine, store_target)
    bad = register_lead({**LEAD, "name": "周先生\ud83d", "external_ref": "W-\udc00"}, now=NOW, ctx=ctx)
    good = register_lead({**LEAD, "phone": "139 0013 9000"}, now=NOW, ctx=ctx)
    assert (bad["status"], bad["reasons"], bad["customer_id"]) == ("quarantined", ["bad_text"], None)
    assert (good["status"], good["owner"]) == ("accepted", "s1")
    with store_engine.connect() as conn:
        names = conn.execute(select(Registration.name, Registration.external_ref, Registration.raw)
                             .where(Registration.status == "quarantined")).one()
    assert names.name == "周先生\ufffd" and names.external_ref == "W-\ufffd" and names.raw["name"] == "周先生\ufffd"
    again = register_lead({**LEAD, "name": "周先生\ud83d", "external_ref": "W-\udc00"}, now=NOW, ctx=ctx)
    assert again == bad  # the same lead at the same time is the same delivery (R-REG-4): its digest holds
    joined = register_lead({**LEAD, "phone": "137 0013 7000", "name": "周\ud83d\ude00"}, now=NOW, ctx=ctx)
    assert joined["status"] == "accepted"  # an emoji's two halves, as a UTF-16 caller splits it, are the emoji
    with store_engine.connect() as conn:
        assert conn.execute(select(Registration.name).where(Registration.phone == "13700137000")).scalar() == "周😀"

