"""INTAKE.md / R-REG-1: reading registration files (CSV, JSON Lines, .xlsx), built in tmp_path."""
import datetime as dt
import json
import re
from pathlib import Path

import openpyxl
import pytest

import leadflow
from leadflow.intake.readers import (
    COLUMNS, REQUIRED, IntakeFileError, canonical_column, iter_registration_batches, read_registration_file,
)
from leadflow.policy import load_policy
from leadflow.rules.registration import normalise_phone, parse_amount, parse_channel, parse_registered_at

KEYS = {"channel", "name", "phone", "amount", "inquiry", "registered_at", "registered_by", "target", "region",
        "external_ref", "row_number", "raw"}
SAMPLES = Path(leadflow.__file__).parent / "samples"
PHONE_DIGITS = re.compile(r"\d{7,}")
POLICY = load_policy()


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def xlsx(path: Path, rows: list[list]) -> Path:
    wb = openpyxl.Workbook()
    for r in rows:
        wb.active.append(r)
    wb.save(path)
    return path


def error_of(path) -> str:
    with pytest.raises(IntakeFileError) as e:
        read_registration_file(path)
    return str(e.value)


def assert_one_plain_sentence(message: str, file_name: str):
    assert message.startswith(f"{file_name}: ")
    assert message.endswith(".")
    assert "\n" not in message
    assert "Traceback" not in message and "Error" not in message
    assert not PHONE_DIGITS.search(message)


# --- columns -------------------------------------------------------------------------------------

def test_r_reg_1_columns_and_aliases_follow_intake_md():
    assert REQUIRED == ("channel", "phone", "registered_at", "registered_by")
    assert COLUMNS["phone"] == ("电话", "手机", "联系方式", "手机号")
    assert set(COLUMNS) == KEYS - {"row_number", "raw"}


@pytest.mark.parametrize("header, canonical", [
    ("phone", "phone"), (" Phone ", "phone"), ("PHONE", "phone"), ("手机号", "phone"), ("联系方式", "phone"),
    ("渠道", "channel"), ("来源", "channel"), ("客户姓名", "name"), ("客户", "name"), ("预算", "amount"),
    ("预计成交金额", "amount"), ("需求", "inquiry"), ("来电时间", "registered_at"), ("接听客服", "registered_by"),
    ("是否目标客户", "target"), ("区域", "region"), ("订单号", "external_ref"), ("来电编号", "external_ref"),
    ("Registered_At", "registered_at"), ("registered at", "registered_at"), ("\u3000电话\u3000", "phone"),
    ("\ufeffchannel", "channel"), ("备注", None), ("", None), (None, None),
])
def test_r_reg_1_header_matching_trimmed_case_insensitive_with_chinese_aliases(header, canonical):
    assert canonical_column(header) == canonical


# --- CSV -----------------------------------------------------------------------------------------

def test_r_reg_1_utf8_csv_rows_with_canonical_keys(tmp_path):
    f = write(tmp_path / "hotline.csv",
              "channel,name,phone,amount,inquiry,registered_at,registered_by,target,region,external_ref,note\n"
              "hotline,周先生,138 0013 8000,85万,展厅,2026-03-02 09:00,k1,yes,上海,H1,first call\n"
              "400,吴女士,+86 139-0013-9000,\"450,000\",门店,2026/03/02 09:10,s1,,,H2,\n")
    rows = read_registration_file(f)
    assert len(rows) == 2
    assert set(rows[0]) == KEYS
    r = rows[0]
    assert (r["channel"], r["name"], r["phone"], r["amount"]) == ("hotline", "周先生", "138 0013 8000", "85万")
    assert (r["registered_at"], r["registered_by"], r["target"], r["external_ref"]) == \
        ("2026-03-02 09:00", "k1", "yes", "H1")
    assert r["row_number"] == 1 and rows[1]["row_number"] == 2
    assert r["raw"]["note"] == "first call"
    assert rows[1]["amount"] == "450,000"       # values as written: quoting handled, nothing parsed
    assert rows[1]["target"] is None and rows[1]["region"] is None  # blank cells
    assert rows[1]["raw"]["note"] == ""


