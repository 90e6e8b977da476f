"""R-CONV: conversion periods, expiry and reassignment, the previous owner's share, dormant return."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from leadflow.clock import add_months, local
from leadflow.policy import Policy
from leadflow.rules.memo import PolicyMemo

SHARE_HANDOVER_RULES = ("R-CONV-2", "R-SLA-5")  # R-CONV-3: only these hand-overs carry a share


# Expiries remembered per policy (`PolicyMemo`): the catch-up asks `next_due` on every run, and it computes the expiry
# of every open lead near its end each time (issue 10: a year's replay asked the same few dozen expiries ~9,000
# times, 4 % of its time).
_EXPIRIES = PolicyMemo()


def expires_at(clock_start: dt.datetime, tier: str, policy: Policy,
               retiered_at: dt.datetime | None = None) -> dt.datetime | None:
    """R-CONV-1: calendar months in business time; R-TIER-5: a re-tier shortening it below the time held ends it then.

    Remembered per (clock start, tier, re-tier) and policy — all it depends on — so a lead asked about by many
    runs is computed once. Pure: the memo only saves recomputing the same answer."""
    memo = _EXPIRIES.of(policy)
    key = (clock_start, tier, retiered_at)
    if key in memo:
        return memo[key]
    memo[key] = end = _expires_at(clock_start, tier, policy, retiered_at)
    return end


def _expires_at(clock_start: dt.datetime, tier: str, policy: Policy,
                retiered_at: dt.datetime | None) -> dt.datetime | None:
    months = policy.conversion.period_months.get(tier)
    if months is None:  # unclassified / non_target: no conversion period
        return None
    end = add_months(local(clock_start, policy), months)
    if retiered_at is not None and end < retiered_at:
        return local(retiered_at, policy)
    return end


def shortest_period(policy: Policy) -> dt.timedelta | None:
    """R-CONV-1: a lower bound on (expiry - clock start) over every tier with a period: n calendar months are
    at least n x 28 days, less a day for a daylight-saving or month-end clamp. None when no tier has one."""
    months = [m for m in policy.conversion.period_months.values() if m is not None]
    return period_floor(min(months)) if months else None


def period_floor(months: int) -> dt.timedelta:
    """R-CONV-1: a lower bound on (expiry - clock start) for a tier of `months` calendar months: at least
    `months` x 28 days, less a day for a daylight-saving or month-end clamp; a re-tier only moves an expiry
    later (R-TIER-5), so the bound holds for the customer's tier as it stands."""
    return max(dt.timedelta(days=28 * months - 1), dt.timedelta(0))


@dataclass(frozen=True)
class ExpiryCase:
    assignment_id: int
    customer_id: int
    person_id: str
    tier: str
    clock_start: dt.datetime
    exempt: bool  # already exempt for good (step 4 reached, possibly carried over by an exchange)
    converted_at: dt.datetime | None  # the deal, if any
    step4_at: dt.datetime | None  # the owner's first step >= exempt_step during this ownership
    retiered_at: dt.datetime | None = None  # R-TIER-5: the last re-tier, if any


@dataclass(frozen=True)
class ExpiryOutcome:
    assignment_id: int
    customer_id: int
    person_id: str
    tier: str
    at: dt.datetime  # the expiry
    action: str  # "reallocate" (R-CONV-2, owner excluded and barred, R-SUSP-7) or "exempt" (R-CONV-2 step 4)
    rule: str
    excluded: frozenset[str] = frozenset()
    barred_tier: str | None = None


def expiry_decision(case: ExpiryCase, as_of: dt.datetime, policy: Policy) -> ExpiryOutcome | None:
    """R-CONV-2, R-SUSP-7: what happens at the expiry once `as_of` reaches it; None when nothing does."""
    if case.exempt:
        return None
    expiry = expires_at(case.clock_start, case.tier, policy, case.retiered_at)
    if expiry is None or as_of < expiry:
        return None
    if case.converted_at is not None and case.converted_at < expiry:
        return None  # converted in time: not reallocated
    base = dict(assignment_id=case.assignment_id, customer_id=case.customer_id, person_id=case.person_id,
                tier=case.tier, at=expiry, rule="R-CONV-2")
    if case.step4_at is not None and case.step4_at < expiry:
        return ExpiryOutcome(action="exempt", **base)  # step 4 in time exempts for good
    return ExpiryOutcome(action="reallocate", excluded=frozenset({case.person_id}), barred_tier=case.tier, **base)


def previous_owner_share(handover_at: dt.datetime, handover_rule: str, previous_owner_active: bool,
                         previous_owner_followups: list[dt.datetime], policy: Policy) -> float:
    """R-CONV-3: 30 % of the commission to the owner a lead was taken from by R-CONV-2 / R-SLA-5, if they kept it up."""
    if handover_rule not in SHARE_HANDOVER_RULES or not previous_owner_active:
        return 0.0
    before = [t for t in previous_owner_followups if t <= handover_at]
    if not before:
        return 0.0
    quiet = handover_at.astimezone(dt.timezone.utc) - max(before).astimezone(dt.timezone.utc)
    if quiet > dt.timedelta(days=policy.conversion.previous_owner_max_quiet_days):
        return 0.0
    return float(policy.conversion.previous_owner_commission)


def deal_credits(closer: str, previous_owner: str | None,
                 previous_share: float) -> tuple[dict[str, float], dict[str, float]]:
    """R-CONV-3: (performance, commission); the closer has all the performance, the share comes out of the commission."""
    performance = {closer: 1.0}
    if previous_owner is None or previous_owner == closer or previous_share <= 0:
        return performance, {closer: 1.0}
    return performance, {previous_owner: round(previous_share, 10), closer: round(1.0 - previous_share, 10)}


def dormant_since(last_sale_at: dt.datetime | None, last_payment_at: dt.datetime | None,
                  policy: Policy) -> dt.datetime | None:
    """R-CONV-5 (switch, off by default): when a customer with past sales falls dormant (6 months after
    the last sale or payment); None when the switch is off or there was no sale."""
    rule = policy.conversion.dormant_return
    if not rule.enabled or last_sale_at is None:
        return None
    last = max(t for t in (last_sale_at, last_payment_at) if t is not None)
    return add_months(local(last, policy), rule.months)


def dormant(last_sale_at: dt.datetime | None, last_payment_at: dt.datetime | None, as_of: dt.datetime,
            policy: Policy) -> bool:
    """R-CONV-5 (switch, off by default): past sales but no sale nor payment for 6 months -> back to the pool."""
    since = dormant_since(last_sale_at, last_payment_at, policy)
    return since is not None and as_of >= since  # an expiry: it takes effect at that instant


def apply_help(shares: dict[str, float], owner: str, helper: str, helper_share: float) -> dict[str, float]:
    """R-CONV-4: a colleague who helped by agreement gets the agreed part of the owner's share."""
    if owner not in shares or helper == owner:
        return dict(shares)
    out = dict(shares)
    moved = out[owner] * helper_share
    out[owner] -= moved
    out[helper] = out.get(helper, 0.0) + moved
    return {p: s for p, s in out.items() if s}
