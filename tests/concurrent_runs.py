"""Real concurrent runs for the concurrency tests (issue 8, item 2): spawned worker processes that act on one
store through LeadFlow's public entry points, released at one instant, each reporting when it ran.

- `Workers(n)`: n spawned processes (imports warmed once, reused by every test of a module).
  `workers.run(jobs)` gives job i to worker i; each builds its store context (engine + the real GX gate, as
  `leadflow.wiring.stage_context` wires them, on a schema for PostgreSQL), says ready, waits for the common
  go, acts, and reports `{"job", "pid", "start", "end", "ok", "error", "summary"}` (wall-clock seconds).
- `perform(ctx, job)`: what a job does, the same code for the workers and for a sequential reference run.
- `overlapped(results)`: the latest start is before the earliest end (every run was live at one instant).

A job is a dict: `action` (`register_file`, `record_file`, `record_events`, `tick`, `read_state`; and, the
stages alone outside the engine's clock lock, `allocate_pool`, `stage_events`), `url`,
`schema`, `as_of`, and the action's own keys (`path`, `rows`, `source`, `seconds`). Errors come back as one
line, phones masked (R-REG-7).
"""
from __future__ import annotations

import multiprocessing
import time
import traceback
from pathlib import Path

KEPT = ("batch_id", "rows_in", "accepted", "attached", "quarantined", "applied", "duplicate", "waiting",
        "refused", "reasons", "already_registered", "already_recorded", "reads", "stages_run", "offered",
        "allocated", "pooled")


def store_context(url: str, schema: str | None):
    """The production wiring (`leadflow.wiring.stage_context`) on `url` and, for PostgreSQL, one schema."""
    from leadflow.policy import load_policy
    from leadflow.stages.context import StageContext
    from leadflow.store.db import check_connection, make_engine
    from leadflow.wiring import make_gate

    policy = load_policy()
    engine = make_engine(url, schema=schema)
    check_connection(engine)
    return StageContext(engine=engine, policy=policy, gate=make_gate(url, schema, policy))


def close_context(ctx) -> None:
    if ctx.gate is not None:
        ctx.gate.close()
    ctx.engine.dispose()


def _register_file(ctx, job: dict) -> dict:
    """What the intake flow does with a file: ask whether it was registered, else one engine run for it."""
    from leadflow import engine
    from leadflow.intake.readers import read_registration_file
    from leadflow.samples.history import file_batch, registered

    path = Path(job["path"])
    batch_id, digest = file_batch(path)
    with ctx.engine.connect() as conn:
        if registered(conn, batch_id):
            return {"batch_id": batch_id, "already_registered": True}
    return {"batch_id": batch_id,
            **engine.register(ctx, batch_id, path.name, read_registration_file(path), job["as_of"], digest)}


def _read_state(ctx, job: dict) -> dict:
    """A reader beside the writers (`leadflow state`): the whole world state, again and again, each read in
    one snapshot (REPEATABLE READ on PostgreSQL, a deferred BEGIN on SQLite: WAL lets it read while a run
    writes). Without one, a customer committed between two of its queries fails the read (KeyError)."""
    from leadflow.state import world_state
    from leadflow.store.db import snapshot

    reads, until = 0, time.monotonic() + job.get("seconds", 2.0)
    while time.monotonic() < until or reads == 0:
        with snapshot(ctx.engine) as conn:  # what `leadflow state` does
            world_state(conn, ctx.policy, "reader", job["as_of"])
        reads += 1
    return {"reads": reads}


