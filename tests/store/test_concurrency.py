"""Concurrent runs (issue 8, item 2): intake, record, tick and dispute runs started at one instant, in real
OS processes, on SQLite (a file, WAL) and PostgreSQL — the database makes the outcome unique.

Each test first proves the runs overlapped (every run was live at one instant), then that the store ends
exactly where a sequential run of the same inputs, in the order the runs took, leaves a fresh store:
every table's row count, every owner, the rotation pointers, the ledger by (rule, action), breaches, fines,
pauses and disputes (`leadflow.state.world_state`). On top, every row is accounted for once: rows in =
accepted + attached + quarantined per registration batch (one intake ledger entry per registration), rows
in = applied + duplicate + waiting + refused per event delivery, at most one open assignment per customer.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from leadflow.stages.people import load_org
from leadflow.state import world_state
from leadflow.store.db import create_all, create_schema, drop_schema, make_engine
from leadflow.store.models import (
    Assignment, Base, Event, EventBatch, Fine, IntakeBatch, Ledger, Registration, RotationPointer,
)
from tests.concurrent_runs import Workers, close_context, overlapped, perform, store_context
from tests.conftest import require_postgres

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday, in working hours
T1 = T0 + dt.timedelta(hours=1)
DEPARTMENTS = [{"id": f"d{i}"} for i in (1, 2, 3)]
PEOPLE = [{"id": "k1", "department": "d1", "role": "receptionist"}] + [
    p for i in (1, 2, 3) for p in (
        {"id": f"m{i}", "department": f"d{i}", "role": "manager"},
        {"id": f"a{i}", "department": f"d{i}", "grade": "A", "rank": 1},
        {"id": f"b{i}", "department": f"d{i}", "grade": "B", "rank": 1},
        {"id": f"c{i}1", "department": f"d{i}", "grade": "C", "rank": 1},
        {"id": f"c{i}2", "department": f"d{i}", "grade": "C", "rank": 2},
        {"id": f"e{i}", "department": f"d{i}", "grade": "D", "rank": 1},
        {"id": f"u{i}", "department": f"d{i}", "grade": None})]
AMOUNTS = ["85万", "50万", "25万", "30万", "8万", "3万", ""]  # tiers A, B, C, C, D, below D, unclassified
HEADER = ["channel", "name", "phone", "amount", "inquiry", "registered_at", "registered_by", "external_ref"]
INTAKE_ACTIONS = ("accepted", "attached", "quarantine")


@pytest.fixture(scope="module")
def workers():
    pool = Workers(4)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def fresh_store(database_url, tmp_path):
    """A factory of fresh stores (url, schema) with every table and the org, on the test's database."""
    url, schema = database_url
    made: list[str] = []

    def make(name: str, org: bool = True) -> tuple[str, str | None]:
        if schema is None:
            target = (f"sqlite:///{tmp_path / (name + '.db')}", None)
        else:
            made.append(create_schema(require_postgres(), prefix="lf_conc"))
            target = (url, made[-1])
        engine = make_engine(*target)
        create_all(engine)
        if org:
            with engine.begin() as conn:
                load_org(conn, DEPARTMENTS, PEOPLE)
        engine.dispose()
        return target

    yield make
    for name in made:
        drop_schema(url, name)


# --------------------------------------------------------------------------------------------- inputs


def registrations_file(path: Path, prefix: str, n: int, *, hour: int = 8, extra: list[dict] | None = None) -> Path:
    """A front-desk export: `n` leads of every tier, one with a bad phone (quarantined, R-VAL-2)."""
    rows = [{"channel": "400", "name": f"客户{prefix}{i}", "phone": phone(prefix, i), "amount": AMOUNTS[i % len(AMOUNTS)],
             "inquiry": "展厅", "registered_at": f"2026-03-02 {hour:02d}:{i % 60:02d}", "registered_by": "k1",
             "external_ref": f"{prefix}-{i}"} for i in range(n)]
    rows[3]["phone"] = "12345"
    rows += extra or []
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def phone(prefix: str, i: int) -> str:
    """A file's i-th mobile number: 139, two digits per file, six per row."""
    return f"139{ord(prefix[0]) % 100:02d}{i:06d}"


