"""Issue 8 (items 3 and 6), without a database: what a hostile cell, line or file becomes in the readers, the row
normalisers (registrations, R-REG-1..3; events) and the spreadsheet writers' formula guard."""
from __future__ import annotations

import codecs
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow.events.normalise import normalise_event
from leadflow.export_cells import safe_cell, safe_row, unguard
from leadflow.intake import delimited
from leadflow.intake.cells import MAX_CELL_CHARS, strip_controls
from leadflow.intake.readers import IntakeFileError, canonical_column, read_registration_file
from leadflow.policy import load_policy
from leadflow.rules.registration import parse_registered_at
from leadflow.stages.context import StageContext
from leadflow.stages.intake import normalise_row

POLICY = load_policy()
TZ = "Asia/Shanghai"
HEADER = "channel,phone,registered_at,registered_by,name,amount,external_ref\n"


def line(i: int, name: str = "客户") -> str:
    return f"hotline,139{i:08d},2026-03-01 10:00,k1,{name},30万,R{i}\n"


def rows_of(tmp_path: Path, text: str, name: str = "x.csv", encoding: str = "utf-8") -> list[dict]:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return read_registration_file(path)


# --- formula injection: the writers' guard, and its inverse on reading ----------------------------

@pytest.mark.parametrize("cell, written", [
    ("=1+2", "'=1+2"), ("@SUM(1)", "'@SUM(1)"), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("+86 138 0013 8000", "'+86 138 0013 8000"),
    ("-5", "-5"), ("+3.5", "+3.5"), ("s1", "s1"), ("", ""), (-5, -5), (0.5, 0.5), (None, None),
])
def test_issue_8_6_formula_leading_text_is_guarded_and_numbers_stay_numbers(cell, written):
    assert safe_cell(cell) == written


def test_issue_8_6_a_row_is_guarded_cell_by_cell():
    assert safe_row(["=A1", 3, "ok"]) == ["'=A1", 3, "ok"]


@given(st.text(max_size=20))
def test_issue_8_6_a_guarded_cell_reads_back_as_written(text):
    assert unguard(safe_cell(text)) == text


# --- CSV records: quotes, line endings, long cells -------------------------------------------------

def test_issue_8_3_an_unterminated_quote_refuses_its_row_and_keeps_the_rows_it_would_swallow(tmp_path):
    text = HEADER + line(1) + line(2, '"never closed') + line(3) + line(4) + line(5, '"open at the end')
    rows = rows_of(tmp_path, text)
    assert [r["row_number"] for r in rows] == [1, 2, 3, 4, 5]  # rows in = the file's records
    assert [r.get("problems") for r in rows] == [None, ["bad_quote"], None, None, ["bad_quote"]]
    assert [r["external_ref"] for r in rows if "problems" not in r] == ["R1", "R3", "R4"]


def test_issue_8_3_a_cell_quoted_over_lines_or_with_a_comma_is_one_cell(tmp_path):
    rows = rows_of(tmp_path, HEADER + line(1, '"第一行\n第二行, 还有, 逗号"') + line(2, '"王, 先生"') + line(3, '5" 盆'))
    assert [r["name"] for r in rows] == ["第一行\n第二行, 还有, 逗号", "王, 先生", '5" 盆']  # a mid-cell quote is text
    assert all("problems" not in r for r in rows)


def test_issue_8_3_records_split_a_runaway_quote_even_when_a_later_quote_would_close_it():
    lines = ['a,"b,c,d\n', 'e,"f, g",h,i\n', 'j,k,l,m\n']
    assert list(delimited.records(lines, ",", 4)) == [
        (["a", "b,c,d"], ["bad_quote"]), (["e", "f, g", "h", "i"], []), (["j", "k", "l", "m"], [])]


def test_issue_8_3_mixed_line_endings_are_rows_alike(tmp_path):
    text = HEADER.replace("\n", "\r\n") + line(1).replace("\n", "\r") + line(2) + line(3).replace("\n", "\r\n")
    assert [r["external_ref"] for r in rows_of(tmp_path, text)] == ["R1", "R2", "R3"]


def test_issue_8_3_a_ten_mb_cell_refuses_its_row_only_and_is_kept_cut(tmp_path):
    big = "x" * (10 * 2**20)
    rows = rows_of(tmp_path, HEADER + line(1) + line(2, f'"{big}"') + line(3))
    assert [r.get("problems") for r in rows] == [None, ["too_long"], None]
    assert len(rows[1]["name"]) == MAX_CELL_CHARS and len(rows[1]["raw"]["name"]) == MAX_CELL_CHARS


