"""R-VAL-1/R-VAL-2 on the store (SQLite and PostgreSQL): a record a later stage's suite flags is held, its
customer stays out of that stage, the reason goes on the ledger once, and the hold clears when a later run
passes the record again — then the stage takes the customer in."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from expectations import gate as gate_module
from leadflow.policy import load_policy
from leadflow.stages import allocation, conversion, disputes, review, sla, validation
from leadflow.stages.context import StageContext
from leadflow.stages.marks import set_mark
from leadflow.stages.people import load_org
from leadflow.store.models import Assignment, Breach, Customer, Ledger, Registration, ValidationHold
from leadflow.wiring import make_gate

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday
HOUR = dt.timedelta(hours=1)


def utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.timezone.utc)


@pytest.fixture
def ctx(store_engine, store_target):
    url, schema = store_target
    policy = load_policy()
    with store_engine.begin() as conn:
        load_org(conn, [{"id": "d1"}], [{"id": "m1", "department": "d1", "role": "manager"},
                                        {"id": "s1", "department": "d1", "role": "sales", "grade": "A", "rank": 1},
                                        {"id": "s2", "department": "d1", "role": "sales", "grade": "A", "rank": 2}])
    yield StageContext(engine=store_engine, policy=policy, gate=make_gate(url, schema, policy))
    gate_module.clear_cache()


def _lead(ctx, ref: str, owner: str | None = None, tier: str = "B", amount: float = 450_000.0,
          **reg) -> tuple[int, int]:
    """A customer (in the pool, or assigned to `owner` since T0) and its decided registration; `reg` spoils it."""
    with ctx.engine.begin() as conn:
        cid = conn.execute(Customer.__table__.insert().values(
            ref=ref, tier=tier, amount_yuan=amount, target=True, channel="hotline",
            status="assigned" if owner else "pool", owner_id=owner, department_id="d1" if owner else None,
            created_at=T0)).inserted_primary_key[0]
        row = {"batch_id": f"b-{ref}", "row_number": 1, "ref": ref, "channel": "hotline", "phone_kind": "mobile",
               "amount_status": "ok", "amount_yuan": amount, "registered_at": T0, "registered_by": "m1",
               "by_known": True, "status": "accepted", "customer_id": cid, "staged_at": T0, "decided_at": T0, **reg}
        rid = conn.execute(Registration.__table__.insert().values(**row)).inserted_primary_key[0]
        if owner:
            conn.execute(Assignment.__table__.insert().values(
                customer_id=cid, person_id=owner, department_id="d1", kind="allocation", rule_id="R-ALLOC-2",
                tier=tier, started_at=T0, clock_start=T0, policy_version=ctx.policy.version))
    return cid, rid


def _fix(ctx, rid: int, **values) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(Registration.__table__.update().where(Registration.id == rid).values(**values))


def _allocate(ctx, at: dt.datetime) -> dict:
    """What the allocation flow does: the allocation suite on the pool's records, then the pool is offered."""
    with ctx.engine.connect() as conn:
        validation.check(ctx, "allocation", validation.records_in_play(conn, "pool"), at)
    with ctx.engine.begin() as conn:
        return allocation.allocate_pool(conn, ctx, at)


def _sla_check(ctx, at: dt.datetime) -> dict:
    """What the SLA-check flow does: the sla_check suite on the records in play, then the check."""
    with ctx.engine.connect() as conn:
        validation.check(ctx, "sla_check", validation.records_in_play(conn), at)
    with ctx.engine.begin() as conn:
        return sla.run(conn, ctx, at)


def _ledger(ctx, action: str) -> list[tuple]:
    with ctx.engine.connect() as conn:
        return conn.execute(select(Ledger.customer_id, Ledger.reason, Ledger.at).where(Ledger.action == action)
                            .order_by(Ledger.id)).all()


def _customer(ctx, cid: int) -> tuple:
    with ctx.engine.connect() as conn:
        return conn.execute(select(Customer.status, Customer.owner_id).where(Customer.id == cid)).one()


def _holds(ctx) -> list[tuple]:
    with ctx.engine.connect() as conn:
        return conn.execute(select(ValidationHold.registration_id, ValidationHold.suite, ValidationHold.reasons,
                                   ValidationHold.flagged_at, ValidationHold.cleared_at)
                            .order_by(ValidationHold.id)).all()


# ------------------------------------------------------------------ allocation


