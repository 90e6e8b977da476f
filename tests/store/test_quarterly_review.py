"""R-TIER-5 on the store (SQLite and PostgreSQL): the quarterly review re-tiers open customers from their
latest amount under the policy in force — a threshold changed since the leads came in reaches them — never
moves a lead by itself, and changes the open assignment's conversion period (R-CONV-1), ending it at the
re-tier when the new period is shorter than the time already held.

A scenario replay runs under one policy from start to end, so the change of policy itself is proven here."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from expectations import gate as gate_module
from leadflow.policy import load_policy
from leadflow.scenario import parse_scenario
from leadflow.simulate import Replay
from leadflow.stages import conversion, review
from leadflow.stages.context import StageContext
from leadflow.stages.disputes import resolve_customer
from leadflow.store.models import Customer, Ledger
from leadflow.wiring import make_gate

CST = dt.timezone(dt.timedelta(hours=8))
OCT_1 = dt.datetime(2026, 10, 1, 0, 0, tzinfo=CST)
RAISED = {"tiers": {"A": 1_000_000, "B": 500_000, "C": 200_000, "D": 50_000}}


def _reg(at: str, ref: str, phone: str, amount: str) -> dict:
    return {"at": f"2026-01-05T{at}:00+08:00", "type": "register", "ref": ref, "channel": "hotline",
            "phone": phone, "amount": amount, "by": "k1"}


# Under the default thresholds: a 90万 (A) and b 45万 (B), both open with s1; c 45万 (B), closed.
HISTORY = {
    "name": "leads registered under the default thresholds",
    "start": "2026-01-05T08:00:00+08:00",
    "departments": [{"id": "d1"}],
    "people": [{"id": "m1", "department": "d1", "role": "manager"},
               {"id": "s1", "department": "d1", "role": "sales", "grade": "A", "rank": 1},
               {"id": "k1", "department": "d1", "role": "receptionist"}],
    "events": [_reg("09:00", "a", "13800138001", "90万"), _reg("10:00", "b", "13800138002", "45万"),
               _reg("11:00", "c", "13800138003", "45万"),
               {"at": "2026-01-05T15:00:00+08:00", "type": "deal", "customer": "c", "amount": 450000}],
}


@pytest.fixture
def store(store_engine, store_target):
    url, schema = store_target
    scenario = parse_scenario(HISTORY)
    policy = load_policy()
    Replay(scenario, StageContext(engine=store_engine, policy=policy, gate=make_gate(url, schema, policy))).run()
    yield store_engine
    gate_module.clear_cache()


def _customer(conn, ref: str) -> dict:
    return dict(conn.execute(select(Customer.tier, Customer.owner_id, Customer.status)
                             .where(Customer.id == resolve_customer(conn, ref))).mappings().one())


def test_r_tier_5_a_raised_threshold_reaches_open_leads_at_the_quarterly_review_without_moving_them(store):
    raised = StageContext(engine=store, policy=load_policy(overrides=RAISED))
    with store.begin() as conn:
        assert [_customer(conn, r)["tier"] for r in "abc"] == ["A", "B", "B"]
        summary = review.run(conn, raised, OCT_1)
        a, b, c = (_customer(conn, r) for r in "abc")
        entries = conn.execute(select(Ledger.rule_id).where(Ledger.action == "retier")).scalars().all()
    assert (a["tier"], b["tier"]) == ("B", "C")  # re-tiered from their amounts under the new thresholds
    assert c == {"tier": "B", "owner_id": "s1", "status": "converted"}  # closed: not an open customer
    assert a["owner_id"] == b["owner_id"] == "s1"  # a tier change never moves a lead by itself
    assert len(summary["retiered"]) == 2 and entries == ["R-TIER-5", "R-TIER-5"]


def test_r_tier_5_the_retier_changes_the_conversion_period_and_a_shortened_one_ends_at_the_retier(store):
    raised = StageContext(engine=store, policy=load_policy(overrides=RAISED))
    with store.begin() as conn:
        review.run(conn, raised, OCT_1)
        expiries = {cid: e for e, case in conversion.load_cases(conn, raised) for cid in [case.customer_id]}
        a, b = resolve_customer(conn, "a"), resolve_customer(conn, "b")
        # a: A -> B, still 10 months from the allocation; b: B -> C, 6 months, already exceeded on 1 October
        assert expiries[a] == dt.datetime(2026, 11, 5, 9, 0, tzinfo=CST)
        assert expiries[b] == OCT_1
        taken = conversion.run(conn, raised, OCT_1)
        assert [t["customer_id"] for t in taken["taken_back"]] == [b]
