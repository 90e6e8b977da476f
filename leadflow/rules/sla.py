"""R-SLA: follow-up deadlines, breaches, late-entry penalties (R-SUSP-3, R-SUSP-5), the monthly audit, and late
evidence (R-SLA-7): the evidence grace, the per-rule enforcement switch, revocation and the mass-breach alarm.

Times are aware datetimes; durations are elapsed time (UTC arithmetic) shown in business time."""
from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from dataclasses import dataclass

from leadflow.clock import end_of_working_day_after, local, month_key, month_starts_between
from leadflow.policy import Policy
from leadflow.rules.memo import PolicyMemo
from leadflow.rules.suspensions import late_entry_pauses
from leadflow.rules.tiers import tier_rank

# The record kind that meets each obligation (R-SLA-1..4).
KIND_FOR_RULE = {"R-SLA-1": "contact", "R-SLA-2": "crm_entry", "R-SLA-3": "call_register", "R-SLA-4": "abcd_entry"}
# R-SLA-5 / R-CONV-3: an effective follow-up is a contact, follow-up or sales-step record by the owner.
EFFECTIVE_KINDS = frozenset({"contact", "follow_up", "sales_step"})
# R-SLA-7: what the policy's `sla.enforcement` switch says for a rule.
ENFORCE, RECORD, OFF = "enforce", "record", "off"
TICK = dt.timedelta(microseconds=1)  # the clock's resolution: "past a deadline" is one tick after it


@dataclass(frozen=True)
class Obligation:
    assignment_id: int
    customer_id: int
    person_id: str
    tier: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    bound: bool  # False: a manager holding an unclassified / non-target lead has no obligations


@dataclass(frozen=True)
class Record:
    customer_id: int
    person_id: str
    kind: str  # contact, crm_entry, call_register, abcd_entry, follow_up, sales_step
    at: dt.datetime  # when it was done: deadlines are judged by it (R-SLA-7)
    recorded_at: dt.datetime | None = None  # when it reached LeadFlow; None: at the time it was done


@dataclass(frozen=True)
class SlaBreach:
    assignment_id: int
    customer_id: int
    person_id: str
    rule_id: str
    at: dt.datetime  # the deadline


@dataclass(frozen=True)
class Penalty:
    fine_yuan: float
    pause_rounds: int


@dataclass(frozen=True)
class Holding:
    assignment_id: int
    customer_id: int
    person_id: str
    held_since: dt.datetime  # start of the holding, or the exchange time (R-CONV-4)


@dataclass(frozen=True)
class Listing:
    assignment_id: int
    customer_id: int
    person_id: str
    at: dt.datetime  # the audit time


def _plus(t: dt.datetime, delta: dt.timedelta, policy: Policy) -> dt.datetime:
    """Elapsed-time arithmetic (in UTC), shown in business time."""
    return local(t.astimezone(dt.timezone.utc) + delta, policy)


def _elapsed(since: dt.datetime, until: dt.datetime) -> dt.timedelta:
    return until.astimezone(dt.timezone.utc) - since.astimezone(dt.timezone.utc)


def enforcement(rule_id: str, policy: Policy) -> str:
    """R-SLA-7: `enforce` (breach and penalty), `record` (breach on the ledger, no penalty) or `off` (not checked)."""
    return policy.sla.enforcement.get(rule_id, ENFORCE)


def with_grace(t: dt.datetime, policy: Policy) -> dt.datetime:
    """R-SLA-7: `t` plus the evidence grace (minutes of elapsed time): records dated by `t` may arrive until then."""
    return _plus(t, dt.timedelta(minutes=policy.sla.evidence_grace_minutes), policy)


def without_grace(t: dt.datetime, policy: Policy) -> dt.datetime:
    """R-SLA-7: the latest instant whose evidence has all arrived by `t` (the inverse of `with_grace`)."""
    return _plus(t, -dt.timedelta(minutes=policy.sla.evidence_grace_minutes), policy)