def events_file(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["type", "at", "customer", "by"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def contacts(refs: list[str], at: dt.datetime) -> list[dict]:
    return [{"type": "contact", "at": at.isoformat(), "customer": r, "by": ""} for r in refs]


# --------------------------------------------------------------------------------------------- checks


def job(action: str, target: tuple[str, str | None], as_of: dt.datetime, **kw) -> dict:
    return {"action": action, "url": target[0], "schema": target[1], "as_of": as_of, **kw}


def race(workers: Workers, jobs: list[dict]) -> list[dict]:
    """Run `jobs` at one instant; assert they overlapped and none failed (no 'database is locked', no
    IntegrityError); return the results in the order the runs finished (the clock lock's order)."""
    results = workers.run(jobs)
    assert overlapped(results), [(r["start"], r["end"]) for r in results]
    assert [r["error"] for r in results if not r["ok"]] == []
    return sorted(results, key=lambda r: r["end"])


def run_in_order(target: tuple[str, str | None], jobs: list[dict]) -> list[dict]:
    """The reference: the same jobs one after another, in this process, on `target`."""
    ctx = store_context(*target)
    try:
        return [perform(ctx, {**j, "url": target[0], "schema": target[1]}) for j in jobs]
    finally:
        close_context(ctx)


def fingerprint(target: tuple[str, str | None], as_of: dt.datetime) -> dict:
    """Everything two runs of the same inputs must agree on: every table's size, the world state (owners,
    tiers, breaches, fines, pauses, credits, disputes), the rotation pointers and the ledger by rule and action."""
    ctx = store_context(*target)
    try:
        with ctx.engine.connect() as conn:
            state = world_state(conn, ctx.policy, "concurrency", as_of)
            state["rows"] = {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                             for t in Base.metadata.sorted_tables}
            state["pointers"] = dict(conn.execute(select(RotationPointer.key, RotationPointer.value)).all())
            state["ledger"] = sorted(Counter(conn.execute(select(Ledger.rule_id, Ledger.action)).all()).items())
            state["spreads"] = spreads(conn)
        return state
    finally:
        close_context(ctx)


def spreads(conn) -> dict[str, list[int]]:
    """Per tier, how many leads each person received by rotation, sorted (R-ALLOC-1/2: the fairness)."""
    counts = Counter(conn.execute(select(Assignment.tier, Assignment.person_id)
                                  .where(Assignment.rule_id.like("R-ALLOC-%"))).all())
    out: dict[str, list[int]] = {}
    for (tier, _), n in counts.items():
        out.setdefault(tier, []).append(n)
    return {t: sorted(v) for t, v in sorted(out.items())}


def assert_same(actual: dict, expected: dict) -> None:
    differing = sorted(k for k in expected if actual.get(k) != expected[k])
    assert not differing, "\n".join(f"{k}:\n  concurrent {actual.get(k)}\n  sequential {expected[k]}"
                                    for k in differing[:4])


def assert_accounted(target: tuple[str, str | None]) -> None:
    """Every row once: per batch and delivery, and one intake ledger entry per registration; one open
    assignment per customer at most."""
    engine = make_engine(*target)
    try:
        with engine.connect() as conn:
            for b in conn.execute(select(IntakeBatch)).mappings():
                statuses = Counter(conn.execute(select(Registration.status)
                                                .where(Registration.batch_id == b["id"])).scalars())
                assert b["finished_at"] is not None, b["id"]
                assert b["rows_in"] == b["accepted"] + b["attached"] + b["quarantined"] == sum(statuses.values())
                assert statuses == Counter({"accepted": b["accepted"], "attached": b["attached"],
                                            "quarantined": b["quarantined"]}) - Counter()
            entries = Counter(e["registration"] for e in conn.execute(
                select(Ledger.explanation).where(Ledger.action.in_(INTAKE_ACTIONS))).scalars())
            registrations = set(conn.execute(select(Registration.id)).scalars())
            assert set(entries) == registrations and set(entries.values()) <= {1}
            for b in conn.execute(select(EventBatch)).mappings():
                stored = conn.execute(select(func.count()).where(Event.batch_id == b["id"])).scalar()
                assert b["rows_in"] == b["applied"] + b["duplicate"] + b["waiting"] + b["refused"], b["id"]
                assert stored == b["rows_in"] - b["duplicate"]
            doubled = conn.execute(select(Assignment.customer_id).where(Assignment.ended_at.is_(None))
                                   .group_by(Assignment.customer_id).having(func.count() > 1)).all()
            assert doubled == []
    finally:
        engine.dispose()


def dispute_fines(target: tuple[str, str | None]) -> int:
    engine = make_engine(*target)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).where(Fine.source_key.like("dispute:%"))).scalar()
    finally:
        engine.dispose()


