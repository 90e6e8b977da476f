"""R-REG-7: no phone number leaves the store unmasked — free text, log records, exceptions, file names.

What is masked is phone-shaped, and only that: a mainland mobile (1[3-9] + 9 digits, or with the domestic
trunk 0) or a landline with its area code (0 + 9-11 digits, never 00), written in any form R-REG-2 accepts
(spaces, dashes, dots, brackets between the digits; a +86 / 0086 / 86 prefix; full-width digits), standing
between non-digits. Calendar dates, clock times, UUIDs and long hex identifiers are read first and left
alone, so run links, dates, times, amounts and row numbers stay as they are. Standard library only.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from pathlib import Path

_D = "[0-9\uff10-\uff19]"                                        # an ASCII or full-width digit
# What may sit between two digits (R-REG-2's separators: spaces, dashes and their look-alikes, dots, brackets).
_S = ("[ \t\u3000_\\-\uff0d\u2010-\u2015\u2212\ufe63.\uff0e\u00b7\u2022"
      "()\\[\\]{}\uff08\uff09\u3010\u3011\u3014\u3015\u3008\u3009\u300a\u300b\u300c\u300d]{0,2}")
_ZERO, _ONE, _NZ = "[0\uff10]", "[1\uff11]", "[1-9\uff11-\uff19]"
_MOBILE = f"{_ONE}{_S}[3-9\uff13-\uff19](?:{_S}{_D}){{9}}"          # R-REG-2: 1[3-9] + 9 digits
_LANDLINE_REST = f"{_NZ}(?:{_S}{_D}){{8,10}}"                        # area code without its 0, + 7-8 digits
_NATIONAL = f"(?:{_ZERO}{_S})?{_MOBILE}|{_ZERO}{_S}{_LANDLINE_REST}"  # a mobile (trunk 0 or not), a landline
_PREFIX = f"(?:(?:[+\uff0b]|{_ZERO}{_ZERO}){_S})?[8\uff18]{_S}[6\uff16]{_S}"  # +86, 0086, 86
_PHONE = f"(?:{_PREFIX}(?:{_MOBILE}|(?:{_ZERO}?{_S}){_LANDLINE_REST})|{_NATIONAL})"
_HEX = "[0-9a-fA-F]"
_UUID = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
# Tokens that are not phones, consumed before a phone is looked for inside them.
_DATE = r"\d{4}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])(?![0-9])"
_TIME = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d{1,6})?)?(?![0-9])"
NOT_PHONES = (rf"(?<![0-9a-fA-F]){_UUID}(?![0-9a-fA-F])"      # run ids in links
              rf"|(?<![0-9a-fA-F]){_HEX}{{16,}}(?![0-9a-fA-F])"        # digests, hex run ids
              rf"|(?<![0-9]){_DATE}|(?<![0-9]){_TIME}"
              rf"|(?<![0-9.])0\.\d+(?![0-9.])")                       # a decimal below one (0.1234567890 s)
PHONE = rf"(?<![0-9\uff10-\uff19])(?:{_PHONE})(?![0-9\uff10-\uff19])"  # R-REG-2's numbers, between non-digits
# Both are also read by flows/params.py (the flows' parameter schemas refuse what this masks).
PHONE_SHAPED = re.compile(rf"(?P<keep>{NOT_PHONES})|(?P<phone>{PHONE})")


def _mask_match(m: re.Match) -> str:
    if m.group("phone") is None:
        return m.group(0)
    from leadflow.rules.registration import mask_phone, normalise_phone

    number, kind = normalise_phone(m.group("phone"))
    if kind not in ("mobile", "landline"):  # pragma: no cover - the pattern admits only R-REG-2 numbers
        number = re.sub(r"\D", "", m.group("phone"))
    return mask_phone(number)


def mask_phones_in_text(text: str) -> str:
    """R-REG-7: `text` with every phone-shaped number as 138****8000 (前三后四); nothing else changes."""
    if not text:
        return text
    return PHONE_SHAPED.sub(_mask_match, str(text))


def has_phone(text: str) -> bool:
    """R-REG-7: True when `text` holds a phone-shaped number."""
    return bool(text) and mask_phones_in_text(str(text)) != str(text)


# --- exceptions --------------------------------------------------------------------------------------------


def _masked_driver_error(orig: BaseException) -> BaseException:
    """A copy of a DB-API error (same class, same SQLSTATE) whose text is masked: psycopg2 keeps its message in
    read-only fields that are pickled with it (a COPY error quotes the failing row in its CONTEXT line)."""
    text = mask_phones_in_text(str(orig))
    try:
        copy = type(orig)(text)
    except Exception:
        return orig
    state = {"pgerror": mask_phones_in_text(getattr(orig, "pgerror", None) or "") or None,
             "pgcode": getattr(orig, "pgcode", None)}
    if hasattr(copy, "__setstate__") and hasattr(orig, "pgcode"):
        try:
            copy.__setstate__(state)
        except Exception:
            pass
    return copy


def mask_exception(error: BaseException) -> BaseException:
    """R-REG-7: the same exception with phones masked in its text, in place, so its message, a state message
    built from it and its pickle (a failed run's persisted result) carry none. A SQLAlchemy error also loses
    its bound parameters (kept on it and pickled even when hidden from its message). Returns `error`."""
    try:
        error.args = tuple(mask_phones_in_text(a) if isinstance(a, str) else a for a in error.args)
    except Exception:
        pass
    if hasattr(error, "statement") and hasattr(error, "params"):
        error.params = None
        if getattr(error, "orig", None) is not None:
            error.orig = _masked_driver_error(error.orig)
    return error


def masked_driver_error(error: BaseException) -> BaseException:
    """R-REG-7: a raw DB-API error (psycopg2's COPY, outside SQLAlchemy) as a masked copy of the same class."""
    return _masked_driver_error(error)


def mask_db_error(context) -> None:
    """SQLAlchemy `handle_error` listener: every database error leaves the engine masked (R-REG-7)."""
    mask_exception(context.sqlalchemy_exception)


# --- logging -----------------------------------------------------------------------------------------------


class MaskingFilter(logging.Filter):
    """R-REG-7: a handler filter — the formatted message, its arguments, the traceback and the stack of a log
    record leave with every phone masked. Installed on every handler (leadflow/logging.yml for Prefect's
    console and API handlers; `install_log_masking` for the rest)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it; the raw text is still masked
            message = str(record.msg)
        record.msg, record.args = mask_phones_in_text(message), None
        if record.exc_info and getattr(record.exc_info[1], "needs_a_person", False):
            # a run that needs a person ended as designed (flows.states.NeedsAPerson): its sentence, no traceback
            record.msg = mask_phones_in_text(f"{message}: the run needs a person: {record.exc_info[1]}")
            record.exc_info, record.exc_text = None, None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = mask_phones_in_text(record.exc_text)
            record.exc_info = None  # formatters print exc_text; nothing formats the raw exception again
        if record.stack_info:
            record.stack_info = mask_phones_in_text(record.stack_info)
        for name in ("flow_run_name", "task_run_name"):
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, mask_phones_in_text(value))
        return True


LOGGING_CONFIG = Path(__file__).with_name("logging.yml")


def _masked_excepthook(kind, value, tb) -> None:
    """An uncaught exception's traceback, printed with phones masked (R-REG-7)."""
    text = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(mask_phones_in_text(text))


def _masked_thread_excepthook(args) -> None:
    if args.exc_type is SystemExit:
        return
    name = getattr(args.thread, "name", "?")
    text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    sys.stderr.write(mask_phones_in_text(f"Exception in thread {name}:\n{text}"))


def install_log_masking() -> None:
    """R-REG-7 for this process: Prefect configures its handlers with the masking filter (leadflow/logging.yml,
    unless PREFECT_LOGGING_SETTINGS_PATH names another file), every handler present gets it, and uncaught
    exceptions print masked. Idempotent; call it before and after Prefect is imported."""
    import threading

    os.environ.setdefault("PREFECT_LOGGING_SETTINGS_PATH", str(LOGGING_CONFIG))
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if not any(isinstance(f, MaskingFilter) for f in handler.filters):
                handler.addFilter(MaskingFilter())
    sys.excepthook = _masked_excepthook
    threading.excepthook = _masked_thread_excepthook