def test_r_reg_1_raw_keeps_every_original_column_with_its_header(tmp_path):
    f = write(tmp_path / "x.csv", "渠道,电话,来电时间,接听人,备注,Extra\n400,13800138000,2026-03-02 09:00,k1,回访,z\n")
    (row,) = read_registration_file(f)
    assert row["raw"] == {"渠道": "400", "电话": "13800138000", "来电时间": "2026-03-02 09:00",
                          "接听人": "k1", "备注": "回访", "Extra": "z"}
    assert "备注" not in row and "Extra" not in row  # unknown columns only in raw


def test_r_reg_1_missing_optional_columns_are_none(tmp_path):
    f = write(tmp_path / "min.csv", "channel,phone,registered_at,registered_by\nhotline,13800138000,2026-03-02 09:00,k1\n")
    (row,) = read_registration_file(f)
    for key in ("name", "amount", "inquiry", "target", "region", "external_ref"):
        assert row[key] is None


def test_r_reg_1_utf8_bom_csv_with_chinese_headers(tmp_path):
    text = ("来电编号,渠道,客户姓名,电话,预计成交金额,咨询内容,来电时间,接听客服,是否目标客户,地区\n"
            "H1,离线宝,周先生,１３８００１３８０００,约80万,展厅,2026-03-02 09:00,k1,是,上海\n")
    f = tmp_path / "bom.csv"
    f.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    (row,) = read_registration_file(f)
    assert row["external_ref"] == "H1"          # the BOM is not part of the first header
    assert row["channel"] == "离线宝" and parse_channel(row["channel"], POLICY) == "hotline"
    assert normalise_phone(row["phone"]) == ("13800138000", "mobile")
    assert parse_amount(row["amount"]) == (800_000, "ok")
    assert list(row["raw"])[0] == "来电编号"


def test_r_reg_1_gbk_csv_with_chinese_headers_and_values(tmp_path):
    text = ("渠道,姓名,手机,金额,需求,登记时间,登记人,是否目标客户,区域,编号\r\n"
            "淘宝,郑先生,137-0013-7000,20万元,写字楼绿化,2026/03/02 09:20,k1,否,苏州,T-9\r\n"
            "微信公众号,王女士,13600136000,5万左右,会议室,2026-03-02 09:30,s2,是,南京,T-10\r\n")
    data = text.encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the file really is GBK, not UTF-8
    (tmp_path / "gbk.csv").write_bytes(data)
    rows = read_registration_file(tmp_path / "gbk.csv")
    assert [r["name"] for r in rows] == ["郑先生", "王女士"]
    assert rows[0]["channel"] == "淘宝" and rows[0]["inquiry"] == "写字楼绿化" and rows[0]["region"] == "苏州"
    assert rows[0]["target"] == "否" and rows[0]["amount"] == "20万元"
    assert rows[1]["channel"] == "微信公众号"
    assert rows[0]["raw"]["手机"] == "137-0013-7000"


def test_r_reg_1_gb18030_only_characters_are_read(tmp_path):
    text = "渠道,电话,登记时间,登记人,姓名\n400,13800138000,2026-03-02 09:00,k1,㐀先生\n"
    (tmp_path / "gb.csv").write_bytes(text.encode("gb18030"))
    assert read_registration_file(tmp_path / "gb.csv")[0]["name"] == "㐀先生"


def test_r_reg_1_empty_csv_rows_are_skipped_and_row_numbers_locate_rows(tmp_path):
    f = write(tmp_path / "gaps.csv",
              "channel,phone,registered_at,registered_by\n"
              "hotline,13800138000,2026-03-02 09:00,k1\n"
              ",,,\n"
              "\n"
              "hotline,13900139000,2026-03-02 09:10,k1\n"
              " , ,\t, \n")
    rows = read_registration_file(f)
    assert [r["phone"] for r in rows] == ["13800138000", "13900139000"]
    assert [r["row_number"] for r in rows] == [1, 4]  # skipped rows still count, so row 4 is the 4th data line


def test_r_reg_1_csv_header_only_is_one_sentence_r_val_3_empty_batch(tmp_path):
    f = write(tmp_path / "h.csv", "channel,phone,registered_at,registered_by\n")
    assert error_of(f) == "h.csv: the file has no data rows: nothing to register."


def test_r_reg_1_csv_short_and_long_rows(tmp_path):
    f = write(tmp_path / "ragged.csv",
              "channel,phone,registered_at,registered_by,name\n"
              "hotline,13800138000,2026-03-02 09:00,k1\n"
              "hotline,13900139000,2026-03-02 09:10,k1,吴女士,surplus\n")
    a, b = read_registration_file(f)
    assert a["name"] is None
    assert b["name"] == "吴女士" and b["raw"]["column 6"] == "surplus"


