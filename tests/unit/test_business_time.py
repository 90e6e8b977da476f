"""Business time is the policy's time zone, declared once (`timezone`): labels, and the configured policy."""
from __future__ import annotations

import datetime as dt

import pytest

from leadflow.clock import business_time_label
from leadflow.policy import load_policy

AT = dt.datetime(2026, 3, 2, 1, 0, 30, tzinfo=dt.timezone.utc)


def test_a_label_is_business_time_to_the_minute_with_the_zones_offset():
    assert business_time_label(AT, load_policy()) == "2026-03-02 09:00+08:00"


@pytest.mark.parametrize("zone, label", [
    ("UTC", "2026-03-02 01:00+00:00"),
    ("Asia/Kolkata", "2026-03-02 06:30+05:30"),
    ("America/St_Johns", "2026-03-01 21:30-03:30"),
])
def test_a_label_follows_the_policys_time_zone(zone, label):
    assert business_time_label(AT, load_policy(overrides={"timezone": zone})) == label


def test_a_label_carries_the_offset_in_force_then():
    berlin = load_policy(overrides={"timezone": "Europe/Berlin"})
    assert business_time_label(dt.datetime(2026, 1, 5, 12, tzinfo=dt.timezone.utc), berlin) == "2026-01-05 13:00+01:00"
    assert business_time_label(dt.datetime(2026, 7, 6, 12, tzinfo=dt.timezone.utc), berlin) == "2026-07-06 14:00+02:00"


def test_a_naive_time_is_taken_as_utc():
    assert business_time_label(AT.replace(tzinfo=None), load_policy()) == "2026-03-02 09:00+08:00"


def test_the_configured_policy_is_the_settings_policy_file_loaded_once(tmp_path, monkeypatch):
    from leadflow.settings import configured_policy, get_settings

    policy = tmp_path / "policy.yaml"
    policy.write_text("timezone: Europe/Berlin\n", encoding="utf-8")
    monkeypatch.setenv("LEADFLOW_POLICY_FILE", str(policy))
    get_settings.cache_clear()
    try:
        assert configured_policy().timezone == "Europe/Berlin"
        assert configured_policy() is configured_policy()
    finally:
        get_settings.cache_clear()
    monkeypatch.delenv("LEADFLOW_POLICY_FILE")
    assert configured_policy().timezone == load_policy().timezone
