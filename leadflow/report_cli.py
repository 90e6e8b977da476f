"""`leadflow report`: allocations, breaches, fairness or customers for a period, as a table, CSV or JSON."""
from __future__ import annotations

import csv
import datetime as dt
import json
import sys

from leadflow import reports
from leadflow.clock import zone
from leadflow.errors import ArgumentError
from leadflow.export_cells import safe_record


def _day(text: str | None, default: dt.date, tz) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(text) if text else default
    except ValueError:
        raise ArgumentError(f"{text!r} is not a date (write YYYY-MM-DD).") from None
    return dt.datetime.combine(day, dt.time(), tzinfo=tz)


def report(what: str, since: str | None, until: str | None, fmt: str, full_phones: bool = False,
           by: str | None = None) -> int:
    """Print one report; `full_phones` (customers only, `by` who) is R-REG-7's recorded full-number export."""
    from leadflow.wiring import stage_context

    if full_phones and (what != "customers" or not by):
        raise ValueError("full phone numbers are exported only by the customers report, with who exports them.")
    ctx = stage_context(with_gate=False)
    tz = zone(ctx.policy)
    today = dt.datetime.now(tz).date()
    start = _day(since, today - dt.timedelta(days=7), tz)
    end = _day(until, today + dt.timedelta(days=1), tz)
    with ctx.engine.begin() as conn:  # the full export's ledger entry commits before anything is printed
        rows = (reports.full_phone_export(conn, ctx.policy.version, by, start, end, fmt) if full_phones
                else getattr(reports, what)(conn, start, end))
    if fmt == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    elif fmt == "csv":
        if rows:
            w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(safe_record(r) for r in rows)  # no cell runs as a formula in a spreadsheet
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{what} {start.date()} – {end.date()}")
        for col in (rows[0] if rows else {"result": ""}):
            table.add_column(col)
        for r in rows:
            table.add_row(*("" if v is None else str(v) for v in r.values()))
        Console().print(table)
    return 0
