"""Progress on stderr for a long step (issue 9.7): a Rich bar when stderr is a terminal, transient (it is gone when
the step ends), plain lines otherwise (a log file, a pipe, CI) — so stdout keeps its one line per step."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

Update = Callable[[int, int], None]  # update(done, total): `done` of `total` steps finished
QUARTERS = 4  # plain output: a line at each quarter of the way, and none for a step with nothing to do


@contextmanager
def progress(what: str, unit: str, stream: TextIO | None = None) -> Iterator[Update]:
    """Yields `update(done, total)` (counts of `unit`, e.g. "exports"; total may grow). On a terminal a transient
    Rich bar titled `what`; otherwise the line `what: done/total unit` at each quarter. Raises nothing of its own."""
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                   TimeElapsedColumn())
        with Progress(*columns, console=Console(file=stream), transient=True) as bar:
            task = bar.add_task(what, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    said = [0]  # quarters reported so far

    def update(done: int, total: int) -> None:
        quarter = QUARTERS * done // total if total else 0
        if quarter > said[0]:
            said[0] = quarter
            print(f"{what}: {done}/{total} {unit}", file=stream, flush=True)

    yield update
