"""The commands that read or change the record directly: report, forget."""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from leadflow.cli.app import app
from leadflow.cli.output import say
from leadflow.dates import DATE_FORMS
from leadflow.errors import ArgumentError


class Report(str, Enum):
    allocations = "allocations"
    breaches = "breaches"
    fairness = "fairness"
    customers = "customers"


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


Since = Annotated[Optional[str], typer.Option(
    metavar="DATE", help=f"the first business day included: {DATE_FORMS} (a month: its first day; default: "
                         "6 days before --until)")]
Until = Annotated[Optional[str], typer.Option(
    metavar="DATE", help=f"the last business day included, through its end: {DATE_FORMS} (a month: through its "
                         "last day; default: today)")]
FormatOpt = Annotated[Format, typer.Option("--format", help="table (80 columns), csv or json (every column)")]
Wide = Annotated[bool, typer.Option("--wide", help="table: every column, whatever the width")]
FullPhones = Annotated[bool, typer.Option("--full-phones", help="customers only: full numbers instead of "
                                                                "138****8000, recorded on the ledger (R-REG-7)")]
By = Annotated[Optional[str], typer.Option(help="with --full-phones: who exports (default: your login name)")]


@app.command()
def report(what: Annotated[Report, typer.Argument(help="which report")], since: Since = None, until: Until = None,
           fmt: FormatOpt = Format.table, wide: Wide = False, full_phones: FullPhones = False,
           by: By = None) -> int:
    """Allocations, breaches, fairness or customers for a period of business days (times in business time)."""
    from leadflow.forget import ErasureError, operator
    from leadflow.report_cli import report as show

    if full_phones and what is not Report.customers:
        raise ArgumentError("--full-phones applies to the customers report only (the others carry no phone).")
    try:
        who = operator(by) if full_phones else None
    except ErasureError:
        raise ArgumentError("say who exports the full numbers with --by.") from None
    return show(what.value, since, until, fmt.value, full_phones=full_phones, by=who, wide=wide)


@app.command()
def forget(customer: Annotated[str, typer.Argument(help="customer id, registration or external reference, or "
                                                        "phone")],
           by: Annotated[Optional[str], typer.Option(help="who carries out the request (default: your login "
                                                          "name)")] = None) -> int:
    """Erase a customer's name and phone numbers on request (PIPL art. 47), on the ledger."""
    from leadflow.forget import ErasureError, describe, forget as erase, operator
    from leadflow.wiring import stage_context

    try:
        erasure = erase(stage_context(with_gate=False), customer, by=operator(by))
    except ErasureError as e:
        raise ArgumentError(str(e)) from None
    say(describe(erasure))
    return 0
