"""prefect.yaml is the one declaration of the deployments: `leadflow serve` serves exactly its deployments
and schedules, in the policy's time zone (as `prefect deploy --all` templates them)."""
from __future__ import annotations

import pytest
import yaml

from deployments.declared import PREFECT_YAML


def _declared() -> dict:
    return yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))


def _as_prefect_deploys_it(schedule: dict, timezone: str) -> dict:
    """What `prefect deploy` makes of one prefect.yaml schedule once its build step gave the time zone."""
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule

    return _comparable(_schedule_config_to_deployment_schedule({**schedule, "timezone": timezone})["schedule"])


def _comparable(schedule) -> dict:
    return schedule.model_dump(exclude={"anchor_date"})  # an interval's anchor defaults to "now"


@pytest.fixture
def policy_zone(tmp_path, monkeypatch):
    """Serve under a policy whose time zone is not the default one."""
    from leadflow.settings import get_settings

    policy = tmp_path / "policy.yaml"
    policy.write_text("timezone: Europe/Berlin\n", encoding="utf-8")
    monkeypatch.setenv("LEADFLOW_POLICY_FILE", str(policy))
    get_settings.cache_clear()
    yield "Europe/Berlin"
    get_settings.cache_clear()


def test_prefect_yaml_takes_every_schedules_time_zone_from_the_policy():
    spec = _declared()
    assert {"deployments.declared.policy_values": {"id": "policy"}} in spec["build"]
    zones = {s.get("timezone") for d in spec["deployments"] for s in d.get("schedules") or []}
    assert zones == {"{{ policy.timezone }}"}


def test_served_deployments_are_prefect_yamls_with_the_same_schedules():
    from deployments.serve import deployments
    from leadflow.settings import configured_policy

    zone = configured_policy().timezone
    served = {d.name: d for d in deployments("/tmp/inbox")}
    declared = {d["name"]: d for d in _declared()["deployments"]}
    assert list(served) == list(declared)
    for name, d in declared.items():
        assert served[name].entrypoint == d["entrypoint"], name
        assert [_comparable(s.schedule) for s in served[name].schedules] == \
            [_as_prefect_deploys_it(s, zone) for s in d.get("schedules") or []], name
    assert served["sla-check"].schedules[0].schedule.cron == "*/5 * * * *"
    assert served["intake-inbox"].parameters == {"inbox": "/tmp/inbox"}


def test_served_schedules_follow_a_policy_with_another_time_zone(policy_zone):
    from deployments.serve import deployments

    zones = {s.schedule.timezone for d in deployments("/tmp/inbox") for s in d.schedules}
    assert zones == {policy_zone}
