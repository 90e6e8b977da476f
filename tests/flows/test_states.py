"""Issue 9.5, states that tell the truth: what needs a person — a child that did not complete, leads left in the
pool (R-ALLOC-5), records newly held (R-VAL-2) — ends the run Failed with one sentence; otherwise Completed.
The state rule itself (`flows.states`) without a server; the flows through Prefect's harness on both databases."""
from __future__ import annotations

import datetime as dt

from prefect.states import Completed, Failed

from flows.states import result_of

from tests.flows.test_inbox_flow import COLUMNS, _drop, _lead_row, harness, inbox, store, store_url  # noqa: F401

# ------------------------------------------------------------------ the rule, without a server


def test_issue9_5_a_parent_whose_child_failed_is_failed_with_one_sentence_naming_each():
    from flows.states import parent_state

    state = parent_state({"a.csv": Completed(), "b.csv": Failed(message="b.csv: 6 leads were left in the company "
                                                                         "pool: nobody eligible (R-ALLOC-5)."),
                          "c.csv": Failed(message="the file is empty.")}, "files", data={"x": 1})
    assert state.is_failed() and "\n" not in state.message
    assert state.message == ("2 of 3 files did not complete: b.csv: 6 leads were left in the company pool: nobody "
                             "eligible (R-ALLOC-5); c.csv: the file is empty.")
    assert result_of(state) == {"x": 1}


def test_issue9_5_a_parent_whose_children_all_completed_is_completed_with_its_summary():
    from flows.states import parent_state

    state = parent_state({"clock": Completed(), "report": Completed()}, "steps", data={"n": 2}, done="all done")
    assert state.is_completed() and state.message == "all done" and state.result() == {"n": 2}


def test_issue9_5_r_reg_7_a_raised_childs_sentence_drops_prefects_prefix_and_masks_phones():
    from flows.states import parent_state, sentence

    raised = Failed(message="Flow run encountered an exception: StoreError: the database dropped the work (13800138000)"
                            "\nTraceback ...")
    assert sentence(raised) == "the database dropped the work (138****8000)"
    state = parent_state({"inbox": Completed()}, "steps", more=[("回访13912340009.csv", "nothing taken.")])
    assert state.is_failed() and "13912340009" not in state.message and "139****0009" in state.message


# ------------------------------------------------------------------ the flows


def _pool_lead(ref: str, **registration) -> int:
    """A customer waiting in the pool with its decided registration (`registration` spoils it)."""
    from leadflow.store.models import Customer, Registration
    from tasks.context import stage_ctx

    t0 = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    with stage_ctx().engine.begin() as conn:
        cid = conn.execute(Customer.__table__.insert().values(
            ref=ref, tier="B", amount_yuan=450_000.0, target=True, channel="hotline", status="pool",
            created_at=t0)).inserted_primary_key[0]
        conn.execute(Registration.__table__.insert().values(**{
            "batch_id": f"b-{ref}", "row_number": 1, "ref": ref, "channel": "hotline", "phone_kind": "mobile",
            "amount_status": "ok", "amount_yuan": 450_000.0, "registered_at": t0, "registered_by": "k1",
            "by_known": True, "status": "accepted", "customer_id": cid, "staged_at": t0, "decided_at": t0,
            **registration}))
    return cid


def test_issue9_5_r_val_2_a_run_that_newly_holds_a_record_is_failed_and_the_next_one_not_for_that(inbox):
    from flows.clock import tick_flow

    now = dt.datetime.now(dt.timezone.utc)
    assert tick_flow(as_of=now - dt.timedelta(hours=2), return_state=True).is_completed()
    _pool_lead("bad", phone_kind="invalid")
    state = tick_flow(as_of=now - dt.timedelta(hours=1), return_state=True)
    assert state.is_failed() and "\n" not in state.message
    assert "1 record(s) newly held out of a stage until fixed (R-VAL-2): 1 by the allocation suite " \
           "(phone_format × 1)" in state.message
    assert result_of(state)["as_of"].endswith("+08:00")  # the summary is kept
    later = tick_flow(as_of=now, return_state=True)  # still held, not newly: that is the holds artifact's news
    assert "newly held" not in (later.message or "")


def test_issue9_5_r_alloc_5_a_lead_an_earlier_run_pooled_fails_that_run_not_every_later_one(store):
    """Found by the operator trial: while a lead waited in the pool every later run (each SLA check, a rerun
    of a registered file, a dispute) Failed with the same sentence. The run that pooled it is Failed; later runs
    say it under \"to look at\" and complete (the dispute rerun goes through the same outcome rule)."""
    from sqlalchemy import select

    from flows.dispute import dispute_flow
    from flows.intake import intake_flow
    from leadflow.stages.people import load_org
    from leadflow.store.models import Customer
    from tasks.context import stage_ctx

    ctx = stage_ctx()
    with ctx.engine.begin() as conn:  # a D-grade salesperson only: an A-tier lead waits in the pool (R-ALLOC-5)
        load_org(conn, [{"id": "d1"}], [{"id": "s1", "department": "d1", "role": "sales", "grade": "D", "rank": 1},
                                        {"id": "k1", "department": "d1", "role": "receptionist"}])
    path = _drop(store, "leads.csv", COLUMNS + _lead_row("13800138000", "60000") + _lead_row("13900139000", "900000"))
    assert intake_flow(path=str(path), return_state=True).is_failed()  # the A-tier lead is pooled
    with ctx.engine.connect() as conn:
        owned = conn.execute(select(Customer.id).where(Customer.owner_id == "s1")).scalar_one()
    state = dispute_flow(customer=owned, return_state=True)
    assert state.is_completed(), state.message
    assert result_of(state)["decision"]  # the decision is the run's result
