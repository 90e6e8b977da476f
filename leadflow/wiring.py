"""The one place that wires the environment: database, policy, validation gate, notifier."""
from __future__ import annotations

from pathlib import Path

from leadflow.policy import Policy, load_policy
from leadflow.privacy import MaskingFilter, install_log_masking  # noqa: F401 (R-REG-7: wired here)
from leadflow.settings import get_settings
from leadflow.stages.context import StageContext
from leadflow.store.db import check_connection, make_engine


def make_gate(url: str, schema: str | None, policy: Policy, docs_dir: Path | None = None):
    """The Great Expectations gate (R-VAL-1..3) bound to one database; its suites and thresholds from `policy`."""
    from expectations.gate import gate_for

    return gate_for(url, schema=schema, docs_dir=docs_dir, policy=policy)


def make_notifier():
    from leadflow.notify import notifier_for

    return notifier_for(get_settings().notifier)


def stage_context(flow_run_id: str | None = None, database_url: str | None = None,
                  policy_file: str | None = None, with_gate: bool = True) -> StageContext:
    """The context the flows and the CLI work in: the configured database and policy."""
    settings = get_settings()
    url = database_url or settings.effective_database_url
    policy = load_policy(policy_file or settings.policy_file)
    engine = make_engine(url)
    check_connection(engine)
    gate = make_gate(url, None, policy, settings.docs_dir) if with_gate else None
    return StageContext(engine=engine, policy=policy, flow_run_id=flow_run_id, gate=gate, notify=make_notifier())
