"""The sample organisation at work, on both databases (R-SLA-1, R-SUSP-5, R-SLA-6/7, R-REG-4).

The sample period is delivered as it happened (`leadflow.samples.history.deliver_history`): the front desk's
exports of registrations reach LeadFlow each at its own time, a few a day; the owners' activity, planned from the
allocations on record (`leadflow.samples.feed`), is delivered between them as the CRM, 400 and HR exports,
through `record_file`, at every SLA deadline. While the main job serves, `sample-activity` registers the few
new leads of each run (`history.register_new`) and pushes the activity through `record_events`.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from leadflow import engine
from leadflow.events.api import record_file
from leadflow.intake.readers import read_registration_file
from leadflow.policy import load_policy
from leadflow.samples import feed, history
from leadflow.samples.activity import MIX, plan
from leadflow.samples.generate import org, slot_of, write_sample
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.state import world_state
from leadflow.store.models import Assignment, Event, IntakeBatch, Registration
from leadflow.wiring import make_gate

CST = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 3, 2)  # a Monday
LAST = dt.datetime(2026, 3, 4, 20, 0)  # the period's last export: Wednesday 20:00, business time


def _ctx(store_engine, store_target) -> StageContext:
    policy = load_policy()
    o = org()
    with store_engine.begin() as conn:
        load_org(conn, o["departments"], o["people"])
    url, schema = store_target
    return StageContext(engine=store_engine, policy=policy, gate=make_gate(url, schema, policy))


def _state(ctx: StageContext, at: dt.datetime) -> dict:
    with ctx.engine.connect() as conn:
        return world_state(conn, ctx.policy, "sample", at)


def _history(ctx: StageContext, folder, n: int) -> tuple[dt.datetime, dict]:
    """Three days of the sample period: every export but the last through `deliver_history`, the inbox's at its
    time as the lifecycle run takes it, then the activity to the day's end and the clock to midnight."""
    write_sample(folder, DAY, LAST, n)
    (inbox,) = (folder / "inbox").iterdir()
    last = history.aware(slot_of(inbox.name), ctx.policy)
    summary = history.deliver_history(ctx, folder, last)
    batch, digest = history.file_batch(inbox)
    engine.register(ctx, batch, inbox.name, read_registration_file(inbox), last, digest)
    end = last + dt.timedelta(hours=4)
    feed.backfill(ctx, last, end, folder=folder / "activity")
    engine.tick(ctx, end)
    return end, summary


def test_r_sla_1_r_susp_5_the_sample_period_reaches_leadflow_export_by_export_and_most_people_stay_unpaused(
        store_engine, store_target, tmp_path):
    """Each export is allocated at its own time (a few leads a day per salesperson, not a period at once); the
    R-SLA-1 breaches are exactly the leads contacted late or never (about the mix's 15 %), and their R-SUSP-5
    pauses are used up by the next days' leads: most salespeople are not paused in their own grade's tier."""
    ctx = _ctx(store_engine, store_target)
    end, summary = _history(ctx, tmp_path, n=200)
    exports = sorted(history.aware(slot_of(p.name), ctx.policy) for p in (tmp_path / "registrations").iterdir())
    assert summary["exports"] == len(exports) == 11 and summary["activity"]["refused"] == 0
    with store_engine.connect() as conn:
        allocated_at = Counter(conn.execute(select(Assignment.started_at).where(Assignment.bound.is_(True)))
                               .scalars())
        allocated = feed.allocations(conn, end - dt.timedelta(days=4), end)
    assert set(allocated_at) <= set(exports) | {history.aware(LAST, ctx.policy)}
    assert len(allocated_at) >= 10 and max(allocated_at.values()) < 40  # day by day, a few at a time
    first_contact = dt.timedelta(minutes=ctx.policy.sla.first_contact_minutes)
    missed = {a.customer for a in allocated
              if not any(r["type"] == "contact" and r["at"] <= a.allocated_at + first_contact
                         for r in plan(a, ctx.policy))}
    state = _state(ctx, end)
    breached = {b["customer"] for b in state["breaches"] if b["rule"] == "R-SLA-1"}
    assert breached == missed  # no record made in time is a breach, none missed is let off
    assert abs(len(missed) / len(allocated) - (MIX["contact"].late + MIX["contact"].never)) < 0.07
    with store_engine.connect() as conn:
        standing = feed.standing(conn, ctx.policy, end)
    assert standing["paused_own_tier"] < standing["salespeople"] / 2


