"""The inbox folder the `intake-inbox` deployment watches (issue 9.3): which files are new, and where each
goes once its run has committed, so an operator sees at a glance what was taken.

- `inbox/` holds what is new (or was left by a run that failed for a passing reason: retried next minute);
- `inbox/done/` what was taken: every file with at least one row on record (accepted, attached, applied,
  duplicate or waiting), its quarantined or refused rows beside it in `<name>.quarantined.txt`;
- `inbox/rejected/` what was refused as a whole: unreadable, the wrong kind, empty, or nothing taken (every row
  quarantined or refused), with the one sentence why in `<name>.reason.txt`.

A file is known by its content digest, as its delivery is (`tasks.intake.batch_id_for`,
`leadflow.events.record.batch_id_for`), so a file whose run committed but was never moved (the process died
between the two) is recognised and moved without another run. Names already in `done/` are kept: the newcomer
gets a suffix (`name (2).csv`). One run at a time takes the inbox's files (`exclusive`: a lock file beside them),
and a file written in the last seconds waits for the next minute. Nothing here talks to Prefect; notes hold row
numbers and reason codes, never a phone (R-REG-7).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.privacy import mask_phones_in_text
from leadflow.store.models import Event, EventBatch, IntakeBatch, Registration

PATTERNS = ("*.csv", "*.jsonl", "*.ndjson", "*.xlsx")
DONE, REJECTED, NEW = "done", "rejected", ""
# A file written in the last seconds may still be arriving (a copy in progress): taken next minute, never moved
# half-written into done/ while its writer goes on writing.
SETTLE_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What the store holds of a file: its batch, rows in, rows taken, and each quarantined/refused row."""

    kind: str  # "registrations" | "events"
    batch_id: str
    rows_in: int
    taken: int  # accepted + attached, or applied + duplicate + waiting
    problems: tuple[str, ...]  # "row 3: phone_format, amount" (no values: never a phone)


def candidates(inbox: str | Path, settle: float = SETTLE_SECONDS, now: float | None = None) -> list[Path]:
    """The files lying in `inbox` itself (not its sub-folders), by name: registration and event files written
    at least `settle` seconds before `now` (epoch seconds; default the wall clock), hidden and Office lock files
    (`~$…`) left out. An inbox that does not exist holds nothing."""
    folder = Path(inbox)
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    settled = []
    for p in {p for pattern in PATTERNS for p in folder.glob(pattern) if not p.name.startswith((".", "~$"))}:
        try:
            if p.is_file() and now - p.stat().st_mtime >= settle:
                settled.append(p)
        except FileNotFoundError:  # moved away meanwhile (an operator): not ours to take
            continue
    return sorted(settled, key=lambda p: p.name)


