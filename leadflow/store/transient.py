"""Which database errors are worth retrying: a dropped connection, a serialization failure, a deadlock, a
locked SQLite file. Every stage is idempotent in its inputs and `as_of`, so a retry records nothing twice."""
from __future__ import annotations

from sqlalchemy import exc

# SQLSTATE classes: 08 connection exception, 40001 serialization failure, 40P01 deadlock, 57P01-03 the
# server shutting down or terminating the backend (pg_terminate_backend), 53300 too many connections.
_TRANSIENT_CODES = ("08", "40001", "40P01", "57P01", "57P02", "57P03", "53300")


def is_transient(error: BaseException | None) -> bool:
    """True for an error a retry of the same idempotent step can cure; False for everything else."""
    while error is not None:
        if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
            return True
        code = getattr(getattr(error, "orig", error), "pgcode", None)
        if code and code.startswith(_TRANSIENT_CODES):
            return True
        if isinstance(error, exc.OperationalError):
            text = str(getattr(error, "orig", error)).lower()
            if ("database is locked" in text or "server closed the connection" in text
                    or "terminating connection" in text or "connection" in text and "lost" in text):
                return True
        error = error.__cause__ if error.__cause__ is not error else None
    return False


def retry_transient(task, task_run, state) -> bool:
    """A Prefect `retry_condition_fn`: retry a task only when it failed on a transient database error."""
    try:
        state.result()
    except Exception as e:  # the task's own exception, re-raised by result()
        return is_transient(e)
    return False


def database_sentence(error: BaseException, where: str | None = None) -> str:
    """One plain sentence for a database error: what kind, the driver's first line (no SQL, no parameters,
    no COPY context with row data), and what to do. Every stage is idempotent, so rerunning is the remedy."""
    from leadflow.rules.registration import mask_phones_in_text as mask

    orig = getattr(error, "orig", None) or error
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0].strip().rstrip(".")
    at = f" at {where}" if where else ""
    if is_transient(error):
        return (f"the database{at} dropped the work ({type(orig).__name__}: {mask(first)}); nothing half-done "
                "was kept: run the same command again and it completes what is missing.")
    if first.startswith("no such table") or getattr(orig, "pgcode", None) == "42P01":  # undefined_table
        return (f"the database{at} holds no LeadFlow store yet ({mask(first)}): create it with `leadflow db "
                "upgrade` (or `python3 manage.py start`, which also loads the sample data), then run this again.")
    if isinstance(error, exc.IntegrityError):
        return (f"the database{at} refused a write ({mask(first)}); nothing of this run was kept: run the same "
                "command again, and report it if it repeats.")
    return f"the database{at} failed ({type(orig).__name__}: {mask(first)})."
