"""The stage context a task works in, tagged with the flow run that acts (for the ledger)."""
from __future__ import annotations

from functools import lru_cache

from prefect.runtime import flow_run

from leadflow.stages.context import StageContext


@lru_cache(maxsize=4)
def _base(database_url: str | None, policy_file: str | None) -> StageContext:
    from leadflow.wiring import stage_context

    return stage_context(database_url=database_url, policy_file=policy_file)


def stage_ctx(database_url: str | None = None, policy_file: str | None = None) -> StageContext:
    """One engine and gate per process; the flow-run id of the caller on every ledger entry."""
    base = _base(database_url, policy_file)
    return StageContext(engine=base.engine, policy=base.policy, flow_run_id=str(flow_run.id or "") or None,
                        gate=base.gate, notify=base.notify)
