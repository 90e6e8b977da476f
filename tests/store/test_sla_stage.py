"""R-SLA-6 and R-SLA-7 on the store (SQLite and PostgreSQL): the SLA check has no window — after any gap it
catches up every missed deadline — and late evidence: breaches wait for the evidence grace, the policy switches
each rule (enforce, record, off), and a record that arrives late but dated in time revokes the breach it
disproves, with its fine and its unused pause, once."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from leadflow.policy import load_policy
from leadflow.stages import allocation, audit, conversion, sla, timed
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.stages.roster import load_paused
from leadflow.state import world_state
from leadflow.store.models import Activity, Assignment, Breach, Customer, Fine, Ledger, Pause

CST = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 1, 5, 8, 0, tzinfo=CST)  # a Monday
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=CST)
MIN, HOUR, DAY = dt.timedelta(minutes=1), dt.timedelta(hours=1), dt.timedelta(days=1)
ALL_FOUR = ["R-SLA-1", "R-SLA-2", "R-SLA-3", "R-SLA-4"]


def _ctx(engine, **sla_policy) -> StageContext:
    ctx = StageContext(engine=engine, policy=load_policy(overrides={"sla": sla_policy} if sla_policy else None))
    with engine.begin() as conn:
        load_org(conn, [{"id": "d1"}], [{"id": "m1", "department": "d1", "role": "manager"},
                                        {"id": "s1", "department": "d1", "role": "sales", "grade": "C", "rank": 1},
                                        {"id": "s2", "department": "d1", "role": "sales", "grade": "C", "rank": 2}])
        timed.mark_start(conn, START)
    return ctx


def _lead(ctx, ref: str, at: dt.datetime = T0, owner: str | None = "s1", tier: str = "C") -> int:
    """A customer of `tier`, held by `owner` since `at` (bound by R-SLA-1..4), or waiting in the pool."""
    with ctx.engine.begin() as conn:
        cid = conn.execute(Customer.__table__.insert().values(
            ref=ref, tier=tier, amount_yuan=250_000.0, target=True, channel="hotline",
            status="assigned" if owner else "pool", owner_id=owner, department_id="d1" if owner else None,
            created_at=at)).inserted_primary_key[0]
        if owner:
            conn.execute(Assignment.__table__.insert().values(
                customer_id=cid, person_id=owner, department_id="d1", kind="allocation", rule_id="R-ALLOC-2",
                tier=tier, started_at=at, clock_start=at, policy_version=ctx.policy.version))
    return cid


def _record(ctx, cid: int, kind: str, at: dt.datetime, recorded_at: dt.datetime | None = None,
            person: str = "s1") -> None:
    with ctx.engine.begin() as conn:
        conn.execute(Activity.__table__.insert().values(customer_id=cid, person_id=person, kind=kind, at=at,
                                                        recorded_at=recorded_at))


def _late_record(ctx, cid: int, kind: str, at: dt.datetime, recorded_at: dt.datetime) -> dict:
    """What the event intake does with a record: write it, then revoke what it disproves (R-SLA-7)."""
    with ctx.engine.begin() as conn:
        conn.execute(Activity.__table__.insert().values(customer_id=cid, person_id="s1", kind=kind, at=at,
                                                        recorded_at=recorded_at))
        return sla.revoke_disproved(conn, ctx, [cid], recorded_at)


def _breaches(ctx, revoked: bool | None = False) -> list[tuple]:
    q = select(Breach.customer_id, Breach.rule_id, Breach.at).order_by(Breach.at, Breach.id)
    if revoked is not None:
        q = q.where(Breach.revoked_at.is_not(None) if revoked else Breach.revoked_at.is_(None))
    with ctx.engine.connect() as conn:
        return [(c, r, at.astimezone(CST)) for c, r, at in conn.execute(q)]


def _count(ctx, table, *where) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


def _paused(ctx, person: str = "s1") -> dict:
    with ctx.engine.connect() as conn:
        return load_paused(conn).get(person, {})


def _person(ctx, person: str = "s1") -> dict:
    with ctx.engine.connect() as conn:
        return world_state(conn, ctx.policy, "t", T0)["people"][person]


def _run(ctx, at: dt.datetime) -> dict:
    with ctx.engine.begin() as conn:
        return sla.run(conn, ctx, at)


# --- R-SLA-6: no window ------------------------------------------------------------------------------

def test_r_sla_6_a_catch_up_after_22_days_of_silence_records_all_four_breaches_at_their_deadlines(store_engine):
    ctx = _ctx(store_engine)
    cid = _lead(ctx, "c1")
    timed.catch_up(ctx, T0 + 22 * DAY)
    close = dt.datetime(2026, 1, 6, 18, 0, tzinfo=CST)
    assert _breaches(ctx) == [(cid, "R-SLA-1", T0 + 10 * MIN), (cid, "R-SLA-2", T0 + DAY),
                              (cid, "R-SLA-3", close), (cid, "R-SLA-4", close)]
    assert _person(ctx)["fines_yuan"] == 60 and _paused(ctx) == {"C": 1, "D": 1, "below_d": 1}


def test_r_sla_6_one_late_run_a_year_on_records_every_missed_deadline_once(store_engine):
    ctx = _ctx(store_engine)
    _lead(ctx, "c1")
    summary = _run(ctx, T0 + 400 * DAY)
    again = _run(ctx, T0 + 400 * DAY)
    assert sorted(r["rule_id"] for r in summary["rows"]) == ALL_FOUR
    assert again["breaches"] == 0 and _count(ctx, Breach) == 4 and _count(ctx, Fine) == 3


def test_r_sla_6_settled_assignments_are_no_longer_read_and_next_due_sees_only_open_ones(store_engine):
    ctx = _ctx(store_engine)
    for i in range(30):
        _lead(ctx, f"old{i}", at=T0 - 90 * DAY + i * HOUR)
    _run(ctx, T0)
    assert _count(ctx, Assignment, Assignment.sla_settled.is_(True)) == 30
    _lead(ctx, "new", at=T0 + HOUR)
    with ctx.engine.connect() as conn:
        assert [o.tier for o in sla.load_obligations(conn)] == ["C"]
        assert sla.next_due(conn, ctx, T0 + DAY) == T0 + HOUR + 10 * MIN + dt.timedelta(microseconds=1)


def test_r_sla_6_an_obligation_not_yet_due_keeps_its_assignment_open_until_it_is_decided(store_engine):
    ctx = _ctx(store_engine)
    cid = _lead(ctx, "c1")
    _record(ctx, cid, "contact", T0 + 5 * MIN)
    _run(ctx, T0 + HOUR)
    assert _count(ctx, Assignment, Assignment.sla_settled.is_(True)) == 0
    for kind in ("crm_entry", "call_register", "abcd_entry"):
        _record(ctx, cid, kind, T0 + 2 * HOUR)
    _run(ctx, T0 + 3 * HOUR)
    assert _count(ctx, Assignment, Assignment.sla_settled.is_(True)) == 1 and _breaches(ctx) == []


# --- R-SLA-7: evidence grace ---------------------------------------------------------------------------

def test_r_sla_7_a_contact_recorded_30_minutes_late_within_a_60_minute_grace_prevents_the_breach(store_engine):
    ctx = _ctx(store_engine, evidence_grace_minutes=60)
    cid = _lead(ctx, "c1")
    with ctx.engine.connect() as conn:
        assert sla.next_due(conn, ctx, T0 + DAY) == T0 + 70 * MIN + dt.timedelta(microseconds=1)
    timed.catch_up(ctx, T0 + 40 * MIN)
    _record(ctx, cid, "contact", T0 + 9 * MIN, recorded_at=T0 + 40 * MIN)
    timed.catch_up(ctx, T0 + 3 * HOUR)
    assert _breaches(ctx) == [] and _paused(ctx) == {}


def test_r_sla_7_without_a_record_the_breach_waits_for_the_grace_and_is_dated_at_the_deadline(store_engine):
    ctx = _ctx(store_engine, evidence_grace_minutes=60)
    cid = _lead(ctx, "c1")
    timed.catch_up(ctx, T0 + 70 * MIN)
    assert _breaches(ctx) == []
    timed.catch_up(ctx, T0 + 71 * MIN)
    assert _breaches(ctx) == [(cid, "R-SLA-1", T0 + 10 * MIN)]


def test_r_sla_7_conversion_expiry_and_the_monthly_audit_wait_for_the_evidence_grace(store_engine):
    ctx = _ctx(store_engine, evidence_grace_minutes=60)
    _lead(ctx, "c1", tier="D")
    with ctx.engine.connect() as conn:
        expiry = dt.datetime(2026, 7, 5, 9, 0, tzinfo=CST)  # R-CONV-1: six months for D
        assert conversion.next_due(conn, ctx, expiry + DAY) == expiry + HOUR
        assert audit.next_audit(conn, ctx, T0 + 60 * DAY) == dt.datetime(2026, 2, 1, 1, 0, tzinfo=CST)


# --- R-SLA-7: the enforcement switch -----------------------------------------------------------------

def test_r_sla_7_record_lists_the_breach_on_the_ledger_without_fine_or_pause(store_engine):
    ctx = _ctx(store_engine, enforcement={"R-SLA-1": "record", "R-SLA-2": "record"})
    cid = _lead(ctx, "c1")
    for kind in ("call_register", "abcd_entry"):
        _record(ctx, cid, kind, T0 + HOUR)
    summary = _run(ctx, T0 + 2 * DAY)
    assert [r for _, r, _ in _breaches(ctx)] == ["R-SLA-1", "R-SLA-2"] and summary["recorded_only"] == 2
    assert _count(ctx, Ledger, Ledger.action == "breach") == 2
    assert _count(ctx, Fine) == 0 and _count(ctx, Pause) == 0 and _person(ctx)["fines_yuan"] == 0


def test_r_sla_7_off_does_not_check_the_rule_at_all(store_engine):
    ctx = _ctx(store_engine, enforcement={"R-SLA-1": "off", "R-SLA-3": "off", "R-SLA-4": "off"})
    cid = _lead(ctx, "c1")
    _record(ctx, cid, "crm_entry", T0 + HOUR)
    _run(ctx, T0 + 5 * DAY)
    assert _breaches(ctx) == [] and _count(ctx, Ledger) == 0
    assert _count(ctx, Assignment, Assignment.sla_settled.is_(True)) == 1


def test_r_sla_7_a_check_breaching_more_than_half_of_what_it_looked_at_says_so(store_engine):
    ctx = _ctx(store_engine, mass_breach_min_obligations=4)
    quiet = [_lead(ctx, f"c{i}") for i in range(3)]
    _record(ctx, quiet[0], "contact", T0 + MIN)
    summary = _run(ctx, T0 + HOUR)
    assert (summary["breaches"], summary["looked_at"], summary["mass_breach"]) == (2, 3, False)  # too few
    for i in range(3, 8):
        _lead(ctx, f"c{i}", at=T0 + 2 * HOUR)
    loud = _run(ctx, T0 + 3 * HOUR)
    assert (loud["breaches"], loud["looked_at"], loud["mass_breach"]) == (5, 5, True)
    assert "5 of the 5" in loud["warning"]
    assert _run(ctx, T0 + 4 * HOUR)["warning"] is None


# --- R-SLA-7: late records revoke breaches -----------------------------------------------------------

def test_r_sla_7_a_late_contact_dated_in_time_revokes_the_breach_and_removes_its_unused_pause(store_engine):
    ctx = _ctx(store_engine)
    cid = _lead(ctx, "c1")
    timed.catch_up(ctx, T0 + HOUR)
    assert _paused(ctx) == {"C": 1, "D": 1, "below_d": 1}
    entries = _count(ctx, Ledger)
    result = _late_record(ctx, cid, "contact", T0 + 8 * MIN, T0 + 2 * HOUR)
    assert (result["revoked"], result["pause_rounds_removed"]) == (1, 3)
    assert _count(ctx, Ledger) == entries + 1
    with ctx.engine.connect() as conn:
        rule, action, reason, explanation = conn.execute(
            select(Ledger.rule_id, Ledger.action, Ledger.reason, Ledger.explanation).order_by(Ledger.id.desc())).first()
    assert (rule, action) == ("R-SLA-7", "breach_revoked") and "R-SLA-1" in reason
    assert explanation["record"] == {"kind": "contact", "at": "2026-01-05T09:08:00+08:00",
                                     "recorded_at": "2026-01-05T11:00:00+08:00"}
    assert _breaches(ctx) == [] and _breaches(ctx, revoked=True) == [(cid, "R-SLA-1", T0 + 10 * MIN)]
    assert _paused(ctx) == {}


def test_r_sla_7_a_late_crm_entry_cancels_the_fine_of_the_breach_it_disproves(store_engine):
    ctx = _ctx(store_engine)
    cid = _lead(ctx, "c1")
    _record(ctx, cid, "contact", T0 + MIN)
    timed.catch_up(ctx, T0 + 2 * DAY)
    assert _person(ctx)["fines_yuan"] == 60  # R-SLA-2, -3, -4
    result = _late_record(ctx, cid, "crm_entry", T0 + 20 * HOUR, T0 + 2 * DAY + HOUR)
    assert (result["revoked"], result["fines_cancelled"], result["fine_yuan_cancelled"]) == (1, 1, 20)
    assert _person(ctx)["fines_yuan"] == 40 and _count(ctx, Fine) == 3  # kept, marked cancelled
    assert [r for _, r, _ in _breaches(ctx)] == ["R-SLA-3", "R-SLA-4"]


def test_r_sla_7_a_pause_already_used_stays_used_and_the_lead_it_moved_stays_moved(store_engine):
    ctx = _ctx(store_engine)
    cid = _lead(ctx, "c1")
    timed.catch_up(ctx, T0 + HOUR)  # R-SLA-1: s1 paused one round of C, D and below_d
    other = _lead(ctx, "c2", at=T0 + HOUR, owner=None)
    with ctx.engine.begin() as conn:
        allocation.allocate_pool(conn, ctx, T0 + HOUR)  # s1's C round is used: c2 goes to s2
    assert _paused(ctx) == {"D": 1, "below_d": 1}
    assert _late_record(ctx, cid, "contact", T0 + 9 * MIN, T0 + 2 * HOUR)["revoked"] == 1
    [withdrawn] = _explanation(ctx)["pauses_withdrawn"]
    assert withdrawn["removed"] == {"C": 0, "D": 1, "below_d": 1} and withdrawn["used"] == {"C": 1, "D": 0,
                                                                                            "below_d": 0}
    assert _paused(ctx) == {}
    with ctx.engine.connect() as conn:
        assert conn.execute(select(Customer.owner_id).where(Customer.id == other)).scalar() == "s2"


def _explanation(ctx) -> dict:
    with ctx.engine.connect() as conn:
        return conn.execute(select(Ledger.explanation).where(Ledger.action == "breach_revoked")
                            .order_by(Ledger.id.desc())).scalar()


def test_r_sla_7_revocation_is_idempotent_and_the_check_does_not_record_the_breach_again(store_engine):
    ctx = _ctx(store_engine)
    cid = _lead(ctx, "c1")
    timed.catch_up(ctx, T0 + HOUR)
    _late_record(ctx, cid, "contact", T0 + 8 * MIN, T0 + 2 * HOUR)
    counts = [_count(ctx, t) for t in (Ledger, Pause, Breach, Fine)]
    with ctx.engine.begin() as conn:
        assert sla.revoke_disproved(conn, ctx, [cid], T0 + 3 * HOUR)["revoked"] == 0
    _run(ctx, T0 + 3 * HOUR)
    _run(ctx, T0 + 3 * HOUR)
    assert [_count(ctx, t) for t in (Ledger, Pause, Breach, Fine)] == counts
    assert _paused(ctx) == {}


def test_r_sla_7_a_late_record_dated_after_the_deadline_or_a_listing_revokes_nothing(store_engine):
    ctx = _ctx(store_engine)
    cid = _lead(ctx, "c1")
    timed.catch_up(ctx, T0 + HOUR)
    assert _late_record(ctx, cid, "contact", T0 + 11 * MIN, T0 + 2 * HOUR)["revoked"] == 0
    assert _late_record(ctx, cid, "follow_up", T0 + 5 * MIN, T0 + 2 * HOUR)["revoked"] == 0  # not a contact
    assert len(_breaches(ctx)) == 1


def test_r_susp_3_r_sla_7_revoking_one_of_five_late_crm_entries_withdraws_the_months_pause(store_engine):
    ctx = _ctx(store_engine)
    leads = [_lead(ctx, f"c{i}", at=T0 + i * HOUR) for i in range(6)]
    for i, cid in enumerate(leads):
        for kind in ("contact", "call_register", "abcd_entry"):
            _record(ctx, cid, kind, T0 + i * HOUR + MIN)
    _run(ctx, T0 + DAY + 4 * HOUR + MIN)  # five CRM deadlines missed: the 5th pauses one round
    assert len(_breaches(ctx)) == 5 and _paused(ctx) == {"C": 1, "D": 1, "below_d": 1}
    result = _late_record(ctx, leads[2], "crm_entry", T0 + 20 * HOUR, T0 + DAY + 5 * HOUR)
    assert result["revoked"] == 1 and result["pause_rounds_removed"] == 3 and _paused(ctx) == {}
    _run(ctx, T0 + 2 * DAY)  # the 6th late entry is the 5th that stands: it pauses again
    assert len(_breaches(ctx)) == 5 and _paused(ctx) == {"C": 1, "D": 1, "below_d": 1}
    assert _person(ctx)["fines_yuan"] == 100
