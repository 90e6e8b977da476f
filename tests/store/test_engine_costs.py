"""What one engine run costs in statements (SQLite and PostgreSQL): a run with nothing due, and a delivery of
one record, issue a bounded number of statements that does not grow with the store's history (R-SLA-6: the
catch-up asks each time-driven stage only what can be due by the run's time; R-ALLOC-5: an empty pool is not
offered). Counts, never timings: speed lives in `leadflow bench`."""
from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

from sqlalchemy import event, select

from leadflow import engine as runs
from leadflow.policy import load_policy
from leadflow.rules import conversion as conversion_rules
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.store.bulk import insert_rows
from leadflow.store.models import Activity, Assignment, Breach, Customer

CST = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 1, 5, 8, 0, tzinfo=CST)  # a Monday
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
# what a run with nothing to do may issue: the clock (2), the holds (1), the five stages' next instants (3 marks,
# 3 reads, and 2 more when follow-up obligations are open), one read for the waiting events and the pool;
# on PostgreSQL also the clock lock and its release (2)
NOTHING_DUE_MAX = {"sqlite": 12, "postgresql": 14}


@contextmanager
def counting(engine):
    """Count the statements `engine` sends to the database inside the block."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _store(store_engine) -> StageContext:
    ctx = StageContext(engine=store_engine, policy=load_policy())
    with store_engine.begin() as conn:
        load_org(conn, [{"id": "d1"}], [{"id": "m1", "department": "d1", "role": "manager"},
                                        {"id": "s1", "department": "d1", "role": "sales", "grade": "C", "rank": 1},
                                        {"id": "s2", "department": "d1", "role": "sales", "grade": "C", "rank": 2}])
    runs.tick(ctx, START)  # the clock, the schedules and the rotation begin here
    return ctx


def _history(ctx: StageContext, first: int, n: int) -> None:
    """`n` more customers held since the start, their follow-up obligations met and settled, with records:
    history a run must not read again when nothing of it can be due (their 6-month periods end in July)."""
    with ctx.engine.begin() as conn:
        insert_rows(conn, Customer.__table__, [
            {"ref": f"h{i}", "tier": "C", "amount_yuan": 250_000.0, "target": True, "channel": "hotline",
             "status": "assigned", "owner_id": "s1", "department_id": "d1", "created_at": START}
            for i in range(first, first + n)])
        ids = conn.execute(select(Customer.id).where(Customer.ref.in_([f"h{i}" for i in range(first, first + n)]))
                           ).scalars().all()
        insert_rows(conn, Assignment.__table__, [
            {"customer_id": c, "person_id": "s1", "department_id": "d1", "kind": "allocation", "rule_id": "R-ALLOC-2",
             "tier": "C", "started_at": START, "clock_start": START, "policy_version": ctx.policy.version,
             "sla_settled": True} for c in ids])
        insert_rows(conn, Activity.__table__, [
            {"customer_id": c, "person_id": "s1", "kind": kind, "at": START + HOUR} for c in ids
            for kind in ("contact", "crm_entry", "call_register", "follow_up")])


def test_r_sla_6_a_run_with_nothing_due_issues_statements_that_do_not_grow_with_the_store(store_engine,
                                                                                           monkeypatch):
    """…and asks the rules about no lead of the history: a conversion period (R-CONV-1) that cannot have ended
    by the run's time is not even computed (the read is bounded by the latest clock start that can have)."""
    judged = []
    expires_at = conversion_rules.expires_at
    monkeypatch.setattr(conversion_rules, "expires_at", lambda *a, **k: judged.append(a) or expires_at(*a, **k))
    ctx = _store(store_engine)
    _history(ctx, 0, 10)
    runs.tick(ctx, START + DAY)
    with counting(store_engine) as small:
        out = runs.tick(ctx, START + 2 * DAY)
    assert out["timed"] == [] and out["pool"]["offered"] == 0
    _history(ctx, 10, 400)
    with counting(store_engine) as large:
        out = runs.tick(ctx, START + 3 * DAY)
    assert out["timed"] == [] and out["pool"]["offered"] == 0
    assert len(large) == len(small), "the statements of an idle run grew with the store's history"
    assert len(small) <= NOTHING_DUE_MAX[store_engine.dialect.name], small
    assert judged == []


