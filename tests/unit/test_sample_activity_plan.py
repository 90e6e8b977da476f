"""The sample organisation's activity (leadflow.samples.activity, .exports): planned from allocations with the mix,
deterministic, and readable back from the files its systems export. No database."""
import datetime as dt
from zoneinfo import ZoneInfo

from leadflow.events.normalise import normalise_event
from leadflow.events.readers import is_event_file, read_event_file
from leadflow.policy import load_policy
from leadflow.samples.activity import MIX, Allocation, leaves, plan
from leadflow.samples.exports import write_exports

POLICY = load_policy()
CST = ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 3, 2, 9, 0, 30, 250_000, tzinfo=CST)  # a Monday


def allocations(n: int, tier: str = "B") -> list[Allocation]:
    return [Allocation(f"HO{i:06d}", f"s{i % 7}", T0 + dt.timedelta(minutes=i), tier, 300_000.0) for i in range(n)]


def test_the_same_allocation_and_seed_give_the_same_records_with_stable_ids():
    a = allocations(1)[0]
    assert plan(a, POLICY, seed=3) == plan(a, POLICY, seed=3)
    ids = [r["event_id"] for a in allocations(300) for r in plan(a, POLICY)]
    assert len(ids) == len(set(ids))


def test_every_record_is_the_owners_and_made_after_the_allocation():
    for a in allocations(200):
        for r in plan(a, POLICY):
            assert r["by"] == a.owner and r["customer"] == a.customer and r["at"] >= a.allocated_at


def test_r_sla_1_first_contacts_follow_the_mix_on_time_late_never():
    deadline = dt.timedelta(minutes=POLICY.sla.first_contact_minutes)
    n, on_time, late = 3000, 0, 0
    for a in allocations(n):
        contact = [r["at"] for r in plan(a, POLICY) if r["type"] == "contact"]
        on_time += bool(contact) and contact[0] <= a.allocated_at + deadline
        late += bool(contact) and contact[0] > a.allocated_at + deadline
    assert abs(on_time / n - MIX["contact"].on_time) < 0.03
    assert abs(late / n - MIX["contact"].late) < 0.03


def test_r_sla_4_only_tiers_c_and_above_get_an_abcd_entry():
    kinds = {tier: {r["type"] for a in allocations(100, tier) for r in plan(a, POLICY)} for tier in ("C", "D")}
    assert "abcd_entry" in kinds["C"] and "abcd_entry" not in kinds["D"]


def test_r_susp_2_leaves_fall_on_working_days_only_and_are_few():
    people = [f"s{i}" for i in range(40)]
    assert leaves(people, dt.date(2026, 3, 7), POLICY) == []  # a Saturday
    month = [r for d in range(2, 28) for r in leaves(people, dt.date(2026, 3, d), POLICY)]
    assert 0 < len(month) < 60 and {r["kind"] for r in month} <= {"personal", "sick"}


def test_the_exports_read_back_as_the_planned_events(tmp_path):
    rows = [r for a in allocations(40, "C") for r in plan(a, POLICY)]
    rows += leaves([f"s{i}" for i in range(100)], dt.date(2026, 3, 3), POLICY)
    paths = write_exports(rows, tmp_path, "20260304-0000", POLICY)
    assert {p.suffix for p in paths} == {".xlsx", ".csv", ".jsonl"}
    read = []
    for p in paths:
        assert is_event_file(p)
        read += read_event_file(p)
    at = {r["event_id"]: r["at"] for r in rows}
    people = {r.get("by") or r.get("person") for r in rows}
    events = [normalise_event(r, as_of=at[r["event_id"]] + dt.timedelta(hours=1), policy=POLICY, people=people,
                              departments=set()) for r in read]  # each delivered an hour after it was made
    assert all(e["status"] is None for e in events), [e for e in events if e["status"]][:3]
    assert sorted((e["source_event_id"], e["type"], e["at"]) for e in events) == \
        sorted((r["event_id"], r["type"], r["at"]) for r in rows)