def test_r_reg_1_tab_separated_csv(tmp_path):
    f = write(tmp_path / "tabs.csv", "渠道\t电话\t来电时间\t接听人\n400\t138 0013 8000\t2026-03-02 09:00\tk1\n")
    (row,) = read_registration_file(f)
    assert row["phone"] == "138 0013 8000"


def test_r_reg_1_two_alias_columns_for_one_key_first_filled_wins(tmp_path):
    f = write(tmp_path / "two.csv",
              "渠道,电话,手机,来电时间,接听人\n"
              "400,,13800138000,2026-03-02 09:00,k1\n"
              "400,021-61234567,13900139000,2026-03-02 09:10,k1\n")
    a, b = read_registration_file(f)
    assert a["phone"] == "13800138000"
    assert b["phone"] == "021-61234567"
    assert b["raw"]["手机"] == "13900139000"


def test_r_reg_1_duplicate_header_names_kept_apart_in_raw(tmp_path):
    f = write(tmp_path / "dup.csv", "渠道,电话,来电时间,接听人,备注,备注\n400,13800138000,2026-03-02 09:00,k1,a,b\n")
    (row,) = read_registration_file(f)
    assert row["raw"]["备注"] == "a" and row["raw"]["备注 (2)"] == "b"


def test_r_reg_1_uppercase_extension_is_accepted(tmp_path):
    f = write(tmp_path / "UP.CSV", "channel,phone,registered_at,registered_by\nhotline,13800138000,2026-03-02 09:00,k1\n")
    assert len(read_registration_file(f)) == 1


# --- JSON Lines ----------------------------------------------------------------------------------

def test_r_reg_1_jsonl_rows(tmp_path):
    lines = [
        {"channel": "web_chat", "phone": "13800138000", "registered_at": "2026-03-02T09:00:00+08:00",
         "registered_by": "k1", "amount": 850000, "target": True, "ticket": {"id": 7}},
        {"渠道": "商桥", "电话": "+86 139 0013 9000", "来电时间": "2026-03-02 09:10", "接听人": "s1", "金额": "45万",
         "target": None},
    ]
    f = tmp_path / "chat.jsonl"
    f.write_text(json.dumps(lines[0], ensure_ascii=False) + "\n\n" + json.dumps(lines[1], ensure_ascii=False) + "\n",
                 encoding="utf-8")
    a, b = read_registration_file(f)
    assert set(a) == KEYS
    assert a["amount"] == "850000" and a["target"] == "true"
    assert a["raw"]["ticket"] == '{"id": 7}'
    assert a["row_number"] == 1 and b["row_number"] == 3  # the line number; the blank line is skipped
    assert b["channel"] == "商桥" and b["amount"] == "45万" and b["target"] is None
    assert b["raw"] == {"渠道": "商桥", "电话": "+86 139 0013 9000", "来电时间": "2026-03-02 09:10", "接听人": "s1",
                        "金额": "45万", "target": ""}


def test_r_reg_1_ndjson_extension_is_json_lines(tmp_path):
    f = write(tmp_path / "x.ndjson",
              '{"channel": "wechat", "phone": "13800138000", "registered_at": "2026-03-02 09:00", "registered_by": "k1"}\n')
    assert read_registration_file(f)[0]["channel"] == "wechat"


def test_r_reg_1_jsonl_line_that_is_not_an_object_is_its_own_refused_row_issue_8(tmp_path):
    f = write(tmp_path / "bad.jsonl",
              '{"channel": "wechat", "phone": "13800138000", "registered_at": "2026-03-02 09:00", "registered_by": "k1"}\n'
              '\n'
              '["13900139000"]\n')
    good, bad = read_registration_file(f)
    assert "problems" not in good and good["phone"] == "13800138000"
    assert bad["row_number"] == 3 and bad["problems"] == ["bad_json"] and bad["phone"] is None


def test_r_reg_1_jsonl_without_any_object_names_the_line_without_its_content(tmp_path):
    f = write(tmp_path / "broken.jsonl", '{"phone": "13800138000", \n')
    message = error_of(f)
    assert message == "broken.jsonl: line 1 is not a JSON object."


