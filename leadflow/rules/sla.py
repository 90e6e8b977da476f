"""R-SLA: follow-up deadlines, breaches, late-entry penalties (R-SUSP-3, R-SUSP-5) and the monthly audit."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from leadflow.clock import end_of_working_day_after, local, month_key, month_starts_between
from leadflow.policy import Policy
from leadflow.rules.suspensions import late_entry_pauses
from leadflow.rules.tiers import tier_rank

# The record kind that meets each obligation (R-SLA-1..4).
KIND_FOR_RULE = {"R-SLA-1": "contact", "R-SLA-2": "crm_entry", "R-SLA-3": "call_register", "R-SLA-4": "abcd_entry"}
# R-SLA-5 / R-CONV-3: an effective follow-up is a contact, follow-up or sales-step record by the owner.
EFFECTIVE_KINDS = frozenset({"contact", "follow_up", "sales_step"})


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
    at: dt.datetime


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


def breaches(obligations: list[Obligation], records: list[Record], as_of: dt.datetime, policy: Policy) -> list[SlaBreach]:
    """R-SLA-1..4, R-SLA-6: every breach due at `as_of` (clock strictly past the deadline), each once."""
    idx = _index(records)
    out = []
    for ob in obligations:
        for rule, deadline in deadlines(ob, policy).items():
            if as_of > deadline and not _lapsed(ob, deadline) and not _met(ob, rule, deadline, idx):
                out.append(SlaBreach(ob.assignment_id, ob.customer_id, ob.person_id, rule, deadline))
    return sorted(out, key=lambda b: (b.at, b.assignment_id, b.rule_id))


def next_deadline(obligations: list[Obligation], records: list[Record], after: dt.datetime,
                  policy: Policy) -> dt.datetime | None:
    """R-SLA-1..4: the earliest deadline later than `after` not yet met; its breach is due once the clock passes it."""
    idx = _index(records)
    due = [d for ob in obligations for rule, d in deadlines(ob, policy).items()
           if d > after and not _lapsed(ob, d) and not _met(ob, rule, d, idx)]
    return min(due) if due else None


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
    counts: dict[tuple, int] = {}
    out = {}
    for b in sorted(set(all_breaches), key=lambda b: (b.at, b.assignment_id, b.rule_id)):
        key = (b.person_id, b.rule_id, month_key(b.at, policy))
        counts[key] = counts.get(key, 0) + 1
        out[b] = counts[key]
    return out


def _followed(records: list[Record], customer_id: int, person_id: str, after: dt.datetime, upto: dt.datetime) -> bool:
    """An effective follow-up by the person on the customer in (after, upto]."""
    return any(r.customer_id == customer_id and r.person_id == person_id and r.kind in EFFECTIVE_KINDS
               and after < r.at <= upto for r in records)


def audit_listings(holdings: list[Holding], records: list[Record], audit_at: dt.datetime, policy: Policy) -> list[Listing]:
    """R-SLA-5: leads held more than 30 days with no effective follow-up by the owner in the previous 30 days."""
    held = dt.timedelta(days=policy.sla.audit_held_days)
    quiet_from = _plus(audit_at, -dt.timedelta(days=policy.sla.audit_quiet_days), policy)
    out = [Listing(h.assignment_id, h.customer_id, h.person_id, audit_at) for h in holdings
           if _elapsed(h.held_since, audit_at) > held
           and not _followed(records, h.customer_id, h.person_id, quiet_from, audit_at)]
    return sorted(out, key=lambda x: x.assignment_id)


def audit_deadline(listing: Listing, policy: Policy) -> dt.datetime:
    """R-SLA-5: the 7-day grace after a listing is a deadline (a follow-up at it is in time)."""
    return _plus(listing.at, dt.timedelta(days=policy.sla.audit_grace_days), policy)


def audit_reallocations(listings: list[Listing], records: list[Record], as_of: dt.datetime, policy: Policy) -> list[Listing]:
    """R-SLA-5: listings still without an effective follow-up by the owner once the clock passes the grace deadline.

    The caller passes only listings whose assignment is still open.
    """
    out = []
    for x in listings:
        deadline = audit_deadline(x, policy)
        if as_of > deadline and not _followed(records, x.customer_id, x.person_id, x.at, deadline):
            out.append(x)
    return out


def audit_times(after: dt.datetime, upto: dt.datetime, policy: Policy) -> list[dt.datetime]:
    """R-SLA-5: the 1st-of-month 00:00 business-time audit instants in (after, upto]."""
    return month_starts_between(after, upto, policy)