def perform(ctx, job: dict) -> dict:
    """Act as `job` says through the public entry points; the summary's counts (no phones)."""
    from leadflow import engine
    from leadflow.events.api import record_events, record_file

    action = job["action"]
    if action == "register_file":
        out = _register_file(ctx, job)
    elif action == "record_file":
        out = record_file(job["path"], as_of=job["as_of"], ctx=ctx)
    elif action == "record_events":
        out = record_events(job["rows"], as_of=job["as_of"], source=job.get("source", "api"), ctx=ctx)
    elif action == "tick":
        out = {"stages_run": len(engine.tick(ctx, job["as_of"])["timed"])}
    elif action == "read_state":
        out = _read_state(ctx, job)
    elif action == "allocate_pool":  # the stage alone, outside the engine's clock lock
        from leadflow.stages.allocation import allocate_pool

        with ctx.engine.begin() as conn:
            out = allocate_pool(conn, ctx, job["as_of"])
    elif action == "stage_events":  # the stage alone, outside the engine's clock lock
        from leadflow.events.record import stage_events

        out = stage_events(ctx, job["batch_id"], "race", job["rows"], job["as_of"])
    else:
        raise ValueError(f"unknown action {action!r}")
    return {k: out[k] for k in KEPT if k in out}


def _one_line(e: BaseException) -> str:
    from leadflow.rules.registration import mask_phones_in_text

    return mask_phones_in_text(f"{type(e).__name__}: {' '.join(str(e).split())[:400]}")


def _serve(conn) -> None:
    """A worker: imports once, then for each job: prepare, ready, wait for go, act, report."""
    import leadflow.engine  # noqa: F401  warm the imports before the first race
    import leadflow.events.api  # noqa: F401
    import leadflow.state  # noqa: F401
    import expectations.gate  # noqa: F401
    import os

    conn.send("up")
    while (job := conn.recv()) is not None:
        ctx, result = None, {"job": job, "pid": os.getpid(), "ok": False, "error": None, "summary": None}
        try:
            ctx = store_context(job["url"], job["schema"])
            ctx.gate("intake", batch_id="warm-up")  # GX's context and suites, built before the race
        except Exception as e:  # reported, the race goes on without this worker's act
            result["error"] = "prepare: " + _one_line(e)
        conn.send("ready")
        conn.recv()  # go
        result["start"] = time.time()
        if ctx is not None:
            try:
                result["summary"] = perform(ctx, job)
                result["ok"] = True
            except Exception as e:
                result["error"] = _one_line(e)
                result["trace"] = _one_line(e) + " | " + " / ".join(
                    f"{f.name}:{f.lineno}" for f in traceback.extract_tb(e.__traceback__)[-6:])
        result["end"] = time.time()
        conn.send(result)
        if ctx is not None:
            close_context(ctx)
    os._exit(0)  # no interpreter teardown: every engine is disposed, and exiting fast keeps the suite fast


class Workers:
    """n spawned worker processes; `run(jobs)` races up to n jobs, each in its own process."""

    def __init__(self, n: int, timeout: float = 180.0):
        mp = multiprocessing.get_context("spawn")
        self.timeout = timeout
        self.pipes, self.procs = [], []
        for _ in range(n):
            parent, child = mp.Pipe()
            proc = mp.Process(target=_serve, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        for pipe in self.pipes:
            self._recv(pipe)  # "up"

    def _recv(self, pipe):
        if not pipe.poll(self.timeout):
            raise TimeoutError(f"a worker did not answer within {self.timeout:.0f} s (a deadlock?)")
        return pipe.recv()

    def run(self, jobs: list[dict]) -> list[dict]:
        """Start every job at one instant (after all are prepared); their results, in job order."""
        if len(jobs) > len(self.pipes):
            raise ValueError(f"{len(jobs)} jobs for {len(self.pipes)} workers")
        pipes = self.pipes[:len(jobs)]
        for pipe, job in zip(pipes, jobs):
            pipe.send(job)
        for pipe in pipes:
            self._recv(pipe)  # ready
        for pipe in pipes:
            pipe.send("go")
        return [self._recv(pipe) for pipe in pipes]

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def overlapped(results: list[dict]) -> bool:
    """Every run was live at one instant: the latest start comes before the earliest end."""
    return max(r["start"] for r in results) < min(r["end"] for r in results)