def test_r_reg_1_jsonl_missing_required_key_in_every_line(tmp_path):
    f = write(tmp_path / "nokey.jsonl", '{"channel": "wechat", "phone": "13800138000", "registered_by": "k1"}\n')
    assert error_of(f) == "nokey.jsonl: required column 'registered_at' (登记时间/来电时间) is missing."


def test_r_reg_1_jsonl_key_missing_on_one_line_is_none_there(tmp_path):
    f = write(tmp_path / "partial.jsonl",
              '{"channel": "wechat", "phone": "13800138000", "registered_at": "2026-03-02 09:00", "registered_by": "k1"}\n'
              '{"channel": "wechat", "registered_at": "2026-03-02 09:00", "registered_by": "k1"}\n')
    assert read_registration_file(f)[1]["phone"] is None


def test_r_reg_1_empty_jsonl_is_one_sentence_r_val_3_empty_batch(tmp_path):
    assert error_of(write(tmp_path / "empty.jsonl", "\n\n")) == "empty.jsonl: the file has no data rows: nothing to register."


# --- xlsx ----------------------------------------------------------------------------------------

def test_r_reg_1_xlsx_first_sheet_numbers_and_datetimes(tmp_path):
    f = xlsx(tmp_path / "chat.xlsx", [
        ["external_ref", "channel", "name", "phone", "amount", "registered_at", "registered_by", "target", "Note"],
        ["W-1", "web_chat", "杨女士", 13700137001, 850000, dt.datetime(2026, 3, 2, 9, 15), "k1", True, 3.5],
        [None, None, None, None, None, None, None, None, None],
        ["W-2", "商桥", "朱先生", "139 0013 9001", 85.5, "2026-03-02 09:45", "s1", None, None],
    ])
    a, b = read_registration_file(f)
    assert set(a) == KEYS
    assert a["phone"] == "13700137001"            # a number cell: no ".0", no exponent
    assert a["amount"] == "850000"
    assert a["registered_at"] == dt.datetime(2026, 3, 2, 9, 15)  # datetimes kept as datetimes
    assert parse_registered_at(a["registered_at"], POLICY.timezone).utcoffset() == dt.timedelta(hours=8)
    assert a["target"] == "true"
    assert a["raw"]["phone"] == "13700137001" and a["raw"]["Note"] == "3.5"
    assert a["raw"]["registered_at"] == "2026-03-02 09:15:00"
    assert (a["row_number"], b["row_number"]) == (1, 3)  # the empty row is skipped but counted
    assert b["phone"] == "139 0013 9001" and b["amount"] == "85.5"
    assert b["target"] is None and b["raw"]["Note"] == ""


def test_r_reg_1_xlsx_float_phone_cell_is_an_integer_string(tmp_path):
    f = xlsx(tmp_path / "f.xlsx", [["渠道", "电话", "来电时间", "接听人"], ["400", 13800138000.0, "2026-03-02 09:00", "k1"]])
    assert read_registration_file(f)[0]["phone"] == "13800138000"


