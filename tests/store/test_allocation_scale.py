"""Issue 10: the allocation stage offers the pool page by page and writes chunk by chunk, as one pass (R-ALLOC-1..7).

A pool allocated in chunks of a few leads ends exactly as the straightforward rule decides it in one pass over
the same pool (pointers, paused rounds and replacements carried across chunks), and the statements an allocation
issues do not grow with the number of leads. On both databases."""
from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import event, select

from leadflow.policy import load_policy
from leadflow.rules.allocation import next_owner
from leadflow.samples.generate import org
from leadflow.stages import allocation
from leadflow.stages.allocation import (
    allocate_pool, decision_reason, load_debts, pointers_for_week, pool_leads, pool_reason,
)
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.stages.roster import load_roster
from leadflow.store.bulk import insert_rows
from leadflow.store import pauses
from leadflow.store.models import Customer, Ledger, ReplacementDebt

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
TIERS = ("A", "B", "C", "D", "below_d", "C", "D", "unclassified", "non_target", "B")


def _store(engine, leads: int, tier: str | None = None) -> StageContext:
    o = org()
    with engine.begin() as conn:
        load_org(conn, o["departments"], o["people"])
        _pool(conn, leads, tier)
        pauses.append(conn, [  # s106 (grade C) and s209 (grade D) paused (R-ALLOC-4)
            {"person_id": "s106", "tier": "C", "rounds": 1, "at": NOW, "rule_id": "R-ALLOC-4", "reason": "t"},
            {"person_id": "s209", "tier": "D", "rounds": 2, "at": NOW, "rule_id": "R-ALLOC-4", "reason": "t"}])
        conn.execute(ReplacementDebt.__table__.insert(), [  # owed ahead of the rotation (R-ALLOC-6)
            {"person_id": "s301", "tier": "B", "owed_since": NOW, "rule_id": "R-VAL-4"},
            {"person_id": "s302", "tier": "C", "owed_since": NOW, "rule_id": "R-VAL-4"}])
    return StageContext(engine=engine, policy=load_policy())


def _pool(conn, n: int, tier: str | None = None, start: int = 0) -> None:
    # created_at repeats (three leads a minute): the keyset's id breaks the ties (R-ALLOC-5, oldest first)
    insert_rows(conn, Customer.__table__, [
        {"ref": f"c{i}", "tier": tier or TIERS[i * 7 % len(TIERS)], "channel": "hotline", "status": "pool",
         "created_at": NOW - dt.timedelta(minutes=(n + start - i) // 3)} for i in range(start, start + n)])


def _reference(conn, ctx) -> list[tuple]:
    """The rule alone, one pass over the whole pool, a fresh roster copy after each decision."""
    roster, debts = load_roster(conn, ctx.policy, NOW), load_debts(conn)
    pointers, out = pointers_for_week({}, 0), []
    for lead in pool_leads(conn):
        d = next_owner(lead["tier"], roster, pointers, 0, frozenset(), debts)
        pointers.update(d.pointer_updates)
        debts = [x for x in debts if x.id != d.debt_id]
        people = dict(roster.people)
        for pid in d.consumed_pauses:
            paused = people[pid].paused
            people[pid] = dataclasses.replace(people[pid], paused={**paused, d.tier: paused[d.tier] - 1})
        roster = dataclasses.replace(roster, people=people)
        reason = (decision_reason(d.explanation) if d.person
                  else "left in the company pool: " + pool_reason(d.explanation))
        out.append((lead["id"], d.person, d.rule, reason, d.explanation))
    return out


def test_r_alloc_5_a_pool_offered_in_pages_and_written_in_chunks_ends_as_one_pass_decides(store_engine, monkeypatch):
    ctx = _store(store_engine, 95)
    with store_engine.connect() as conn:
        want = _reference(conn, ctx)
    monkeypatch.setattr(allocation, "CHUNK_ROWS", 7)  # 14 pages and chunks, pointers carried across them
    with store_engine.begin() as conn:
        out = allocate_pool(conn, ctx, NOW)
    assert (out["offered"], out["allocated"] + out["pooled"]) == (95, 95)
    with store_engine.connect() as conn:
        got = [tuple(r) for r in conn.execute(
            select(Ledger.customer_id, Ledger.person_id, Ledger.rule_id, Ledger.reason, Ledger.explanation)
            .where(Ledger.action.in_(("allocate", "pooled"))).order_by(Ledger.id))]
        owners = dict(conn.execute(select(Customer.id, Customer.owner_id)).all())
    assert got == want
    assert {cid: p for cid, p, *_ in want} == owners
    assert [d["customer_id"] for d in out["decisions"]] == [w[0] for w in want]


def test_r_alloc_5_statements_of_an_allocation_do_not_grow_with_the_leads(store_engine):
    ctx = _store(store_engine, 6, tier="C")
    with store_engine.begin() as conn:  # warm: the rotation epoch and the pointers of tier C exist
        allocate_pool(conn, ctx, NOW)
    counts = []
    for n, start in ((20, 6), (80, 26)):
        with store_engine.begin() as conn:
            _pool(conn, n, "C", start)
        seen = []
        listener = lambda *a: seen.append(a[2])  # noqa: E731
        event.listen(store_engine, "before_cursor_execute", listener)
        try:
            with store_engine.begin() as conn:
                assert allocate_pool(conn, ctx, NOW + dt.timedelta(minutes=n))["allocated"] == n
        finally:
            event.remove(store_engine, "before_cursor_execute", listener)
        counts.append(len(seen))
    assert counts[0] == counts[1], counts
