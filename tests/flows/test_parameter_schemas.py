"""Issue 9 finding 2, R-REG-7: no phone number can enter Prefect as a flow parameter.

`prefect deployment run 'dispute/dispute-rerun' --param customer=15010002084` (or the UI's Run button) used to
create a run whose name, parameters and logs held the number; the flow refused it only in its body, once the
parameters were stored. Now every deployment's parameter schema (flows/params.py) refuses a phone-shaped value
when the run is created, before it exists, naming the safe alternatives and without echoing the value.

The schema's notion of "phone-shaped" is leadflow.privacy's, checked here against `has_phone` (Python's `re`,
what the server runs) and compiled by JavaScript (the browser). Through the API: the deployments are registered
as `leadflow serve` declares them (deployments/serve.py) on Prefect's test harness, a real server.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployments.declared import declared_deployments, flow_at
from flows.params import PHONE_PATTERN, PHONE_REFUSAL
from leadflow.privacy import has_phone

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DECLARED = [d["name"] for d in declared_deployments()]

# One phone, written as each parameter would carry it; a new parameter must say how (see the coverage test).
PHONE = "15010002084"
PHONE_VALUES = {
    "customer": [15010002084, "150 1000 2084", "+86-150-1000-2084"],
    "claimants": [["P001", "15010002084"]],
    "events": [[{"type": "link", "customer": "149", "phone": "150-1000-2084"}],
               [{"type": "contact", "customer": 15010002084}],
               [{"type": "contact", "customer": "149", "15010002084": "x"}]],
    "path": ["/srv/exports/回访15010002084.csv"],
    "inbox": ["/srv/inbox-15010002084"],
    "operator": ["15010002084"],
    "as_of": ["15010002084", 15010002084],
}
SAFE_VALUES = {
    "dispute-rerun": {"customer": 149, "claimants": ["P001"], "as_of": "2026-11-30T10:00:00+08:00"},
    "record-events": {"events": [{"type": "contact", "customer": "REG-2026-000149", "by": "P001", "step": 2,
                                  "at": "2026-11-30T13:45:00+08:00", "knowingly": True}], "operator": "ops"},
    "intake-file": {"path": "/srv/exports/registrations-2026-11-30-1100.csv"},
    "tick": {"as_of": "2026-11-30T10:00:00.123456+08:00"},
}


# --- the pattern: what privacy masks, no more, no less ------------------------------------------------------

CORPUS = [
    "15010002084", "150-1000-2084", "+86 150 1000 2084", "0086-150-1000-2084", "8615010002084", "010-12345678",
    "0755 8888 9999", "（021）61234567", "１５０１０００２０８４", "回访13912340009.csv", "tel13800138000",
    "2026-03-02 13800138000", "row 12:13800138000", "x 013800138000 y", "13800138000/13900139000",
    "data/inbox", "2026-11-30", "2026-11-30T13:45:00.123456+08:00", "took 0.1234567890 s", "REG-2026-000149",
    "flow run 990e2179-c4a1-4b0e-9a35-13800138000a", "digest 3a5b13800138000ffffab0123", "20261301",
    "order 138001380001234", "id card 110101199003071234", "rows 1234567 in", "149", "",
    "/srv/spool/0123456789abcdef0123456789abcdef-k2j3h4g5/回访139****0009.csv",
]


@pytest.mark.parametrize("text", CORPUS)
def test_issue9_2_r_reg_7_the_schema_pattern_refuses_exactly_what_privacy_masks(text):
    assert bool(re.search(PHONE_PATTERN, text)) == has_phone(text)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("0123456789013568 -.:+()/Tabf１６８"), max_size=30),
       st.from_regex(r"1[3-9][0-9]{9}|0[1-9][0-9]{8,10}", fullmatch=True), st.booleans())
def test_issue9_2_r_reg_7_the_schema_pattern_agrees_with_privacy_on_digit_soup(soup, number, insert):
    text = soup[: len(soup) // 2] + number + soup[len(soup) // 2:] if insert else soup
    assert bool(re.search(PHONE_PATTERN, text)) == has_phone(text)


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed (the browser's regex dialect)")
def test_issue9_2_the_schema_pattern_is_a_javascript_regex_too():
    script = ("const d = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "const r = new RegExp(d.pattern, 'u');"
              "console.log(JSON.stringify(d.corpus.map(s => r.test(s))));")
    out = subprocess.run(["node", "-e", script], input=json.dumps({"pattern": PHONE_PATTERN, "corpus": CORPUS}),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [has_phone(s) for s in CORPUS]


# --- the schemas, as Prefect's server checks them --------------------------------------------------------------

def _schema(deployment: str) -> dict:
    entry = next(d for d in declared_deployments() if d["name"] == deployment)
    return flow_at(entry["entrypoint"]).parameters.model_dump()


def _refusal(schema: dict, parameters: dict) -> str | None:
    """What the server answers a run with these parameters (None: accepted), as its create_flow_run does."""
    from prefect.utilities.schema_tools.validation import ValidationError, validate

    try:
        validate(parameters, schema, raise_on_error=True)
    except ValidationError as e:
        return str(e)
    return None


def _required(schema: dict) -> dict:
    """Safe values for the schema's required parameters, so only the one under test is at stake."""
    safe = {"customer": 149, "events": [], "path": "/srv/x.csv", "inbox": "/srv/inbox", "folder": "/srv/f",
            "start": "2026-11-30T10:00:00+08:00", "end": "2026-11-30T11:00:00+08:00"}
    return {k: safe[k] for k in schema.get("required", [])}


