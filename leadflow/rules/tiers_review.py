"""R-TIER-2 re-applications and R-TIER-3 receptionist misjudgment penalties."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from leadflow.clock import add_months, local, month_key
from leadflow.policy import UNRANKED_TIERS, Policy
from leadflow.rules.tiers import tier_rank


@dataclass(frozen=True)
class ReapplyOutcome:
    accepted: bool
    replacement_tier: str | None  # R-ALLOC-6: a replacement lead of this tier is owed to the owner
    reason: str


def reapplication(old_tier: str, new_tier: str) -> ReapplyOutcome:
    """R-TIER-2: same tier refused; lower earns a replacement of the old tier; higher, or from unclassified, none."""
    if old_tier == new_tier:
        return ReapplyOutcome(False, None, f"R-TIER-2: refused, the lead is already {old_tier}")
    if old_tier in UNRANKED_TIERS:
        return ReapplyOutcome(True, None, f"R-TIER-2: a {old_tier} lead gets its tier {new_tier}, no replacement")
    if tier_rank(new_tier) < tier_rank(old_tier):
        return ReapplyOutcome(True, None, f"R-TIER-2: re-tiered up from {old_tier} to {new_tier}, no replacement")
    return ReapplyOutcome(True, old_tier,
                          f"R-TIER-2: re-tiered down from {old_tier} to {new_tier}, replacement of tier {old_tier} owed")



@dataclass(frozen=True)
class MisjudgmentPenalty:
    key: tuple  # ("R-TIER-3", count, months, "YYYY-MM" first month of the window): record it, never fire it twice
    at: dt.datetime
    count: int
    months: int
    pause_rounds: int
    suspend_until: dt.datetime | None  # no allocation until then (an expiry)
    hotline_ban_until: dt.datetime | None  # no hotline duty until then


def _month_index(t: dt.datetime, policy: Policy) -> int:
    y, m = month_key(t, policy)
    return y * 12 + (m - 1)


def misjudgment_penalties(times: list[dt.datetime], new_at: dt.datetime, already_fired: set[tuple],
                          policy: Policy) -> list[MisjudgmentPenalty]:
    """R-TIER-3: thresholds reached by a new misjudgment at `new_at`; `times` are the person's misjudgments on record.

    The new one counts once whether or not `times` already holds it. A threshold (count over `months`
    consecutive calendar months, the window ending with the month of `new_at`) fires when this
    misjudgment brings the window's count to it, once per window.
    """
    earlier = list(times)
    if new_at in earlier:
        earlier.remove(new_at)
    new_month = _month_index(new_at, policy)
    out = []
    for th in policy.misjudgment:
        first = new_month - th.months + 1
        count = 1 + sum(1 for t in earlier if t <= new_at and first <= _month_index(t, policy) <= new_month)
        y, m0 = divmod(first, 12)
        key = ("R-TIER-3", th.count, th.months, f"{y:04d}-{m0 + 1:02d}")
        if count != th.count or key in already_fired:
            continue  # fires when the count reaches the threshold, not again as it grows
        at = local(new_at, policy)
        out.append(MisjudgmentPenalty(
            key=key, at=at, count=th.count, months=th.months, pause_rounds=th.pause_rounds,
            suspend_until=at + dt.timedelta(days=th.suspend_days) if th.suspend_days else None,
            hotline_ban_until=add_months(at, th.hotline_ban_months) if th.hotline_ban_months else None,
        ))
    return out
