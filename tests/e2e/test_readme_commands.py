"""Issue 9.1 — commands that work as written: every command in the README's ```bash blocks, run from a new terminal
in the repository while the main job runs, with nothing exported, exits 0; and a LeadFlow command with no server
says so in one sentence and starts no Prefect server of its own (issue 9.1, the orphaned temporary servers).

"A new terminal": os.environ without PREFECT_* and LEADFLOW_* (and without the venv on PATH). The main job runs on a
free port (4200 may be the operator's), so the commands run in a copy of the repository whose prefect.toml is the
committed one with only that port substituted: the committed file, not an exported variable, is what makes them
work. The copy holds links to everything else in the repository; its data/ is the main job's data folder, which
LEADFLOW_DATA_DIR names (in the repository that is the default, data/).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
import tomllib
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import BIN, ROOT, free_port, main_job, wait

pytestmark = pytest.mark.slow
README = ROOT / "README.md"
TOML = ROOT / "prefect.toml"
EXEMPT = {  # by name: what these commands are, not whether they pass
    "python3 manage.py start": "the main job itself, long-running: this module starts it (on a free port)",
    "python3 manage.py test": "the whole suite, this test among it",
}


def readme_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks as written, one per line (a trailing `\\` continues it), each once."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            if shlex.split(line, comments=True) and line.strip() not in commands:
                commands.append(line.strip())
    return commands


def name(command: str) -> str:
    """A command without its comment, its words as the shell reads them."""
    return shlex.join(shlex.split(command, comments=True))


def new_terminal(**extra: str) -> dict[str, str]:
    """os.environ as a new terminal has it: no PREFECT_* or LEADFLOW_* variable, no activated venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LEADFLOW_")) and k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != BIN)
    return {**env, **extra}


def test_issue9_1_the_committed_prefect_toml_points_every_command_at_the_main_jobs_server():
    toml = tomllib.loads(TOML.read_text(encoding="utf-8"))
    assert toml["api"]["url"] == "http://127.0.0.1:4200/api"
    assert toml["home"] == "data/prefect"  # leadflow.start.prefect_env: LEADFLOW_DATA_DIR/prefect, data/ by default
    assert toml["logging"]["config_path"] == "leadflow/logging.yml"  # R-REG-7: the masking filter
    assert toml["tasks"]["default_persist_result"] is False
    assert toml["server"]["analytics_enabled"] is False
    assert toml["server"]["api"] == {"host": "127.0.0.1", "port": 4200}
    assert toml["server"]["ui"]["api_url"] == toml["api"]["url"]
    assert toml["server"]["ephemeral"]["enabled"] is False  # no temporary server, ever


def test_issue9_1_the_readme_commands_are_found_and_the_exempt_ones_are_there():
    commands = [name(c) for c in readme_commands(README.read_text(encoding="utf-8"))]
    assert set(EXEMPT) <= set(commands)
    assert ".venv/bin/prefect deployment run dispute/dispute-rerun --param customer=1" in commands  # finding 9.1
    assert not [c for c in commands if c.split()[0] in ("prefect", "leadflow")], \
        "a new terminal has no venv on PATH: write .venv/bin/prefect or .venv/bin/leadflow"


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """(the copy's folder, the main job's port): the main job started there from a new terminal, served."""
    copy = tmp_path_factory.mktemp("readme") / "repo"
    copy.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("prefect.toml", "data"):
            (copy / entry.name).symlink_to(entry)
    (copy.parent / "shared").symlink_to(ROOT.parent / "shared")  # the README's ../shared/...
    (copy / "data" / "prefect").mkdir(parents=True)
    port = free_port()
    committed = TOML.read_text(encoding="utf-8")
    (copy / "prefect.toml").write_text(committed.replace("127.0.0.1:4200", f"127.0.0.1:{port}")
                                       .replace("port = 4200", f"port = {port}"), encoding="utf-8")
    env = new_terminal()
    with main_job(copy / "data", "--leads", "300", env=env, cwd=copy, port=port) as (port, lines):
        api = f"http://127.0.0.1:{port}/api"

        def served():
            found = httpx.post(f"{api}/deployments/filter", json={"limit": 100}, timeout=10).json()
            return {"dispute-rerun", "lifecycle"} <= {d["name"] for d in found}

        wait(served, 120, "the deployments to be served")
        yield copy, lines


def test_issue9_1_every_readme_command_works_as_written_from_a_new_terminal_while_the_main_job_runs(repo_copy):
    copy, lines = repo_copy
    env = new_terminal(LEADFLOW_DATA_DIR=str(copy / "data"))
    failed = []
    for command in readme_commands(README.read_text(encoding="utf-8")):
        if name(command) in EXEMPT:
            continue
        done = subprocess.run(["bash", "-c", command], cwd=copy, env=env, capture_output=True, text=True,
                              timeout=180)
        if done.returncode != 0:
            failed.append(f"{command} (exit {done.returncode}): {(done.stdout + done.stderr)[-1500:]}")
    assert not failed, "\n\n".join(failed)


def _marked(mark: str) -> list[str]:
    """The command lines of the processes whose environment carries `mark` (a command and all it started)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and mark.encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # gone, or not ours to read
            continue
    return found


def test_issue9_4_a_flow_command_with_no_server_says_so_in_one_sentence_and_starts_no_server(tmp_path):
    """Before issue 9, `leadflow tick` fell back to a temporary Prefect server (left running when the command was
    killed). Now: exit 2, one sentence naming `python3 manage.py start`, and no prefect or uvicorn process."""
    mark = f"leadflow-test-{uuid.uuid4().hex}"
    api = f"http://127.0.0.1:{free_port()}/api"  # nothing answers there
    env = new_terminal(PREFECT_API_URL=api, PREFECT_HOME=str(tmp_path / "prefect"), LEADFLOW_DATA_DIR=str(tmp_path),
                       LEADFLOW_TEST_MARK=mark)
    job = subprocess.Popen([str(BIN / "leadflow"), "tick"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    servers = []
    while job.poll() is None:  # while it runs, nothing it started may be a server
        servers += [c for c in _marked(mark) if "uvicorn" in c or "server start" in c]
        time.sleep(0.2)
    out, err = job.communicate()
    assert job.returncode == 2, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "python3 manage.py start" in lines[0] and "Traceback" not in err, err
    assert servers == [] and _marked(mark) == []


def test_issue9_1_the_commands_that_need_no_server_work_without_one(tmp_path):
    """`leadflow state` and `leadflow simulate` read and replay the store: no Prefect server needed."""
    env = new_terminal(PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api", PREFECT_HOME=str(tmp_path / "p"),
                       LEADFLOW_DATA_DIR=str(tmp_path))
    for args in (["db", "upgrade"], ["state", "--json"],
                 ["simulate", str(ROOT.parent / "shared" / "scenarios" / "suspension.yaml"), "--json"]):
        done = subprocess.run([str(BIN / "leadflow"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, f"leadflow {' '.join(args)}: {done.stderr[-1500:]}"
