"""R-REG-7 (issue 8, item 6): phone-shaped numbers are masked wherever text leaves the store — and nothing else is.

Phone-shaped: a mainland mobile or a landline with its area code, in any written form R-REG-2 accepts, standing
between non-digits. Run links, dates, times, amounts and row numbers stay as they are. The log filter masks the
message, its arguments, the traceback and the stack; uncaught exceptions print masked; a phone in a file's name
never reaches a flow run (the spool)."""
from __future__ import annotations

import ast
import io
import logging
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import leadflow.privacy as privacy
from leadflow.privacy import MaskingFilter, has_phone, mask_phones_in_text
from leadflow.spool import display_name, spooled


@pytest.mark.parametrize("text, expected", [
    ("call 13800138000 now", "call 138****8000 now"),
    ("tel +86 138-0013-8000.", "tel 138****8000."),
    ("0086-137-0013-7000", "137****7000"),
    ("86 138 0013 8000", "138****8000"),
    ("138.0013.8000", "138****8000"),
    ("138–0013–8000", "138****8000"),                          # an en dash pasted from a word processor
    ("full width １３８００１３８０００", "full width 138****8000"),
    ("＋８６ １３８ ００１３ ８０００", "138****8000"),
    ("x 013800138000 y", "x 138****8000 y"),                    # the domestic trunk 0
    ("landline 021-6123-4567 ok", "landline 021****4567 ok"),
    ("（021）61234567", "（021****4567"),
    ("+86 21 6123 4567", "021****4567"),                        # a landline written internationally
    ("0755 8888 6666", "075****6666"),
    ("电话13800138000已登记", "电话138****8000已登记"),
    ("回访13912340009.csv", "回访139****0009.csv"),               # a phone in a file name
    ("tel13800138000", "tel138****8000"),
    ("13800138000/13900139000", "138****8000/139****9000"),     # two numbers in a cell
    ("13800138000 转 123", "138****8000 转 123"),                # an extension stays
    ("13800138000-123", "138****8000-123"),
    ("2026-03-02 13800138000", "2026-03-02 138****8000"),
    ("row 12:13800138000", "row 12:138****8000"),
    ("Key (phone)=(13800138000) already exists.", "Key (phone)=(138****8000) already exists."),
    ('CONTEXT:  COPY registrations, line 3, column phone: "13800138000"',
     'CONTEXT:  COPY registrations, line 3, column phone: "138****8000"'),
])
def test_r_reg_7_every_written_form_of_a_phone_is_masked(text, expected):
    assert mask_phones_in_text(text) == expected
    assert has_phone(text)


@pytest.mark.parametrize("text", [
    "View at http://127.0.0.1:4200/runs/flow-run/99013800-1380-4138-8001-380013800138",
    "flow run 990e2179-c4a1-4b0e-9a35-13800138000a",
    "digest 3a5b13800138000ffffab0123",                        # a hex identifier is not a phone
    "'2026-13-01' is not a date", "20261301", "2026-03-02", "2026/3/2 9:05", "09:00:00.123456",
    "2026-03-02T09:00:00.123456+08:00",
    "row 12 of 300: 5 quarantined", "rows 1234567 in", "seven 1234567 digits",
    "amount 850000 yuan", "约80万", "80w", "８０万元", "1,2,3", "1,200,000元",
    "took 0.1234567890 s", "order 138001380001234", "id card 110101199003071234",
    "'; DROP TABLE registrations; --", "=1+2", "@SUM(1)", "",
])
def test_r_reg_7_what_is_not_phone_shaped_is_left_alone(text):
    assert mask_phones_in_text(text) == text
    assert not has_phone(text)


def test_r_reg_7_old_imports_of_the_masking_still_work():
    from leadflow.rules.registration import _PHONEISH, mask_phones_in_text as old

    assert old is mask_phones_in_text and _PHONEISH is privacy.PHONE_SHAPED


def test_r_reg_7_privacy_module_is_standard_library_and_rules_only():
    tree = ast.parse(Path(privacy.__file__).read_text(encoding="utf-8"))
    names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert [n for n in names if n.split(".")[0] not in sys.stdlib_module_names
            and not n.startswith("leadflow.rules") and n != "__future__"] == []


# --- a property: any mobile, in any R-REG-2 form, between any non-digit text, leaves only 前三后四 ---------

_NON_DIGITS = st.text(st.characters(blacklist_categories=("Nd",), blacklist_characters="+＋"), max_size=12)
_SEPS = st.sampled_from(["", " ", "-", ".", "  ", "－", "\u3000"])
_PREFIXES = st.sampled_from(["", "+86 ", "+86", "+86  ", "0086-", "86", "0"])


def _fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() or c == "+" else c for c in s)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True), _SEPS, _PREFIXES, st.booleans(), _NON_DIGITS, _NON_DIGITS)
def test_r_reg_7_any_mobile_in_any_form_keeps_only_first_three_and_last_four(number, sep, prefix, wide, before,
                                                                             after):
    written = prefix + sep.join((number[:3], number[3:7], number[7:]))
    written = _fullwidth(written) if wide else written
    masked = mask_phones_in_text(before + written + after)
    assert masked == before + f"{number[:3]}****{number[7:]}" + after


