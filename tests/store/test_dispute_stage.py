"""R-DISP-8 on the store (SQLite and PostgreSQL): a dispute re-run on the same recorded history gives the
same decision and records nothing new — no ledger entry, no credit, no fine."""
from __future__ import annotations

import copy
import datetime as dt

import pytest
from sqlalchemy import func, select

from expectations import gate as gate_module
from leadflow.policy import load_policy
from leadflow.scenario import parse_scenario
from leadflow.simulate import Replay, simulate
from leadflow.stages import disputes
from leadflow.stages.context import StageContext
from leadflow.store.models import Credit, Fine, Ledger
from leadflow.wiring import make_gate
from tests.conftest import require_postgres

CST = dt.timezone(dt.timedelta(hours=8))
RERUN_AT = dt.datetime(2026, 1, 22, 10, 0, tzinfo=CST)


def _ev(at: str, **fields) -> dict:
    return {"at": f"2026-01-{at}+08:00", **fields}


# x: registered by s1 and s2 on the same day, closed by s1, claimed by s2 in time (R-DISP-2);
# y: found by s1, worked knowingly and closed by s2, s1's claim says so (R-DISP-6, a 1,000 yuan fine).
HISTORY = {
    "name": "two disputed customers",
    "start": "2026-01-05T08:00:00+08:00",
    "departments": [{"id": "d1"}, {"id": "d2"}],
    "people": [
        {"id": "m1", "department": "d1", "role": "manager"},
        {"id": "m2", "department": "d2", "role": "manager"},
        {"id": "s1", "department": "d1", "role": "sales", "grade": "C", "rank": 1},
        {"id": "s2", "department": "d2", "role": "sales", "grade": "C", "rank": 1},
    ],
    "events": [
        _ev("05T09:00:00", type="register", ref="x1", channel="self", phone="13900139001", amount="30万", by="s1"),
        _ev("05T09:05:00", type="contact", customer="x1"),
        _ev("05T10:00:00", type="register", ref="y1", channel="self", phone="13900139002", amount="28万", by="s1"),
        _ev("05T10:05:00", type="contact", customer="y1"),
        _ev("05T15:00:00", type="register", ref="x2", channel="self", phone="13900139001", amount="30万", by="s2"),
        _ev("10T10:00:00", type="contact", customer="y1", by="s2"),
        _ev("20T10:00:00", type="deal", customer="x1", amount=300000),
        _ev("20T11:00:00", type="deal", customer="y1", amount=280000, by="s2"),
        _ev("21T10:00:00", type="claim", customer="x1", person="s2"),
        _ev("21T10:00:00", type="claim", customer="y1", person="s1", knowingly=True),
    ],
}


def _with_disputes(times: list[str]) -> dict:
    data = copy.deepcopy(HISTORY)
    data["events"] += [_ev(t, type="dispute", customer=c) for t in times for c in ("x1", "y1")]
    return data


def _count(conn, table) -> int:
    return conn.execute(select(func.count()).select_from(table)).scalar()


@pytest.fixture
def history(store_engine, store_target):
    """The history replayed into the fresh store; the stage context it was replayed with."""
    url, schema = store_target
    scenario = parse_scenario(copy.deepcopy(HISTORY))
    policy = load_policy(None, scenario.policy)
    ctx = StageContext(engine=store_engine, policy=policy, gate=make_gate(url, schema, policy))
    Replay(scenario, ctx).run()
    yield ctx
    gate_module.clear_cache()


def test_r_disp_8_rerunning_a_dispute_on_the_same_history_records_nothing_new(history):
    with history.engine.begin() as conn:
        x = disputes.resolve_customer(conn, "x1")
        y = disputes.resolve_customer(conn, "y1")
        first = {c: disputes.rerun(conn, history, c, RERUN_AT) for c in (x, y)}
        counts = [_count(conn, t) for t in (Ledger, Credit, Fine)]
        second = {c: disputes.rerun(conn, history, c, RERUN_AT + dt.timedelta(days=1)) for c in (x, y)}
        assert [_count(conn, t) for t in (Ledger, Credit, Fine)] == counts
    assert all(r["recorded"] for r in first.values())
    assert not any(r["recorded"] for r in second.values())
    assert (first[x]["rule"], first[x]["decision"]) == ("R-DISP-2", {"s1": 0.5, "s2": 0.5})
    assert (first[y]["rule"], first[y]["decision"]) == ("R-DISP-6", {"s1": 1.0})
    for c in (x, y):
        assert {k: second[c][k] for k in ("rule", "decision")} == {k: first[c][k] for k in ("rule", "decision")}


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_r_disp_8_one_dispute_event_or_two_on_the_same_history_leave_the_same_ledger(database):
    url = require_postgres() if database == "postgresql" else None

    def run(times):
        return simulate(parse_scenario(_with_disputes(times)), None, url,
                        gate_factory=lambda u, schema, policy: make_gate(u, schema, policy))

    try:
        once, twice = run(["22T10:00:00"]), run(["22T10:00:00", "23T10:00:00"])
    finally:
        gate_module.clear_cache()
    assert once["ledger_entries"] == twice["ledger_entries"]
    assert once["disputes"] == twice["disputes"] and len(twice["disputes"]) == 2
    assert (once["performance"], once["commissions"]) == (twice["performance"], twice["commissions"])
    assert once["people"]["s2"]["fines_yuan"] == twice["people"]["s2"]["fines_yuan"] == 1000
