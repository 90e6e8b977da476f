"""Text files as the front desk's tools write them: the encoding, and CSV records that survive a runaway quote.

Encodings (INTAKE.md): UTF-8 with or without BOM, UTF-16 with its BOM (Excel's "Unicode text"), GBK / GB18030.
Line endings may be mixed (CRLF, LF, CR); a stray NUL byte is debris, many of them mean binary data.

A CSV quote opened in a cell and never closed would swallow every later row into that cell, so
`records` reads the file record by record: a quoted cell may span lines, but a continuation line that
is a row of its own (it has the header's delimiters) while the quote is still open ends the runaway.
The row that opened the quote is then refused (`bad_quote`) and every line after it is read again as
rows of their own, so "rows in" counts the physical records and the good rows are kept.
"""
from __future__ import annotations

import codecs
import csv
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from leadflow.intake.cells import Problem

csv.field_size_limit(2**31 - 1)  # Python's default (128 KiB) would refuse a whole file for one long cell
NUL_SHARE_BINARY = 0.01  # more NULs than this share of the characters: binary data, not text
_QUOTE = '"'


class NotText(ValueError):
    """The file is not text in an encoding LeadFlow reads."""


def detect_encoding(path: Path) -> str:
    """The file's encoding: a BOM (UTF-8, UTF-16) decides, else UTF-8, then GB18030. Raises NotText or OSError."""
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(codecs.BOM_UTF8):
        candidates: tuple[str, ...] = ("utf-8-sig",)
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ("utf-16",)
    else:
        candidates = ("utf-8", "gb18030")
    for encoding in candidates:
        if _decodes(path, encoding):
            return encoding
    raise NotText(path.name)


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    chars = nuls = structure = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                text = decoder.decode(chunk)
                chars, nuls = chars + len(text), nuls + text.count("\x00")
                structure += sum(text.count(c) for c in ",\t\n{") if not structure else 0
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    if nuls > chars * NUL_SHARE_BINARY:
        return False
    # a UTF-16 BOM in front of binary data decodes to anything: text has a delimiter, a line or an object
    return encoding != "utf-16" or structure > 0 or chars == 0


def delimiter_of(header_line: str) -> str:
    """Tab when the header has tabs and no comma (Excel's "Unicode text"), else comma."""
    return "\t" if "\t" in header_line and "," not in header_line else ","


def _scan(line: str, delimiter: str, in_quote: bool) -> tuple[bool, int]:
    """(still inside a quoted cell at the end of `line`, delimiters seen outside quotes), as Python's csv reads it."""
    if not in_quote and _QUOTE not in line:
        return False, line.count(delimiter)
    i, n, delimiters = 0, len(line), 0
    while i < n:
        if in_quote:
            j = line.find(_QUOTE, i)
            if j < 0:
                return True, delimiters
            if line.startswith(_QUOTE, j + 1):  # "" inside a quoted cell is one quote
                i = j + 2
                continue
            in_quote, i = False, j + 1
            continue
        q, d = line.find(_QUOTE, i), line.find(delimiter, i)
        if d >= 0 and (q < 0 or d < q):
            delimiters, i = delimiters + 1, d + 1
            continue
        if q < 0:
            break
        in_quote = q == 0 or line[q - 1] == delimiter  # only a quote that starts a cell opens one
        i = q + 1
    return in_quote, delimiters


def _closes_a_cell(line: str, delimiter: str) -> bool:
    """Whether the first lone quote of `line` (read inside a quoted cell) ends that cell: a delimiter or the
    line's end follows it. A quote followed by text opens a cell of a new row; it closes nothing."""
    i = 0
    while (j := line.find(_QUOTE, i)) >= 0:
        if line.startswith(_QUOTE, j + 1):
            i = j + 2
            continue
        rest = line[j + 1:]
        return rest.startswith(delimiter) or not rest.strip("\r\n")
    return False


def _row_of_its_own(line: str, delimiter: str, row_like: int) -> bool:
    """A line read fresh that has a row's delimiters: outside quotes, or all of them when it opens a quote that
    stays open (every row of a file may open one: `"王先生` without its closing quote)."""
    opens, seen = _scan(line, delimiter, False)
    return (line.count(delimiter) if opens else seen) >= row_like


def _cells(lines: list[str], delimiter: str) -> list[str]:
    if len(lines) == 1 and _QUOTE not in lines[0]:
        return lines[0].rstrip("\r\n").split(delimiter)
    cells = next(csv.reader(lines, delimiter=delimiter), [])
    if cells:  # an unterminated quote at the end keeps the line's own ending: not part of the value
        cells[-1] = cells[-1].rstrip("\r\n") if len(lines) == 1 else cells[-1]
    return cells


def _continued(source: Iterator[str], pending: list[str], delimiter: str, row_like: int) -> str | None:
    """Add the lines of a quoted cell that cannot end it (no quote, fewer delimiters than a row) to `pending`;
    the first line that may end it or be a row, or None at the end of the file. (A tight loop: a 10 MB cell.)"""
    for line in source:
        if _QUOTE in line or line.count(delimiter) >= row_like:
            return line
        pending.append(line)
    return None


def records(lines: Iterable[str], delimiter: str, width: int) -> Iterator[tuple[list[str], list[str]]]:
    """(cells, problems) for each CSV record of `lines` (the lines after the header, endings kept).

    `width`: the header's number of cells; a continuation line with at least width - 1 delimiters is a row."""
    source, again = iter(lines), deque()
    row_like = max(width - 1, 1)
    while True:
        line = again.popleft() if again else next(source, None)
        if line is None:
            return
        if _QUOTE not in line:  # most lines: no quote, nothing to decide
            yield line.rstrip("\r\n").split(delimiter), []
            continue
        cells = next(csv.reader([line if line.endswith(("\n", "\r")) else line + "\n"], delimiter=delimiter))
        if not (cells and cells[-1].endswith(("\n", "\r"))):  # the line ending closed the record
            yield cells, []
            continue
        pending = [line]
        while True:
            nxt = again.popleft() if again else _continued(source, pending, delimiter, row_like)
            if nxt is None:  # the quote never closed: the start row is refused, the rest read apart
                yield _cells(pending[:1], delimiter), [Problem.BAD_QUOTE.value]
                again.extendleft(reversed(pending[1:]))
                break
            still_open, _ = _scan(nxt, delimiter, True)
            if not still_open and _closes_a_cell(nxt, delimiter):
                cells = _cells([*pending, nxt], delimiter)
                if len(cells) <= width:  # a cell written over several lines, closed where it should be
                    yield cells, []
                    break
            if _row_of_its_own(nxt, delimiter, row_like):  # inside the "cell": the quote ran away
                yield _cells(pending[:1], delimiter), [Problem.BAD_QUOTE.value]
                again.extendleft(reversed([*pending[1:], nxt]))
                break
            if not still_open:  # closed, and not a row of its own: one record, as Python's csv reads it
                yield _cells([*pending, nxt], delimiter), []
                break
            pending.append(nxt)


__all__ = ["NotText", "delimiter_of", "detect_encoding", "records"]
