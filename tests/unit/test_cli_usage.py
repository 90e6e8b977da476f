"""Issue 9.7: the `leadflow` command on Typer — usage errors are one sentence and exit 2 (never Click's usage box
or "internal error"), `--version`, shell completion, and the exit codes of interrupts and bugs."""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from leadflow import cli

BIN = Path(sys.executable).parent


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv, says", [
    (["report", "breaches", "--nope"], "no such option: --nope"),
    (["report"], "missing argument 'what'"),
    (["report", "everything"], "'everything' is not one of"),
    (["report", "breaches", "--format", "xml"], "'xml' is not one of 'table', 'csv', 'json'"),
    (["dispute"], "missing argument 'customer'"),
    (["start", "--port", "abc"], "invalid value for '--port'"),
    (["frobnicate"], "no such command 'frobnicate'"),
    (["report", "breaches", "--format", "xml"], "invalid value for '--format': 'xml' is not one of"),  # no "Value error"
])
def test_issue9_7_a_usage_error_is_one_sentence_exit_2_pointing_at_the_help(capsys, argv, says):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("leadflow: ") and says in err, err
    assert err.rstrip().endswith("--help').") and "Usage:" not in err and "internal error" not in err


@pytest.mark.parametrize("argv, says", [
    (["tick", "--as-of", "soon"], "--as-of 'soon' is not a time"),
    (["record", "contact", "--customer", "c1", "--at", "2026-02-30"], "--at '2026-02-30' is not a time"),
    (["report", "breaches", "--since", "yesterdy"], "--since 'yesterdy' is not a date"),
    (["report", "breaches", "--since", "2026-12-01", "--until", "2026-11-30"], "is after --until 2026-11-30"),
    (["register", "/no/such/folder/leads.csv"], "/no/such/folder/leads.csv: no such file"),  # the path as given
])
def test_issue9_8_a_bad_time_or_date_is_one_sentence_exit_2_before_anything_runs(capsys, argv, says):
    code, out, err = run(capsys, *argv)
    assert (code, out, err.count("\n")) == (2, "", 1) and says in err, err
    assert "internal error" not in err and "Traceback" not in err


def test_issue9_7_version_prints_the_installed_version(capsys):
    assert run(capsys, "--version") == (0, f"leadflow {version('leadflow')}\n", "")


def test_issue9_7_shell_completion_is_shown_without_a_terminal():
    done = subprocess.run([str(BIN / "leadflow"), "--show-completion", "bash"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 0 and "_leadflow_completion" in done.stdout, done.stderr
    listed = subprocess.run([str(BIN / "leadflow")], capture_output=True, text=True, timeout=60,
                            env={**__import__("os").environ, "_LEADFLOW_COMPLETE": "complete_bash",
                                 "COMP_WORDS": "leadflow report ", "COMP_CWORD": "2"})
    assert listed.stdout.split() == ["allocations", "breaches", "fairness", "customers"]


def test_issue9_7_interrupt_is_130_and_a_bug_is_one_line_exit_1_naming_it_a_bug(capsys, monkeypatch):
    from leadflow import report_cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_cli, "report", interrupted)
    assert run(capsys, "report", "breaches")[::2] == (130, "leadflow: interrupted.\n")

    def bug(*a, **k):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(report_cli, "report", bug)
    code, out, err = run(capsys, "report", "breaches")
    assert code == 1 and err.count("\n") == 1 and "a bug in LeadFlow (TypeError: unsupported operand)" in err
    monkeypatch.setenv("LEADFLOW_DEBUG", "1")
    with pytest.raises(TypeError):
        cli.main(["report", "breaches"])


@pytest.mark.parametrize("argv", [
    ["record", "contact", "--customer", "F-0\udced\udca0\udcbd", "--by", "s1", "--at", "2026-12-01 11:40"],
    ["record", "contact", "--customer", "1390001\udcff0001", "--by", "s1"],
    ["dispute", "F-0\udcff"],
    ["forget", "F-0\udcff"],
    ["register", "/tmp/reg\udcff.csv"],
])
def test_issue9_8_an_argument_that_is_not_utf8_is_one_sentence_exit_2_naming_no_value(capsys, argv):
    """Bytes that are not UTF-8 reach Python as lone surrogates (found by the fresh-clone trial: every such command
    ended "a bug in LeadFlow", exit 1). The sentence names the argument's place, never its value (R-REG-7)."""
    code, out, err = run(capsys, *argv)
    bad = next(i for i, a in enumerate(argv, start=1) if any("\udc80" <= ch <= "\udcff" for ch in a))
    assert (code, out, err.count("\n")) == (2, "", 1), err
    assert f"argument {bad} holds bytes that are not UTF-8 text" in err and "a bug" not in err
    assert "1390001" not in err


def test_issue9_8_a_store_never_created_is_one_sentence_saying_how_to_create_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    from leadflow.settings import get_settings

    get_settings.cache_clear()
    try:
        code, out, err = run(capsys, "state")
    finally:
        get_settings.cache_clear()
    assert code == 1 and err.count("\n") == 1 and "holds no LeadFlow store yet" in err and "leadflow db upgrade" in err
