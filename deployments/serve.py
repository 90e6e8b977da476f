"""Serve every deployment prefect.yaml declares from one process, with its schedules (in the policy's time zone)."""
from __future__ import annotations

from prefect import serve

from deployments.declared import declared_deployments, flow_at, schedules_of


def deployments(inbox: str):
    """The deployments of prefect.yaml, by name; `inbox` replaces its `inbox` parameter (the folder the
    micro-batch intake watches)."""
    out = []
    for d in declared_deployments():
        parameters = dict(d.get("parameters") or {})
        if "inbox" in parameters:
            parameters["inbox"] = inbox
        out.append(flow_at(d["entrypoint"]).to_deployment(
            name=d["name"], description=d.get("description"), parameters=parameters or None,
            schedules=schedules_of(d)))
    return out


def serve_all(inbox: str) -> None:
    serve(*deployments(inbox), limit=4)
