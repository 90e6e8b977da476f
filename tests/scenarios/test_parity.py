"""The proof of one engine: a scenario driven through production's entry points ends in the state
`leadflow simulate` gives (SCENARIOS.md; everything but `scenario` and `ledger_entries`).

Production's path here: registrations through `register_lead` (the channel's `external_ref` set to the
scenario's `ref`), every other event through `leadflow.events.api.record_events`, ticks through
`leadflow.engine.tick` — each at the event's delivery time, on SQLite and PostgreSQL. A subset also goes
through the Prefect flows in-process (`tests/flows/test_parity_flows.py`) and one through the CLI (e2e).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from leadflow import engine
from leadflow.events.api import record_events
from leadflow.policy import load_policy
from leadflow.register import register_lead
from leadflow.scenario import Scenario, load_scenario, parse_scenario
from leadflow.simulate import event_row, replay_database, simulate
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.state import world_state
from leadflow.store.db import create_all
from leadflow.wiring import make_gate
from tests.conftest import require_postgres

HERE = Path(__file__).parent
SHARED = HERE.parents[2] / "shared" / "scenarios"
SCENARIOS = sorted(HERE.glob("*.yaml")) + sorted(SHARED.glob("*.yaml"))
IGNORED = ("scenario", "ledger_entries")


def lead_of(e) -> dict:
    """A `register` event as a lead from a form or a CRM hook (INTAKE.md's columns)."""
    f = e.fields
    lead = {"channel": f.get("channel"), "name": f.get("name"), "phone": f.get("phone"), "amount": f.get("amount"),
            "inquiry": f.get("inquiry"), "registered_at": e.at, "registered_by": f.get("by"),
            "region": f.get("region"), "target": {True: "yes", False: "no"}.get(f.get("target", True), "unknown")}
    if f.get("external_ref"):  # the channel's own reference stays; the scenario's name is the form's id
        return {**lead, "external_ref": f["external_ref"], "ref": str(f["ref"])}
    return {**lead, "external_ref": str(f["ref"])}


def drive_production(scenario: Scenario, ctx: StageContext) -> dict:
    """The scenario through production's entry points, each event at its delivery time."""
    with ctx.engine.begin() as conn:
        load_org(conn, scenario.departments, scenario.people)
    engine.tick(ctx, scenario.start)
    for e in scenario.events:
        if e.type == "tick":
            engine.tick(ctx, e.delivered_at)
        elif e.type == "register":
            register_lead(lead_of(e), now=e.delivered_at, ctx=ctx)
        else:
            record_events([event_row(e)], as_of=e.delivered_at, source="parity", ctx=ctx)
    last = scenario.events[-1].delivered_at if scenario.events else scenario.start
    engine.tick(ctx, last)
    with ctx.engine.connect() as conn:
        return world_state(conn, ctx.policy, scenario.name, last)


def production_state(scenario: Scenario, database_url: str | None) -> dict:
    policy = load_policy(None, scenario.policy)
    with replay_database(database_url) as (eng, url, schema):
        create_all(eng)
        gate = make_gate(url, schema, policy)
        try:
            return drive_production(scenario, StageContext(engine=eng, policy=policy, gate=gate))
        finally:
            gate.close()


def comparable(state: dict) -> dict:
    return {k: v for k, v in state.items() if k not in IGNORED}


def assert_parity(scenario: Scenario, database: str, replayed: dict | None = None) -> None:
    url = require_postgres() if database == "postgresql" else None
    if replayed is None:
        replayed = simulate(scenario, None, url, gate_factory=lambda u, schema, policy: make_gate(u, schema, policy))
    produced = production_state(scenario, url)
    differing = sorted(k for k in comparable(replayed) if replayed[k] != produced.get(k))
    assert not differing, "production differs from the replay in " + ", ".join(differing) + ":\n" + "\n".join(
        f"{k}:\n  replay     {replayed[k]}\n  production {produced.get(k)}" for k in differing[:3])


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_r_sla_6_production_ends_where_the_replay_ends(path: Path, database: str):
    from tests.scenarios.test_scenarios import replay

    assert_parity(load_scenario(path), database, replay(path, database))


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_r_sla_6_a_generated_scenario_of_several_hundred_events_ends_the_same_in_production(database: str):
    from leadflow.samples.scenario_gen import generate_scenario

    scenario = parse_scenario(generate_scenario(400, seed=5))
    assert len(scenario.events) >= 300
    assert_parity(scenario, database)
