"""The validation gates (R-VAL-1..3): one expectation suite per stage, run on the registration records
the stage will read, in the database, through a Great Expectations SQL datasource.

Every stage module (`intake`, `tiering`, `allocation`, `sla_check`, `conversion_expiry`, `dispute`)
defines:

- `suite(policy) -> gx.ExpectationSuite`: the suite, built in code from the policy in force (the
  channel ids come from it); every expectation carries its reason code (R-VAL-2) in
  `meta={"reason": ...}`;
- `SELECT`: output column -> SQL expression over `registrations` columns; the gate's query selects
  `id` plus exactly these (never `phone`, `raw` or `name`: R-REG-7). They are also the key of the gate's
  cache (a record's outcome is a function of them alone), so a column the suite only tests for NULL is
  selected as `given(column)` under its own name: 1 or NULL, the same check, and many records share a key;
- `REQUIRED`: the `registrations` columns the suite reads; one missing fails the batch (R-VAL-3).

`expectations.gate` runs them: `run_gate(url, stage, ids=..., batch_id=..., policy=...)` and
`gate_for(url, policy=...)`.
Importing this package is cheap; Great Expectations is imported with the first suite or gate.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from expectations.gate import GateResult, gate_for, run_gate  # noqa: F401
    from leadflow.policy import Policy

STAGES: tuple[str, ...] = ("intake", "tiering", "allocation", "sla_check", "conversion_expiry", "dispute")

PHONE_KINDS_VALID: tuple[str, ...] = ("mobile", "landline")
AMOUNT_STATUSES_OK: tuple[str, ...] = ("ok", "blank")
DECIDED_STATUSES: tuple[str, ...] = ("accepted", "attached")  # rows the later stages read

# SQL for "a channel was delivered at all" (1) or not (0), so the gate never selects the free-text
# `channel_raw` itself: the suites only need to know whether it was given.
CHANNEL_GIVEN_SQL = "CASE WHEN channel_raw IS NULL THEN 0 ELSE 1 END"


def given(column: str) -> str:
    """SQL for a column the suite only tests for NULL: 1 when it has a value, NULL when not. Selected under the
    column's own name, so the expectation, its reason code and its Data Docs line are the same, while records
    that differ only in the value (a customer id, a time) share one key of the gate's cache."""
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE 1 END"


def stage_module(stage: str) -> ModuleType:
    """The module of a stage's suite; a ValueError names the known stages."""
    if stage not in STAGES:
        raise ValueError(f"unknown validation stage {stage!r}: use one of {', '.join(STAGES)}.")
    return importlib.import_module(f"expectations.{stage}")


def suite_for(stage: str, policy: Policy):
    """The stage's `gx.ExpectationSuite` under `policy`, freshly built."""
    return stage_module(stage).suite(policy)


def suite_values(policy: Policy) -> tuple:
    """What of the policy the suites are built from (a gate keeps one set of suites per value)."""
    from leadflow.rules.registration import known_channels

    return (known_channels(policy), policy.registration.self_channel)


def __getattr__(name: str) -> Any:  # lazy: `from expectations import run_gate` imports GX only then
    if name in ("GateResult", "run_gate", "gate_for"):
        from expectations import gate

        return getattr(gate, name)
    raise AttributeError(f"module 'expectations' has no attribute {name!r}")
