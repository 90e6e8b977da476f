"""R-ALLOC-7 end to end: every allocation and change of owner is a ledger entry (time, rule id, reason, the
flow run that made it), and the allocation report built from the ledger alone tells the same owner
history as the store. Replays tests/scenarios/r-alloc-7-published-owner-changes.yaml on SQLite and
PostgreSQL."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from leadflow import reports
from leadflow.policy import load_policy
from leadflow.scenario import load_scenario
from leadflow.simulate import Replay
from leadflow.stages.context import StageContext
from leadflow.store.models import Assignment, Customer, Ledger
from leadflow.wiring import make_gate

SCENARIO = Path(__file__).parents[1] / "scenarios" / "r-alloc-7-published-owner-changes.yaml"
RUN = "flow-run-r-alloc-7"
OWNER_ACTIONS = ("allocate", "hand_on", "self_found")


@pytest.fixture
def replayed(store_engine, store_target):
    from expectations import gate as gate_module

    url, schema = store_target
    scenario = load_scenario(SCENARIO)
    policy = load_policy(None, scenario.policy)
    ctx = StageContext(engine=store_engine, policy=policy, flow_run_id=RUN, gate=make_gate(url, schema, policy))
    try:
        yield store_engine, Replay(scenario, ctx).run()
    finally:
        gate_module.clear_cache()


def test_r_alloc_7_every_change_of_owner_is_a_ledger_entry_with_time_rule_reason_and_flow_run(replayed):
    engine, state = replayed
    with engine.connect() as conn:
        refs = dict(conn.execute(select(Customer.id, Customer.ref)).all())
        entries = [dict(r) for r in conn.execute(select(Ledger).order_by(Ledger.id)).mappings()]
        assignments = conn.execute(select(Assignment.customer_id, Assignment.person_id, Assignment.started_at,
                                          Assignment.ended_at, Assignment.rule_id)).all()
    assert entries and all(e["flow_run_id"] == RUN and e["rule_id"] and e["reason"] and e["at"] for e in entries)
    assert all(e["policy_version"] for e in entries)
    for cid, person, started, ended, rule in assignments:  # each ownership began with a published entry
        hits = [e for e in entries if e["customer_id"] == cid and e["person_id"] == person
                and e["action"] in OWNER_ACTIONS and e["at"] == started]
        assert len(hits) == 1, (refs[cid], person, started)
        assert hits[0]["rule_id"] == rule
        if ended is not None:  # and each one that ended, with an entry naming who it was taken from
            assert any(e["customer_id"] == cid and e["from_person_id"] == person and e["at"] == ended
                       for e in entries), (refs[cid], person, ended)
    c1 = next(cid for cid, ref in refs.items() if ref == "c1")
    rules = [e["rule_id"] for e in entries if e["customer_id"] == c1 and e["action"] in OWNER_ACTIONS + ("return_to_pool",)]
    assert rules == ["R-ALLOC-2", "R-CONV-6", "R-ALLOC-2"]


def test_r_alloc_7_the_allocation_report_from_the_ledger_gives_the_owner_history(replayed):
    engine, state = replayed
    with engine.connect() as conn:
        refs = dict(conn.execute(select(Customer.id, Customer.ref)).all())
        rows = reports.allocations(conn, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                                   dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc))
    history: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r["action"] in OWNER_ACTIONS and r["owner"]:
            history[refs[r["customer"]]].append(r["owner"])
    assert dict(history) == {ref: c["owners"] for ref, c in state["customers"].items()}
    assert history == {"c1": ["s1", "s3"], "u1": ["m1", "s2"], "f1": ["s3"]}
    returned = [r for r in rows if r["action"] == "return_to_pool"]
    assert [(refs[r["customer"]], r["from"], r["rule"]) for r in returned] == [("c1", "s1", "R-CONV-6")]