def test_r_reg_4_r_sla_6_delivering_the_sample_period_again_records_nothing_twice(store_engine, store_target,
                                                                                   tmp_path):
    """A second start: the exports are recognised by content, the activity by its event ids, and the clock
    does not go back (what was not taken yet reaches LeadFlow at the store's clock)."""
    ctx = _ctx(store_engine, store_target)
    end, _ = _history(ctx, tmp_path, n=60)
    with store_engine.connect() as conn:
        before = (conn.execute(select(func.count()).select_from(Registration)).scalar(),
                  conn.execute(select(func.count()).select_from(Event)).scalar(), engine.clock(conn))
    breaches = len(_state(ctx, end)["breaches"])
    again = history.deliver_history(ctx, tmp_path, history.aware(LAST, ctx.policy))
    assert again["exports"] == 0 and again["activity"].get("rows", 0) == 0
    assert feed.deliver(ctx, end, folder=tmp_path / "again")["rows"] == 0
    export = sorted((tmp_path / "activity").glob("call400-*.csv"))[0]
    assert record_file(export, as_of=end, ctx=ctx).get("already_recorded") is True
    with store_engine.connect() as conn:
        after = (conn.execute(select(func.count()).select_from(Registration)).scalar(),
                 conn.execute(select(func.count()).select_from(Event)).scalar(), engine.clock(conn))
    assert after == before and len(_state(ctx, end)["breaches"]) == breaches


def test_r_sla_1_the_live_feed_registers_a_few_leads_a_run_and_delivers_contacts_made_in_time(
        store_engine, store_target):
    """The served `sample-activity` deployment, every 2 minutes: the registrations taken since the last run
    (registered once however often it runs) are allocated, and the activity pushed through `record_events`
    up to 3 minutes ahead (within the clock skew), so only leads contacted late or never are R-SLA-1 breaches."""
    ctx = _ctx(store_engine, store_target)
    t = dt.datetime.combine(DAY, dt.time(10, 0, 7, 500_000), tzinfo=CST)
    engine.tick(ctx, t)
    registered = 0
    for _ in range(10):  # the deployment's runs over 20 minutes
        t += feed.EVERY
        new = history.register_new(ctx, t)
        assert history.register_new(ctx, t)["rows_in"] == 0  # the same run again: nothing new
        registered += new["accepted"]
        assert new["allocated"] == len([d for d in new["decisions"] if d["action"] == "allocate"])
        assert feed.deliver(ctx, t, lookahead=feed.LOOKAHEAD)["refused"] == 0
    engine.tick(ctx, t)
    with store_engine.connect() as conn:
        batches = conn.execute(select(func.count()).select_from(IntakeBatch)
                               .where(IntakeBatch.source == history.SOURCE_LIVE)).scalar()
        allocated = feed.allocations(conn, t - dt.timedelta(hours=1), t)
    assert 8 <= registered <= 40 and batches >= 5  # a handful a run, in working hours
    settled = [a for a in allocated if a.allocated_at + dt.timedelta(minutes=10) <= t]
    on_time = {a.customer for a in settled for r in plan(a, ctx.policy)
               if r["type"] == "contact" and r["at"] <= a.allocated_at + dt.timedelta(minutes=10)}
    breached = {b["customer"] for b in _state(ctx, t)["breaches"] if b["rule"] == "R-SLA-1"}
    assert settled and breached == {a.customer for a in settled} - on_time
