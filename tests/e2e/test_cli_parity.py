"""End to end through the real command line: a shared scenario driven with `leadflow org load`, `tick`,
`record`, `register` and `state --json` against a real Prefect server ends where `leadflow simulate --json`
ends (one engine, R-SLA-6), and `leadflow record` of a GBK event file accounts for every row."""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import BIN, ROOT, prefect_server

SHARED = ROOT.parent / "shared" / "scenarios"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    with prefect_server(tmp, LEADFLOW_DATA_DIR=str(tmp / "data"),
                        LEADFLOW_DATABASE_URL=f"sqlite:///{tmp / 'leadflow.db'}") as env:

        def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
            done = subprocess.run([str(BIN / "leadflow"), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                                  timeout=300)
            if check:
                assert done.returncode == 0, f"leadflow {' '.join(args)}: {done.stderr[-2000:]}"
            return done

        yield run, tmp


def test_r_sla_6_the_cli_drives_a_scenario_to_the_state_simulate_gives(cli):
    run, tmp = cli
    path = SHARED / "suspension.yaml"
    scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
    org = tmp / "org.yaml"
    org.write_text(yaml.safe_dump({"departments": scenario["departments"], "people": scenario["people"]},
                                  allow_unicode=True), encoding="utf-8")
    run("db", "upgrade")
    run("org", "load", str(org))
    run("tick", "--as-of", scenario["start"])
    for i, e in enumerate(scenario["events"]):
        if e["type"] == "register":
            f = tmp / f"registration-{i}.csv"
            with f.open("w", encoding="utf-8", newline="") as out:
                w = csv.writer(out)
                w.writerow(["external_ref", "channel", "name", "phone", "amount", "inquiry", "registered_at",
                            "registered_by"])
                w.writerow([e["ref"], e["channel"], e["name"], e["phone"], e["amount"], e["inquiry"], e["at"], e["by"]])
            run("register", str(f), "--as-of", e["at"], check=False)  # a pooled lead exits 1 by design
        else:
            args = ["record", e["type"], "--at", e["at"], "--as-of", e["at"]]
            for k in ("customer", "person", "kind", "by"):
                if k in e:
                    args += [f"--{k}", str(e[k])]
            run(*args)
    run("tick", "--as-of", scenario["events"][-1]["at"])
    produced = json.loads(run("state", "--json").stdout)
    replayed = json.loads(run("simulate", str(path), "--json").stdout)
    for key in ("scenario", "ledger_entries"):
        replayed.pop(key, None)
        produced.pop(key, None)
    assert produced == replayed


def test_r_sla_1_leadflow_record_accounts_for_every_row_of_a_gbk_file_and_names_the_bad_one(cli):
    run, tmp = cli
    f = tmp / "400导出.csv"
    f.write_bytes("类型,时间,客户,销售\ncontact,2026-02-11 09:03,c1,s2\ncontact,2026-02-11 99:99,c1,s2\n"
                  .encode("gbk"))
    done = run("record", str(f), "--as-of", "2026-02-11T09:10+08:00")
    assert "rows in 2 = applied 1 + duplicate 0 + waiting 0 + refused 1" in done.stdout
    assert "row 2: refused bad_time (at)" in done.stdout


def test_r_sla_6_a_time_before_the_clock_is_one_sentence_and_exit_2_before_any_flow_runs(cli):
    run, tmp = cli
    done = run("tick", "--as-of", "2026-01-01T00:00+08:00", check=False)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "never goes back in time" in lines[0] and "Traceback" not in done.stderr


def test_r_reg_7_a_link_recorded_from_the_cli_never_sends_its_phone_to_prefect(cli):
    """The linked number is recorded in this process; no flow run is created with it as a parameter."""
    run, tmp = cli
    done = run("record", "link", "--customer", "c1", "--phone", "139 1234 1299", "--relation", "alias",
               "--as-of", "2026-03-20T09:00+08:00")
    assert "applied 1" in done.stdout and "13912341299" not in done.stdout + done.stderr
    leaked = [p for p in (tmp / "prefect").rglob("*")
              if p.is_file() and any(form in p.read_bytes() for form in (b"1234 1299", b"12341299"))]
    assert leaked == []