def test_issue9_2_every_parameter_of_every_deployment_has_a_phone_case():
    parameters = {p for name in DECLARED for p in _schema(name)["properties"]}
    assert parameters <= set(PHONE_VALUES), f"say how a phone would come in: {parameters - set(PHONE_VALUES)}"


@pytest.mark.parametrize("deployment", DECLARED)
def test_issue9_2_r_reg_7_every_deployments_schema_refuses_a_phone_in_any_parameter(deployment):
    schema = _schema(deployment)
    for parameter in schema["properties"]:
        for value in PHONE_VALUES[parameter]:
            refusal = _refusal(schema, {**_required(schema), parameter: value})
            assert refusal and PHONE_REFUSAL in refusal, (parameter, value, refusal)
            assert PHONE not in re.sub(r"\D", "", refusal), refusal  # the value is not echoed


def test_issue9_2_an_event_field_is_a_plain_value_so_no_phone_hides_in_a_nested_one():
    from flows.params import PLAIN_VALUE

    for nested in ({"heard": "15010002084"}, ["15010002084"]):
        refusal = _refusal(_schema("record-events"), {"events": [{"type": "contact", "customer": "149",
                                                                  "note": nested}]})
        assert refusal and PLAIN_VALUE in refusal and PHONE not in re.sub(r"\D", "", refusal), refusal


@pytest.mark.parametrize("deployment", list(SAFE_VALUES))
def test_issue9_2_ids_references_paths_and_times_are_accepted(deployment):
    assert _refusal(_schema(deployment), SAFE_VALUES[deployment]) is None


def test_issue9_2_a_field_description_names_the_safe_alternatives():
    customer = _schema("dispute-rerun")["properties"]["customer"]
    assert "registration reference" in customer["description"]
    assert PHONE_REFUSAL.lower() in customer["description"].lower()