def test_r_val_2_a_record_the_allocation_suite_flags_keeps_its_customer_in_the_pool_on_hold(ctx):
    held, rid = _lead(ctx, "bad", phone_kind="invalid")
    fine, _ = _lead(ctx, "good")
    summary = _allocate(ctx, T0)
    assert summary["offered"] == summary["allocated"] == 1  # the stage runs on the rest
    assert _customer(ctx, held) == ("pool", None) and _customer(ctx, fine)[0] == "assigned"
    with ctx.engine.connect() as conn:
        assert validation.open_holds(conn) == [{"registration_id": rid, "customer_id": held, "suite": "allocation",
                                                "reasons": ["phone_format"], "flagged_at": utc(T0).isoformat()}]
        assert rid in validation.records_in_play(conn, "pool")  # still validated on every run
    assert _ledger(ctx, "validation_flag") == [(held, "allocation suite: phone_format", T0)]


def test_r_val_2_an_allocation_hold_clears_when_the_record_is_fixed_and_the_customer_is_then_allocated(ctx):
    held, rid = _lead(ctx, "bad", phone_kind="invalid")
    _allocate(ctx, T0)
    _allocate(ctx, T0 + HOUR)  # still broken: still held, nothing new on the ledger
    assert _customer(ctx, held) == ("pool", None) and len(_ledger(ctx, "validation_flag")) == 1
    _fix(ctx, rid, phone_kind="mobile")  # the phone is corrected
    summary = _allocate(ctx, T0 + 2 * HOUR)
    assert summary["allocated"] == 1 and _customer(ctx, held)[0] == "assigned"
    assert _holds(ctx) == [(rid, "allocation", ["phone_format"], T0, T0 + 2 * HOUR)]
    assert _ledger(ctx, "validation_cleared") == [(held, "allocation suite: the record passes again", T0 + 2 * HOUR)]
    with ctx.engine.connect() as conn:
        assert validation.open_holds(conn) == []


def test_r_val_2_two_runs_at_the_same_as_of_write_one_ledger_row_and_one_hold(ctx):
    _lead(ctx, "bad", channel="bogus")
    _allocate(ctx, T0)
    _allocate(ctx, T0)
    assert len(_ledger(ctx, "validation_flag")) == 1 and len(_holds(ctx)) == 1


def test_r_val_2_a_hold_on_a_record_without_customer_does_not_empty_the_stage(ctx):
    """`NOT IN` a list holding NULL is never true: a hold without a customer must keep no one out."""
    waiting, rid = _lead(ctx, "good")
    with ctx.engine.begin() as conn:
        orphan = conn.execute(Registration.__table__.insert().values(
            batch_id="b-x", row_number=1, phone_kind="mobile", amount_status="ok", registered_at=T0,
            by_known=True, status="accepted", customer_id=None, staged_at=T0, decided_at=T0,
            channel="hotline")).inserted_primary_key[0]
    validation.check(ctx, "allocation", [rid, orphan], T0)
    with ctx.engine.connect() as conn:
        assert [h["reasons"] for h in validation.open_holds(conn)] == [["no_customer"]]
        assert [lead["id"] for lead in allocation.pool_leads(conn)] == [waiting]


def test_r_val_2_a_hold_whose_reasons_change_stays_one_hold_with_the_new_reasons(ctx):
    _, rid = _lead(ctx, "bad", phone_kind="invalid")
    _allocate(ctx, T0)
    _fix(ctx, rid, phone_kind="mobile", channel="bogus")
    _allocate(ctx, T0 + HOUR)
    assert _holds(ctx) == [(rid, "allocation", ["channel"], T0, None)]
    assert len(_ledger(ctx, "validation_flag")) == 1


# ------------------------------------------------------------------ SLA check


def _breaches(ctx, cid: int) -> list[tuple]:
    with ctx.engine.connect() as conn:
        return conn.execute(select(Breach.rule_id, Breach.at).where(Breach.customer_id == cid)
                            .order_by(Breach.at, Breach.rule_id)).all()


def test_r_val_2_a_customer_held_by_the_sla_suite_gets_no_breach_and_the_check_catches_up_once_cleared(ctx):
    with ctx.engine.begin() as conn:
        set_mark(conn, sla.STAGE, T0)
    held, rid = _lead(ctx, "bad", owner="s1", decided_at=None)  # a clock without a recorded start
    other, _ = _lead(ctx, "good", owner="s2")
    first_contact = T0 + dt.timedelta(minutes=ctx.policy.sla.first_contact_minutes)
    _sla_check(ctx, T0 + HOUR)
    _sla_check(ctx, T0 + HOUR)  # idempotent
    assert _breaches(ctx, held) == [] and _breaches(ctx, other) == [("R-SLA-1", first_contact)]
    assert _ledger(ctx, "validation_flag") == [(held, "sla_check suite: missing_field", T0 + HOUR)]
    _fix(ctx, rid, decided_at=T0)
    _sla_check(ctx, T0 + 2 * HOUR)
    assert _breaches(ctx, held) == [("R-SLA-1", first_contact)]  # the deadline it missed while held
    assert len(_ledger(ctx, "validation_cleared")) == 1
    with ctx.engine.connect() as conn:
        assert validation.open_holds(conn) == []


