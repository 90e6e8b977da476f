"""Telling an owner about a newly allocated lead: a log line by default, a Prefect webhook block for real."""
from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("leadflow.notify")


class Notifier(Protocol):
    def __call__(self, allocations: list[dict]) -> int: ...


def _line(a: dict) -> str:
    return (f"customer {a.get('customer_id')} ({a.get('tier', '?')}) allocated to {a.get('person_id')} "
            f"[{a.get('rule_id')}]")


class LogNotifier:
    """The default: one log line per allocation (no phone is ever part of it)."""

    def __call__(self, allocations: list[dict]) -> int:
        for a in allocations:
            log.info("notify %s", _line(a))
        return len(allocations)


class WebhookNotifier:
    """Posts one message per batch through a saved Prefect notification block (e.g. a custom webhook)."""

    def __init__(self, block_name: str):
        self.block_name = block_name

    def __call__(self, allocations: list[dict]) -> int:
        if not allocations:
            return 0
        from prefect.blocks.core import Block

        block = Block.load(self.block_name)
        body = "\n".join(_line(a) for a in allocations[:200])
        block.notify(body=body, subject=f"LeadFlow: {len(allocations)} new allocations")
        return len(allocations)


def notifier_for(setting: str) -> Notifier:
    """`log` or `webhook:<block document name, e.g. custom-webhook/leadflow-owners>`."""
    if setting.startswith("webhook:"):
        return WebhookNotifier(setting.split(":", 1)[1])
    return LogNotifier()
