"""End to end: a real Prefect server on a free port, every deployment served, an intake and a dispute rerun
triggered through the Prefect API, their artifacts read back — and no phone unmasked anywhere in them."""
from __future__ import annotations

import re
import subprocess
import time

import httpx
import pytest
import yaml

from tests.e2e.conftest import BIN, ROOT, free_port as _free_port, healthy as _healthy, prefect_server, stop
from tests.e2e.conftest import wait as _wait

SAMPLE = ROOT / "leadflow" / "samples" / "hotline-2026-03-02.csv"
pytestmark = pytest.mark.slow
__all__ = ["BIN", "ROOT", "_free_port", "_healthy", "_wait"]  # the names other e2e tests once imported from here


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    with prefect_server(tmp, LEADFLOW_DATA_DIR=str(tmp / "data"),
                        LEADFLOW_DATABASE_URL=f"sqlite:///{tmp / 'leadflow.db'}",
                        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5") as env:
        api = env["PREFECT_API_URL"]
        for args in (["db", "upgrade"], ["org", "load", str(ROOT / "leadflow" / "samples" / "org.yaml")]):
            subprocess.run([str(BIN / "leadflow"), *args], env=env, check=True, cwd=ROOT, capture_output=True)
        with open(tmp / "serve.log", "wb") as log:
            serve = subprocess.Popen([str(BIN / "leadflow"), "serve", "--inbox", str(tmp / "inbox")], env=env,
                                     stdout=log, stderr=log, cwd=ROOT, start_new_session=True)
            try:
                client = httpx.Client(base_url=api, timeout=30)
                declared = len(yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))["deployments"])
                _wait(lambda: len(_call(client, "POST", "/deployments/filter", json={"limit": 50}).json())
                      >= declared, 180, "every deployment prefect.yaml declares to be served")
                yield client, tmp
            finally:
                stop(serve)


def _call(client, method: str, url: str, **kw) -> httpx.Response:
    """The API, retried on 5xx as Prefect's own client does (a busy SQLite server answers 503 for a moment)."""
    for attempt in range(15):
        response = client.request(method, url, **kw)
        if response.status_code < 500:
            return response
        time.sleep(2)
    return response


def _deployment(client, name: str) -> dict:
    found = [d for d in _call(client, "POST", "/deployments/filter", json={"limit": 50}).json() if d["name"] == name]
    assert found, f"no deployment named {name}"
    return found[0]


def _run(client, deployment: str, parameters: dict) -> dict:
    d = _deployment(client, deployment)
    response = _call(client, "POST", f"/deployments/{d['id']}/create_flow_run", json={"parameters": parameters})
    assert response.status_code < 300, response.text[:500]
    run = response.json()

    def finished():
        state = _call(client, "GET", f"/flow_runs/{run['id']}").json()["state"]
        return state if state and state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    state = _wait(finished, 240, f"the {deployment} run")
    assert state["type"] == "COMPLETED", state.get("message")
    return _call(client, "GET", f"/flow_runs/{run['id']}").json()


def _artifacts(client) -> list[dict]:
    return _call(client, "POST", "/artifacts/filter", json={"limit": 200, "sort": "CREATED_DESC"}).json()


def _sample_phones() -> set[str]:
    from leadflow.intake.readers import read_registration_file
    from leadflow.rules.registration import normalise_phone

    return {p for r in read_registration_file(SAMPLE) if (p := normalise_phone(r["phone"])[0]) and len(p) >= 7}


def test_deployments_are_served_with_their_schedules(served):
    client, _ = served
    sla = _deployment(client, "sla-check")
    schedules = _call(client, "GET", f"/deployments/{sla['id']}/schedules").json()
    assert schedules and schedules[0]["schedule"]["cron"] == "*/5 * * * *"
    assert schedules[0]["schedule"]["timezone"] == "Asia/Shanghai"
    assert {"intake-file", "intake-inbox", "dispute-rerun", "quarterly-review", "monthly-audit",
            "conversion-expiry", "weekly-rotation-report", "lifecycle"} <= \
        {d["name"] for d in _call(client, "POST", "/deployments/filter", json={"limit": 50}).json()}


def test_the_scheduler_creates_runs_for_the_scheduled_deployments(served):
    """The server's scheduler service inserts the runs (Prefect 3.8 on SQLAlchemy 2.1 failed right there)."""
    client, _ = served
    ids = {d["id"]: d["name"] for d in _call(client, "POST", "/deployments/filter", json={"limit": 50}).json()}

    def scheduled():
        runs = _call(client, "POST", "/flow_runs/filter", json={
            "limit": 200, "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}).json()
        names = {ids.get(r["deployment_id"]) for r in runs if r["auto_scheduled"]}
        return names if {"intake-inbox", "sla-check", "allocation"} <= names else None

    assert "dispute-rerun" not in _wait(scheduled, 120, "runs created by the scheduler")


def test_r_reg_7_intake_and_dispute_runs_through_the_api_publish_masked_artifacts(served):
    client, _ = served
    intake = _run(client, "intake-file", {"path": str(SAMPLE)})
    assert intake["name"] == "intake hotline-2026-03-02.csv"
    dispute = _run(client, "dispute-rerun", {"customer": "1"})
    assert dispute["name"] == "dispute customer 1"
    artifacts = _artifacts(client)
    keys = {a["key"] for a in artifacts}
    assert {"intake-hotline-2026-03-02-csv", "validation-intake", "allocation-hotline-2026-03-02-csv",
            "dispute-1"} <= keys
    intake_table = next(a for a in artifacts if a["key"] == "intake-hotline-2026-03-02-csv")
    assert "rows in 12 = accepted" in intake_table["description"]
    assert "quarantined" in str(intake_table["data"]) and "phone_format" in str(intake_table["data"])
    dispute_md = next(a for a in artifacts if a["key"] == "dispute-1")
    assert "Deciding rule: **R-DISP-" in dispute_md["data"]
    everything = re.sub(r"\s", "", " ".join(f"{a['key']}{a['description']}{a['data']}" for a in artifacts)
                        + f"{intake['parameters']}{dispute['parameters']}")
    assert [p for p in _sample_phones() if p in everything] == []