def breach_due(deadline: dt.datetime, policy: Policy) -> dt.datetime:
    """R-SLA-6/7: the first instant at which a missed deadline is recorded: past the deadline plus the grace."""
    return with_grace(deadline, policy) + TICK


def deadlines(ob: Obligation, policy: Policy) -> dict[str, dt.datetime]:
    """R-SLA-1..4: rule id -> deadline of each obligation of an assignment (none when unbound)."""
    if not ob.bound:
        return {}
    s = policy.sla
    out = {
        "R-SLA-1": _plus(ob.started_at, dt.timedelta(minutes=s.first_contact_minutes), policy),
        "R-SLA-2": _plus(ob.started_at, dt.timedelta(hours=s.crm_entry_hours), policy),
        "R-SLA-3": end_of_working_day_after(ob.started_at, s.call_register_working_days, policy),
    }
    if tier_rank(ob.tier) <= tier_rank(s.abcd_min_tier):  # C and above only
        out["R-SLA-4"] = end_of_working_day_after(ob.started_at, s.abcd_working_days, policy)
    return out


def shortest_window(policy: Policy) -> dt.timedelta | None:
    """R-SLA-1..4: a lower bound on (deadline - start) over every obligation, so a loader may skip the
    assignments too recent to owe anything yet. A deadline at the end of the n-th working day after the
    start's day (n >= 1) comes at least the closing time of day after the start (an hour less, for a
    daylight-saving jump); with n = 0 it may come before the start: None (no bound)."""
    s = policy.sla
    days = (s.call_register_working_days, s.abcd_working_days)
    if min(days) < 1:
        return None
    closing = policy.working_days.closing_time
    end_of_day = (dt.timedelta(hours=closing.hour, minutes=closing.minute, seconds=closing.second)
                  - dt.timedelta(hours=1))
    return max(min(dt.timedelta(minutes=s.first_contact_minutes), dt.timedelta(hours=s.crm_entry_hours), end_of_day),
               dt.timedelta(0))


def _index(records: list[Record]) -> dict[tuple[int, str, str], list[dt.datetime]]:
    idx: dict[tuple[int, str, str], list[dt.datetime]] = {}
    for r in records:
        idx.setdefault((r.customer_id, r.person_id, r.kind), []).append(r.at)
    return idx


def _met(ob: Obligation, rule: str, deadline: dt.datetime, idx) -> bool:
    """Met by the obligation's own person's record of the kind, from the start up to and including the deadline."""
    times = idx.get((ob.customer_id, ob.person_id, KIND_FOR_RULE[rule]), ())
    return any(ob.started_at <= t <= deadline for t in times)


def _lapsed(ob: Obligation, deadline: dt.datetime) -> bool:
    """An assignment that ended at or before the deadline did not hold the whole window: the obligation lapses."""
    return ob.ended_at is not None and ob.ended_at <= deadline


def _checked(ob: Obligation, policy: Policy):
    """(rule id, deadline) of the obligations the policy checks (R-SLA-7: a rule switched `off` is not checked)."""
    return [(rule, d) for rule, d in deadlines(ob, policy).items() if enforcement(rule, policy) != OFF]


# Schedules remembered per policy (`PolicyMemo`): `_schedule` memos outlive one call, so the catch-up asking
# `next_due` on every run computes an obligation's deadlines once, not once per run (issue 10: 18 % of a replay).
_SCHEDULES = PolicyMemo()


def _schedule(policy: Policy):
    """ob -> ((rule id, deadline, breach due), ...) of its checked obligations (`_checked`, `breach_due`),
    remembered per (start, tier, bound) — all they depend on, with the policy — so leads allocated at one
    instant, a day's deadlines at one closing time, or an obligation asked about by many runs, are computed
    once, not once per lead and run. Pure: the memo only saves recomputing the same answer."""
    memo = _SCHEDULES.of(policy)

    def schedule(ob: Obligation) -> tuple:
        key = (ob.started_at, ob.tier, ob.bound)
        out = memo.get(key)
        if out is None:
            out = memo[key] = tuple((rule, d, breach_due(d, policy)) for rule, d in _checked(ob, policy))
        return out
    return schedule


