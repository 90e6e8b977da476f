"""The generated scenario (leadflow.samples.scenario_gen): valid, deterministic, and the shape of the sample mix.
No database: `leadflow simulate` replays it in tests/scenarios/test_parity.py."""
import datetime as dt

import pytest

from leadflow.events.kinds import OWNER_ACTIONS, RECORD_KINDS
from leadflow.samples.scenario_gen import generate_scenario
from leadflow.scenario import parse_scenario


@pytest.fixture(scope="module")
def year():
    return generate_scenario(20_000, seed=1)


def test_a_generated_scenario_parses_with_exactly_the_events_asked_for():
    scenario = parse_scenario(generate_scenario(400, seed=5))
    assert len(scenario.events) == 400
    assert scenario.events[0].at >= scenario.start


def test_the_same_seed_gives_the_same_scenario_and_another_seed_another():
    assert generate_scenario(300, seed=2) == generate_scenario(300, seed=2)
    assert generate_scenario(300, seed=2) != generate_scenario(300, seed=3)


def test_event_times_never_go_backwards(year):
    times = [dt.datetime.fromisoformat(e["at"]) for e in year["events"]]
    assert times == sorted(times)


def test_records_deals_and_owner_only_actions_leave_by_out_so_none_is_by_a_non_owner(year):
    """`by` left out is the customer's current owner (SCENARIOS.md): no invalid (R-VAL-4) by anyone else."""
    acting = [e for e in year["events"] if e["type"] in RECORD_KINDS + OWNER_ACTIONS + ("deal",)]
    assert acting and not any("by" in e for e in acting)


def test_events_name_customers_by_the_ref_of_an_earlier_registration(year):
    refs: set[str] = set()
    for e in year["events"]:
        if e["type"] == "register":
            refs.add(e["ref"])
        elif "customer" in e:
            assert e["customer"] in refs


def test_r_sla_1_a_year_has_about_a_thousand_leads_with_the_sample_contact_mix(year):
    """~1,000 leads over a year; first contacts for ~95 % of them (5 % never, R-SLA-1), a few deals and leaves."""
    types = [e["type"] for e in year["events"]]
    registrations, contacts = types.count("register"), types.count("contact")
    assert 800 <= registrations <= 1500
    assert 0.88 <= contacts / registrations <= 0.97  # 5 % never contacted, and the bad rows get no contact
    assert types.count("deal") >= 20 and types.count("leave") >= 100 and types.count("tick") >= 200
    assert dt.datetime.fromisoformat(year["events"][-1]["at"]) - dt.datetime.fromisoformat(year["start"]) \
        > dt.timedelta(days=300)

