"""What the sample organisation's people do with the leads they are allocated — contacts, entries, follow-ups,
sales steps, deals — and their leaves, as the event rows their systems export. Pure: no I/O, deterministic from
the seed (the same allocation and seed always give the same rows, with the same event ids).

The mix below is the one place that says how diligent the sample organisation is (README, "The main job").
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from leadflow.clock import end_of_working_day_after, is_working_day, zone
from leadflow.policy import Policy
from leadflow.rules.tiers import tier_rank


@dataclass(frozen=True)
class Mix:
    """Of the leads that owe a record: the share made in time, made late, and never made."""

    on_time: float
    late: float
    never: float

    def draw(self, rnd: random.Random) -> str:
        r = rnd.random()
        return "on_time" if r < self.on_time else "late" if r < self.on_time + self.late else "never"


# Per SLA record (R-SLA-1..4), per allocated lead. The deadlines are the policy's; "late" is after the deadline.
MIX: dict[str, Mix] = {
    "contact": Mix(on_time=0.85, late=0.10, never=0.05),  # R-SLA-1: first contact within 10 minutes
    "crm_entry": Mix(on_time=0.92, late=0.05, never=0.03),  # R-SLA-2: within 24 hours
    "call_register": Mix(on_time=0.90, late=0.07, never=0.03),  # R-SLA-3: by the end of the next working day
    "abcd_entry": Mix(on_time=0.90, late=0.07, never=0.03),  # R-SLA-4: tiers C and above, same deadline
}
LATE_CONTACT_MINUTES = (11, 180)  # a late first contact comes this many minutes after the allocation
# After a first contact, within the first week: an effective follow-up (R-SLA-5), the six-step process
# (R-CONV-2; each step's share counts the leads that reach at least that step), and a deal (R-CONV-3).
FOLLOW_UP_SHARE = 0.60
STEP_SHARES = {1: 0.50, 2: 0.25, 3: 0.12, 4: 0.05}
DEAL_SHARE = 0.02
# Per salesperson and working day, morning of the day (R-SUSP-2, R-ALLOC-4).
LEAVE_SHARES = {"personal": 0.02, "sick": 0.005}
LEAVE_TIME = dt.time(8, 30)
SEED = 11  # the sample leads' seed (`leadflow.samples.generate.leads`)
# Every planned record of an allocation falls within this of it: how far back the feed looks.
HORIZON = dt.timedelta(days=8)
WEEK = dt.timedelta(days=7)


@dataclass(frozen=True)
class Allocation:
    """A lead as its owner received it."""

    customer: str  # how the events name it: the registration's external_ref (else its ref, else the customer id)
    owner: str
    allocated_at: dt.datetime  # aware
    tier: str
    amount_yuan: float | None = None
    ended_at: dt.datetime | None = None  # the owner lost it (re-allocated, invalid, …): nothing of theirs after


def _rng(seed: int, *parts) -> random.Random:
    return random.Random("|".join(str(p) for p in (seed, *parts)))  # str seeds are hashed: stable across runs


def _after(t: dt.datetime, seconds: float, policy: Policy) -> dt.datetime:
    """`t` plus `seconds`, in business time, to the whole second (never before `t`'s second)."""
    return (t + dt.timedelta(seconds=seconds)).astimezone(zone(policy)).replace(microsecond=0)


def _between(rnd: random.Random, lo: dt.datetime, hi: dt.datetime, policy: Policy) -> dt.datetime:
    return _after(lo, rnd.uniform(0, max((hi - lo).total_seconds(), 0)), policy)


def _stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%y%m%d%H%M%S")


def plan(a: Allocation, policy: Policy, seed: int = SEED) -> list[dict]:
    """The records the owner makes on one allocated lead (canonical event rows with an `event_id`), by time."""
    rnd = _rng(seed, a.customer, a.owner)  # the same lead and owner behave alike whenever it was allocated
    start, rows = a.allocated_at, []

    def add(kind: str, at: dt.datetime, **extra) -> None:
        n = sum(1 for r in rows if r["type"] == kind) + 1
        rows.append({"event_id": f"sample-{a.customer}-{a.owner}-{_stamp(start)}-{kind}{n}", "type": kind, "at": at,
                     "customer": a.customer, "by": a.owner, **extra})

    contact = {"on_time": lambda: _after(start, rnd.uniform(60, 600), policy),
               "late": lambda: _after(start, 60 * rnd.uniform(*LATE_CONTACT_MINUTES), policy),
               "never": lambda: None}[MIX["contact"].draw(rnd)]()
    if contact is not None:
        add("contact", contact)
    day_end = end_of_working_day_after(start, policy.sla.call_register_working_days, policy)
    deadlines = {"crm_entry": start + dt.timedelta(hours=policy.sla.crm_entry_hours), "call_register": day_end,
                 "abcd_entry": end_of_working_day_after(start, policy.sla.abcd_working_days, policy)}
    for kind, deadline in deadlines.items():
        if kind == "abcd_entry" and tier_rank(a.tier) > tier_rank(policy.sla.abcd_min_tier):
            continue
        outcome = MIX[kind].draw(rnd)
        if outcome == "on_time":
            add(kind, _between(rnd, _after(contact or start, 300, policy), deadline, policy))
        elif outcome == "late":
            add(kind, _after(deadline, rnd.uniform(3600, 30 * 3600), policy))
    if contact is not None:
        _after_contact(a, contact, rnd, policy, add)
    rows = [r for r in rows if a.ended_at is None or r["at"] < a.ended_at]
    return sorted(rows, key=lambda r: (r["at"], r["event_id"]))


def _after_contact(a: Allocation, contact: dt.datetime, rnd: random.Random, policy: Policy, add) -> None:
    """Follow-ups, sales steps and a rare deal within the week after the allocation."""
    end = a.allocated_at + WEEK
    if rnd.random() < FOLLOW_UP_SHARE:
        for _ in range(1 + (rnd.random() < 0.4)):
            add("follow_up", _between(rnd, _after(contact, 3600, policy), end, policy))
    reach = rnd.random()
    t = contact
    for step, share in STEP_SHARES.items():
        if reach >= share:
            break
        t = _between(rnd, _after(t, 1800, policy), min(_after(t, 2 * 86400, policy), end), policy)
        add("sales_step", t, step=step)
    if rnd.random() < DEAL_SHARE:
        amount = (a.amount_yuan or 100_000) * rnd.uniform(0.6, 1.1)
        add("deal", _between(rnd, _after(t, 3600, policy), max(end, _after(t, 3600, policy)), policy),
            amount=str(int(round(amount, -2))))


def leaves(people: list[str], day: dt.date, policy: Policy, seed: int = SEED) -> list[dict]:
    """The salespeople who are away on a working `day`, as HR records it (a leave row each, in the morning)."""
    if not is_working_day(day, policy):
        return []
    at = dt.datetime.combine(day, LEAVE_TIME, tzinfo=zone(policy))
    out = []
    for person in sorted(people):
        r, edge = _rng(seed, "leave", person, day.isoformat()).random(), 0.0
        for kind, share in LEAVE_SHARES.items():
            edge += share
            if r < edge:
                out.append({"event_id": f"sample-leave-{person}-{day.isoformat()}", "type": "leave", "at": at,
                            "person": person, "kind": kind})
                break
    return out
