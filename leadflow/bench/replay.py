"""`leadflow bench --replay N`: generate a scenario of N events and replay it as `leadflow simulate` does, with the
Great Expectations gate on (R-VAL-1: every stage is validated before it acts), and time it.

    from leadflow.bench.replay import measure
    measure(20_000)   # {"events": 20000, "seconds": 41.2, "gx_calls": 37, "gx_seconds": 6.1}
"""
from __future__ import annotations

import time
from typing import Any


def measure(events: int, database_url: str | None = None, seed: int = 1) -> dict[str, Any]:
    """Generate a scenario of `events` events (`leadflow.samples.scenario_gen.generate_scenario`, from `seed`) and
    replay it on a fresh database (a temporary SQLite file, or a new schema of the PostgreSQL at `database_url`,
    dropped after), with the real validation gate (`leadflow.wiring.make_gate`, as the CLI's `simulate` wires it).

    Returns {"events": int, "seconds": float (the replay, wall time, generation excluded), "gx_calls": int (Great
    Expectations validations run during the replay), "gx_seconds": float (their wall time, part of `seconds`)}.
    Raises ValueError for `events` < 1; a replay that fails raises what the stage raised."""
    if events < 1:
        raise ValueError("a replay needs at least one event.")
    from expectations import gate as gate_module
    from leadflow.samples.scenario_gen import generate_scenario
    from leadflow.scenario import parse_scenario
    from leadflow.simulate import simulate
    from leadflow.wiring import make_gate

    scenario = parse_scenario(generate_scenario(events, seed=seed))
    gate_module.reset_stats()
    started = time.perf_counter()
    simulate(scenario, None, database_url, gate_factory=lambda url, schema, policy: make_gate(url, schema, policy))
    seconds = time.perf_counter() - started
    gx = gate_module.stats()
    return {"events": len(scenario.events), "seconds": round(seconds, 2), "gx_calls": gx["calls"],
            "gx_seconds": round(gx["seconds"], 2)}
