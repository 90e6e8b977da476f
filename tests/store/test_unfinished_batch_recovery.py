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


def _stage_file_unfinished(ctx, path, as_of) -> list[str]:
    """What a killed intake flow leaves: every batch of the file staged (`tasks.intake.stage_file` stages them all
    before deciding any), none decided. Returns the batch ids in file order."""
    from leadflow.intake.readers import file_digest, registration_rows
    from leadflow.stages import intake

    digest = file_digest(path)
    ids = []
    for number, last, rows in intake.file_chunks(registration_rows(path), ctx.policy.intake.batch_rows):
        batch_id = intake.file_batch_id(digest, number, last)
        with ctx.engine.begin() as conn:
            intake.stage_rows(conn, ctx, batch_id, "file", rows, as_of, digest)
        ids.append(batch_id)
    return ids


def _file(tmp_path, rows: list[str]):
    path = tmp_path / "leads.csv"
    path.write_text(scenario.REG_HEADER + "".join(rows), encoding="utf-8")
    return path


def test_r_reg_5_batches_a_killed_flow_staged_are_decided_in_file_order(database_url, tmp_path):
    """25 rows in batches of 10 (ids `file-<d>-1`, `-2` and the last `file-<d>`, which sorts first as text): row 3
    and row 23 share a phone. Decided in file order, row 3 is the customer (tier A) and row 23 attaches to it
    (R-REG-5), as without the kill; found by the fresh-clone trial: the last batch was decided first."""
    import dataclasses

    from leadflow.policy import load_policy

    url, schema = database_url
    base = scenario.store_context(url, schema)
    ctx = dataclasses.replace(base, policy=load_policy(overrides={"intake": {"batch_rows": 10}}))
    try:
        scenario.prepare(ctx)
        rows = [scenario._reg_line(i, "2026-03-02 09:01", "25万") for i in range(1, 26)]
        rows[2] = scenario._reg_line(3, "2026-03-02 09:01", "90万", phone="13911112222")
        rows[22] = scenario._reg_line(23, "2026-03-02 09:01", "8万", phone="13911112222")
        batches = _stage_file_unfinished(ctx, _file(tmp_path, rows), scenario.AS_OF["register-1"])
        out = engine.tick(ctx, scenario.AS_OF["register-1"])
        assert out["recovered"]["batches"] == batches and out["recovered"]["rows_in"] == 25
        with ctx.engine.connect() as conn:
            got = {r.external_ref: (r.status, r.customer_id) for r in conn.execute(
                select(Registration.external_ref, Registration.status, Registration.customer_id))}
            tiers = dict(conn.execute(select(Customer.id, Customer.tier)).all())
        assert got["TB-003"][0] == "accepted" and tiers[got["TB-003"][1]] == "A"
        assert got["TB-023"] == ("attached", got["TB-003"][1])
        ids = [got[f"TB-{i:03d}"][1] for i in range(1, 26) if i != 23]
        assert ids == sorted(ids)  # customers created in file order
    finally:
        ctx.gate.close()
        ctx.engine.dispose()


def test_r_val_3_a_killed_runs_batch_refused_as_a_whole_needs_a_person_and_one_not_decidable_is_retried(
        database_url, tmp_path, monkeypatch):
    """R-VAL-3: a recovered batch refused as a whole "fails the stage's flow run with a clear message; it does not
    silently pass" — its sentence is in the run's `recovered.errors`, which `attention` (and the flow's state) put
    under what needs a person. A batch that cannot be decided at all (here: deciding raises) is said the same way,
    stays staged, and the next run decides it: it never stops the runs after it. (Found by the fresh-clone trial.)"""
    from leadflow.stages import intake
    from tasks.reporting import attention

    url, schema = database_url
    ctx = scenario.store_context(url, schema)
    try:
        scenario.prepare(ctx)
        at = scenario.AS_OF["register-1"]
        bad = _stage_file_unfinished(ctx, _file(tmp_path, [scenario._reg_line(i, "2026-03-02 09:01", "25万",
                                                                               phone="12345") for i in range(1, 26)]),
                                     at)
        out = engine.tick(ctx, at)
        (error,) = out["recovered"]["errors"]
        assert f"({bad[0]}) was refused as a whole" in error and "25 of 25 rows" in error
        assert out["recovered"]["quarantined"] == 25 and out["recovered"]["batches"] == bad
        assert error in attention(out, None, [])

        (tmp_path / "good").mkdir()
        good = _stage_file_unfinished(ctx, _file(tmp_path / "good", [scenario._reg_line(1, "2026-03-02 09:01", "25万")]),
                                      at)

        def broken(*a, **k):
            raise ValueError("13911112222 could not be decided")

        monkeypatch.setattr(intake, "decide", broken)
        out = engine.tick(ctx, at)
        assert out["recovered"]["batches"] == [] and out["recovered"]["errors"] == [
            f"a batch a killed run had staged ({good[0]}) could not be decided (ValueError); the next run tries again."]
        assert out["recovered"]["errors"][0] in attention(out, None, [])
        monkeypatch.undo()
        out = engine.tick(ctx, at)
        assert out["recovered"]["batches"] == good and out["recovered"]["accepted"] == 1
        assert out["recovered"]["errors"] == [] and out["pool"]["allocated"] == 1
    finally:
        ctx.gate.close()
        ctx.engine.dispose()
