"""Scenario files (SCENARIOS.md): parse and check them, naming the event index and field of any problem."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from leadflow.events.kinds import CHOICES, EVENT_FIELDS, PERSON_FIELDS, RECORD_KINDS



class ScenarioError(ValueError):
    """An unreadable or invalid scenario; the message is one line naming the event index and field."""


@dataclass
class Event:
    index: int
    at: dt.datetime
    type: str
    fields: dict[str, Any]
    recorded_at: dt.datetime | None = None  # R-SLA-7: a record delivered later than it was made

    @property
    def delivered_at(self) -> dt.datetime:
        """When the event reaches LeadFlow: events are replayed in this order (SCENARIOS.md)."""
        return self.recorded_at or self.at


@dataclass
class Scenario:
    name: str
    start: dt.datetime
    policy: dict[str, Any]
    departments: list[dict]
    people: list[dict]
    events: list[Event] = field(default_factory=list)


def _time(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        t = value
    else:
        try:
            t = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise ScenarioError(f"{where}: {value!r} is not an ISO-8601 time.") from None
    if t.tzinfo is None:
        raise ScenarioError(f"{where}: the time {value!r} has no UTC offset.")
    return t


def load_scenario(path: str | Path) -> Scenario:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read the scenario ({e.strerror}).") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{path}: the scenario is not valid YAML ({type(e).__name__}).") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario must be a mapping with start, departments, people and events.")
    return parse_scenario(data)


def parse_scenario(data: dict) -> Scenario:
    for key in ("start", "departments", "people"):
        if key not in data:
            raise ScenarioError(f"scenario: the field '{key}' is missing.")
    start = _time(data["start"], "scenario.start")
    departments = data["departments"] or []
    people = data["people"] or []
    if not isinstance(departments, list) or not all(isinstance(d, dict) and "id" in d for d in departments):
        raise ScenarioError("scenario.departments: each department needs an id.")
    if not isinstance(people, list) or not all(isinstance(p, dict) and "id" in p for p in people):
        raise ScenarioError("scenario.people: each person needs an id.")
    dept_ids = {str(d["id"]) for d in departments}
    person_ids = {str(p["id"]) for p in people}
    for i, p in enumerate(people):
        if p.get("department") not in dept_ids:
            raise ScenarioError(f"people[{i}].department: unknown department {p.get('department')!r}.")
    policy = data.get("policy") or {}
    if not isinstance(policy, dict):
        raise ScenarioError("scenario.policy: must be a mapping of policy keys.")
    scenario = Scenario(str(data.get("name", "")), start, policy, departments, people)
    refs: set[str] = set()
    last = start
    for i, raw in enumerate(data.get("events") or []):
        scenario.events.append(_event(i, raw, last, person_ids, dept_ids, refs))
        last = scenario.events[-1].delivered_at
    return scenario


def _event(i: int, raw: Any, last: dt.datetime, person_ids: set, dept_ids: set, refs: set) -> Event:
    where = f"events[{i}]"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: an event must be a mapping.")
    kind = raw.get("type")
    if kind not in EVENT_FIELDS:
        raise ScenarioError(f"{where}.type: unknown event type {kind!r}.")
    at = _time(raw.get("at"), f"{where}.at")
    recorded_at = None
    if raw.get("recorded_at") is not None:
        if kind not in RECORD_KINDS:
            raise ScenarioError(f"{where}.recorded_at: only records ({', '.join(RECORD_KINDS)}) carry it.")
        recorded_at = _time(raw["recorded_at"], f"{where}.recorded_at")
        if recorded_at < at:
            raise ScenarioError(f"{where}.recorded_at: a record cannot reach LeadFlow before it was made.")
    if (recorded_at or at) < last:
        field_name = "recorded_at" if recorded_at else "at"
        raise ScenarioError(f"{where}.{field_name}: time goes backwards (the event is delivered before the "
                            f"previous event).")
    required, optional = EVENT_FIELDS[kind]
    fields = {k: v for k, v in raw.items() if k not in ("at", "type", "recorded_at")}
    for name in required:
        if fields.get(name) is None and not (kind == "register" and name == "phone" and "phone" in fields):
            raise ScenarioError(f"{where}.{name}: required for a '{kind}' event.")
    for name in fields:
        if name not in required and name not in optional:
            raise ScenarioError(f"{where}.{name}: not a field of a '{kind}' event.")
    for name in PERSON_FIELDS:
        if fields.get(name) is not None and str(fields[name]) not in person_ids:
            raise ScenarioError(f"{where}.{name}: unknown person {fields[name]!r}.")
    if kind == "late_table" and fields["department"] not in dept_ids:
        raise ScenarioError(f"{where}.department: unknown department {fields['department']!r}.")
    for (k, name), allowed in CHOICES.items():
        if k == kind and fields.get(name) not in allowed:
            raise ScenarioError(f"{where}.{name}: must be one of {', '.join(allowed)}.")
    for name in ("customer", "with_customer"):
        if name in fields and str(fields[name]) not in refs:
            raise ScenarioError(f"{where}.{name}: no earlier registration has the ref {fields[name]!r}.")
    if kind == "help" and not (isinstance(fields["share"], (int, float)) and 0 < fields["share"] < 1):
        raise ScenarioError(f"{where}.share: must be a fraction between 0 and 1.")
    if kind == "sales_step" and fields["step"] not in (1, 2, 3, 4, 5, 6):
        raise ScenarioError(f"{where}.step: must be a whole number from 1 to 6.")
    if kind == "register":
        if str(fields["ref"]) in refs:
            raise ScenarioError(f"{where}.ref: the ref {fields['ref']!r} is used twice.")
        refs.add(str(fields["ref"]))
    return Event(i, at, kind, fields, recorded_at)
