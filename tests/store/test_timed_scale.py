"""Issue 10: the time-driven stages at scale, on SQLite and PostgreSQL. Each stage decides the same set as one
SQL statement (the bench's `leadflow.bench.timed`), and its statements per run do not grow with the leads it
handles: the SLA check (R-SLA-1..4, R-SLA-6), conversion expiry (R-CONV-2, R-SUSP-7) and the monthly audit
(R-SLA-5). No timings here: speed lives in `leadflow bench`."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import event, func, select

from leadflow.bench import timed
from leadflow.policy import load_policy
from leadflow.stages.context import StageContext
from leadflow.store.models import Assignment, Bar, Breach, Ledger

CST = dt.timezone(dt.timedelta(hours=8))
AS_OF = dt.datetime(2026, 10, 30, 10, 0, tzinfo=CST)  # a Friday; the audit of 1 December sees week-one follow-ups


def _measured(engine, n: int, monkeypatch) -> tuple[list[dict], dict[str, int]]:
    """`timed.measure` on n leads, every one in the day's share, with the statements each stage issued."""
    monkeypatch.setattr(timed, "DAY_SHARE", 1)
    ctx = StageContext(engine=engine, policy=load_policy())
    timed.fill(ctx, n, AS_OF)
    counts: dict[str, int] = {}
    current = ["setup"]

    def count(*_args, **_kw):
        counts[current[0]] = counts.get(current[0], 0) + 1

    event.listen(engine, "before_cursor_execute", count)
    wrapped = {}
    for name in ("sla_tick", "expiry_day", "monthly_audit"):
        original = getattr(timed, name)

        def run(ctx, as_of, _original=original, _name=name):
            current[0] = _name
            try:
                return _original(ctx, as_of)
            finally:
                current[0] = "setup"
        wrapped[name] = run
        monkeypatch.setattr(timed, name, run)
    try:
        return timed.measure(ctx, AS_OF), counts
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_r_sla_6_r_conv_2_r_sla_5_each_stage_decides_the_set_its_one_statement_selects(store_engine, monkeypatch):
    figures, _ = _measured(store_engine, 40, monkeypatch)
    by_stage = {f["stage"]: f for f in figures}
    assert set(by_stage) == {"sla_tick", "conversion_expiry", "monthly_audit"}
    for f in figures:
        assert f["rows"] == f["statement_rows"] > 0, f
    with store_engine.connect() as conn:  # what the stages wrote: breaches, take-backs with bars, listings
        rules = dict(conn.execute(select(Breach.rule_id, func.count()).group_by(Breach.rule_id)).all())
        taken = conn.execute(select(func.count()).select_from(Ledger).where(Ledger.action == "take_back")).scalar()
        bars = conn.execute(select(func.count()).select_from(Bar)).scalar()
    assert rules["R-SLA-1"] + rules["R-SLA-2"] == by_stage["sla_tick"]["rows"]
    assert rules["R-SLA-5"] == by_stage["monthly_audit"]["rows"]
    assert taken == by_stage["conversion_expiry"]["rows"] and bars > 0


def test_r_conv_2_expired_leads_are_reallocated_away_from_their_owner_in_one_batch(store_engine, monkeypatch):
    _measured(store_engine, 24, monkeypatch)
    with store_engine.connect() as conn:
        ended = conn.execute(select(Assignment.customer_id, Assignment.person_id)
                             .where(Assignment.end_reason == "R-CONV-2")).all()
        now = dict(conn.execute(select(Assignment.customer_id, Assignment.person_id)
                                .where(Assignment.ended_at.is_(None))).all())
        barred = set(conn.execute(select(Bar.person_id, Bar.tier)).all())
        tiers = dict(conn.execute(select(Assignment.customer_id, Assignment.tier)
                                  .where(Assignment.end_reason == "R-CONV-2")).all())
    assert ended
    for cid, owner in ended:  # R-CONV-2: excluding the owner; R-SUSP-7: the owner barred from the tier
        assert now.get(cid) != owner
        assert (owner, tiers[cid]) in barred


def test_statements_per_time_driven_run_do_not_grow_with_the_leads(store_engine, monkeypatch):
    """R-SLA-6, R-CONV-2, R-SLA-5: never one statement per lead — a run over three times the leads issues
    about the same number of statements (reads by chunks of 5,000, one write per table, one allocation per
    instant); only whether a table has anything to write at all may differ."""
    _, few = _measured(store_engine, 40, monkeypatch)
    with store_engine.begin() as conn:  # a fresh store of three times the leads, in the same database
        for table in ("ledger", "bars", "breaches", "pauses", "fines", "activities", "assignments", "customers",
                      "schedule_marks", "rotation_pointers"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    _, many = _measured(store_engine, 120, monkeypatch)
    for stage in ("sla_tick", "expiry_day", "monthly_audit"):  # a table with nothing to write is skipped
        assert abs(many[stage] - few[stage]) <= 2, (stage, few, many)


def test_r_alloc_4_steady_state_takes_the_bulk_ticks_paused_rounds_as_used_keeping_balances_equal_to_the_rows(
        store_engine):
    """The bench's steady state (a year's store): the paused rounds its one bulk SLA tick granted are used up, as
    a year's allocations would have, by one R-ALLOC-4 row of minus each positive balance, dated at the latest
    grant; every balance stays the sum of its `pauses` rows (leadflow.store.pauses), and a second call adds none."""
    from leadflow.store import pauses
    from leadflow.store.models import Pause, PauseBalance

    ctx = StageContext(engine=store_engine, policy=load_policy())
    timed.fill(ctx, 4, AS_OF)
    with store_engine.begin() as conn:
        people = sorted(set(conn.execute(select(Assignment.person_id)).scalars()))[:2]
        grant = AS_OF + dt.timedelta(minutes=10)
        pauses.append(conn, [{"person_id": people[0], "tier": "A", "rounds": 3, "at": AS_OF, "rule_id": "R-SUSP-5",
                              "reason": "penalty", "source_key": "1:R-SLA-1"},
                             {"person_id": people[0], "tier": "B", "rounds": 1, "at": grant, "rule_id": "R-SUSP-5",
                              "reason": "penalty", "source_key": "1:R-SLA-1"},
                             {"person_id": people[1], "tier": "A", "rounds": 2, "at": AS_OF, "rule_id": "R-SUSP-5",
                              "reason": "penalty", "source_key": "2:R-SLA-1"},
                             {"person_id": people[1], "tier": "A", "rounds": -2, "at": grant, "rule_id": "R-ALLOC-4",
                              "reason": "used", "source_key": None}])
    for _ in range(2):
        timed.steady_state(ctx)
    with store_engine.connect() as conn:
        used = conn.execute(select(Pause.person_id, Pause.tier, Pause.rounds, Pause.at, Pause.rule_id)
                            .where(Pause.reason == timed.USED_REASON).order_by(Pause.person_id, Pause.tier)).all()
        balances = {(p, t): n for p, t, n in conn.execute(select(PauseBalance.person_id, PauseBalance.tier,
                                                                 PauseBalance.rounds))}
        sums = {(p, t): int(n) for p, t, n in conn.execute(select(Pause.person_id, Pause.tier, func.sum(Pause.rounds))
                                                           .group_by(Pause.person_id, Pause.tier))}
    assert [tuple(r) for r in used] == [(people[0], "A", -3, grant, "R-ALLOC-4"),
                                        (people[0], "B", -1, grant, "R-ALLOC-4")]
    assert balances == sums == {(people[0], "A"): 0, (people[0], "B"): 0, (people[1], "A"): 0}