def test_r_sla_6_an_idle_run_still_catches_up_what_falls_due(store_engine):
    """The bounded reads still find every due instant: a lead left uncontacted is breached at its deadline."""
    ctx = _store(store_engine)
    _history(ctx, 0, 50)
    with store_engine.begin() as conn:
        cid = conn.execute(Customer.__table__.insert().values(
            ref="late", tier="C", amount_yuan=250_000.0, target=True, channel="hotline", status="assigned",
            owner_id="s2", department_id="d1", created_at=START + DAY)).inserted_primary_key[0]
        conn.execute(Assignment.__table__.insert().values(
            customer_id=cid, person_id="s2", department_id="d1", kind="allocation", rule_id="R-ALLOC-2", tier="C",
            started_at=START + DAY, clock_start=START + DAY, policy_version=ctx.policy.version))
    out = runs.tick(ctx, START + 4 * DAY)
    assert [r["stage"] for r in out["timed"]] == ["sla_check"]
    with store_engine.connect() as conn:
        rules = sorted(conn.execute(select(Breach.rule_id).where(Breach.customer_id == cid)).scalars())
    assert rules == ["R-SLA-1", "R-SLA-2", "R-SLA-3", "R-SLA-4"]


def test_r_sla_7_a_delivery_of_one_record_issues_statements_that_do_not_grow_with_the_store(store_engine):
    """A record is applied, checked against the breaches it might disprove (R-SLA-7) and accounted for."""
    ctx = _store(store_engine)
    _history(ctx, 0, 10)
    with store_engine.connect() as conn:
        customer = str(conn.execute(select(Customer.id).where(Customer.ref == "h3")).scalar())

    def deliver(i: int, at: dt.datetime) -> list[str]:
        with counting(store_engine) as seen:
            summary = runs.record(ctx, [{"type": "follow_up", "at": at, "customer": customer, "row_number": 1}], at,
                                  batch_id=f"cost-{i}", source="test")
        assert summary["applied"] == 1, summary
        return seen

    deliver(0, START + DAY)
    small = deliver(1, START + 2 * DAY)
    _history(ctx, 10, 400)
    large = deliver(2, START + 3 * DAY)
    assert len(large) == len(small), "the statements of a one-record delivery grew with the store's history"



def test_r_conv_1_the_expiry_read_is_bounded_per_period_length_and_still_exact(store_engine, monkeypatch):
    """A lead of a 10-month tier (A) is not computed in its seventh month, when only 6-month periods (C) can end;
    each expiry is still found exact at its own time (R-CONV-1: the rule computes it, the read only scopes)."""
    from leadflow.stages import conversion

    ctx = _store(store_engine)
    _history(ctx, 0, 1)  # a C lead held since START: 6 months
    with store_engine.begin() as conn:
        cid = conn.execute(Customer.__table__.insert().values(
            ref="a", tier="A", amount_yuan=900_000.0, target=True, channel="hotline", status="assigned",
            owner_id="s1", department_id="d1", created_at=START)).inserted_primary_key[0]
        conn.execute(Assignment.__table__.insert().values(
            customer_id=cid, person_id="s1", department_id="d1", kind="allocation", rule_id="R-ALLOC-2", tier="A",
            started_at=START, clock_start=START, policy_version=ctx.policy.version, sla_settled=True))
    c_expiry = conversion_rules.expires_at(START, "C", ctx.policy)
    a_expiry = conversion_rules.expires_at(START, "A", ctx.policy)
    judged = []
    expires_at = conversion_rules.expires_at
    monkeypatch.setattr(conversion_rules, "expires_at", lambda *a, **k: judged.append(a[1]) or expires_at(*a, **k))
    with store_engine.connect() as conn:
        assert conversion.next_due(conn, ctx, c_expiry + DAY) == c_expiry
        assert judged == ["C"]  # the A lead, months from its end, is not read
        conn.execute(Assignment.__table__.update().where(Assignment.customer_id != cid).values(exempt=True))
        early = conversion.next_due(conn, ctx, a_expiry - DAY)
        assert early is None or early > a_expiry - DAY  # nothing due by then (a later instant may be named)
        assert conversion.next_due(conn, ctx, a_expiry) == a_expiry