def jobs_of(results: list[dict]) -> list[dict]:
    return [r["job"] for r in results]


# --------------------------------------------------------------------------------------------- tests


def test_two_files_registered_at_once_end_as_one_after_the_other(workers, fresh_store, tmp_path):
    """Issue 8 item 2 (R-REG-4/5, R-ALLOC-1/2): two different files on a fresh store (no clock, no epoch yet)
    at one instant: no meta_pkey or uq_assignments_open error, nothing left in the pool, every row once,
    and owners, pointers and spreads exactly as the two files registered one after the other."""
    a = registrations_file(tmp_path / "a.csv", "A", 42)
    shared = [{**row, "registered_at": "2026-03-02 07:30"} for row in ([
        {"channel": "400", "name": "客户A1", "phone": phone("Z", 1), "amount": "50万", "inquiry": "展厅",
         "registered_by": "k1", "external_ref": "A-1"},            # the same channel reference: R-REG-4
        {"channel": "微信公众号", "name": "客户A2", "phone": "+86 " + phone("A", 2), "amount": "25万", "inquiry": "门店",
         "registered_by": "k1", "external_ref": "W-2"}])]           # the same phone, another channel: R-REG-5
    b = registrations_file(tmp_path / "b.csv", "B", 40, hour=7, extra=shared)
    store = fresh_store("race")
    done = race(workers, [job("register_file", store, T0, path=str(a)), job("register_file", store, T0, path=str(b))])

    assert sorted(r["summary"]["rows_in"] for r in done) == [42, 42]
    assert all(r["summary"]["quarantined"] == 1 for r in done)
    assert sum(r["summary"]["attached"] for r in done) == 2
    assert_accounted(store)
    reference = fresh_store("sequential")
    run_in_order(reference, jobs_of(done))
    mine = fingerprint(store, T0)
    assert mine["rows"]["registrations"] == 84 and not any(c["status"] == "pool" for c in mine["customers"].values())
    assert_same(mine, fingerprint(reference, T0))


def test_the_same_file_three_times_at_once_is_one_batch(workers, fresh_store, tmp_path):
    """Issue 8 item 2 (R-REG-4): the same file three times at one instant: one batch, one registration and
    one intake ledger entry per row; the other two runs say it was registered already."""
    a = registrations_file(tmp_path / "a.csv", "A", 30)
    store = fresh_store("race")
    done = race(workers, [job("register_file", store, T0, path=str(a)) for _ in range(3)])

    fresh = [r["summary"] for r in done if not r["summary"].get("already_registered")]
    assert len(fresh) == 1 and fresh[0]["rows_in"] == 30
    assert_accounted(store)
    reference = fresh_store("sequential")
    run_in_order(reference, jobs_of(done))
    assert_same(fingerprint(store, T0), fingerprint(reference, T0))