@dataclass(frozen=True)
class Judgment:
    """What one SLA check decides at `as_of` (R-SLA-6, R-SLA-7)."""

    breaches: list[SlaBreach]  # new breaches, in time order
    settled: list[int]  # assignments whose every checked obligation is met, lapsed or breached
    looked_at: int  # obligations judged for the first time in this run (met or breached)


def judge(obligations: list[Obligation], records: list[Record], breached: set[tuple[int, str]],
          since: dt.datetime | None, as_of: dt.datetime, policy: Policy) -> Judgment:
    """R-SLA-1..4, R-SLA-6, R-SLA-7: every breach due by `as_of` and not yet recorded, however old.

    `breached`: (assignment id, rule id) already recorded (revoked ones too). A breach is due once `as_of`
    is past its deadline plus the evidence grace (`breach_due`); `since` (the previous run's `as_of`, or
    None) only decides which obligations count as looked at now, for the mass-breach alarm.
    """
    idx, schedule = _index(records), _schedule(policy)
    found, settled, looked = [], [], 0
    for ob in obligations:
        still_open = False
        for rule, deadline, due in schedule(ob):
            if (ob.assignment_id, rule) in breached or _lapsed(ob, deadline):
                continue
            met = _met(ob, rule, deadline, idx)
            if as_of < due:
                still_open = still_open or not met
                continue
            if not met:
                found.append(SlaBreach(ob.assignment_id, ob.customer_id, ob.person_id, rule, deadline))
            looked += 1 if not met or since is None or due > since else 0
        if not still_open:
            settled.append(ob.assignment_id)
    return Judgment(sorted(found, key=lambda b: (b.at, b.assignment_id, b.rule_id)), settled, looked)


def breaches(obligations: list[Obligation], records: list[Record], as_of: dt.datetime, policy: Policy) -> list[SlaBreach]:
    """R-SLA-1..4, R-SLA-6: every breach due at `as_of` (clock past the deadline plus the evidence grace), each once."""
    return judge(obligations, records, set(), None, as_of, policy).breaches


def next_due(obligations: list[Obligation], records: list[Record], breached: set[tuple[int, str]],
             policy: Policy) -> dt.datetime | None:
    """R-SLA-6/7: the earliest instant at which a breach not yet recorded falls due (`breach_due`), or None."""
    idx, schedule = _index(records), _schedule(policy)
    due = [b for ob in obligations for rule, d, b in schedule(ob)
           if (ob.assignment_id, rule) not in breached and not _lapsed(ob, d) and not _met(ob, rule, d, idx)]
    return min(due) if due else None


def mass_breach(breached: int, looked_at: int, policy: Policy) -> bool:
    """R-SLA-7: a check that breaches more than `mass_breach_share` of the obligations it looked at (at least
    `mass_breach_min_obligations` of them) is more likely a missing activity feed than a negligent team."""
    s = policy.sla
    return looked_at >= max(s.mass_breach_min_obligations, 1) and breached / looked_at > s.mass_breach_share


def mass_breach_warning(breached: int, looked_at: int, policy: Policy) -> str | None:
    """R-SLA-7: one sentence for the run summary when `mass_breach` holds, else None."""
    if not mass_breach(breached, looked_at, policy):
        return None
    return (f"The SLA check breached {breached} of the {looked_at} obligations it looked at, more than the "
            f"policy's mass_breach_share of {policy.sla.mass_breach_share:.0%}: check that the activity feed "
            f"arrives before trusting these penalties (R-SLA-7).")


def penalties(breach_rule_id: str, ordinal_in_month_of_kind: int, policy: Policy) -> Penalty:
    """R-SUSP-5 (R-SLA-1: one round) and R-SUSP-3 (R-SLA-2/3: fine, every 5th of a kind a round; R-SLA-4: fine)."""
    s = policy.suspension
    if breach_rule_id == "R-SLA-1":
        return Penalty(0.0, s.no_contact_pause_rounds)
    if breach_rule_id in ("R-SLA-2", "R-SLA-3"):
        return Penalty(float(s.late_entry_fine_yuan), late_entry_pauses(ordinal_in_month_of_kind, s.late_entry_pause_every))
    if breach_rule_id == "R-SLA-4":
        return Penalty(float(s.late_abcd_fine_yuan), 0)
    return Penalty(0.0, 0)  # R-SLA-5 listings carry no fine of their own


