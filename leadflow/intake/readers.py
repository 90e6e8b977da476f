"""Reading registration files (INTAKE.md): CSV, JSON Lines and .xlsx, one row = one registration (R-REG-1).

The readers only find the columns and hand the values on as written; phones, amounts, channels and times
are normalised by `leadflow.rules.registration` in the intake stage.

A hostile file gets an answer, never a traceback: a file that cannot be read at all is one sentence
(`IntakeFileError`); a row that cannot be taken as written is handed on with its `problems`
(`leadflow.intake.cells.Problem`: too_long, bad_quote, ragged, bad_json), so its good neighbours are kept
and the stage gives it its own reason. Values are cleaned of control characters, and a cell guarded
against formula injection (`'=…`, `leadflow.export_cells`) reads as the value it guards.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from leadflow.export_cells import unguard
from leadflow.intake import delimited
from leadflow.intake.cells import MAX_CELL_CHARS, Problem, strip_controls
from leadflow.rules.registration import mask_phones_in_text


class IntakeFileError(ValueError):
    """A registration file that cannot be read; the message is one plain sentence naming the file.

    R-REG-7: the message is passed through the phone mask, so a number can never leak through it
    (not even through a file name).
    """

    def __init__(self, message: str):
        super().__init__(mask_phones_in_text(" ".join(str(message).split())))


# INTAKE.md: canonical column -> accepted aliases (matched trimmed and case-insensitively).
COLUMNS: dict[str, tuple[str, ...]] = {
    "channel": ("渠道", "来源"),
    "name": ("姓名", "客户姓名", "客户"),
    "phone": ("电话", "手机", "联系方式", "手机号"),
    "amount": ("预计成交金额", "金额", "预算"),
    "inquiry": ("咨询内容", "需求"),
    "registered_at": ("登记时间", "来电时间"),
    "registered_by": ("登记人", "接听人", "接听客服"),
    "target": ("是否目标客户",),
    "region": ("地区", "区域"),
    "external_ref": ("编号", "来电编号", "订单号"),
}
REQUIRED: tuple[str, ...] = ("channel", "phone", "registered_at", "registered_by")  # R-REG-1
SUPPORTED = (".csv", ".jsonl", ".ndjson", ".xlsx")

_FULLWIDTH_SPACE = "\u3000"
# In the cells of a row joined by line feeds: a control character, or a cell that may carry a formula guard.
_SUSPECT = re.compile(r"(?:^|\n)'|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _header_key(header: str) -> str:
    """How a header is compared: full-width letters as ASCII (NFKC), trimmed (also a stray BOM), case-folded."""
    text = unicodedata.normalize("NFKC", strip_controls(str(header)).replace("\ufeff", ""))
    return text.strip(" \t\r\n" + _FULLWIDTH_SPACE).casefold()


def canonical_column(header) -> str | None:
    """The canonical registration column a header names (`Registered At`, `registered-at`, `登记时间` …), or None."""
    return REGISTRATIONS.canonical(header)


class FileSpec:
    """What a kind of file holds: canonical columns with their aliases, and the required ones."""

    def __init__(self, what: str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...]):
        self.what, self.columns, self.required = what, columns, required
        self.lookup: dict[str, str] = {}
        for canonical, aliases in columns.items():
            for name in (canonical, *aliases):
                self.lookup[_header_key(name)] = canonical

    def canonical(self, header) -> str | None:
        """The canonical column a header names (`Registered At`, `registered-at`, `登记时间` …), or None."""
        if header is None:
            return None
        key = _header_key(header)
        if key in self.lookup:
            return self.lookup[key]
        return self.lookup.get(re.sub(r"[\s\-]+", "_", key))


class _Columns:
    """The header of one file: which original columns feed which canonical key, and raw names."""

    def __init__(self, file: str, headers: list, spec: "FileSpec | None" = None):
        spec = spec or REGISTRATIONS
        self.spec = spec
        self.raw_names: list[str | None] = []
        seen: dict[str, int] = {}
        for h in headers:
            name = _cell_text(h).strip() if h is not None else ""
            if not name:
                self.raw_names.append(None)  # a column without a header: kept in raw only if filled
                continue
            seen[name] = seen.get(name, 0) + 1
            self.raw_names.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
        self._plain = None not in self.raw_names  # every column named: the raw record is header zipped with cells
        self.sources: dict[str, list[int]] = {c: [] for c in spec.columns}
        for i, h in enumerate(headers):
            canonical = spec.canonical(h) if h is not None else None
            if canonical:
                self.sources[canonical].append(i)
        for column in spec.required:
            if not self.sources[column]:
                aliases = "/".join(spec.columns[column])
                raise IntakeFileError(f"{file}: required column '{column}' ({aliases}) is missing.")

    def row(self, cells: list, row_number: int, problems: list[str] | None = None) -> dict:
        """The record of one row; `problems` (reason codes) is added when the row has any."""
        if not problems and all(c.__class__ is str for c in cells):
            fast = self._text_row(cells, row_number)
            if fast is not None:
                return fast
        problems = list(problems or [])
        cells = [_clean(c, problems) for c in cells]
        record: dict = {}
        for column, indexes in self.sources.items():
            value = None
            for i in indexes:  # several columns for one key: the first one filled, left to right
                v = cells[i] if i < len(cells) else None
                if not _blank(v):
                    value = v
                    break
            record[column] = _canonical_value(value)
        raw: dict[str, str] = {}
        for i, name in enumerate(self.raw_names):
            v = cells[i] if i < len(cells) else None
            if name is None:
                if _blank(v):
                    continue
                name = f"column {i + 1}"
            raw[name] = "" if v is None else _cell_text(v)
        for i in range(len(self.raw_names), len(cells)):  # cells beyond the header
            if not _blank(cells[i]):
                raw[f"column {i + 1}"] = _cell_text(cells[i])
        record["row_number"] = row_number
        record["raw"] = raw
        if problems:
            record["problems"] = sorted(set(problems))
        return record

    def _text_row(self, cells: list[str], row_number: int) -> dict | None:
        """`row` for a row of text cells with nothing to clean (as most CSV rows are), in a few C-level scans
        instead of a few calls per cell; None when a cell needs cleaning (the general path does it)."""
        joined = "\n".join(cells)
        if len(joined) > MAX_CELL_CHARS and max(map(len, cells)) > MAX_CELL_CHARS:
            return None
        if _SUSPECT.search(joined):  # a control character, or a cell that may be guarded ('=…)
            return None
        n = len(cells)
        record: dict = {}
        for column, indexes in self.sources.items():
            value = None
            for i in indexes:
                if i < n and cells[i].strip():
                    value = cells[i]
                    break
            record[column] = value
        if self._plain and n == len(self.raw_names):
            raw = dict(zip(self.raw_names, cells))
        else:
            raw = {}
            for i, name in enumerate(self.raw_names):
                v = cells[i] if i < n else ""
                if name is None:
                    if not v.strip():
                        continue
                    name = f"column {i + 1}"
                raw[name] = v
            for i in range(len(self.raw_names), n):  # cells beyond the header
                if cells[i].strip():
                    raw[f"column {i + 1}"] = cells[i]
        record["row_number"] = row_number
        record["raw"] = raw
        return record

    @property
    def width(self) -> int:
        """Cells a CSV row must have: up to the last named column (a nameless trailing column may be left out)."""
        named = [i for i, name in enumerate(self.raw_names) if name is not None]
        return named[-1] + 1 if named else 0


def _clean(v, problems: list[str]):
    """A cell without control characters or a formula guard; a cell too long is cut and noted (`too_long`)."""
    if v.__class__ is not str:
        return v
    v = strip_controls(v)
    if v[:1] == "'":
        v = unguard(v)
    if len(v) > MAX_CELL_CHARS:
        problems.append(Problem.TOO_LONG.value)
        v = v[:MAX_CELL_CHARS]
    return v


def _blank(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


def _cell_text(v) -> str:
    """A cell as a string: integral numbers without '.0', booleans as true/false, datetimes ISO."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isfinite(v) and v == int(v):
            return str(int(v))
        return repr(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat()
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _canonical_value(v):
    """A canonical value: None when blank, a datetime kept as is, anything else as a string."""
    if _blank(v):
        return None
    if isinstance(v, dt.datetime):
        return v
    return _cell_text(v)


REGISTRATIONS = FileSpec("registration", COLUMNS, REQUIRED)


# --- files ----------------------------------------------------------------------------------


def _check_readable(path: Path) -> str:
    name = path.name
    if not path.exists():
        raise IntakeFileError(f"{name}: the file does not exist.")
    if path.is_dir():
        raise IntakeFileError(f"{name}: is a folder, not a registration file.")
    if path.suffix.lower() not in SUPPORTED:
        suffix = path.suffix.lower() or "(none)"
        raise IntakeFileError(f"{name}: unsupported file type '{suffix}' (use .csv, .jsonl or .xlsx).")
    try:
        with path.open("rb") as f:
            first = f.read(1)
    except OSError as e:
        reason = (e.strerror or "unknown error").lower()
        raise IntakeFileError(f"{name}: the file cannot be read ({reason}).") from None
    if not first:
        raise IntakeFileError(f"{name}: the file is empty (0 bytes).")
    return name


def _detect_encoding(path: Path) -> str:
    """INTAKE.md: UTF-8 (with or without BOM), UTF-16 with its BOM, then GBK / GB18030; anything else is refused."""
    try:
        return delimited.detect_encoding(path)
    except delimited.NotText:
        raise IntakeFileError(f"{path.name}: the file is not UTF-8 or GBK text.") from None
    except OSError as e:
        reason = (e.strerror or "unknown error").lower()
        raise IntakeFileError(f"{path.name}: the file cannot be read ({reason}).") from None


def _blank_line(line: str) -> bool:
    return not strip_controls(line).strip(" \t\r\n,;" + _FULLWIDTH_SPACE)


def _iter_csv(path: Path, name: str, spec: FileSpec | None = None) -> Iterator[dict]:
    encoding = _detect_encoding(path)
    with path.open("r", encoding=encoding, newline="") as f:  # newline="": CRLF, LF and CR alike, kept
        lines = iter(f)
        first = next(lines, "")
        while first and _blank_line(first):
            first = next(lines, "")  # leading empty lines before the header
        if not first:
            raise IntakeFileError(f"{name}: the file has no header row.")
        delimiter = delimited.delimiter_of(first)
        header = next(delimited.records([first], delimiter, 0))[0]
        columns = _Columns(name, header, spec)
        width = columns.width
        number = 0
        for cells, problems in delimited.records(map(strip_controls, lines), delimiter, len(header)):
            number += 1
            if all(_blank(c) for c in cells):
                continue  # completely empty rows are not registrations
            if not problems and (len(cells) < width or any(not _blank(c) for c in cells[len(header):])):
                problems = [Problem.RAGGED.value]  # a cell split or lost: the values may be shifted
            yield columns.row(cells, number, problems)


def _jsonl_objects(path: Path, name: str, encoding: str) -> Iterator[tuple[int, dict | None, str]]:
    """(line number, the line's object or None for a line that is not a JSON object, the line); blank lines skipped.
    A line whose strings hold a lone surrogate escape (`"\\ud83d"`: half an emoji) is no text, so no object."""
    with path.open("r", encoding=encoding) as f:
        for line_number, line in enumerate(f, start=1):
            if not strip_controls(line).strip():
                continue
            try:
                obj = json.loads(line)
                if "\\ud" in line.lower():  # an escaped surrogate: paired it is one character, alone no text
                    json.dumps(obj, ensure_ascii=False).encode("utf-8")
            except ValueError:  # (UnicodeEncodeError is one: a lone surrogate, as truncated emoji leave them)
                obj = None
            yield line_number, obj if isinstance(obj, dict) else None, line


def _iter_jsonl(path: Path, name: str, spec: FileSpec | None = None) -> Iterator[dict]:
    """A line that is not a JSON object is a row refused `bad_json`; a file without any object is one sentence."""
    encoding = _detect_encoding(path)
    headers: dict[str, None] = {}
    first_bad = None
    for line_number, obj, _ in _jsonl_objects(path, name, encoding):  # first pass: every key known
        if obj is None:
            first_bad = first_bad or line_number
        else:
            headers.update(dict.fromkeys(str(k) for k in obj))
    if not headers:
        if first_bad is not None:
            raise IntakeFileError(f"{name}: line {first_bad} is not a JSON object.")
        return  # no registrations at all
    names = list(headers)
    columns = _Columns(name, names, spec)
    for line_number, obj, line in _jsonl_objects(path, name, encoding):
        if obj is None:  # kept as written (in raw), so it can be corrected and sent again (R-VAL-2)
            record = columns.row([], line_number, [Problem.BAD_JSON.value])
            record["raw"] = {"line": _clean(line.rstrip("\r\n"), [])}
            yield record
            continue
        cells = [obj.get(k) for k in names]
        # JSON has no "column without a key": a key a line lacks is simply absent from its raw record
        record = columns.row(cells, line_number)
        record["raw"] = {k: _cell_text(_clean(obj[k], [])) for k in obj}
        yield record


def _iter_xlsx(path: Path, name: str, spec: FileSpec | None = None) -> Iterator[dict]:
    try:
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException
    except ImportError:  # pragma: no cover - openpyxl is a dependency
        raise IntakeFileError(f"{name}: reading .xlsx needs openpyxl, which is not installed.") from None
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError, EOFError) as e:
        if isinstance(e, PermissionError):
            raise IntakeFileError(f"{name}: the file cannot be read (permission denied).") from None
        raise IntakeFileError(f"{name}: the file is not a readable .xlsx workbook.") from None
    except Exception:  # zipfile.BadZipFile and the XML parser's errors
        raise IntakeFileError(f"{name}: the file is not a readable .xlsx workbook.") from None
    try:
        if not workbook.worksheets:
            raise IntakeFileError(f"{name}: the workbook has no sheet.")
        sheet = workbook.worksheets[0]
        if hasattr(sheet, "reset_dimensions"):
            sheet.reset_dimensions()  # a stored dimension may be wrong; read every row there is
        rows = sheet.iter_rows(values_only=True)
        header = None
        for header in rows:
            if not all(_blank(c) for c in header):
                break
        else:
            header = None
        if header is None:
            raise IntakeFileError(f"{name}: the file has no header row.")
        header = list(header)
        while header and _blank(header[-1]):
            header.pop()  # trailing empty header cells: formatting, not columns
        columns = _Columns(name, header, spec)
        number = 0
        for cells in rows:
            number += 1
            cells = list(cells)
            if all(_blank(c) for c in cells):
                continue
            yield columns.row(cells, number)
    finally:
        workbook.close()


