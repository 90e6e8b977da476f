"""Memos of pure rule answers kept per policy, for as long as the process lives (issue 10: the catch-up asks the
same deadlines and expiries on every run)."""
from __future__ import annotations

from leadflow.policy import Policy


class PolicyMemo:
    """A dict of remembered answers per policy. The policy object is held beside its dict, so its id names it
    while the entry lives (a policy replaced by another with the same id gets a fresh dict). Both sizes are capped:
    at most `policies` policies (tests meet many) and `entries` answers per policy (a long-lived process meets
    many clock starts); past either cap the memo starts again empty. Remembering never changes an answer: only
    pure functions of their key and the policy are kept."""

    def __init__(self, policies: int = 8, entries: int = 200_000):
        self._held: dict[int, tuple[Policy, dict]] = {}
        self._policies, self._entries = policies, entries

    def of(self, policy: Policy) -> dict:
        """The answers remembered for `policy` (a dict the caller reads and fills)."""
        held = self._held.get(id(policy))
        if held is None or held[0] is not policy:
            if len(self._held) >= self._policies:
                self._held.clear()
            held = self._held[id(policy)] = (policy, {})
        if len(held[1]) > self._entries:
            held[1].clear()
        return held[1]