def month_ordinals(all_breaches: list[SlaBreach], policy: Policy) -> dict[SlaBreach, int]:
    """R-SUSP-3: each breach's ordinal among its person's breaches of its kind in the calendar month of the deadline."""
    return new_ordinals(all_breaches, [], policy)


def new_ordinals(new: list[SlaBreach], recorded: list[SlaBreach], policy: Policy) -> dict[SlaBreach, int]:
    """R-SUSP-3: the ordinal of each new breach in its person's month of its kind, counting the recorded
    (non-revoked) ones dated up to its deadline and the new ones before it in time order."""
    counts: dict[tuple, int] = {}
    out = {}
    marked = [(b, 0) for b in set(recorded)] + [(b, 1) for b in set(new)]
    for b, is_new in sorted(marked, key=lambda x: (x[0].at, x[1], x[0].assignment_id, x[0].rule_id)):
        key = (b.person_id, b.rule_id, month_key(b.at, policy))
        counts[key] = counts.get(key, 0) + 1
        if is_new:
            out[b] = counts[key]
    return out


# --- R-SLA-7: late evidence revokes breaches -----------------------------------------------------------

@dataclass(frozen=True)
class Disproof:
    breach: SlaBreach
    record: Record  # the earliest record that meets the obligation after all


def disproofs(recorded: list[tuple[SlaBreach, dt.datetime]], records: list[Record]) -> list[Disproof]:
    """R-SLA-7: recorded R-SLA-1..4 breaches (with their assignment's start) that a record now disproves: one
    by the breach's person, of the kind that meets the rule, dated from the start up to the deadline.
    R-SLA-5 listings are never disproved: a hand-over that happened stands."""
    by_key: dict[tuple[int, str, str], list[Record]] = {}
    for r in records:
        by_key.setdefault((r.customer_id, r.person_id, r.kind), []).append(r)
    out = []
    for b, started_at in recorded:
        kind = KIND_FOR_RULE.get(b.rule_id)
        meeting = [r for r in by_key.get((b.customer_id, b.person_id, kind), ()) if started_at <= r.at <= b.at]
        if kind and meeting:
            out.append(Disproof(b, min(meeting, key=lambda r: (r.at, r.recorded_at or r.at))))
    return sorted(out, key=lambda d: (d.breach.at, d.breach.assignment_id, d.breach.rule_id))


def late_entry_grants_lost(n_before: int, n_after: int, policy: Policy) -> int:
    """R-SUSP-3 with R-SLA-7: pause grants a person's month of one kind loses when its non-revoked late entries
    fall from `n_before` to `n_after` (every 5th earns one; the 5th of 5 revoked, or any one of 5, costs one)."""
    every = policy.suspension.late_entry_pause_every
    return n_before // every - n_after // every


@dataclass(frozen=True)
class PauseEntry:
    """One row of a person's paused rounds of one tier, in the order written (R-ALLOC-4)."""

    rounds: int  # +n paused, -1 a round used (source_key None), -n / 0 a grant withdrawn (source_key set)
    source_key: str | None  # the breach whose penalty granted (or whose revocation withdrew) it


def unused_rounds(history: list[PauseEntry], key: str) -> int:
    """R-SLA-7: rounds of the pause granted for breach `key` not yet used up (a used round stays used).

    Paused rounds are alike, so the withdrawn grant counts as the last resort: a round is taken from it only
    when no other paused round was there to use. The person then ends with the rounds they would have had
    without it, less those it made them skip for good.
    """
    other = mine = 0
    for e in history:
        if e.source_key == key:
            if e.rounds <= 0:
                return 0  # withdrawn already
            mine += e.rounds
        elif e.rounds > 0:
            other += e.rounds
        elif e.source_key is None:  # a round used by allocation
            if other > 0:
                other -= 1
            elif mine > 0:
                mine -= 1
        else:  # another grant withdrawn: its rounds leave `other`
            other += e.rounds
            if other < 0:
                mine, other = max(mine + other, 0), 0
    return mine


