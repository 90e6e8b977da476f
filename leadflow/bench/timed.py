"""The time-driven stages at scale, each beside ONE SQL statement that computes the same set (issue 10).

`measure(ctx, as_of)` runs on a store the bench filled: N leads registered and allocated at `as_of`, the owners'
first activity recorded (and possibly an SLA tick run). It times, in this order and in the same run:

1. **an SLA tick** (`leadflow.stages.sla.run`). A store of N open leads in steady state has a day's leads with
   obligations still open, the rest settled by earlier checks: all but one lead in `DAY_SHARE` (by assignment id)
   are marked settled, and the paused rounds the bench's bulk tick granted are taken as used, as a year's
   allocations would have used them (`steady_state`; the bench measures latency on that state too). The tick runs
   just past R-SLA-2's deadline (24 h after `as_of`, plus the evidence grace, before any R-SLA-3/4 deadline): a
   day's R-SLA-1/2 deadlines fall due at once. The statement
   selects the (assignment, rule) pairs due, unmet and not yet recorded, with `NOT EXISTS` on the records.
2. **a conversion-expiry day** (`leadflow.stages.conversion.run`). One lead in `DAY_SHARE` gets its conversion
   clock moved back (one UPDATE) so that its period ends at the start of the day after `as_of`; the stage
   runs a day later, taking them back and re-allocating them. The statement selects the open, non-exempt
   holdings whose period ended by then with no deal and no step 4 before the expiry.
3. **the monthly audit** (`leadflow.stages.audit.run_audit`) at the first 1st-of-month at least 30 days after
   `as_of`: every holding is older than 30 days, and those without an effective follow-up in the 30 days before
   are listed. A real store has follow-ups for most holdings: every open holding but one in `NEGLECTED_SHARE`
   (by assignment id) gets one, halfway through the quiet window (`FOLLOW_UPS_SQL`, one INSERT ... SELECT), so
   about 5 % are listed. The statement selects the same holdings with `NOT EXISTS` on the follow-ups.

Each stage runs in its own transaction (its commit is timed); each statement is run and fetched on its own
connection. The rules are never changed: the set-up only moves data (one UPDATE or INSERT ... SELECT each).
Returns [{"stage", "seconds", "statement_seconds", "rows", "statement_rows", "as_of"}]; `rows` is what the stage
decided (breaches, leads taken back or exempted, listings), `statement_rows` what the statement selected —
the same number when the stage and the statement agree.
"""
from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import case, func, insert, literal, select, text, update

from leadflow.clock import add_months, end_of_working_day_after, local, month_starts_between
from leadflow.rules import sla as sla_rules
from leadflow.stages import audit, conversion, sla
from leadflow.stages.context import StageContext
from leadflow.stages.marks import set_mark
from leadflow.store.models import Assignment, Pause, PauseBalance

DAY_SHARE = 250  # about 250 working days a year: a day's leads are one in 250 of a year's
NEGLECTED_SHARE = 20  # one holding in 20 (5 %) has no effective follow-up in the audit's quiet window
MINUTE = dt.timedelta(minutes=1)


def _utc(t: dt.datetime, dialect: str):
    """A bound time as the store keeps it (naive UTC; SQLite compares text)."""
    naive = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return naive.isoformat(sep=" ", timespec="microseconds") if dialect == "sqlite" else naive


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _statement(ctx: StageContext, sql: str, params: dict) -> tuple[int, float]:
    with ctx.engine.connect() as conn:
        rows, seconds = _timed(lambda: conn.execute(text(sql), params).all())
    return len(rows), seconds


