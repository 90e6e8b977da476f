"""What several commands share: times typed on the command line, the clock check, the server, one flow run per
file with a progress bar."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from leadflow.cli.output import Failure, stderr
from leadflow.errors import ArgumentError, one_line

AS_OF_HELP = ("when it reaches LeadFlow: ISO time (no offset: business time), or today / yesterday / YYYY-MM-DD "
              "for the start of that business day (default now; never before the store's clock)")


def policy():
    from leadflow.policy import load_policy
    from leadflow.settings import get_settings

    return load_policy(get_settings().policy_file)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def time_arg(value: str | None, what: str = "--as-of") -> dt.datetime | None:
    """An aware UTC time from an option (`leadflow.dates.parse_time`), or None; a bad one is one sentence."""
    from zoneinfo import ZoneInfo

    from leadflow.dates import DateError, parse_time

    if value is None:
        return None
    try:
        return parse_time(value, now(), ZoneInfo(policy().timezone))
    except DateError as e:
        raise ArgumentError(f"{what} {e}") from None


def check_clock(as_of: dt.datetime | None) -> None:
    """Refuse a time before the store's clock here, in one sentence, before any flow run starts."""
    if as_of is None:
        return
    from leadflow import engine
    from leadflow.clock import iso
    from leadflow.wiring import stage_context

    ctx = stage_context(with_gate=False)
    with ctx.engine.connect() as conn:
        clock = engine.clock(conn)
    if clock is not None and as_of < clock:
        raise engine.ClockError(f"--as-of {iso(as_of, ctx.policy)} is before the store's clock "
                                f"({iso(clock, ctx.policy)}); LeadFlow never goes back in time.")


def use_server() -> None:
    """The project's Prefect server, or one sentence saying to start it (leadflow.start.use_server)."""
    from leadflow.start import use_server as point

    point()


def finish(state, describe) -> int:
    """A flow run's outcome: its summary line, or its message as the failure (exit 1)."""
    if state.is_completed():
        from leadflow.cli.output import say

        say(describe(state.result()))
        return 0
    raise Failure(one_line(state.message) if state.message else f"the flow run ended {state.type.value}.", 1)


def flow_per_file(files: list[str], what: str, hint: str, run, describe, precheck=None, as_of=None) -> int:
    """One flow run per file with a progress bar; each file's outcome in one line (phones masked).

    A file that cannot be taken at all (missing, unreadable, the wrong kind) is one sentence, exit 2,
    before anything runs; a run that ends needing a person (leads in the pool) shows its outcome and
    then why, exit 1."""
    from rich.progress import Progress

    from flows.states import result_of
    from leadflow.intake.readers import IntakeFileError
    from leadflow.privacy import mask_phones_in_text
    from leadflow.spool import spooled

    for f in files:
        if not Path(f).is_file():
            raise IntakeFileError(f"{f}: no such file{hint}.")  # as given: the folder may be what is wrong
        if precheck is not None:
            precheck(f)
    check_clock(as_of)
    use_server()
    errors = stderr()
    failed = 0
    with Progress(transient=True) as progress:
        bar = progress.add_task(what, total=len(files))
        for f in files:
            name = mask_phones_in_text(Path(f).name)
            with spooled(f) as given:  # R-REG-7: a phone in the file's name never reaches Prefect
                state = run(given)
            result = result_of(state)
            if isinstance(result, dict) and "rows_in" in result:
                progress.console.print(describe(name, result), soft_wrap=True, markup=False, highlight=False)
            if not state.is_completed():
                failed += 1
                why = one_line(state.message) if state.message else state.type.value
                errors.print(why if why.startswith(f"{name}:") else f"{name}: {why}", style="red")
            progress.advance(bar)
    return 1 if failed else 0
