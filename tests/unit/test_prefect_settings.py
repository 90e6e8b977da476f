"""Issue 9.1: one Prefect address for every command — prefect.toml (the working directory's, as Prefect reads it, else
the repository's), the environment winning over it, and the main job's own port for its own processes; and
issue 9.7: the main job's progress on stderr (a transient bar in a terminal, a line a quarter otherwise)."""
from __future__ import annotations

import io
import tomllib

import pytest

from leadflow.progress import progress
from leadflow.settings import PROJECT_DIR, get_settings
from leadflow.start import default_port, prefect_env, prefect_toml

KEYS = ("PREFECT_API_URL", "PREFECT_UI_API_URL", "PREFECT_HOME", "PREFECT_SERVER_EPHEMERAL_ENABLED",
        "PREFECT_LOGGING_SETTINGS_PATH", "PREFECT_TASKS_DEFAULT_PERSIST_RESULT", "PREFECT_SERVER_ANALYTICS_ENABLED")


@pytest.fixture
def clean(monkeypatch, tmp_path):
    """No Prefect variable set, the data folder in tmp_path, the working directory an empty folder."""
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LEADFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_issue9_1_a_command_run_elsewhere_follows_the_repository_prefect_toml(clean):
    env = prefect_env()
    assert prefect_toml() == tomllib.loads((PROJECT_DIR / "prefect.toml").read_text(encoding="utf-8"))
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api" and default_port() == 4200
    assert env["PREFECT_HOME"] == str(clean / "data" / "prefect")  # LEADFLOW_DATA_DIR moves the home
    assert env["PREFECT_SERVER_EPHEMERAL_ENABLED"] == "false" and env["PREFECT_TASKS_DEFAULT_PERSIST_RESULT"] == "false"
    assert env["PREFECT_LOGGING_SETTINGS_PATH"].endswith("leadflow/logging.yml")


def test_issue9_1_the_working_directory_prefect_toml_wins_over_the_repository_one(clean):
    (clean / "prefect.toml").write_text('[api]\nurl = "http://127.0.0.1:4311/api"\n[server.api]\nport = 4311\n')
    assert prefect_env()["PREFECT_API_URL"] == "http://127.0.0.1:4311/api" and default_port() == 4311


def test_issue9_1_the_environment_wins_over_prefect_toml(clean, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4322/api")
    assert prefect_env()["PREFECT_API_URL"] == "http://127.0.0.1:4322/api"


def test_issue9_1_the_main_jobs_port_is_its_own_processes_address_whatever_is_set(clean, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4322/api")
    env = prefect_env(4333)
    assert env["PREFECT_API_URL"] == env["PREFECT_UI_API_URL"] == "http://127.0.0.1:4333/api"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_issue9_7_progress_is_a_line_a_quarter_when_stderr_is_no_terminal():
    out = io.StringIO()
    with progress("sample history", "exports", stream=out) as update:
        for done in range(0, 9):
            update(done, 8)
    assert out.getvalue().splitlines() == [f"sample history: {k}/8 exports" for k in (2, 4, 6, 8)]


def test_issue9_7_progress_says_nothing_for_a_step_with_nothing_to_do():
    out = io.StringIO()
    with progress("sample history", "exports", stream=out) as update:
        update(0, 0)
    assert out.getvalue() == ""


def test_issue9_7_progress_is_a_rich_bar_in_a_terminal():
    out = Terminal()
    with progress("sample history", "exports", stream=out) as update:
        update(3, 8)
    assert "sample history" in out.getvalue() and "\x1b[" in out.getvalue()  # drawn with control codes