# --- 1. the SLA tick ----------------------------------------------------------------------------------------
SLA_SQL = """
SELECT a.id, r.rule_id
FROM assignments a
JOIN (SELECT 'R-SLA-1' AS rule_id, 'contact' AS kind, CAST(:w1 AS INTEGER) AS minutes
      UNION ALL SELECT 'R-SLA-2', 'crm_entry', CAST(:w2 AS INTEGER)) r ON 1 = 1
WHERE a.sla_settled = :false AND a.bound = :true AND a.started_at <= :bound
  AND {deadline} < :due_before
  AND NOT EXISTS (SELECT 1 FROM activities x WHERE x.customer_id = a.customer_id AND x.person_id = a.person_id
                  AND x.kind = r.kind AND x.at >= a.started_at AND x.at <= {deadline})
  AND NOT EXISTS (SELECT 1 FROM breaches b WHERE b.assignment_id = a.id AND b.rule_id = r.rule_id)
  AND (a.ended_at IS NULL OR a.ended_at > {deadline})
"""


def _deadline_sql(dialect: str, column: str, minutes: str) -> str:
    if dialect == "postgresql":
        return f"({column} + make_interval(mins => {minutes}))"
    return f"strftime('%Y-%m-%d %H:%M:%f000', {column}, '+' || {minutes} || ' minutes')"


def steady_state(ctx: StageContext) -> int:
    """A year's store in steady state: what a store holding N open leads gathered over a year looks like, on the
    store the bench filled within the hour. Moves data, changes no rule. Returns the assignments settled.

    1. R-SLA-6: earlier checks settled every lead's SLA obligations but a day's leads' (one in DAY_SHARE, by
       assignment id): one UPDATE. The catch-up every run does reads the open obligations (`stages.sla.next_due`).
    2. R-ALLOC-4: the paused rounds the bench's bulk SLA tick granted (a penalty round of every eligible tier for
       each of its ~20 % R-SLA-1 breaches, all at one instant: 1,300-2,000 rounds per salesperson and tier at 1 M
       leads) are taken as used. In a real store they were granted over the year, a few a day, and each was used
       up by the person's next turn in that tier (R-ALLOC-4); left in place, every lead re-allocated passes over
       the paused people (a `pauses` row each) and most end in the pool (R-ALLOC-5), which no real store shows.
       For each (person, tier) with a positive balance: one `pauses` row of minus that balance (R-ALLOC-4, dated
       at the latest grant in the store, so it follows every grant it uses) and the balance set to 0 — one
       INSERT ... SELECT and one UPDATE, keeping every balance equal to its rows' sum (`leadflow.store.pauses`).
       Idempotent: a second call finds no positive balance.

    On PostgreSQL, then a VACUUM ANALYZE of what it and the bench's bulk steps wrote, as autovacuum would."""
    with ctx.engine.begin() as conn:
        t = Assignment.__table__
        settled = conn.execute(update(t).where(t.c.sla_settled.is_(False), t.c.id % DAY_SHARE != 0 % DAY_SHARE)
                               .values(sla_settled=True)).rowcount
        used = _paused_rounds_used(conn)
    if ctx.engine.dialect.name == "postgresql" and (settled or used):
        # as a store settled over a year with autovacuum on (PostgreSQL's default; the development server has it
        # off): the settled rows' old versions vacuumed away, statistics that know them. Left in the index, a
        # million dead entries made the open-obligations read 60-90 ms instead of 5 (every run's catch-up)
        # (and the activities and breaches the bench recorded in bulk just before, which autovacuum would have
        # analyzed meanwhile: without statistics the planner reads all of them for a few thousand customers)
        with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) assignments, activities, breaches, pauses, pause_balances"))
    return settled


USED_REASON = "steady state (bench): paused rounds granted in bulk, taken as used by a year's allocations"