def _followed(records: list[Record], customer_id: int, person_id: str, after: dt.datetime, upto: dt.datetime) -> bool:
    """An effective follow-up by the person on the customer in (after, upto] (the obvious definition; the audit
    itself asks `_effective_index` once per run instead of scanning every record per holding)."""
    return any(r.customer_id == customer_id and r.person_id == person_id and r.kind in EFFECTIVE_KINDS
               and after < r.at <= upto for r in records)


def _effective_index(records: list[Record]) -> dict[tuple[int, str], list[dt.datetime]]:
    """(customer, person) -> the times of their effective follow-ups (R-SLA-5), sorted: built once per run, so
    each holding's question costs a bisection, not a scan of every record."""
    idx: dict[tuple[int, str], list[dt.datetime]] = {}
    for r in records:
        if r.kind in EFFECTIVE_KINDS:
            idx.setdefault((r.customer_id, r.person_id), []).append(r.at)
    for times in idx.values():
        times.sort()
    return idx


def _followed_in(idx: dict[tuple[int, str], list[dt.datetime]], customer_id: int, person_id: str,
                 after: dt.datetime, upto: dt.datetime) -> bool:
    """`_followed` on an `_effective_index`: the first follow-up after `after` is at or before `upto`."""
    times = idx.get((customer_id, person_id))
    if not times:
        return False
    i = bisect_right(times, after)
    return i < len(times) and times[i] <= upto


def audit_listings(holdings: list[Holding], records: list[Record], audit_at: dt.datetime, policy: Policy) -> list[Listing]:
    """R-SLA-5: leads held more than 30 days with no effective follow-up by the owner in the previous 30 days.

    Holdings and records in any order; listings sorted by assignment id. Linear in holdings plus records
    (n log n for the sort)."""
    held = dt.timedelta(days=policy.sla.audit_held_days)
    quiet_from = _plus(audit_at, -dt.timedelta(days=policy.sla.audit_quiet_days), policy)
    idx = _effective_index(records)
    out = [Listing(h.assignment_id, h.customer_id, h.person_id, audit_at) for h in holdings
           if _elapsed(h.held_since, audit_at) > held
           and not _followed_in(idx, h.customer_id, h.person_id, quiet_from, audit_at)]
    return sorted(out, key=lambda x: x.assignment_id)


def audit_deadline(listing: Listing, policy: Policy) -> dt.datetime:
    """R-SLA-5: the 7-day grace after a listing is a deadline (a follow-up at it is in time)."""
    return _plus(listing.at, dt.timedelta(days=policy.sla.audit_grace_days), policy)


def audit_reallocations(listings: list[Listing], records: list[Record], as_of: dt.datetime, policy: Policy) -> list[Listing]:
    """R-SLA-5: listings still without an effective follow-up by the owner once the clock passes the grace deadline.

    The caller passes only listings whose assignment is still open.
    """
    out, idx = [], _effective_index(records)
    for x in listings:
        deadline = audit_deadline(x, policy)
        if as_of > deadline and not _followed_in(idx, x.customer_id, x.person_id, x.at, deadline):
            out.append(x)
    return out


def audit_times(after: dt.datetime, upto: dt.datetime, policy: Policy) -> list[dt.datetime]:
    """R-SLA-5: the 1st-of-month 00:00 business-time audit instants in (after, upto]."""
    return month_starts_between(after, upto, policy)


def max_lateness(policy: Policy) -> dt.timedelta:
    """R-SLA-7: a record reaching LeadFlow later than this after it was made is refused `too_late`."""
    return dt.timedelta(days=policy.sla.max_lateness_days)