def test_r_reg_1_xlsx_reads_only_the_first_sheet(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append(["channel", "phone", "registered_at", "registered_by"])
    wb.active.append(["wechat", "13800138000", "2026-03-02 09:00", "k1"])
    other = wb.create_sheet("other")
    other.append(["nothing", "here"])
    wb.active = 1  # the active sheet is not the first one
    wb.save(tmp_path / "two.xlsx")
    assert [r["channel"] for r in read_registration_file(tmp_path / "two.xlsx")] == ["wechat"]


def test_r_reg_1_xlsx_missing_required_column(tmp_path):
    f = xlsx(tmp_path / "nochan.xlsx", [["phone", "registered_at", "registered_by"], ["13800138000", "x", "k1"]])
    assert error_of(f) == "nochan.xlsx: required column 'channel' (渠道/来源) is missing."


def test_r_reg_1_xlsx_empty_sheet_has_no_header_row(tmp_path):
    f = xlsx(tmp_path / "blank.xlsx", [])
    assert error_of(f) == "blank.xlsx: the file has no header row."


def test_r_reg_1_not_really_an_xlsx(tmp_path):
    f = write(tmp_path / "fake.xlsx", "channel,phone\n")
    message = error_of(f)
    assert message == "fake.xlsx: the file is not a readable .xlsx workbook."


# --- errors: one plain sentence, no phone --------------------------------------------------------

def test_r_reg_1_missing_required_column_is_one_sentence(tmp_path):
    f = write(tmp_path / "hotline.csv", "渠道,姓名,来电时间,接听人\n400,周先生 13800138000,2026-03-02 09:00,k1\n")
    message = error_of(f)
    assert message == "hotline.csv: required column 'phone' (电话/手机/联系方式/手机号) is missing."
    assert_one_plain_sentence(message, "hotline.csv")
    assert "13800138000" not in message and "138****8000" not in message


def test_r_reg_1_first_missing_required_column_is_named(tmp_path):
    f = write(tmp_path / "few.csv", "name,amount\n周先生,85万\n")
    assert error_of(f) == "few.csv: required column 'channel' (渠道/来源) is missing."


def test_r_reg_1_missing_registered_by_is_named(tmp_path):
    f = write(tmp_path / "noby.csv", "channel,phone,registered_at\nhotline,13800138000,2026-03-02 09:00\n")
    assert error_of(f) == "noby.csv: required column 'registered_by' (登记人/接听人/接听客服) is missing."


def test_r_reg_1_error_is_a_value_error_and_never_shows_a_phone_even_in_the_file_name(tmp_path):
    f = write(tmp_path / "13800138000.csv", "name\nx\n")
    with pytest.raises(ValueError) as e:
        read_registration_file(f)
    assert "13800138000" not in str(e.value)
    assert str(e.value).startswith("138****8000.csv: ")


def test_r_reg_1_unsupported_extension(tmp_path):
    f = write(tmp_path / "x.pdf", "%PDF-1.4")
    message = error_of(f)
    assert message == "x.pdf: unsupported file type '.pdf' (use .csv, .jsonl or .xlsx)."
    assert_one_plain_sentence(message, "x.pdf")


@pytest.mark.parametrize("name", ["old.xls", "notes.txt", "noext"])
def test_r_reg_1_other_unsupported_types(tmp_path, name):
    f = write(tmp_path / name, "channel,phone\n")
    assert "unsupported file type" in error_of(f)


def test_r_reg_1_binary_garbage_is_not_text(tmp_path):
    f = tmp_path / "x.csv"
    f.write_bytes(bytes(range(256)) * 8)
    message = error_of(f)
    assert message == "x.csv: the file is not UTF-8 or GBK text."
    assert_one_plain_sentence(message, "x.csv")


def test_r_reg_1_binary_with_nul_bytes_is_not_text(tmp_path):
    f = tmp_path / "zeros.csv"
    f.write_bytes(b"channel,phone\x00\x00\x00,registered_at\n")
    assert error_of(f) == "zeros.csv: the file is not UTF-8 or GBK text."


def test_r_reg_1_utf16_with_bom_is_read_issue_8(tmp_path):
    f = tmp_path / "u16.csv"
    f.write_bytes("渠道\t电话\t来电时间\t接听人\r\n400\t13800138000\t2026-03-02 09:00\tk1\r\n".encode("utf-16"))
    (row,) = read_registration_file(f)
    assert (row["channel"], row["phone"], row["registered_by"]) == ("400", "13800138000", "k1")


def test_r_reg_1_utf16_without_bom_is_refused(tmp_path):
    f = tmp_path / "u16.csv"
    f.write_bytes("channel,phone,registered_at,registered_by\n".encode("utf-16-le"))
    assert error_of(f) == "u16.csv: the file is not UTF-8 or GBK text."


def test_r_reg_1_binary_jsonl_is_not_text(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_bytes(b"\xff\xfe\x00\x81" * 100)
    assert error_of(f) == "x.jsonl: the file is not UTF-8 or GBK text."


def test_r_reg_1_empty_csv_has_no_header_row(tmp_path):
    assert error_of(write(tmp_path / "x.csv", "")) == "x.csv: the file is empty (0 bytes)."
    assert error_of(write(tmp_path / "y.csv", "\n\n  \n")) == "y.csv: the file has no header row."


def test_r_reg_1_missing_file(tmp_path):
    message = error_of(tmp_path / "gone.csv")
    assert message == "gone.csv: the file does not exist."
    assert_one_plain_sentence(message, "gone.csv")


def test_r_reg_1_folder_is_not_a_file(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    assert error_of(tmp_path / "dir.csv") == "dir.csv: is a folder, not a registration file."


# --- batches -------------------------------------------------------------------------------------

def test_r_reg_1_batches_stream_the_same_rows(tmp_path):
    lines = ["channel,phone,registered_at,registered_by"]
    lines += [f"hotline,138{i:08d},2026-03-02 09:00,k1" for i in range(23)]
    f = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    batches = list(iter_registration_batches(f, size=10))
    assert [len(b) for b in batches] == [10, 10, 3]
    assert [r for b in batches for r in b] == read_registration_file(f)


def test_r_reg_1_batches_check_the_header_before_the_first_batch(tmp_path):
    f = write(tmp_path / "nophone.csv", "channel,registered_at,registered_by\nhotline,x,k1\n")
    with pytest.raises(IntakeFileError):
        next(iter_registration_batches(f))


def test_r_reg_1_jsonl_batches_keep_a_broken_line_as_a_row_of_its_own(tmp_path):
    good = '{"channel": "wechat", "phone": "13800138000", "registered_at": "2026-03-02 09:00", "registered_by": "k1"}\n'
    f = write(tmp_path / "late.jsonl", good * 3 + "oops\n")
    rows = [r for b in iter_registration_batches(f, size=1) for r in b]
    assert [r.get("problems") for r in rows] == [None, None, None, ["bad_json"]]
    assert rows[-1]["row_number"] == 4


def test_r_reg_1_xlsx_batches(tmp_path):
    rows = [["channel", "phone", "registered_at", "registered_by"]]
    rows += [["wechat", f"139{i:08d}", "2026-03-02 09:00", "k1"] for i in range(5)]
    f = xlsx(tmp_path / "b.xlsx", rows)
    assert [len(b) for b in iter_registration_batches(f, size=2)] == [2, 2, 1]


# --- the sample files ----------------------------------------------------------------------------

def test_r_reg_1_sample_hotline_csv_is_gbk_with_chinese_headers():
    path = SAMPLES / "hotline-2026-03-02.csv"
    data = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert data.decode("gbk").startswith("来电编号,渠道")
    rows = read_registration_file(path)
    assert 10 <= len(rows) <= 14
    phones = [normalise_phone(r["phone"]) for r in rows]
    assert sum(kind == "invalid" for _, kind in phones) == 1
    valid = [p for p, kind in phones if kind in ("mobile", "landline")]
    assert len(valid) - len(set(valid)) == 1                               # one duplicate person
    dup = next(p for p in valid if valid.count(p) == 2)
    assert len({r["phone"] for r, (p, _) in zip(rows, phones) if p == dup}) == 2  # written differently
    statuses = [parse_amount(r["amount"])[1] for r in rows]
    assert statuses.count("negative") == 1
    assert all(parse_channel(r["channel"], POLICY) == "hotline" for r in rows)
    assert {r["registered_by"] for r in rows} <= {"k1", "s1", "s2"}
    assert all(parse_registered_at(r["registered_at"], POLICY.timezone) is not None for r in rows)


def test_r_reg_1_sample_webchat_xlsx_has_english_headers():
    rows = read_registration_file(SAMPLES / "webchat-2026-03-02.xlsx")
    assert 5 <= len(rows) <= 8
    assert {parse_channel(r["channel"], POLICY) for r in rows} == {"web_chat"}
    assert {r["registered_by"] for r in rows} <= {"k1", "s1", "s2"}
    assert all(parse_registered_at(r["registered_at"], POLICY.timezone) is not None for r in rows)
    assert "external_ref" in rows[0]["raw"]


def test_r_reg_1_sample_org_file_shape():
    from leadflow.orgfile import read_org_file

    departments, people = read_org_file(SAMPLES / "org.yaml")
    assert [(d["id"], d["name"]) for d in departments] == [("d1", "营销一部"), ("d2", "营销二部")]
    by_id = {p["id"]: p for p in people}
    assert set(by_id) == {"m1", "m2", "s1", "s2", "s3", "s4", "k1"}
    assert (by_id["s3"]["grade"], by_id["s3"]["rank"]) == ("C", 1)
    assert by_id["s4"]["grade"] is None
    assert by_id["k1"]["role"] == "receptionist"


def test_issue_8_5_a_zero_byte_file_is_said_to_be_empty_not_missing_a_column(tmp_path):
    from leadflow.intake.readers import IntakeFileError, header_names, read_registration_file

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    for read in (header_names, read_registration_file):
        with pytest.raises(IntakeFileError, match=r"empty\.csv: the file is empty"):
            read(empty)
