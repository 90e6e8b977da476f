"""The hostile-input corpus (issue 8, items 3 and 5): every broken, odd or malicious file seen, as registration
files AND as event files (INTAKE.md; an event file is told apart by its `type` column).

The files are written in code into a folder (`write_corpus`), so UTF-16, GBK, NUL bytes, CR line endings and a
10 MB cell survive git. A case gives its rows by role, and each kind of file maps a role to its own column:

    role    registration   event          good value (registration / event)
    what    channel        type           hotline / contact
    phone   phone          customer       a new mobile per case and row / an existing customer (EV-1)
    time    registered_at  at             2026-03-01 10:MM / 2026-03-02 09:MM
    person  registered_by  by             k1 / s1
    text    name           备注           客户N / (blank)
    amount  amount         amount         30万 / (blank)
    ref     external_ref   event_id       R<case>-N / E<case>-N

Each entry says what must come of it: one plain sentence for a file that cannot be taken at all, or per data
row (numbered as the store numbers it) "ok" — accepted (registration) / applied (event) — or its reasons
(registration: the set of reason codes; event: "waiting" or the refusal reason). Nothing else may happen: no
exception, no lost row (rows in = accepted + attached + quarantined / applied + duplicate + waiting + refused).
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl

REG, EVT = "registration", "event"
COLUMNS = {
    REG: {"what": "channel", "phone": "phone", "time": "registered_at", "person": "registered_by", "text": "name",
          "amount": "amount", "ref": "external_ref"},
    EVT: {"what": "type", "phone": "customer", "time": "at", "person": "by", "text": "备注", "amount": "amount",
          "ref": "event_id"},
}
# Customers the event files name (registered before the corpus): external_ref -> phone.
EVENT_CUSTOMERS = {f"EV-{i}": f"1370000000{i}" for i in range(1, 7)}
TEN_MB = 10 * 2**20
OK = "ok"


def good(kind: str, case: int, row: int) -> dict[str, str]:
    """A row that is fine, by role."""
    if kind == REG:
        return {"what": "hotline", "phone": f"139{case:04d}{row:04d}", "time": f"2026-03-01 10:{row:02d}",
                "person": "k1", "text": f"客户{row}", "amount": "30万", "ref": f"R{case}-{row}"}
    return {"what": "contact", "phone": "EV-1", "time": f"2026-03-02 09:{row:02d}", "person": "s1", "text": "",
            "amount": "", "ref": f"E{case}-{row}"}


@dataclass
class Row:
    """One data row: role overrides per kind (`both` for both kinds), and what must come of it per kind."""

    reg: object = OK
    evt: object = None  # default: the registration's single reason, or ok
    both: dict = field(default_factory=dict)
    r: dict = field(default_factory=dict)
    e: dict = field(default_factory=dict)

    def values(self, kind: str, case: int, number: int) -> dict[str, str]:
        return {**good(kind, case, number), **self.both, **(self.r if kind == REG else self.e)}

    def outcome(self, kind: str):
        if kind == REG:
            return OK if self.reg == OK else frozenset(self.reg)
        if self.evt is not None:
            return self.evt
        return OK if self.reg == OK else next(iter(self.reg))


@dataclass
class Entry:
    """A corpus file and what must come of it."""

    case: str
    kind: str
    path: Path
    sentence: str | None = None  # the file cannot be taken: this sentence (a fragment of it)
    expect: dict[int, object] = field(default_factory=dict)  # row number -> "ok" | reasons
    rows_in: int | None = None


# --- writers --------------------------------------------------------------------------------------


def _table(kind: str, case: int, rows: list[Row], header: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    roles = list(COLUMNS[kind])
    head = header or [COLUMNS[kind][r] for r in roles]
    return head, [[row.values(kind, case, n)[r] for r in roles] for n, row in enumerate(rows, start=1)]


def csv_bytes(header: list[str], cells: list[list[str]], encoding: str = "utf-8", delimiter: str = ",",
              newline: str = "\r\n") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    w.writerow(header)
    w.writerows(cells)
    return buf.getvalue().encode(encoding)


def raw_lines(kind: str, case: int, rows: list[Row], newline: str = "\n") -> str:
    """The header and rows joined by commas as they are, unquoted: how a hand-made export breaks."""
    head, cells = _table(kind, case, rows)
    return newline.join([",".join(head), *(",".join(c) for c in cells)]) + newline


def jsonl_bytes(kind: str, case: int, rows: list[Row], broken: dict[int, str] | None = None) -> bytes:
    head, cells = _table(kind, case, rows)
    lines = [json.dumps(dict(zip(head, c)), ensure_ascii=False) for c in cells]
    for n, text in (broken or {}).items():
        lines[n - 1] = text
    return ("\n".join(lines) + "\n").encode("utf-8")


def xlsx_bytes(header: list[str], cells: list[list[object]]) -> bytes:
    wb = openpyxl.Workbook()
    wb.active.append(header)
    for c in cells:
        wb.active.append(c)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --- the cases ------------------------------------------------------------------------------------
# Each case: (number, name) -> a function (kind, case number) -> (file name, bytes, rows or sentence).

Case = Callable[[str, int], tuple[str, bytes, object]]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


@case
def header_only(kind, n):
    return "header-only.csv", csv_bytes(_table(kind, n, [])[0], []), {REG: "the file has no data rows", EVT: []}


@case
def bad_times(kind, n):
    rows = [Row(), Row({"bad_time"}, both={"time": "0001-01-01 00:00"}),
            Row({"bad_time"}, both={"time": "9999-12-31 23:59"}),
            Row({"bad_time"}, both={"time": "2026-13-01 10:00"}), Row({"missing_field"}, both={"time": ""}),
            Row({"bad_time"}, both={"time": "下午三点"}), Row({"bad_time"}, both={"time": "1900-01-01 00:00"}), Row()]
    return "times.csv", csv_bytes(*_table(kind, n, rows)), rows


@case
def nul_in_json_value(kind, n):
    rows = [Row(both={"text": "张\u0000三"}), Row(r={"person": "k1\u0000"}, e={"person": "s1\u0000"}),
            Row(both={"text": "a\u0007b\u001bc\u007f"}), Row()]
    return "nul.jsonl", jsonl_bytes(kind, n, rows), rows


@case
def control_bytes_in_csv(kind, n):
    rows = [Row(both={"text": "王\x00女\x07士"}), Row()]
    return "controls.csv", (raw_lines(kind, n, rows) + "\x1a\n").encode("utf-8"), rows  # DOS end-of-file mark


@case
def values_too_long(kind, n):
    rows = [Row({"too_long", "unknown_person"}, "too_long", both={"person": "k" * 100}),
            Row({"too_long"}, both={"ref": "X" * 300}),
            Row({"too_long", "phone_format"}, "too_long", r={"phone": "1" * 40}, e={"phone": "C" * 300}), Row()]
    return "too-long.csv", csv_bytes(*_table(kind, n, rows)), rows


@case
def ten_mb_field(kind, n):
    rows = [Row(), Row({"too_long"}, both={"text": "lv zhi, zu bai\n" * (TEN_MB // 15)}), Row()]  # 10 MB, quoted
    return "ten-mb.csv", csv_bytes(*_table(kind, n, rows)), rows


@case
def unterminated_quotes(kind, n):
    """A quote that never closes swallows no row: the rows after it are read apart; a cell quoted over two
    lines, or with a comma inside, is one cell as it should be."""
    rows = [Row(), Row({"bad_quote"}, both={"text": '"never closed'}), Row(), Row(both={"text": '"王, 先生"'}),
            Row(both={"text": '"第一行\n第二行, 还有逗号"'}), Row(), Row({"bad_quote"}, both={"text": '"still open'})]
    return "quotes.csv", raw_lines(kind, n, rows).encode("utf-8"), rows


@case
def utf16_tab_separated(kind, n):
    rows = [Row(both={"text": "周先生"}), Row(), Row()]
    return "unicode-text.csv", csv_bytes(*_table(kind, n, rows), encoding="utf-16", delimiter="\t"), rows


@case
def utf8_bom(kind, n):
    rows = [Row(), Row()]
    return "bom.csv", b"\xef\xbb\xbf" + csv_bytes(*_table(kind, n, rows)), rows


@case
def gbk(kind, n):
    header = {REG: ["渠道", "电话", "来电时间", "接听人", "客户姓名", "预算", "来电编号"],
              EVT: ["事件类型", "客户", "时间", "销售", "备注", "金额", "流水号"]}[kind]
    rows = [Row(both={"text": "郑先生"}), Row(both={"text": "写字楼绿化"})]
    return "gbk.csv", csv_bytes(*_table(kind, n, rows, header), encoding="gbk"), rows


@case
def mixed_line_endings(kind, n):
    rows = [Row(), Row(), Row(), Row()]
    text = raw_lines(kind, n, rows)
    lines = text.split("\n")[:-1]
    endings = ["\r\n", "\n", "\r", "\r\n", "\n"]
    return "endings.csv", "".join(line + endings[i] for i, line in enumerate(lines)).encode("utf-8"), rows


@case
def ragged_rows(kind, n):
    head, cells = _table(kind, n, [Row()] * 5)
    amount = list(COLUMNS[kind]).index("amount")
    cells[1][amount] = "850,000"        # an unquoted thousands separator: one cell more, the rest shifted
    cells[2] = cells[2][:-2]             # two cells short
    cells[3] = cells[3] + ["", "", ""]   # trailing empty cells: nothing is shifted
    text = "\n".join(",".join(c) for c in [head, *cells]) + "\n"
    return "ragged.csv", text.encode("utf-8"), [Row(), Row({"ragged"}), Row({"ragged"}), Row(), Row()]


@case
def renamed_columns(kind, n):
    header = {REG: ["渠道", "Ｐｈｏｎｅ", " Registered At ", "接听客服", "客户姓名", "预计成交金额", "订单号"],
              EVT: ["EVENT", "客户编号", "发生时间", "  业务员", "备注", "成交金额", "ID"]}[kind]
    rows = [Row(), Row()]
    return "renamed.csv", csv_bytes(*_table(kind, n, rows, header)), rows


@case
def required_column_renamed_away(kind, n):
    header = [COLUMNS[kind][r] for r in COLUMNS[kind]]
    missing = {REG: "phone", EVT: "at"}[kind]
    header[header.index(COLUMNS[kind][{REG: "phone", EVT: "time"}[kind]])] = "联络方式X"
    text = csv_bytes(*_table(kind, n, [Row()], header))
    return "renamed-away.csv", text, f"required column '{missing}'"


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "0" <= c <= "9" else c for c in text)


@case
def fullwidth_digits(kind, n):
    phone = {REG: _fullwidth(f"139{n:04d}0001"), EVT: _fullwidth(EVENT_CUSTOMERS["EV-1"])}[kind]
    rows = [Row(both={"time": _fullwidth("2026-03-01 10:01")}, r={"phone": phone, "amount": "８０万元"},
                e={"phone": phone, "time": _fullwidth("2026-03-02 09:01")}), Row()]
    return "fullwidth.csv", csv_bytes(*_table(kind, n, rows)), rows


@case
def emoji(kind, n):
    rows = [Row(both={"text": "王女士😀🌿"}), Row({"phone_format"}, "waiting", r={"phone": f"139{n:04d}😀0002"},
                                                    e={"phone": "EV-1😀"}),
            Row({"unknown_person"}, r={"person": "k1😀"}, e={"person": "s1😀"}), Row()]
    return "emoji.csv", csv_bytes(*_table(kind, n, rows)), rows


SQL_TEXT = "Robert'); DROP TABLE registrations;--"


@case
def sql_looking_text(kind, n):
    rows = [Row(both={"text": SQL_TEXT}), Row(both={"ref": "1' OR '1'='1"}),
            Row({"phone_format"}, "waiting", both={"phone": "'; DROP TABLE customers;--"}), Row()]
    return "sql.csv", csv_bytes(*_table(kind, n, rows)), rows


@case
def formula_leading_cells(kind, n):
    rows = [Row(both={"text": "=1+2"}), Row(both={"text": "@SUM(1)"}), Row(both={"text": "'=HYPERLINK(\"http://x\")"}),
            Row(r={"phone": f"+86 139-{n:04d}-0004"}, e={"phone": "+86 137 0000 0001"}),
            Row({"amount"}, OK, both={"amount": "-5万"}),
            Row({"unknown_person"}, r={"person": "@k1"}, e={"person": "@s1"}), Row(both={"text": "-2+3"})]
    return "formulas.csv", csv_bytes(*_table(kind, n, rows)), rows


@case
def phone_extensions_and_two_numbers(kind, n):
    """R-REG-2 removes separators and a country prefix, nothing else: an extension or a second number is
    not one phone, so the row is refused (`phone_format`; an event naming its customer so: `phone`)."""
    m, e = f"139{n:04d}", EVENT_CUSTOMERS["EV-1"]
    rows = [Row({"phone_format"}, "phone", r={"phone": f"{m}0001 转 8001"}, e={"phone": f"{e} 转 8001"}),
            Row({"phone_format"}, "phone", both={"phone": "021-6123-4567 ext. 8001"}),
            Row({"phone_format"}, "phone", r={"phone": f"{m}0003/{m}0033"}, e={"phone": f"{e}/13700000002"}),
            Row({"phone_format"}, "phone", r={"phone": f"{m}0004，{m}0044"}, e={"phone": f"{e}，13700000002"}),
            Row()]
    return "phones.csv", csv_bytes(*_table(kind, n, rows)), rows


@case
def amounts_as_people_write_them(kind, n):
    """R-REG-3: a hedge and a unit are read (约80万, 80w, ８０万元 are 800,000); 1,2,3 is not an amount."""
    deal = {"what": "deal", "person": ""}  # a deal without `by` is the owner's
    rows = [Row(r={"amount": "约80万"}, e={**deal, "phone": "EV-3", "amount": "约80万"}),
            Row(r={"amount": "80w"}, e={**deal, "phone": "EV-4", "amount": "80w"}),
            Row(r={"amount": "８０万元"}, e={**deal, "phone": "EV-5", "amount": "８０万元"}),
            Row({"amount"}, r={"amount": "1,2,3"}, e={**deal, "phone": "EV-6", "amount": "1,2,3"}), Row()]
    return "amounts.csv", csv_bytes(*_table(kind, n, rows)), rows


@case
def file_named_in_chinese_with_a_phone(kind, n):
    rows = [Row(), Row()]
    name = {REG: "来电登记表回访13912340009.csv", EVT: "客户跟进记录回访13712340009.csv"}[kind]
    return name, csv_bytes(*_table(kind, n, rows)), rows


@case
def broken_json_lines(kind, n):
    rows = [Row(), Row({"bad_json"}), Row({"bad_json"}), Row()]
    broken = {2: '{"channel": "hotline", "phone": ', 3: '["a list"]'}
    return "broken.jsonl", jsonl_bytes(kind, n, rows, broken=broken), rows


@case
def binary_garbage(kind, n):
    return "garbage.csv", bytes(range(256)) * 8, "the file is not UTF-8 or GBK text"


@case
def xlsx_with_formulas_dates_and_long_text(kind, n):
    import datetime as dt

    rows = [Row(), Row(both={"text": "=1+2"}), Row({"bad_time"}, both={"time": "0001-01-01 00:00"}),
            Row({"too_long"}, both={"text": "x" * 20_000}), Row(both={"text": "王女士😀"})]
    head, cells = _table(kind, n, rows)
    when = list(COLUMNS[kind]).index("time")
    cells[0][when] = dt.datetime(2026, 3, {REG: 1, EVT: 2}[kind], 9, 30)  # a real date cell
    return "sheet.xlsx", xlsx_bytes(head, cells), rows


def write_case(kind: str, name: str, folder: Path) -> Entry:
    """Write case `name` as a `kind` file under folder/<kind>/<case>/ and say what must come of it."""
    number = list(CASES).index(name) + 1
    file_name, data, rows = CASES[name](kind, number)
    path = folder / kind / name / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    entry = Entry(name, kind, path)
    spec = rows[kind] if isinstance(rows, dict) else rows
    if isinstance(spec, str):
        entry.sentence = spec
    else:
        entry.expect = {i: row.outcome(kind) for i, row in enumerate(spec, start=1)}
        entry.rows_in = len(entry.expect)  # every data row is a row in
    return entry


def write_corpus(kind: str, folder: Path) -> list[Entry]:
    """Every case as a `kind` file."""
    return [write_case(kind, name, folder) for name in CASES]
