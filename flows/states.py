"""States that tell the truth (issue 9.5): a parent flow whose child did not complete is not Completed.

The choice: anything that needs a person — a child that failed, leads left in the pool (R-ALLOC-5), a mass
breach (R-SLA-7), records newly held out of a stage (R-VAL-2) — is Failed, with one sentence and no retry.
Prefect has no warning state: its dashboard, run filters and default notifications count Failed, while a
Completed under a custom name is green and invisible there, and an automation would need a notification block
that every installation must configure. Quarantined rows of a file that otherwise went through are no failure:
each row has its reason in the run's artifacts.
"""
from __future__ import annotations

import re

from prefect.states import Completed, Failed, State

from leadflow.privacy import mask_phones_in_text

# Prefect's own prefix on a state made from an exception, and the exception's type, say nothing to an operator
_PREFIX = re.compile(r"^(?:Flow|Task) run encountered an exception:\s*(?:[A-Za-z_][\w.]*(?:Error|Exception|Failure|"
                     r"Unavailable|Run)\b:\s*)?")


class NeedsAPerson(Exception):
    """The outcome of a run that needs a person (a Failed state's data): its one sentence, and the run's summary
    (`summary`, a dict of ids and counts). Prefect resolves a Failed state's data into the exception it raises
    when a served run ends; a plain dict there is its "Unexpected result for failed state" traceback. Log records
    carrying it are one line, no traceback (`needs_a_person`, leadflow.privacy.MaskingFilter)."""

    needs_a_person = True

    def __init__(self, message: str, summary=None):
        super().__init__(message)
        self.summary = summary


def failed(message: str, summary=None) -> State:
    """A Failed state with one sentence (masked, R-REG-7) and the run's summary kept (read it with `result_of`)."""
    message = mask_phones_in_text(message)
    return Failed(message=message, data=NeedsAPerson(message, summary))


def sentence(state: State) -> str:
    """The one sentence a state says about itself (its message's first line, Prefect's exception prefix dropped,
    phones masked); `Crashed`/`Cancelled` without a message say their state."""
    text = (state.message or "").strip()
    text = _PREFIX.sub("", text.splitlines()[0] if text else "").strip()
    return mask_phones_in_text(text or f"the run ended {state.type.value.lower()}")


def result_of(state: State, default=None):
    """What a child run returned — also when it Failed with its summary as data — or `default`."""
    try:
        value = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - a result that cannot be read is no result
        return default
    if isinstance(value, NeedsAPerson):
        return default if value.summary is None else value.summary
    return default if isinstance(value, BaseException) else value


def parent_state(children: dict[str, State], noun: str, data=None, done: str = "",
                 more: list[tuple[str, str]] = (), notes: dict[str, str] | None = None) -> State:
    """The parent's state from its children's (`children`: name -> state) and any further problem the parent
    found itself (`more`: (name, one sentence)): Completed with `done` when none, else Failed with one sentence
    naming each ("2 of 9 files did not complete: a.csv: …; b.csv: …"; `notes`: name -> what follows, in
    parentheses), `data` kept on the state either way. Names and sentences are masked (R-REG-7)."""
    failures = [(name, _without(name, sentence(s))) for name, s in children.items() if not s.is_completed()]
    failures += [(name, _without(name, text)) for name, text in more]
    if not failures:
        return Completed(message=mask_phones_in_text(done) if done else None, data=data)
    total = len(set(children) | {name for name, _ in more})
    notes = notes or {}
    said = "; ".join(f"{name}: {text.rstrip('.')}" + (f" ({notes[name]})" if name in notes else "")
                     for name, text in failures)
    count = len({name for name, _ in failures})
    return failed(f"{count} of {total} {noun} did not complete: {said}.", data)


def _without(name: str, text: str) -> str:
    """A child's sentence without its own name in front (`a.csv: required column …` under `a.csv: `)."""
    return text[len(name) + 2:] if text.startswith(f"{name}: ") else text