def iter_rows(path: str | Path, spec: FileSpec | None = None) -> Iterator[dict]:
    """The data rows of a .csv / .jsonl / .xlsx file under `spec`'s canonical columns (registrations by default)."""
    path = Path(path)
    name = _check_readable(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _iter_csv(path, name, spec)
    elif suffix in (".jsonl", ".ndjson"):
        yield from _iter_jsonl(path, name, spec)
    else:
        yield from _iter_xlsx(path, name, spec)


_iter_rows = iter_rows


def header_names(path: str | Path) -> list[str]:
    """The header of a file (the keys of a JSON Lines file's first object), for telling kinds of file apart.

    Raises IntakeFileError (one sentence) when the file cannot be read."""
    path = Path(path)
    name = _check_readable(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        encoding = _detect_encoding(path)
        with path.open("r", encoding=encoding, newline="") as f:
            for line in f:
                if not _blank_line(line):
                    return next(delimited.records([line], delimited.delimiter_of(line), 0))[0]
        return []
    if suffix in (".jsonl", ".ndjson"):
        for _, obj, _ in _jsonl_objects(path, name, _detect_encoding(path)):
            if obj is not None:
                return [str(k) for k in obj]
        return []
    try:
        import openpyxl

        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:
        raise IntakeFileError(f"{name}: the file is not a readable .xlsx workbook.") from None
    try:
        for row in workbook.worksheets[0].iter_rows(values_only=True) if workbook.worksheets else []:
            if not all(_blank(c) for c in row):
                return [_cell_text(c) for c in row if not _blank(c)]
        return []
    finally:
        workbook.close()


def read_registration_file(path: str | Path) -> list[dict]:
    """INTAKE.md: every data row of a .csv, .jsonl / .ndjson or .xlsx file as a dict.

    Keys: channel, name, phone, amount, inquiry, registered_at, registered_by, target, region,
    external_ref (None when the column is absent or the cell blank; otherwise the text as written,
    numbers from .xlsx without a trailing '.0', datetimes from .xlsx kept as datetimes), plus
    `row_number` (1-based position after the header, counting skipped empty rows, so a row can be
    found again in the file; the line number for JSON Lines), `raw` (every original column under
    its own header, values as strings) and, on a row that cannot be taken as written, `problems`
    (reason codes: too_long, bad_quote, ragged, bad_json). Raises IntakeFileError (one sentence) when
    the file cannot be read as a registration file, or holds no data row (R-VAL-3: an empty batch).
    """
    return list(_registrations(path))


def _registrations(path: str | Path) -> Iterator[dict]:
    """The rows of a registration file; a file with a header and no data row is one sentence (R-VAL-3)."""
    empty = True
    for row in _iter_rows(path):
        empty = False
        yield row
    if empty:
        raise IntakeFileError(f"{Path(path).name}: the file has no data rows: nothing to register.")


def registration_rows(path: str | Path) -> Iterator[dict]:
    """The rows of `read_registration_file`, one at a time, streamed from the file (a generator: a file of a
    million rows is never in memory). Raises IntakeFileError as `read_registration_file` does, the empty-file
    sentence (R-VAL-3) once the file turns out to hold no data row."""
    return _registrations(path)


def file_digest(path: str | Path) -> str:
    """sha256 (hex) of the file's bytes, read in blocks (a file's batches are named by it, R-REG-4).
    Raises IntakeFileError (one sentence) when the file cannot be read."""
    from leadflow.inbox import digest

    path = Path(path)
    name = _check_readable(path)
    try:
        return digest(path)
    except OSError as e:
        raise IntakeFileError(f"{name}: the file cannot be read ({(e.strerror or 'unknown error').lower()}).") from None


def iter_registration_batches(path: str | Path, size: int = 5000) -> Iterator[list[dict]]:
    """The rows of `read_registration_file`, in lists of at most `size`, streamed from the file.

    The file's encoding, its header, and (for JSON Lines) every line are checked before the first batch.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    batch: list[dict] = []
    for row in _registrations(path):
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


__all__ = ["COLUMNS", "REQUIRED", "REGISTRATIONS", "FileSpec", "IntakeFileError", "canonical_column", "file_digest",
           "header_names", "iter_registration_batches", "iter_rows", "read_registration_file", "registration_rows"]