@settings(max_examples=200, deadline=None)
@given(st.uuids(), st.dates(), st.integers(0, 10 ** 6), st.times())
def test_r_reg_7_uuids_dates_times_and_counts_are_never_touched(run_id, day, count, clock):
    text = f"flow-run/{run_id} on {day.isoformat()} {clock.isoformat()}: {count} rows, {day:%Y%m%d}"
    assert mask_phones_in_text(text) == text


# --- the log filter ---------------------------------------------------------------------------------------

def _emit(record_logger, handler_formatter=None):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(handler_formatter or logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger(f"test.privacy.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    record_logger(logger)
    return stream.getvalue()


def test_r_reg_7_the_log_filter_masks_the_message_its_arguments_the_traceback_and_the_stack():
    def log(logger):
        logger.info("row %s: phone %s", 3, "13800138000")
        try:
            phone = "139 0013 9000"
            raise ValueError(f"bad phone {phone}")
        except ValueError:
            logger.exception("failed for %s", "+86 137-0013-7000")
        logger.warning("where 13600136000", stack_info=True)

    out = _emit(log)
    assert "138****8000" in out and "ValueError: bad phone 139****9000" in out and "137****7000" in out
    assert "Traceback" in out and "Stack (most recent call last)" in out
    for middle in ("0013800", "0013 9000", "0013-7000", "13600136000"):
        assert middle not in out


def test_r_reg_7_the_log_filter_leaves_run_links_and_dates_intact():
    link = "View at http://127.0.0.1:4200/runs/flow-run/99013800-1380-4138-8001-380013800138"
    out = _emit(lambda logger: logger.info("%s; '2026-13-01' is not a date", link))
    assert link in out and "'2026-13-01'" in out


def test_r_reg_7_prefect_handlers_carry_the_filter_from_leadflows_logging_config():
    import yaml

    config = yaml.safe_load(privacy.LOGGING_CONFIG.read_text(encoding="utf-8"))
    assert config["filters"]["mask_phones"]["()"] == "leadflow.privacy.MaskingFilter"
    assert {name: h.get("filters") for name, h in config["handlers"].items()} == {
        name: ["mask_phones"] for name in ("console", "api", "debug", "worker_api")}


def test_r_reg_7_install_puts_the_filter_on_every_handler_once(monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    handler = logging.StreamHandler(io.StringIO())
    logger = logging.getLogger("test.privacy.install")
    logger.addHandler(handler)
    try:
        privacy.install_log_masking()
        privacy.install_log_masking()
        assert sum(isinstance(f, MaskingFilter) for f in handler.filters) == 1
    finally:
        logger.removeHandler(handler)


def test_r_reg_7_an_uncaught_exception_prints_masked(capsys):
    try:
        raise RuntimeError("customer 13800138000 crashed")
    except RuntimeError:
        privacy._masked_excepthook(*sys.exc_info())
    err = capsys.readouterr().err
    assert "RuntimeError: customer 138****8000 crashed" in err and "13800138000" not in err


def test_r_reg_7_mask_exception_masks_its_args_in_place():
    e = ValueError("phone 13800138000 twice", 13800138000)
    assert privacy.mask_exception(e) is e
    assert str(e.args[0]) == "phone 138****8000 twice"


# --- file names: the spool --------------------------------------------------------------------------------

def test_r_reg_7_a_phone_named_file_reaches_a_run_only_under_its_masked_name(tmp_path):
    source = tmp_path / "回访13912340009.csv"
    source.write_bytes(b"phone\n13912340009\n")
    spool = tmp_path / "spool"
    with spooled(source, spool) as given:
        assert Path(given).name == "回访139****0009.csv" == display_name(source)
        assert not has_phone(given) and Path(given).read_bytes() == source.read_bytes()
    assert not Path(given).exists() and list(spool.iterdir()) == []  # no second copy of anyone's number
    assert source.exists()


def test_r_reg_7_a_file_without_a_phone_in_its_path_is_given_as_it_is(tmp_path):
    source = tmp_path / "hotline-2026-03-02.csv"
    source.write_text("x\n", encoding="utf-8")
    with spooled(source, tmp_path / "spool") as given:
        assert given == str(source)
    assert not (tmp_path / "spool").exists()


# --- Prefect's own handlers, in a fresh process, both ways a process meets Prefect ----------------------------

_PROBE = """
import logging, sys
{first}
import flows  # what the CLI, `leadflow serve` and a worker's flow-run process import
from leadflow.privacy import MaskingFilter
names = ["", "prefect", "prefect.flow_runs", "prefect.task_runs", "prefect._internal", "prefect.extra"]
handlers = {{type(h).__name__ for n in names for h in logging.getLogger(n).handlers}}
bare = {{type(h).__name__ for n in names for h in logging.getLogger(n).handlers
         if not any(isinstance(f, MaskingFilter) for f in h.filters)}}
print(sorted(handlers), sorted(bare))
sys.exit(1 if bare or "APILogHandler" not in handlers else 0)
"""


@pytest.mark.parametrize("first", ["", "import prefect.main  # a worker's engine configured Prefect before the flows"])
def test_r_reg_7_prefects_api_and_console_handlers_carry_the_mask_in_a_fresh_process(first):
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")}
    done = subprocess.run([sys.executable, "-c", _PROBE.format(first=first)], env=env, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
