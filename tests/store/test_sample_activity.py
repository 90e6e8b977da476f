"""The sample organisation at work for a day, on both databases (R-SLA-1, R-SUSP-5, R-SLA-6/7).

A day of generated leads arrives in half-hourly registration batches; the owners' activity is planned from the
allocations on record (`leadflow.samples.feed`) and delivered as the CRM and 400 exports through `record_file`,
at every SLA deadline and every four hours, then the clock is brought to the day's end (`engine.tick`).
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

from leadflow import engine
from leadflow.events.api import record_file
from leadflow.policy import load_policy
from leadflow.samples import feed
from leadflow.samples.activity import MIX, plan
from leadflow.samples.generate import leads, org
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.state import world_state
from leadflow.wiring import make_gate

CST = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 3, 2)  # a Monday
BATCH = dt.timedelta(minutes=30)


def _ctx(store_engine, store_target) -> StageContext:
    policy = load_policy()
    o = org()
    with store_engine.begin() as conn:
        load_org(conn, o["departments"], o["people"])
    url, schema = store_target
    return StageContext(engine=store_engine, policy=policy, gate=make_gate(url, schema, policy))


def _drive_a_day(ctx: StageContext, folder, n: int = 200) -> tuple[dt.datetime, list[dict]]:
    """Registrations in half-hourly batches, the activity due between them; returns (day end, deliveries)."""
    t = dt.datetime.combine(DAY, dt.time(7, 30), tzinfo=CST)
    engine.tick(ctx, t)
    batches: dict[dt.datetime, list[dict]] = defaultdict(list)
    for row in leads(DAY, n=n, seed=3, days=1):
        at = dt.datetime.fromisoformat(row["registered_at"]).replace(tzinfo=CST)
        batches[t + ((at - t) // BATCH + 1) * BATCH].append(row)
    deliveries = []
    for at, rows in sorted(batches.items()):
        deliveries += feed.backfill(ctx, t, at, folder=folder)
        engine.register(ctx, f"day-{at:%H%M}", f"hotline-{at:%H%M}.csv",
                        [{**r, "row_number": i + 1} for i, r in enumerate(rows)], at)
        t = at
    end = dt.datetime.combine(DAY, dt.time(23, 30), tzinfo=CST)
    deliveries += feed.backfill(ctx, t, end, folder=folder)
    engine.tick(ctx, end)
    return end, deliveries


def test_r_sla_1_r_susp_5_a_days_first_contact_breaches_are_its_late_and_never_contacted_leads(
        store_engine, store_target, tmp_path):
    """R-SLA-1 breaches are exactly the leads whose owner contacted late or never, about the mix's 15 %, and
    most salespeople end the day unpaused (R-SUSP-5 pauses are used up by the day's later leads)."""
    ctx = _ctx(store_engine, store_target)
    end, deliveries = _drive_a_day(ctx, tmp_path / "activity")
    assert sum(d["refused"] for d in deliveries) == 0 and sum(d["applied"] for d in deliveries) > 200
    with store_engine.connect() as conn:
        state = world_state(conn, ctx.policy, "a day", end)
        allocated = feed.allocations(conn, end - dt.timedelta(days=1), end)
    first_contact = dt.timedelta(minutes=ctx.policy.sla.first_contact_minutes)
    missed = {a.customer for a in allocated
              if not any(r["type"] == "contact" and r["at"] <= a.allocated_at + first_contact
                         for r in plan(a, ctx.policy))}
    breached = {b["customer"] for b in state["breaches"] if b["rule"] == "R-SLA-1"}
    assert breached == missed  # no record made in time is a breach, none missed is let off
    assert abs(len(missed) / len(allocated) - (MIX["contact"].late + MIX["contact"].never)) < 0.07
    sales = [p["id"] for p in org()["people"] if p["role"] == "sales"]
    paused = [p for p in sales if state["people"][p]["paused_rounds"]]
    assert len(paused) < len(sales) / 2


def test_r_sla_6_delivering_the_day_again_records_nothing_twice(store_engine, store_target, tmp_path):
    """A second run of the feed finds nothing due, and an export file delivered again is one delivery."""
    ctx = _ctx(store_engine, store_target)
    end, _ = _drive_a_day(ctx, tmp_path / "activity", n=40)
    breaches = len(_state(ctx, end)["breaches"])
    assert feed.deliver(ctx, end, folder=tmp_path / "again")["rows"] == 0
    again = record_file(sorted((tmp_path / "activity").glob("call400-*.csv"))[0], as_of=end, ctx=ctx)
    assert again.get("already_recorded") is True
    assert len(_state(ctx, end)["breaches"]) == breaches


def _state(ctx: StageContext, end: dt.datetime) -> dict:
    with ctx.engine.connect() as conn:
        return world_state(conn, ctx.policy, "a day", end)


def test_r_sla_1_the_live_feed_every_two_minutes_delivers_contacts_made_in_time_before_their_deadline(
        store_engine, store_target):
    """The served `sample-activity` deployment: pushed through `record_events` every 2 minutes, up to 3 minutes
    ahead (within the clock skew), so only the late and never contacted leads are R-SLA-1 breaches."""
    ctx = _ctx(store_engine, store_target)
    t = dt.datetime.combine(DAY, dt.time(9, 0, 7, 500_000), tzinfo=CST)
    rows = leads(DAY, n=30, seed=4, days=1)
    engine.register(ctx, "morning", "hotline.csv", [{**r, "row_number": i + 1} for i, r in enumerate(rows)], t)
    for _ in range(8):  # the deployment's runs over the next quarter of an hour
        t += feed.EVERY
        assert feed.deliver(ctx, t, lookahead=feed.LOOKAHEAD)["refused"] == 0
    engine.tick(ctx, t)
    state = _state(ctx, t)
    with store_engine.connect() as conn:
        allocated = feed.allocations(conn, t - dt.timedelta(hours=1), t)
    on_time = {a.customer for a in allocated for r in plan(a, ctx.policy)
               if r["type"] == "contact" and r["at"] <= a.allocated_at + dt.timedelta(minutes=10)}
    breached = {b["customer"] for b in state["breaches"] if b["rule"] == "R-SLA-1"}
    assert allocated and breached == {a.customer for a in allocated} - on_time