def _paused_rounds_used(conn) -> int:
    """steady_state's step 2 (R-ALLOC-4): every positive balance used up by one `pauses` row of minus it, dated at
    the latest grant; the balances set to 0. Returns the rows written."""
    p, b = Pause.__table__, PauseBalance.__table__
    at = conn.execute(select(func.max(p.c.at)).where(p.c.rounds > 0)).scalar()
    if at is None:
        return 0
    used = conn.execute(insert(p).from_select(
        ["person_id", "tier", "rounds", "at", "rule_id", "reason"],
        select(b.c.person_id, b.c.tier, -b.c.rounds, literal(at, p.c.at.type), literal("R-ALLOC-4"),
               literal(USED_REASON)).where(b.c.rounds > 0).order_by(b.c.person_id, b.c.tier))).rowcount
    conn.execute(update(b).where(b.c.rounds > 0).values(rounds=0))
    return used


def sla_tick(ctx: StageContext, as_of: dt.datetime) -> dict:
    policy, dialect = ctx.policy, ctx.engine.dialect.name
    s = policy.sla
    tick = sla_rules.with_grace(as_of + dt.timedelta(hours=s.crm_entry_hours), policy) + MINUTE
    # before any R-SLA-3/4 deadline of the day's leads, so the statement's two windows are the whole set
    tick = min(tick, end_of_working_day_after(as_of, min(s.call_register_working_days, s.abcd_working_days),
                                              policy) - MINUTE)
    steady_state(ctx)
    deadline = _deadline_sql(dialect, "a.started_at", "r.minutes")
    n, statement = _statement(ctx, SLA_SQL.format(deadline=deadline), {  # first: the stage records the set
        "w1": s.first_contact_minutes, "w2": s.crm_entry_hours * 60, "false": False, "true": True,
        "bound": _utc(sla.due_bound(tick, policy) or tick, dialect),
        "due_before": _utc(sla_rules.without_grace(tick, policy), dialect)})
    with ctx.engine.begin() as conn:
        summary, seconds = _timed(lambda: sla.run(conn, ctx, tick))
    return {"stage": "sla_tick", "as_of": tick.isoformat(), "seconds": seconds, "statement_seconds": statement,
            "rows": summary["breaches"], "statement_rows": n}


# --- 2. a conversion-expiry day ----------------------------------------------------------------------------
CONVERSION_SQL = """
SELECT a.id
FROM assignments a JOIN customers c ON c.id = a.customer_id
WHERE a.ended_at IS NULL AND a.exempt = :false AND a.kind <> 'manager' AND c.status = 'assigned'
  AND a.clock_start <= :bound AND {expiry} <= :upto
  AND (c.converted_at IS NULL OR c.converted_at >= {expiry})
  AND NOT EXISTS (SELECT 1 FROM activities x WHERE x.customer_id = a.customer_id AND x.person_id = a.person_id
                  AND x.kind = 'sales_step' AND x.step >= :step AND x.at >= a.started_at AND x.at < {expiry})
"""


def _months_case(policy, column: str) -> str:
    months = policy.conversion.period_months
    whens = " ".join(f"WHEN '{tier}' THEN {int(m)}" for tier, m in sorted(months.items()) if m is not None)
    return f"(CASE {column} {whens} END)"


def _expiry_sql(dialect: str, policy) -> str:
    """add_months in business time (R-CONV-1), as the database does it."""
    offset = int(local(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), policy).utcoffset().total_seconds() // 60)
    months = _months_case(policy, "c.tier")
    if dialect == "postgresql":
        return (f"(a.clock_start + make_interval(mins => {offset}) + make_interval(months => {months})"
                f" - make_interval(mins => {offset}))")
    return (f"strftime('%Y-%m-%d %H:%M:%f000', a.clock_start, '+{offset} minutes', '+' || {months} || ' months', "
            f"'-{offset} minutes')")


