"""R-VAL-1 in a replay: each later stage's suite runs on the records it reads before it acts."""
from __future__ import annotations

from pathlib import Path

import pytest

from leadflow.scenario import load_scenario
from leadflow.simulate import simulate
from leadflow.wiring import make_gate

HERE = Path(__file__).parent


def _replay_recording_gates(path: Path) -> list[str]:
    calls: list[str] = []

    def factory(url, schema, policy):
        real = make_gate(url, schema, policy)

        def gate(stage, ids=None, batch_id=None):
            calls.append(stage)
            return real(stage, ids=ids, batch_id=batch_id)

        gate.close = real.close
        return gate

    simulate(load_scenario(path), None, None, gate_factory=factory)
    return calls


def test_r_val_1_every_stage_of_a_replay_is_gated_by_its_suite():
    calls = _replay_recording_gates(HERE / "r-disp-8-rerun-records-once.yaml")
    assert {"intake", "sla_check", "dispute"} <= set(calls)


def test_r_val_1_expiry_and_review_are_gated_before_they_act():
    shared = HERE.parents[2] / "shared" / "scenarios" / "conversion-expiry.yaml"
    if not shared.exists():
        pytest.skip("../shared/scenarios is not beside this checkout")
    calls = _replay_recording_gates(shared)
    assert {"intake", "sla_check", "conversion_expiry", "tiering"} <= set(calls)
    assert calls[0] == "intake"