def test_issue_8_3_a_row_with_more_or_fewer_cells_than_the_header_is_ragged(tmp_path):
    text = HEADER + line(1).replace("30万", "850,000") + "hotline,13900000002,2026-03-01 10:00,k1\n" + \
        line(3).rstrip("\n") + ",,,\n"
    assert [r.get("problems") for r in rows_of(tmp_path, text)] == [["ragged"], ["ragged"], None]


# --- encodings, control characters, headers -------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-16-le"])
def test_issue_8_3_utf16_with_its_bom_is_read(tmp_path, encoding):
    bom = {"utf-16": b"", "utf-16-be": codecs.BOM_UTF16_BE, "utf-16-le": codecs.BOM_UTF16_LE}[encoding]
    path = tmp_path / "u.csv"
    path.write_bytes(bom + (HEADER + line(1, "周先生")).replace(",", "\t").encode(encoding))
    (row,) = read_registration_file(path)
    assert (row["name"], row["phone"]) == ("周先生", "13900000001")


def test_issue_8_3_a_utf16_bom_in_front_of_binary_data_is_not_text(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + b"\x00\x81" * 200)
    with pytest.raises(IntakeFileError, match="not UTF-8 or GBK text"):
        read_registration_file(path)


def test_issue_8_3_stray_nul_bytes_are_stripped_but_many_mean_binary(tmp_path):
    (row,) = rows_of(tmp_path, HEADER + line(1, "王\x00女\x07士"))
    assert row["name"] == "王女士" and row["raw"]["name"] == "王女士"
    path = tmp_path / "bin.csv"
    path.write_bytes((HEADER + line(1)).encode() + b"\x00" * 100)
    with pytest.raises(IntakeFileError, match="not UTF-8 or GBK text"):
        read_registration_file(path)


def test_issue_8_3_control_characters_are_stripped_tab_and_newlines_kept():
    assert strip_controls("a\x00b\x01c\x1b\x7fd\te\nf\rg") == "abcd\te\nf\rg"


@pytest.mark.parametrize("header", ["Ｐｈｏｎｅ", "ＰＨＯＮＥ", "\u3000phone\u3000", "phone\x00"])
def test_issue_8_3_full_width_and_padded_headers_name_their_column(header):
    assert canonical_column(header) == "phone"


def test_issue_8_3_a_file_with_a_header_and_no_rows_is_one_sentence(tmp_path):
    with pytest.raises(IntakeFileError, match="^来电登记表.csv: the file has no data rows: nothing to register.$"):
        rows_of(tmp_path, HEADER + "\n,,,\n", name="来电登记表.csv")


# --- times ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["0001-01-01 00:00", "1900-01-01 00:00", "1969-12-31 23:59:59+00:00",
                                 "9999-12-31 23:59", "2100-01-01 08:00", "0001-01-01T00:00:00+08:00",
                                 dt.datetime(1, 1, 1),
                                 dt.datetime(9999, 12, 31, 23, 0, tzinfo=dt.timezone(-dt.timedelta(hours=8)))])
def test_issue_8_3_a_time_outside_1970_to_2099_is_not_a_time(raw):
    assert parse_registered_at(raw, TZ) is None


def test_issue_8_3_the_edges_of_the_years_taken_are_times():
    assert parse_registered_at("1970-01-01 08:00", TZ) is not None
    assert parse_registered_at("2099-12-31 23:59", TZ) is not None


# --- the normalisers: each problem is the row's own reason -------------------------------------------

def staged(row: dict) -> dict:
    ctx = StageContext(engine=None, policy=POLICY)  # normalise_row reads the policy only
    base = {"channel": "hotline", "phone": "13900000001", "registered_at": "2026-03-01 10:00", "registered_by": "k1"}
    return normalise_row({**base, **row}, ctx, {"k1"}, "b", dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc))