def test_event_files_and_a_tick_at_once_record_every_row_once(workers, fresh_store, tmp_path):
    """Issue 8 item 2 (R-SLA-1, R-SLA-6/7): one event file twice, another file and a tick at one instant, after
    the leads' first-contact deadlines: one delivery per file, every row applied, duplicate, waiting or
    refused once, every breach once — as the deliveries one after the other."""
    a = registrations_file(tmp_path / "a.csv", "A", 35)
    at, odd_at = T0 + dt.timedelta(minutes=5), (T0 + dt.timedelta(minutes=40)).isoformat()
    in_time = events_file(tmp_path / "e1.csv", contacts([f"A-{i}" for i in range(20)], at))
    late = events_file(tmp_path / "e2.csv", contacts([f"A-{i}" for i in range(10, 20)], at)  # e1's too: duplicates
                       + contacts([f"A-{i}" for i in range(20, 30)], T0 + dt.timedelta(minutes=30))  # late: breaches
                       + [{"type": "contact", "at": odd_at, "customer": "NOPE-1"},  # not known yet: waits
                          {"type": "telepathy", "at": odd_at, "customer": "A-1"}])  # refused: unknown_type
    store, reference = fresh_store("race"), fresh_store("sequential")
    setup = [job("register_file", store, T0, path=str(a))]
    run_in_order(store, setup)
    run_in_order(reference, setup)
    done = race(workers, [job("record_file", store, T1, path=str(f)) for f in (in_time, late, in_time)]
                + [job("tick", store, T1)])

    counts = ("rows_in", "applied", "duplicate", "waiting", "refused", "reasons")
    twice = [{k: r["summary"][k] for k in counts} for r in done if r["job"].get("path") == str(in_time)]
    assert twice[0] == twice[1] and twice[0]["rows_in"] == 20  # one delivery, told the same way twice
    other = next(r["summary"] for r in done if r["job"].get("path") == str(late))
    assert (other["rows_in"], other["waiting"], other["reasons"]) == (22, 1, {"unknown_type": 1})
    assert_accounted(store)
    run_in_order(reference, jobs_of(done))
    mine = fingerprint(store, T1)
    assert mine["rows"]["event_batches"] == 2 and mine["rows"]["breaches"] > 0
    assert_same(mine, fingerprint(reference, T1))


def test_inbox_sla_check_allocation_and_a_reader_at_once_never_find_the_database_locked(workers, fresh_store,
                                                                                         tmp_path):
    """Issue 8 item 2: the inbox (a new file: intake and allocation), the SLA check (a tick), an event delivery
    and a reader (`leadflow state`) at one instant: no run fails ('database is locked' on SQLite), the reader
    reads throughout, and the store ends as the same runs one after the other."""
    a = registrations_file(tmp_path / "a.csv", "A", 28)
    b = registrations_file(tmp_path / "b.csv", "B", 28, hour=9)
    e = events_file(tmp_path / "e.csv", contacts([f"A-{i}" for i in range(0, 28, 2)], T0 + dt.timedelta(minutes=4)))
    store, reference = fresh_store("race"), fresh_store("sequential")
    setup = [job("register_file", store, T0, path=str(a))]
    run_in_order(store, setup)
    run_in_order(reference, setup)
    later = T1 + dt.timedelta(minutes=5)  # b's leads were taken 09:00-09:27: registered and allocated at once
    done = race(workers, [job("register_file", store, later, path=str(b)), job("tick", store, later),
                          job("record_file", store, later, path=str(e)), job("read_state", store, later, seconds=3.0)])

    reader = next(r for r in done if r["job"]["action"] == "read_state")
    assert reader["summary"]["reads"] >= 3
    assert_accounted(store)
    run_in_order(reference, [j for j in jobs_of(done) if j["action"] != "read_state"])
    mine = fingerprint(store, later)
    assert mine["rows"]["registrations"] == 56 and mine["rows"]["breaches"] > 0
    assert_same(mine, fingerprint(reference, later))


def test_r_disp_8_disputes_rerun_at_once_record_one_decision_and_one_fine(workers, fresh_store):
    """Issue 8 item 2 (R-DISP-8, R-DISP-6, R-DISP-2): the same two disputes rerun by three runs at one instant
    record each decision once and fine once (s2: 1,000 yuan), as the reruns one after the other."""
    from leadflow.scenario import load_scenario
    from tests.scenarios.test_parity import drive_production

    scenario = load_scenario(Path(__file__).parents[1] / "scenarios" / "r-disp-8-rerun-records-once.yaml")
    cutoff = dt.datetime(2026, 1, 22, tzinfo=CST)
    history = dataclasses.replace(scenario, events=[e for e in scenario.events if e.at < cutoff])
    store, reference = fresh_store("race", org=False), fresh_store("sequential", org=False)
    for target in (store, reference):
        ctx = store_context(*target)
        try:
            drive_production(history, ctx)
        finally:
            close_context(ctx)
    rerun_at = dt.datetime(2026, 1, 22, 10, 0, tzinfo=CST)
    jobs = [job("record_events", store, rerun_at + dt.timedelta(minutes=10), source="dispute",
                rows=[{"type": "dispute", "customer": c, "at": rerun_at + dt.timedelta(minutes=i)}
                      for c in ("x1", "y1")]) for i in range(3)]
    done = race(workers, jobs)

    assert all(r["summary"]["applied"] == 2 for r in done)
    assert_accounted(store)
    run_in_order(reference, jobs_of(done))
    mine = fingerprint(store, rerun_at + dt.timedelta(minutes=10))
    assert mine["people"]["s2"]["fines_yuan"] == 1000 and dispute_fines(store) == 1
    assert {d["customer"]: d["rule"] for d in mine["disputes"]} == {"x1": "R-DISP-2", "y1": "R-DISP-6"}
    assert_same(mine, fingerprint(reference, rerun_at + dt.timedelta(minutes=10)))