def test_issue9_2_direct_python_calls_keep_their_types():
    from flows.dispute import dispute_flow
    from flows.intake import intake_flow

    at = dt.datetime(2026, 11, 30, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert dispute_flow.validate_parameters({"customer": 149, "as_of": at}) == \
        {"customer": 149, "claimants": None, "as_of": at}
    assert intake_flow.validate_parameters({"path": "/srv/x.csv", "as_of": at.isoformat()})["as_of"] == at


# --- through the API: a real server, the deployments as `leadflow serve` declares them ----------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from deployments.serve import deployments

    with prefect_test_harness(server_startup_timeout=120):
        inbox = tmp_path_factory.mktemp("inbox")
        ids = {d.name: d.apply() for d in deployments(str(inbox))}
        yield ids, PREFECT_API_URL.value()


def _api(coro_fn):
    from prefect.client.orchestration import get_client

    async def go():
        async with get_client() as client:
            return await coro_fn(client)
    return asyncio.run(go())


async def _runs_of(client, deployment_id) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def _stored_anywhere(digits: str) -> list[str]:
    """Every flow run (name, parameters), log and event on the server that holds `digits` (separators ignored)."""
    async def read(client):
        body = {"limit": 200, "offset": 0}
        runs = (await client._client.post("/flow_runs/filter", json=body)).json()
        logs = (await client._client.post("/logs/filter", json=body)).json()
        events = (await client._client.post("/events/filter", json={"limit": 50})).json().get("events", [])
        return [json.dumps(x, ensure_ascii=False) for x in runs + logs + events]
    return [text[:200] for text in _api(read) if digits in re.sub(r"\D", "", text)]


@pytest.mark.parametrize("deployment", DECLARED)
def test_issue9_2_r_reg_7_the_server_refuses_a_phone_before_the_run_exists(served, deployment):
    from prefect.exceptions import PrefectHTTPStatusError

    ids, _ = served
    schema = _schema(deployment)

    async def attempt(client):
        answers = []
        before = len(await _runs_of(client, ids[deployment]))
        for parameter in schema["properties"]:
            for value in PHONE_VALUES[parameter]:
                with pytest.raises(PrefectHTTPStatusError) as refused:
                    await client.create_flow_run_from_deployment(
                        ids[deployment], parameters={**_required(schema), parameter: value})
                answers.append((refused.value.response.status_code, refused.value.response.json()["detail"]))
        return answers, before, len(await _runs_of(client, ids[deployment]))

    answers, before, after = _api(attempt)
    for status, detail in answers:
        assert status == 409 and PHONE_REFUSAL in detail, detail
        assert PHONE not in re.sub(r"\D", "", detail), detail
    assert after == before  # no run was created
    assert _stored_anywhere(PHONE) == []


def test_issue9_2_the_server_accepts_a_customer_id_or_reference(served):
    ids, _ = served

    async def create(client):
        runs = [await client.create_flow_run_from_deployment(ids[name], parameters=SAFE_VALUES[name])
                for name in ("dispute-rerun", "record-events")]
        runs.append(await client.create_flow_run_from_deployment(ids["dispute-rerun"],
                                                                 parameters={"customer": "REG-2026-000149"}))
        return runs

    runs = _api(create)
    assert [r.parameters.get("customer") for r in runs] == [149, None, "REG-2026-000149"]
    assert runs[1].parameters["events"][0]["customer"] == "REG-2026-000149"


def test_issue9_2_the_ui_custom_run_form_shows_the_refusal_without_the_number(served):
    ids, _ = served

    async def check(client):
        deployment = await client.read_deployment(ids["dispute-rerun"])
        response = await client._client.post("/ui/schemas/validate", json={
            "schema": deployment.parameter_openapi_schema, "values": {"customer": "150 1000 2084"}})
        return response.json()

    answer = _api(check)
    assert answer["valid"] is False
    assert answer["errors"] == [{"property": "customer", "errors": [f"{PHONE_REFUSAL!r} was expected"]}]


def test_issue9_2_prefect_deployment_run_with_a_phone_says_why_and_creates_nothing(served, tmp_path):
    ids, api = served
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path), "COLUMNS": "400",
           "NO_COLOR": "1"}
    out = subprocess.run([str(BIN / "prefect"), "deployment", "run", "dispute/dispute-rerun", "--param",
                          f"customer={PHONE}"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    said = " ".join((out.stdout + out.stderr).split())
    assert out.returncode != 0 and PHONE_REFUSAL in said, said
    assert PHONE not in said
    assert _stored_anywhere(PHONE) == []


def test_issue9_2_the_flow_itself_still_refuses_a_run_created_past_the_schema(served):
    """Defence in depth: a run created with enforce_parameter_schema=False exists (so the schema was what
    refused above), and the flow's own guard fails it without touching the store."""
    from flows.dispute import dispute_flow
    from flows.events import PHONE_REFUSED, record_events_flow

    ids, _ = served

    async def bypass(client):
        response = await client._client.post(f"/deployments/{ids['dispute-rerun']}/create_flow_run", json={
            "parameters": {"customer": "13912340009"}, "enforce_parameter_schema": False})
        return response.status_code

    assert _api(bypass) == 201
    for state in (dispute_flow(customer="13912340009", return_state=True),
                  record_events_flow(events=[{"type": "link", "customer": "149", "phone": "13912340009"}],
                                     return_state=True)):
        assert state.is_failed() and state.message == PHONE_REFUSED
