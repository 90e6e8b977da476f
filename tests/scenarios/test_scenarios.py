"""Every scenario, ours (tests/scenarios/*.yaml) and the shared worked examples, replayed in-process
through the stage code on SQLite and on PostgreSQL, and compared with its `expect:`."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from leadflow.scenario import load_scenario
from leadflow.simulate import simulate
from leadflow.wiring import make_gate
from tests.conftest import require_postgres
from tests.scenarios.matching import match

HERE = Path(__file__).parent
SHARED = HERE.parents[2] / "shared" / "scenarios"
SCENARIOS = sorted(HERE.glob("*.yaml")) + sorted(SHARED.glob("*.yaml"))


_REPLAYED: dict[tuple[Path, str], dict] = {}


def replay(path: Path, database: str) -> dict:
    """`leadflow simulate` of the scenario; each (scenario, database) is replayed once per session and
    shared with the parity test (tests/scenarios/test_parity.py), which compares production with it."""
    url = require_postgres() if database == "postgresql" else None
    if (path, database) not in _REPLAYED:
        _REPLAYED[path, database] = simulate(load_scenario(path), None, url,
                                             gate_factory=lambda u, schema, policy: make_gate(u, schema, policy))
    return copy.deepcopy(_REPLAYED[path, database])


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_ends_in_its_expected_state(path: Path, database: str):
    expected = yaml.safe_load(path.read_text(encoding="utf-8")).get("expect")
    assert expected, f"{path.name} has no expect: block, so it would assert nothing"
    problems = match(expected, replay(path, database))
    assert problems == [], f"{path.name} on {database}:\n" + "\n".join(problems[:10])