# ------------------------------------------------------------------ quarterly review, dispute rerun


def test_r_val_2_the_quarterly_review_does_not_retier_a_customer_held_by_the_tiering_suite(ctx):
    held, rid = _lead(ctx, "bad", owner="s1", tier="D", amount=900_000.0, amount_status="absurd")
    with ctx.engine.connect() as conn:
        validation.check(ctx, "tiering", validation.records_in_play(conn), T0)
    with ctx.engine.begin() as conn:
        assert review.retier(conn, ctx, T0) == []
    _fix(ctx, rid, amount_status="ok")
    with ctx.engine.connect() as conn:
        validation.check(ctx, "tiering", validation.records_in_play(conn), T0 + HOUR)
    with ctx.engine.begin() as conn:
        assert [(c["cid"], c["new"]) for c in review.retier(conn, ctx, T0 + HOUR)] == [(held, "A")]


def test_r_val_2_a_held_customers_dispute_is_not_decided_and_says_why(ctx):
    cid, rid = _lead(ctx, "x", owner="s1", channel="self", registered_by="s9", by_known=False)
    with ctx.engine.connect() as conn:
        validation.check(ctx, "dispute", validation.registrations_of(conn, cid), T0)
    with ctx.engine.begin() as conn:
        result = disputes.rerun(conn, ctx, cid, T0)
    assert result["held"] is True and result["recorded"] is False and result["rule"] == "R-VAL-2"
    assert result["evidence"] == [f"registration {rid} is on hold: unknown_person"]
    assert len(_ledger(ctx, "dispute_decision")) == 0
    _fix(ctx, rid, registered_by="s1", by_known=True)
    with ctx.engine.connect() as conn:
        validation.check(ctx, "dispute", validation.registrations_of(conn, cid), T0 + HOUR)
    with ctx.engine.begin() as conn:
        decided = disputes.rerun(conn, ctx, cid, T0 + HOUR)
    assert "held" not in decided and decided["recorded"] is True


def test_r_val_2_open_holds_never_carry_a_phone_or_a_name(ctx):
    _lead(ctx, "bad", phone_kind="invalid", phone="1380013800", name="张三")
    _allocate(ctx, T0)
    with ctx.engine.connect() as conn:
        (hold,) = validation.open_holds(conn)
        count = conn.execute(select(func.count()).select_from(ValidationHold)).scalar()
    assert set(hold) == {"registration_id", "customer_id", "suite", "reasons", "flagged_at"} and count == 1
    assert "1380013800" not in repr(hold) and "张三" not in repr(hold)


def test_r_val_2_recheck_releases_a_fixed_record_when_none_of_its_stages_falls_due(ctx):
    held, rid = _lead(ctx, "bad", owner="s1", decided_at=None)
    _sla_check(ctx, T0 + HOUR)
    _fix(ctx, rid, decided_at=T0)
    assert validation.recheck_holds(ctx, T0 + 2 * HOUR) == ["sla_check"]
    assert _holds(ctx)[0][-1] == T0 + 2 * HOUR
    assert validation.recheck_holds(ctx, T0 + 3 * HOUR) == []  # nothing held: nothing run


# ------------------------------------------------------------------ conversion expiry


def test_r_val_2_expiry_leaves_a_held_customer_alone_and_finds_its_past_expiry_once_released(ctx):
    held, rid = _lead(ctx, "bad", owner="s1", tier="C", amount=250_000.0, phone_kind="invalid")
    later = T0 + dt.timedelta(days=200)  # past the 6 months of tier C
    with ctx.engine.connect() as conn:
        validation.check(ctx, "conversion_expiry", validation.records_in_play(conn), later)
        assert conversion.load_cases(conn, ctx) == [] and conversion.next_due(conn, ctx, later) is None
    _fix(ctx, rid, phone_kind="mobile")
    with ctx.engine.connect() as conn:
        validation.check(ctx, "conversion_expiry", validation.records_in_play(conn), later + HOUR)
        ((expiry, case),) = conversion.load_cases(conn, ctx)
    assert case.customer_id == held and expiry < later  # due at once: the catch-up dates it at its expiry