def expiry_day(ctx: StageContext, as_of: dt.datetime) -> dict:
    policy, dialect = ctx.policy, ctx.engine.dialect.name
    day = local(as_of, policy).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    run_at = sla_rules.with_grace(day + dt.timedelta(days=1), policy)
    starts = {tier: add_months(day, -m) for tier, m in policy.conversion.period_months.items() if m is not None}
    with ctx.engine.begin() as conn:  # a day's periods end at the start of tomorrow, whatever their tier
        t = Assignment.__table__
        spread = {tier: start for tier, start in starts.items()}
        conn.execute(update(t).where(t.c.ended_at.is_(None), t.c.id % DAY_SHARE == 1 % DAY_SHARE,
                                     t.c.tier.in_(sorted(spread))).values(clock_start=case(spread, value=t.c.tier)))
    upto = sla_rules.without_grace(run_at, policy)
    n, statement = _statement(ctx, CONVERSION_SQL.format(expiry=_expiry_sql(dialect, policy)), {
        "false": False, "bound": _utc(conversion.started_by(upto, policy) or upto, dialect),
        "upto": _utc(upto, dialect), "step": policy.conversion.exempt_step})
    with ctx.engine.begin() as conn:
        summary, seconds = _timed(lambda: conversion.run(conn, ctx, run_at))
    return {"stage": "conversion_expiry", "as_of": run_at.isoformat(), "seconds": seconds,
            "statement_seconds": statement, "rows": summary["expired"], "statement_rows": n}


# --- 3. the monthly audit -----------------------------------------------------------------------------------
AUDIT_SQL = """
SELECT a.id
FROM assignments a JOIN customers c ON c.id = a.customer_id
WHERE a.ended_at IS NULL AND a.kind <> 'manager' AND c.status = 'assigned' AND a.started_at < :held_before
  AND NOT EXISTS (SELECT 1 FROM activities x WHERE x.customer_id = a.customer_id AND x.person_id = a.person_id
                  AND x.kind IN ('contact', 'follow_up', 'sales_step') AND x.at > :quiet_from AND x.at <= :audit_at)
"""


# R-SLA-5 set-up: the owners' effective follow-ups inside the quiet window, for every open holding but one in
# NEGLECTED_SHARE (by assignment id), as one INSERT ... SELECT. A real store has them for most holdings; without
# them the audit would list every holding and time the listings' writes, not the audit.
FOLLOW_UPS_SQL = """
INSERT INTO activities (customer_id, person_id, kind, at, recorded_at)
SELECT a.customer_id, a.person_id, 'follow_up', :at, :at
FROM assignments a
WHERE a.ended_at IS NULL AND a.kind <> 'manager' AND a.id % :share <> 0
"""


def monthly_audit(ctx: StageContext, as_of: dt.datetime) -> dict:
    policy, dialect = ctx.policy, ctx.engine.dialect.name
    s = policy.sla
    after = as_of + dt.timedelta(days=s.audit_held_days)
    audit_at = month_starts_between(after, add_months(local(after, policy), 2), policy)[0]
    run_at = sla_rules.with_grace(audit_at, policy)
    with ctx.engine.begin() as conn:  # halfway through the quiet window: an effective follow-up (R-SLA-5)
        at = audit_at - dt.timedelta(days=s.audit_quiet_days) / 2
        conn.execute(text(FOLLOW_UPS_SQL), {"at": _utc(at, dialect), "share": NEGLECTED_SHARE})
        if dialect == "postgresql":  # a million new rows: the planner must know them before the audit reads
            conn.execute(text("ANALYZE activities"))
    n, statement = _statement(ctx, AUDIT_SQL, {
        "held_before": _utc(audit_at - dt.timedelta(days=s.audit_held_days), dialect),
        "quiet_from": _utc(audit_at - dt.timedelta(days=s.audit_quiet_days), dialect),
        "audit_at": _utc(audit_at, dialect)})
    with ctx.engine.begin() as conn:
        set_mark(conn, audit.STAGE, audit_at - sla_rules.TICK)
    with ctx.engine.begin() as conn:
        summary, seconds = _timed(lambda: audit.run_audit(conn, ctx, run_at))
    return {"stage": "monthly_audit", "as_of": run_at.isoformat(), "seconds": seconds, "statement_seconds": statement,
            "rows": summary["listed"], "statement_rows": n}