@contextlib.contextmanager
def exclusive(inbox: str | Path) -> Iterator[bool]:
    """Whether this run has the inbox to itself: True while no other run takes its files (a lock on
    `inbox/.inbox.lock`, released when the block ends or the process dies), False when one does — a scheduled
    minute then leaves the files to it instead of running them a second time."""
    folder = Path(inbox)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".inbox.lock", "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def digest(path: str | Path) -> str:
    """sha256 of the file's bytes (hex), read in blocks. Raises OSError when it cannot be read."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def batch_ids(file_digest: str) -> tuple[str, str]:
    """(the intake batch id, the event delivery id) a file of this digest gets (R-REG-4: one file, one batch)."""
    from leadflow.events.record import batch_id_for

    return f"file-{file_digest[:20]}", batch_id_for(file_digest.encode(), prefix="events")


def deliveries(conn: Connection, digests: list[str]) -> dict[str, Delivery]:
    """The finished deliveries of these file digests, by digest; two queries for the batches and two for their
    problem rows, whatever the number of files."""
    ids = {d: batch_ids(d) for d in digests}
    # a registration file larger than `intake.batch_rows` is several batches (`stages.intake.file_batch_id`),
    # its last one named as a one-batch file is: delivered when that one is finished, counted over all of them
    batches: dict[str, list] = {}
    for b in conn.execute(select(IntakeBatch.id, IntakeBatch.digest, IntakeBatch.rows_in, IntakeBatch.accepted,
                                 IntakeBatch.attached).where(IntakeBatch.digest.in_(digests),
                                                             IntakeBatch.finished_at.is_not(None))):
        if b.id.startswith(ids[b.digest][0]):
            batches.setdefault(ids[b.digest][0], []).append(b)
    intake = {i: {"rows_in": sum(b.rows_in for b in bs), "accepted": sum(b.accepted for b in bs),
                  "attached": sum(b.attached for b in bs)}
              for i, bs in batches.items() if any(b.id == i for b in bs)}
    of_file = {b.id: i for i, bs in batches.items() if i in intake for b in bs}
    events = {b["id"]: b for b in conn.execute(select(EventBatch).where(
        EventBatch.id.in_([e for _, e in ids.values()]), EventBatch.finished_at.is_not(None))).mappings()}
    problems: dict[str, list[str]] = {}
    for batch, row, reasons in conn.execute(  # row numbers count over the whole file (`file_chunks`)
            select(Registration.batch_id, Registration.row_number, Registration.reasons)
            .where(Registration.batch_id.in_(list(of_file)), Registration.status == "quarantined")
            .order_by(Registration.row_number, Registration.batch_id)):
        problems.setdefault(of_file[batch], []).append(f"row {row}: {', '.join(reasons or []) or 'quarantined'}")
    for batch, row, kind, reason in conn.execute(
            select(Event.batch_id, Event.row_number, Event.type, Event.reason)
            .where(Event.batch_id.in_(list(events)), Event.status == "refused")
            .order_by(Event.batch_id, Event.row_number)):
        problems.setdefault(batch, []).append(f"row {row}: {kind or 'unknown type'} refused, {reason}")
    out = {}
    for d, (intake_id, events_id) in ids.items():
        if (b := intake.get(intake_id)) is not None:
            out[d] = Delivery("registrations", intake_id, b["rows_in"], b["accepted"] + b["attached"],
                              tuple(problems.get(intake_id, ())))
        elif (e := events.get(events_id)) is not None:
            out[d] = Delivery("events", events_id, e["rows_in"], e["applied"] + e["duplicate"] + e["waiting"],
                              tuple(problems.get(events_id, ())))
    return out


def verdict(delivery: Delivery | None, refusal: str | None = None) -> str:
    """Where a file goes: DONE when the store holds rows of it, REJECTED when the store took nothing of it or its
    run refused it as a whole (`refusal`, one sentence), NEW (stays in the inbox) otherwise."""
    if delivery is not None:
        return DONE if delivery.taken else REJECTED
    return REJECTED if refusal else NEW


def nothing_taken(delivery: Delivery) -> str:
    """One sentence for a delivery the store took nothing of."""
    what = "quarantined (R-VAL-2)" if delivery.kind == "registrations" else "refused"
    return f"nothing taken: every one of its {delivery.rows_in} rows was {what}."


def place(path: Path, folder: Path) -> Path | None:
    """Move `path` into `folder` (created), keeping both on a name collision (`name (2).csv`); returns where it
    went, or None when it is gone already (another run moved it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        target = folder / (path.name if n == 1 else f"{path.stem} ({n}){path.suffix}")
        if target.exists():
            continue
        try:  # a hard link never replaces an existing name: two runs at once cannot overwrite each other
            os.link(path, target)
        except FileExistsError:
            continue
        except FileNotFoundError:
            return None
        except OSError:  # no hard links here: the check above is the guard
            try:
                os.replace(path, target)
            except FileNotFoundError:
                return None
            return target
        try:
            path.unlink()
        except FileNotFoundError:  # another run moved it meanwhile: ours is the one copy
            pass
        return target
    raise OSError(f"{folder} holds too many files named like {path.name}.")


def note(moved: Path, kind: str, lines: list[str]) -> Path:
    """Write `<moved name>.<kind>.txt` beside the moved file (phones masked); returns its path."""
    target = moved.with_name(f"{moved.name}.{kind}.txt")
    target.write_text(mask_phones_in_text("\n".join(lines)) + "\n", encoding="utf-8")
    return target


def file_away(path: Path, inbox: Path, delivery: Delivery | None, refusal: str | None = None) -> dict:
    """Move one file where its verdict says, with its note; returns {"verdict", "to" (path or None),
    "reason" (one sentence for a rejected file, else None)}. A NEW file is left where it is."""
    where = verdict(delivery, refusal)
    if where == NEW:
        return {"verdict": NEW, "to": None, "reason": None}
    moved = place(path, inbox / where)
    reason = None
    if where == REJECTED:
        reason = mask_phones_in_text(refusal or nothing_taken(delivery))
    if moved is not None:
        problems = list(delivery.problems) if delivery else []
        if where == REJECTED:
            note(moved, "reason", [reason] + problems)
        elif problems:
            what = "quarantined (R-VAL-2)" if delivery.kind == "registrations" else "refused"
            note(moved, "quarantined", [f"{len(problems)} of {delivery.rows_in} rows were {what}; the rest were "
                                        "taken. Row numbers as the run's artifacts give them, with the reasons:"]
                 + problems)
    return {"verdict": where, "to": moved, "reason": reason}