@pytest.mark.parametrize("given, reasons", [
    ({"registered_at": "0001-01-01 00:00"}, ["bad_time"]), ({"registered_at": "2026-13-01 10:00"}, ["bad_time"]),
    ({"registered_at": None}, []),  # missing: the gate's missing_field, not bad_time
    ({"registered_by": "k" * 65}, ["too_long"]), ({"external_ref": "x" * 201}, ["too_long"]),
    ({"phone": "1" * 40}, ["too_long"]), ({"inquiry": "x" * (MAX_CELL_CHARS + 1)}, ["too_long"]),
    ({"problems": ["bad_quote"]}, ["bad_quote"]), ({"name": "张\x00三"}, []),
])
def test_issue_8_3_staging_notes_what_the_gate_cannot_see(given, reasons):
    record = staged(given)
    assert record["reasons"] == reasons
    assert all(len(record[c] or "") <= n for c, n in (("registered_by", 64), ("external_ref", 200), ("phone", 32)))
    assert "\x00" not in (record["name"] or "")


def event(row: dict) -> dict:
    base = {"type": "contact", "at": "2026-03-02 09:00", "customer": "EV-1", "by": "s1", "row_number": 1}
    return normalise_event({**base, **row}, as_of=dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.timezone.utc),
                           policy=POLICY, people={"s1"}, departments=set())


@pytest.mark.parametrize("given, reason", [
    ({"problems": ["ragged"]}, "ragged"), ({"problems": ["bad_json"]}, "bad_json"),
    ({"problems": ["too_long"]}, "too_long"), ({"by": "s" * 65}, "too_long"), ({"customer": "C" * 201}, "too_long"),
    ({"at": "0001-01-01 00:00"}, "bad_time"), ({"recorded_at": "9999-12-31 23:59"}, "bad_time"),
    ({"customer": "13800138000 转 8001"}, "phone"), ({"customer": "13800138000/13900139000"}, "phone"),
    ({"customer": "EV-1\x00"}, None),
])
def test_issue_8_3_an_event_row_gets_its_own_refusal(given, reason):
    out = event(given)
    assert out["reason"] == reason
    assert len(out["customer_key"] or "") <= 200 and len(out["by"] or "") <= 64


def test_issue_8_3_an_event_naming_a_customer_by_a_number_with_an_extension_keeps_it_masked():
    assert event({"customer": "13800138000 转 8001"})["customer_key"] == "138****8000 转 8001"


def test_issue_8_3_a_line_that_is_not_json_is_kept_as_written_for_its_correction(tmp_path):
    good = '{"channel": "hotline", "phone": "13900000001", "registered_at": "2026-03-01 10:00", "registered_by": "k1"}'
    rows = rows_of(tmp_path, f'{good}\n{{"channel": "hotline", "phone": \n{good}\n', name="x.jsonl")
    assert [r.get("problems") for r in rows] == [None, ["bad_json"], None]
    assert rows[1]["raw"] == {"line": '{"channel": "hotline", "phone": '}


def test_r_val_2_a_json_line_holding_half_an_emoji_is_refused_alone_and_its_neighbours_are_read(tmp_path):
    """A lone surrogate escape (`\\ud83d`, an emoji cut in two by an exporter) is no text: its line is a row
    refused `bad_json` and kept as written, the lines around it are read, and a whole emoji (a surrogate pair)
    is one character (found by the fresh-clone trial: the whole file failed with a traceback)."""
    good = '{"channel": "hotline", "phone": "13900000001", "registered_at": "2026-03-01 10:00", "registered_by": "k1"'
    half = good + ', "name": "\\ud83d"}'
    whole = good + ', "name": "\\ud83d\\ude00"}'
    rows = rows_of(tmp_path, f"{good}}}\n{half}\n{whole}\n", name="x.jsonl")
    assert [r.get("problems") for r in rows] == [None, ["bad_json"], None]
    assert rows[1]["raw"] == {"line": half} and rows[2]["name"] == "\U0001f600"


def test_issue_8_3_every_row_opening_a_quote_it_never_closes_is_refused_on_its_own(tmp_path):
    text = HEADER + "".join(line(i, '"王先生') for i in range(1, 2001))
    rows = rows_of(tmp_path, text)  # linear: a runaway quote is looked past once, never re-read
    assert len(rows) == 2000 and all(r["problems"] == ["bad_quote"] for r in rows)
    assert [r["phone"] for r in rows[:2]] == ["13900000001", "13900000002"]


def test_issue_8_3_a_quoted_first_cell_over_two_lines_is_one_cell():
    assert list(delimited.records(['"one\n', 'two",b,c,d\n', 'e,f,g,h\n'], ",", 4)) == [
        (["one\ntwo", "b", "c", "d"], []), (["e", "f", "g", "h"], [])]