def measure(ctx: StageContext, as_of: dt.datetime) -> list[dict]:
    """Time an SLA tick, a conversion-expiry day and the monthly audit on the store the bench filled (N leads
    allocated at `as_of`), each beside one SQL statement computing the same set, in this run (issue 10).

    Returns [{"stage", "seconds", "statement_seconds", "rows", "statement_rows", "as_of"}], seconds of wall
    time. Moves data to set each stage up (module docstring); changes no rule."""
    out = [sla_tick(ctx, as_of), expiry_day(ctx, as_of), monthly_audit(ctx, as_of)]
    for row in out:
        row["seconds"], row["statement_seconds"] = round(row["seconds"], 4), round(row["statement_seconds"], 4)
    return out


# --- a store to measure on, without the bench's intake (tests, profiling) -----------------------------------
def fill(ctx: StageContext, n: int, as_of: dt.datetime) -> int:
    """N open leads allocated at `as_of` to the sample organisation's salespeople, with the owners' records for
    a share of them (contact, CRM entry, follow-up, step 4), written in bulk. Returns N. Deterministic."""
    from leadflow.samples.generate import org
    from leadflow.stages.people import load_org
    from leadflow.store.bulk import insert_rows
    from leadflow.store.models import Activity, Customer, Person

    tiers = ("A", "B", "C", "C", "D", "D", "D", "below_d")
    with ctx.engine.begin() as conn:
        o = org()
        load_org(conn, o["departments"], o["people"])
        sales = [(p, d) for p, d in conn.execute(select(Person.id, Person.department_id)
                                                 .where(Person.role == "sales").order_by(Person.id))]
        first = (conn.execute(text("SELECT max(id) FROM customers")).scalar() or 0) + 1
        insert_rows(conn, Customer.__table__, [
            {"id": first + i, "ref": f"bench-{first + i}", "tier": tiers[i % len(tiers)], "amount_yuan": 100_000.0,
             "target": True, "channel": "hotline", "status": "assigned", "owner_id": sales[i % len(sales)][0],
             "department_id": sales[i % len(sales)][1], "self_found": False, "created_at": as_of}
            for i in range(n)])
        insert_rows(conn, Assignment.__table__, [
            {"customer_id": first + i, "person_id": sales[i % len(sales)][0], "department_id": sales[i % len(sales)][1],
             "kind": "allocation", "rule_id": "R-ALLOC-2", "tier": tiers[i % len(tiers)], "started_at": as_of,
             "clock_start": as_of, "exempt": False, "bound": True, "sla_settled": False, "policy_version": "bench"}
            for i in range(n)])
        records = []
        for i in range(n):
            cid, person = first + i, sales[i % len(sales)][0]
            if i % 20 < 17:  # 85 % contacted in time (R-SLA-1)
                records.append((cid, person, "contact", None, as_of + dt.timedelta(minutes=1 + i % 9)))
            if i % 4 < 3:  # 75 % entered in the CRM within hours (R-SLA-2)
                records.append((cid, person, "crm_entry", None, as_of + dt.timedelta(hours=1 + i % 7)))
            if i % 5 < 3:  # 60 % followed up within the week (R-SLA-5)
                records.append((cid, person, "follow_up", None, as_of + dt.timedelta(days=1 + i % 6)))
            if i % 20 == 3:  # 5 % reach step 4 (R-CONV-2)
                records.append((cid, person, "sales_step", 4, as_of + dt.timedelta(days=2)))
        insert_rows(conn, Activity.__table__, [{"customer_id": c, "person_id": p, "kind": k, "step": st, "at": at,
                                                "recorded_at": at} for c, p, k, st, at in records])
        if conn.dialect.name == "postgresql":  # ids given explicitly: move the sequence past them
            conn.execute(text("SELECT setval(pg_get_serial_sequence('customers', 'id'), "
                              "(SELECT max(id) FROM customers))"))
    return n
