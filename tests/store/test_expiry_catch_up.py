"""Issue 10: the timed catch-up hands over the conversion expiries that fall due together in one pass
(`timed.expiries_until`), and decides exactly what one run per expiry instant decides (R-CONV-2, R-SUSP-7,
R-SLA-6): the same ledger, assignments, bars, pauses and breaches, on SQLite and PostgreSQL. An SLA check of
a lead handed over (R-SLA-1 ten minutes later, its pause R-SUSP-5) ends a pass: the later expiries see it."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from leadflow.clock import add_months
from leadflow.policy import load_policy
from leadflow.stages import conversion, timed
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.store.db import create_all, create_schema, drop_schema, make_engine
from leadflow.store.models import Assignment, Bar, Breach, Customer, Ledger, Pause

CST = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 1, 5, 8, 0, tzinfo=CST)  # a Monday
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=CST)
MIN, HOUR = dt.timedelta(minutes=1), dt.timedelta(hours=1)
# the expiries, minutes after T0 + 1 h: three within R-SLA-1's ten minutes of the first, then later ones
EXPIRES = (0, 3, 7, 9, 12, 25, 26, 120)


def _fill(engine) -> StageContext:
    """Four C salespeople; leads allocated at T0 whose conversion periods (R-CONV-1) end at EXPIRES."""
    ctx = StageContext(engine=engine, policy=load_policy())
    sales = [f"s{i}" for i in range(1, 5)]
    with engine.begin() as conn:
        load_org(conn, [{"id": "d1"}], [{"id": "m1", "department": "d1", "role": "manager"}]
                 + [{"id": p, "department": "d1", "role": "sales", "grade": "C", "rank": i + 1}
                    for i, p in enumerate(sales)])
        timed.mark_start(conn, START)
        months = ctx.policy.conversion.period_months["C"]
        for i, minutes in enumerate(EXPIRES):
            owner = sales[i % len(sales)]
            cid = conn.execute(Customer.__table__.insert().values(
                ref=f"r{i}", tier="C", amount_yuan=250_000.0, target=True, channel="hotline", status="assigned",
                owner_id=owner, department_id="d1", created_at=T0)).inserted_primary_key[0]
            conn.execute(Assignment.__table__.insert().values(
                customer_id=cid, person_id=owner, department_id="d1", kind="allocation", rule_id="R-ALLOC-2",
                tier="C", started_at=T0, clock_start=add_months(T0 + HOUR + minutes * MIN, -months),
                policy_version=ctx.policy.version))
    return ctx


def _state(engine) -> dict:
    with engine.connect() as conn:
        return {
            "ledger": conn.execute(select(Ledger.at, Ledger.rule_id, Ledger.action, Ledger.customer_id,
                                          Ledger.person_id, Ledger.from_person_id, Ledger.department_id,
                                          Ledger.reason, Ledger.explanation).order_by(Ledger.id)).all(),
            "assignments": conn.execute(select(Assignment.customer_id, Assignment.person_id, Assignment.kind,
                                               Assignment.rule_id, Assignment.started_at, Assignment.ended_at,
                                               Assignment.end_reason).order_by(Assignment.id)).all(),
            "bars": conn.execute(select(Bar.person_id, Bar.tier, Bar.since).order_by(Bar.id)).all(),
            "pauses": conn.execute(select(Pause.person_id, Pause.tier, Pause.rounds, Pause.at, Pause.rule_id,
                                          Pause.source_key).order_by(Pause.id)).all(),
            "breaches": sorted(conn.execute(select(Breach.key, Breach.rule_id, Breach.at)).all()),
            "customers": conn.execute(select(Customer.id, Customer.status, Customer.owner_id)
                                      .order_by(Customer.id)).all()}


def _runs(ran: list[dict]) -> list[dt.datetime]:
    return [r["at"] for r in ran if r["stage"] == conversion.STAGE]


def test_r_conv_2_r_sla_6_expiries_due_together_run_as_one_pass_and_decide_what_one_run_each_decides(
        store_engine, store_target, tmp_path, monkeypatch):
    url, schema = store_target
    if schema is None:
        other_url, other_schema = f"sqlite:///{tmp_path / 'one-run-each.db'}", None
    else:
        other_url, other_schema = url, create_schema(url, prefix="lf_test")
    other = make_engine(other_url, schema=other_schema)
    try:
        create_all(other)
        merged = timed.catch_up(_fill(store_engine), T0 + 4 * HOUR)
        with monkeypatch.context() as m:  # one run per expiry instant, as before the pass
            m.setattr(timed, "expiries_until", lambda ctx, t, others, as_of: t)
            each = timed.catch_up(_fill(other), T0 + 4 * HOUR)
        assert len(_runs(each)) == len(EXPIRES)
        # R-SLA-6: the first pass ends before the first hand-over's R-SLA-1 check (10 minutes); the SLA checks
        # of the leads handed over run between the passes, as between the single runs
        assert len(_runs(merged)) < len(EXPIRES)
        first = [r["summary"]["expired"] for r in merged if r["stage"] == conversion.STAGE][0]
        assert first == len([m for m in EXPIRES if m <= 10])
        assert _state(store_engine) == _state(other)
        state = _state(store_engine)
        assert sum(1 for row in state["ledger"] if row.action == "take_back") == len(EXPIRES)
        assert any(row.rule_id == "R-SLA-1" for row in state["breaches"])  # the new owners' checks ran
    finally:
        other.dispose()
        if other_schema is not None:
            drop_schema(url, other_schema)
