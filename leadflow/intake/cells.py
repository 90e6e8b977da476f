"""What one delivered cell may hold, and the per-row problems a reader finds (registration and event files alike).

A reader never refuses a whole file for one bad row: it hands the row on with its `problems`, and the
stage quarantines (registrations, R-VAL-2) or refuses (events) that row with the problem as its reason.

Decisions:
- control characters (NUL and the other C0 controls but tab, line feed and carriage return; DEL) are
  stripped from every value: they are debris of broken exports, never part of a name or a number, and
  PostgreSQL cannot store NUL. The row keeps its other values and goes on as usual;
- a cell longer than `MAX_CELL_CHARS` refuses its row (`too_long`) and is kept cut to that length, so a
  10 MB field costs neither the file nor the store;
- a value holding a lone surrogate (half an emoji, as a cut-off string leaves it; a caller of the Python API can
  pass one) is no text: no database can store it. It refuses its row (`bad_text`) and is kept with U+FFFD in the
  surrogate's place; the row's other values are judged as usual. (A JSON Lines line escaping one, `"\\ud83d"`,
  stays `bad_json`: the line is kept as written, which needs no replacement.)
"""
from __future__ import annotations

import re
from enum import StrEnum

MAX_CELL_CHARS = 10_000  # no registration or event field needs more; Excel's own cell limit is 32,767

_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATES = re.compile("[\ud800-\udfff]")


class Problem(StrEnum):
    """Why a row cannot be taken as written (a reason code, R-VAL-2; an event's refusal)."""

    TOO_LONG = "too_long"    # a value longer than its field holds (MAX_CELL_CHARS, or the column's size)
    BAD_QUOTE = "bad_quote"  # a quote opened in the row and never closed (the rows after it are read apart)
    RAGGED = "ragged"        # a CSV row with fewer or more cells than the header: its values may be shifted
    BAD_JSON = "bad_json"    # a JSON Lines line that is not a JSON object
    BAD_TIME = "bad_time"    # a time given that is not a time, or outside the years LeadFlow takes
    BAD_TEXT = "bad_text"    # a value holding a lone surrogate: kept with U+FFFD in its place


def strip_controls(text: str) -> str:
    """`text` without control characters (tab, line feed and carriage return are kept)."""
    return _CONTROLS.sub("", text) if _CONTROLS.search(text) else text


def without_surrogates(value):
    """(`value` with every lone surrogate in its strings, dict keys and values and list items replaced by U+FFFD,
    whether there was one). A high and a low surrogate in a row are one character (an emoji a UTF-16 caller split):
    joined, not counted. Other values come back as they are (the same object when nothing changed)."""
    out, bad, _ = _mend(value)
    return out, bad


def _mend(value):
    """(value mended, a lone surrogate was replaced, anything changed)."""
    if isinstance(value, str):
        if not _SURROGATES.search(value):
            return value, False, False
        text = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return text, text.count("\ufffd") > value.count("\ufffd"), True
    if isinstance(value, dict):
        pairs = [(_mend(k), _mend(v)) for k, v in value.items()]
        if any(kc or vc for (_, _, kc), (_, _, vc) in pairs):
            return ({k: v for (k, _, _), (v, _, _) in pairs}, any(kb or vb for (_, kb, _), (_, vb, _) in pairs),
                    True)
        return value, False, False
    if isinstance(value, (list, tuple)):
        items = [_mend(v) for v in value]
        if any(c for _, _, c in items):
            return type(value)(v for v, _, _ in items), any(b for _, b, _ in items), True
        return value, False, False
    return value, False, False


def too_long(text: str | None, limit: int = MAX_CELL_CHARS) -> bool:
    """True when `text` holds more than `limit` characters."""
    return text is not None and len(text) > limit


__all__ = ["MAX_CELL_CHARS", "Problem", "strip_controls", "too_long", "without_surrogates"]
