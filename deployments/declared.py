"""The deployments as prefect.yaml declares them: the one declaration, for `prefect deploy --all` and for
`leadflow serve` alike.

The schedules' time zone is the policy's: prefect.yaml's build step `policy` (the function
`policy_values` below, which `prefect deploy` runs before it reads the schedules) returns the
configured policy's `timezone`, and every schedule says `timezone: "{{ policy.timezone }}"`.
`leadflow serve` runs the same build steps and templates the same way.
"""
from __future__ import annotations

import datetime as dt
import importlib
import os
from pathlib import Path
from typing import Any

import yaml

from leadflow.settings import PROJECT_DIR, configured_policy

PREFECT_YAML = PROJECT_DIR / "prefect.yaml"


def policy_values() -> dict[str, str]:
    """prefect.yaml build step (id `policy`): the values its schedules are templated with."""
    return {"timezone": configured_policy().timezone}


def _build_outputs(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Run prefect.yaml's build steps as `prefect deploy` does: each output under its id, and merged in."""
    from prefect.utilities.importtools import import_object

    outputs: dict[str, Any] = {}
    for step in steps or []:
        (fqn, inputs), = step.items()
        inputs = dict(inputs or {})
        step_id = inputs.pop("id", None)
        inputs.pop("requires", None)
        result = import_object(fqn)(**inputs)
        if isinstance(result, dict):
            if step_id:
                outputs[step_id] = result
            outputs.update(result)
    return outputs


def declared_deployments(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """prefect.yaml's deployments, templated (environment, then build-step outputs) as `prefect deploy` does."""
    from prefect.utilities.templating import apply_values

    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    outputs = _build_outputs(spec.get("build"))
    return [apply_values(apply_values(d, dict(os.environ), remove_notset=False), outputs)
            for d in spec["deployments"]]


def flow_at(entrypoint: str):
    """The flow object an entrypoint `flows/timed.py:sla_check_flow` names, imported as a module."""
    path, name = entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)


def schedules_of(deployment: dict[str, Any]) -> list:
    """The deployment's schedules as `prefect.schedules` objects (cron or interval, with their time zone)."""
    from prefect.schedules import Cron, Interval

    out = []
    for s in deployment.get("schedules") or []:
        extra = {k: s[k] for k in ("timezone", "active", "parameters", "slug") if s.get(k) is not None}
        if s.get("cron"):
            out.append(Cron(s["cron"], day_or=s.get("day_or", True), **extra))
        elif s.get("interval"):
            anchor = dt.datetime.fromisoformat(str(s["anchor_date"])) if s.get("anchor_date") else None
            out.append(Interval(s["interval"], anchor_date=anchor, **extra))  # seconds, as prefect.yaml gives it
        else:
            raise ValueError(f"deployment {deployment['name']}: only cron and interval schedules are served.")
    return out