def test_r_alloc_1_pool_offers_outside_the_clock_lock_take_each_turn_once(workers, fresh_store, tmp_path):
    """Issue 8 item 2 (R-ALLOC-1/2/5): three pool offers at one instant on a store with no rotation epoch yet,
    bypassing the engine's clock lock: the rotation lock lets one allocate every lead and the others find the
    pool empty — no meta_pkey or uq_assignments_open error, no turn lost or taken twice."""
    from leadflow.samples.history import file_batch
    from leadflow.intake.readers import read_registration_file
    from leadflow.stages import intake

    a = registrations_file(tmp_path / "a.csv", "A", 42)
    store, reference = fresh_store("race"), fresh_store("sequential")
    for target in (store, reference):
        ctx = store_context(*target)
        try:
            intake.run_intake(ctx, *file_batch(a)[:1], "a.csv", read_registration_file(a), T0, file_batch(a)[1])
        finally:
            close_context(ctx)
    done = race(workers, [job("allocate_pool", store, T0) for _ in range(3)])

    assert sorted(r["summary"]["allocated"] for r in done) == [0, 0, 41]
    assert_accounted(store)
    run_in_order(reference, [job("allocate_pool", reference, T0)])
    assert_same(fingerprint(store, T0), fingerprint(reference, T0))


def test_one_delivery_staged_by_three_runs_at_once_outside_the_clock_lock_is_stored_once(workers, fresh_store):
    """Issue 8 item 2: the same delivery staged by three runs at one instant, bypassing the engine's clock lock:
    one claims it (INSERT … ON CONFLICT on its id) and stores its rows, the others store nothing."""
    rows = [{**r, "row_number": i + 1} for i, r in enumerate(contacts([f"A-{i}" for i in range(30)], T0))]
    store = fresh_store("race")
    done = race(workers, [job("stage_events", store, T1, batch_id="events-race", rows=rows) for _ in range(3)])

    assert sorted((r["summary"]["rows_in"] or 0) for r in done) == [0, 0, 30]
    engine = make_engine(*store)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(EventBatch)).scalar() == 1
            assert conn.execute(select(func.count()).select_from(Event)).scalar() == 30
    finally:
        engine.dispose()


def test_r_sla_6_three_ticks_at_once_after_a_long_gap_catch_up_once(workers, fresh_store, tmp_path):
    """Issue 8 item 2 (R-SLA-6, R-SLA-5, R-CONV-1/2): three ticks at one instant, seven months after the last
    run: every SLA check, monthly audit, hand-over, expiry and re-allocation is done once, by the first; the
    store ends as after three ticks one after the other."""
    a = registrations_file(tmp_path / "a.csv", "A", 35)
    store, reference = fresh_store("race"), fresh_store("sequential")
    setup = [job("register_file", store, T0, path=str(a))]
    run_in_order(store, setup)
    run_in_order(reference, setup)
    later = T0 + dt.timedelta(days=214)
    done = race(workers, [job("tick", store, later) for _ in range(3)])

    assert sorted(r["summary"]["stages_run"] > 0 for r in done) == [False, False, True]
    assert_accounted(store)
    run_in_order(reference, jobs_of(done))  # three runs: each offers the pool (R-ALLOC-5: a lead pooled in one
    mine = fingerprint(store, later)          # run is offered again by the next, even at the same instant)
    assert mine["rows"]["breaches"] > 0 and mine["rows"]["schedule_marks"] > 0
    assert_same(mine, fingerprint(reference, later))
