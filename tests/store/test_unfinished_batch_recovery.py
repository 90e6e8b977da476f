"""A lead through the Python API whose run was killed after staging is decided by the next run (issue 10's "nothing
lost"; R-REG-1, R-ALLOC-1, R-ALLOC-7), on SQLite and PostgreSQL.

`register_lead` at the current time names its batch with the wall clock, so nothing ever delivers that batch again:
before, a process killed between staging and deciding (`intake.staged`) left the row `staged` for ever, counted in
no outcome and allocated to nobody. Every run now decides such a batch after its own act (`intake.recover_unfinished`)
and offers its lead in the same run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import func, select

from leadflow import engine
from leadflow.store.models import Customer, IntakeBatch, Ledger, Registration
from tests import crash_worker as scenario

PHONE = "13900077777"
LEAD = {"channel": "hotline", "name": "客户甲", "phone": PHONE, "amount": "50万", "registered_at": "2026-03-02 09:03",
        "registered_by": "k1", "target": "是", "external_ref": "TB-777"}

_CHILD = """
import json, sys
from tests import crash_worker as scenario
from leadflow.register import register_lead
ctx = scenario.store_context(sys.argv[1], None if sys.argv[2] == '-' else sys.argv[2])
register_lead(json.loads(sys.argv[3]), ctx=ctx)
print('not killed')
"""


def _kill_after_staging(url: str, schema: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEADFLOW_FAILPOINT": "intake.staged"}
    return subprocess.run([sys.executable, "-c", _CHILD, url, schema or "-", json.dumps(LEAD, ensure_ascii=False)],
                          cwd=scenario.ROOT, env=env, capture_output=True, text=True, timeout=300)


def _state(conn) -> dict:
    rt, ct, bt = Registration.__table__, Customer.__table__, IntakeBatch.__table__
    return {"registrations": [tuple(r) for r in conn.execute(select(rt.c.status, rt.c.customer_id, rt.c.batch_id))],
            "unfinished": conn.execute(select(func.count()).where(bt.c.finished_at.is_(None))).scalar(),
            "customers": [tuple(r) for r in conn.execute(select(ct.c.id, ct.c.status, ct.c.owner_id))],
            "ledger": [tuple(r) for r in conn.execute(
                select(Ledger.rule_id, Ledger.action, Ledger.customer_id).order_by(Ledger.id))]}


def test_r_reg_1_an_api_lead_killed_after_staging_is_decided_and_allocated_by_the_next_run(database_url):
    url, schema = database_url
    ctx = scenario.store_context(url, schema)
    try:
        scenario.prepare(ctx)
        child = _kill_after_staging(url, schema)
        assert child.returncode == -9, f"the worker did not die after staging: {child.stdout} {child.stderr[-600:]}"
        assert PHONE not in child.stdout + child.stderr  # R-REG-7, on the way down too
        with ctx.engine.connect() as conn:
            before = _state(conn)
        assert [s for s, _, _ in before["registrations"]] == ["staged"] and before["unfinished"] == 1
        assert before["customers"] == []

        out = engine.tick(ctx, None)  # any run: a tick, a registration, a delivery of events

        with ctx.engine.connect() as conn:
            after = _state(conn)
            batch = conn.execute(select(IntakeBatch.rows_in, IntakeBatch.accepted, IntakeBatch.attached,
                                        IntakeBatch.quarantined)).one()
        (status, customer, batch_id), = after["registrations"]
        assert status == "accepted" and after["unfinished"] == 0
        assert tuple(batch) == (1, 1, 0, 0)  # rows in = accepted + attached + quarantined
        (cid, cstatus, owner), = after["customers"]
        assert cid == customer and cstatus == "assigned" and owner is not None  # R-ALLOC-1, in the same run
        assert out["recovered"] == {"batches": [batch_id], "rows_in": 1, "accepted": 1, "attached": 0,
                                    "quarantined": 0, "errors": []}
        assert out["pool"]["allocated"] == 1
        rules = [(rule, action) for rule, action, c in after["ledger"] if c == customer]
        assert rules.count(("R-TIER-1", "accepted")) == 1 and len(rules) == 2  # the outcome and the allocation
        assert PHONE not in json.dumps(out, default=str, ensure_ascii=False)

        again = engine.tick(ctx, None)  # nothing twice: the batch is finished
        with ctx.engine.connect() as conn:
            assert _state(conn) == after
        assert "recovered" not in again

        # the caller, who never heard back, sends the lead again: one registration of it (R-REG-4)
        from leadflow.register import register_lead

        retry = register_lead(LEAD, ctx=ctx)
        assert retry["status"] == "attached" and retry["customer_id"] == customer
    finally:
        ctx.gate.close()
        ctx.engine.dispose()


def test_r_reg_1_a_file_delivered_again_after_a_kill_is_counted_as_this_delivery_registered_it(database_url, tmp_path):
    """The file's own redelivery decides its staged batch (as before): the recovery after the act finds nothing,
    and the summary says this delivery registered the rows (not `already_registered`)."""
    url, schema = database_url
    ctx = scenario.store_context(url, schema)
    try:
        scenario.prepare(ctx)
        scenario.write_files(tmp_path)
        path = tmp_path / scenario.FILES["register-1"][0]
        env = {**os.environ, "LEADFLOW_FAILPOINT": "intake.staged"}
        child = subprocess.run([sys.executable, "-c", (
            "import sys\nfrom tests import crash_worker as s\nfrom leadflow import engine\n"
            "ctx = s.store_context(sys.argv[1], None if sys.argv[2] == '-' else sys.argv[2])\n"
            "engine.register_file(ctx, sys.argv[3], 'file', s.AS_OF['register-1'])\n"),
            url, schema or "-", str(path)], cwd=scenario.ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert child.returncode == -9, child.stderr[-600:]
        summary = engine.register_file(ctx, path, "file", scenario.AS_OF["register-1"])
        assert summary["already_registered"] is False
        assert (summary["rows_in"], summary["accepted"], summary["attached"], summary["quarantined"]) == (20, 17, 1, 2)
        with ctx.engine.connect() as conn:
            assert _state(conn)["unfinished"] == 0
    finally:
        ctx.gate.close()
        ctx.engine.dispose()


class _Killed(BaseException):
    """Stands for the process dying at the failpoint: nothing after it runs, what was committed stays."""


def test_r_reg_1_a_later_batch_a_kill_left_staged_counts_as_registered_by_the_redelivery(database_url, tmp_path,
                                                                                        monkeypatch):
    """A file of two batches killed after staging its second: delivered again, the first batch's run decides the
    second one (it is unfinished after that run's act), and the redelivery's summary still says it registered those
    rows, with the file's counts (R-REG-4: nothing twice; rows in = accepted + attached + quarantined)."""
    import dataclasses

    from leadflow import failpoints
    from leadflow.policy import load_policy

    url, schema = database_url
    base = scenario.store_context(url, schema)
    ctx = dataclasses.replace(base, policy=load_policy(overrides={"intake": {"batch_rows": 10}}))
    try:
        scenario.prepare(ctx)
        scenario.write_files(tmp_path)
        path = tmp_path / scenario.FILES["register-1"][0]
        hits = []

        def kill_at_second_staging(name: str) -> None:
            if name == "intake.staged":
                hits.append(name)
                if len(hits) == 2:
                    raise _Killed

        monkeypatch.setattr(failpoints, "hit", kill_at_second_staging)
        try:
            engine.register_file(ctx, path, "file", scenario.AS_OF["register-1"])
        except _Killed:
            pass
        monkeypatch.undo()
        with ctx.engine.connect() as conn:
            assert _state(conn)["unfinished"] == 1

        summary = engine.register_file(ctx, path, "file", scenario.AS_OF["register-1"])

        assert len(summary["batches"]) == 2
        assert summary["already_registered"] is False  # the second batch was decided by this delivery's runs
        assert (summary["rows_in"], summary["accepted"], summary["attached"], summary["quarantined"]) == (20, 17, 1, 2)
        with ctx.engine.connect() as conn:
            state = _state(conn)
        assert state["unfinished"] == 0
        assert sorted({s for s, _, _ in state["registrations"]}) == ["accepted", "attached", "quarantined"]
        assert len(state["customers"]) == 17 and {s for _, s, _ in state["customers"]} == {"assigned"}  # R-ALLOC-1
    finally:
        ctx.gate.close()
        ctx.engine.dispose()
