"""Spreadsheet cells LeadFlow writes, and reads back: formula injection neutralised (OWASP "CSV injection").

A spreadsheet evaluates a cell that starts with `=`, `+`, `-` or `@` (and, in some, a leading tab or carriage
return) as a formula, so an org id `=1+2` or a name `@SUM(1)` in an export would run in the reader's
Excel. Every CSV or .xlsx cell LeadFlow writes goes through `safe_cell`, which puts a single quote in front
of such text (the OWASP convention: Excel then shows text, and the quote marks it as neutralised).

Decisions:
- only text is guarded: a real number (an int, a float, a Decimal: `-5` in an amount column) stays a number,
  and so does text that is nothing but a signed decimal number (`-5`, `+3.5`) — it is no formula;
- `unguard` is the inverse the readers apply, so a file LeadFlow wrote (or any system that follows the same
  convention) reads back as the values it was written from: `'+86 138 0013 8000` is the phone again.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
GUARD = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def safe_cell(value: Any) -> Any:
    """A cell value safe to write: text leading with = + - @ tab or CR gets a `'` in front; all else unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_LEADS):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return GUARD + value


def safe_row(values: Iterable[Any]) -> list[Any]:
    """`safe_cell` over a row of cells (a header row too)."""
    return [safe_cell(v) for v in values]


def safe_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """`safe_cell` over a dict row's values (for csv.DictWriter); the keys are the header, guarded apart."""
    return {k: safe_cell(v) for k, v in record.items()}


def unguard(text: str) -> str:
    """The inverse on reading: a `'` that guards a formula-leading cell is dropped; any other text as is."""
    if len(text) > 1 and text[0] == GUARD and text[1:].startswith(FORMULA_LEADS):
        return text[1:]
    return text


__all__ = ["FORMULA_LEADS", "GUARD", "safe_cell", "safe_record", "safe_row", "unguard"]
