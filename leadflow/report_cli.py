"""`leadflow report`: allocations, breaches, fairness or customers for a period, as a table, CSV or JSON.

The period is whole business days (`leadflow.dates.period`): `--since` its first day, `--until` its last,
both included. A period over more than one month is read a month at a time, with a progress bar on stderr.
The table fits 80 columns: a default set of columns, people and departments as `name (id)`, times as
`YYYY-MM-DD HH:MM` in business time (the title gives the offset), long text folded; `--wide` shows every
column. CSV and JSON carry every column, times with their offset.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import sys

from leadflow import reports
from leadflow.clock import zone
from leadflow.dates import DateError, Period, month_chunks, period
from leadflow.errors import ArgumentError
from leadflow.export_cells import safe_record

# The table's default columns per report (fits 80 columns); `--wide` shows reports.COLUMNS.
NARROW: dict[str, tuple[str, ...]] = {
    "allocations": ("at", "action", "customer", "tier", "owner", "reason"),
    "breaches": ("at", "rule", "customer", "person"),
    "fairness": ("tier", "person", "leads", "eligible_share", "difference"),
    "customers": ("customer", "name", "phones", "tier", "status", "owner"),
}
FOLDED = ("reason", "phones", "name", "department", "owner", "person", "from")  # may wrap inside their cell
EMPTY = {"allocations": "no allocations", "breaches": "no breaches", "fairness": "no salespeople to compare",
         "customers": "no customers registered"}


def report_period(since: str | None, until: str | None, now: dt.datetime, tz) -> Period:
    """The period the options name; a bad date or an empty period is an ArgumentError (one sentence, exit 2)."""
    try:
        return period(since, until, now, tz)
    except DateError as e:
        raise ArgumentError(str(e)) from None


def report(what: str, since: str | None, until: str | None, fmt: str, full_phones: bool = False,
           by: str | None = None, wide: bool = False) -> int:
    """Print one report; `full_phones` (customers only, `by` who) is R-REG-7's recorded full-number export."""
    from leadflow.policy import load_policy
    from leadflow.settings import get_settings
    from leadflow.wiring import stage_context

    if full_phones and (what != "customers" or not by):
        raise ValueError("full phone numbers are exported only by the customers report, with who exports them.")
    p = report_period(since, until, dt.datetime.now(dt.timezone.utc),
                      zone(load_policy(get_settings().policy_file)))  # a bad date: refused before the store opens
    ctx = stage_context(with_gate=False)
    with ctx.engine.begin() as conn:  # the full export's ledger entry commits before anything is printed
        if full_phones:
            rows = reports.full_phone_export(conn, ctx.policy.version, by, p.start, p.end, fmt, policy=ctx.policy)
        else:
            rows = _read(conn, what, p, ctx.policy)
    if fmt == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    elif fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=list(reports.COLUMNS[what]))
        w.writeheader()
        w.writerows(safe_record(r) for r in rows)  # no cell runs as a formula in a spreadsheet
    else:
        print_table(what, rows, p, ctx.policy, wide)
    return 0


def _read(conn, what: str, p: Period, policy) -> list[dict]:
    """The report's rows, a calendar month at a time with a progress bar when the period spans months."""
    chunks = month_chunks(p, zone(policy))
    read = reports.allocations if what == "fairness" else getattr(reports, what)
    if len(chunks) == 1:
        rows = read(conn, p.start, p.end, policy=policy)
    else:
        from rich.console import Console
        from rich.progress import Progress

        rows = []
        errors = Console(stderr=True)  # never on stdout (csv/json); nothing at all when stderr is no terminal
        with Progress(console=errors, transient=True, disable=not errors.is_terminal) as progress:
            bar = progress.add_task(f"{what} {p.first} – {p.last}", total=len(chunks))
            for start, end in chunks:
                rows += read(conn, start, end, policy=policy)
                progress.advance(bar)
    return reports.fairness(conn, p.start, p.end, policy, allocated=rows) if what == "fairness" else rows


def _label(row: dict, key: str) -> str:
    """A person or department as `name (id)`; the id alone when the org chart gives no name."""
    value, name = row.get(key), row.get(f"{key}_name")
    if value is None:
        return ""
    return f"{name} ({value})" if name and name != str(value) else str(value)


def _cell(row: dict, key: str) -> str:
    if f"{key}_name" in row:
        return _label(row, key)
    value = row.get(key)
    if key in ("at", "created") and value:
        return dt.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")  # business time already
    return "" if value is None else str(value)


def print_table(what: str, rows: list[dict], p: Period, policy, wide: bool = False, console=None) -> None:
    """The rows as a Rich table (empty: one line saying so); `wide` every column, else the 80-column set."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console(highlight=False, emoji=False)
    if not rows:
        console.print(f"{EMPTY[what]} between {p.first} and {p.last}.", markup=False)
        return
    columns = [c for c in reports.COLUMNS[what] if not c.endswith("_name")] if wide else NARROW[what]
    offset = dt.datetime.fromisoformat(reports._at(p.start, policy)).strftime("%z")
    table = Table()
    for c in columns:
        folds = c in FOLDED and not wide
        table.add_column(c, overflow="fold", no_wrap=not folds, min_width=len(c),
                         justify="right" if c in ("leads", "eligible_share", "difference", "customer") else "left")
    for r in rows:  # Text cells: a `[b]` in a name or reason is shown, never read as Rich markup
        table.add_row(*(Text(_cell(r, c)) for c in columns))
    if wide:  # every column at its full width, however wide the terminal (pipe it to `less -S`)
        from rich.measure import Measurement

        console = Console(highlight=False, emoji=False, width=Measurement.get(
            console, console.options.update(max_width=100_000), table).maximum, file=console.file)
    console.print(f"{what} {p.first} – {p.last}: business days and times, UTC{offset[:3]}:{offset[3:]}",
                  markup=False, soft_wrap=True)
    console.print(table)
