"""Latency of single registrations on the bench's store (N leads in it), in the warm bench process (issue 10):
`register_lead` alone and with CALLERS callers at once, and one-row files through the intake flow when a Prefect
server answers. Seconds of wall time, p50 / p95 by nearest rank.

The bench calls `measure` right after the pipeline, the owners' first activity and an SLA tick (a state a real
store is in), before the timed stages' set-up (`leadflow.bench.timed`) moves data into one no store is in."""
from __future__ import annotations

import datetime as dt
import os
import statistics
import threading
import time
from pathlib import Path

SINGLE_CALLS = 40  # single register_lead calls, one after another
CALLERS, CALLS_EACH = 10, 5  # callers at once, calls each
FLOW_FILES = 10  # one-row files through the intake flow, one flow run each


def _p(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest rank; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def _quantiles(values: list[float]) -> dict:
    return {"calls": len(values), "p50": round(_p(values, 0.5), 4), "p95": round(_p(values, 0.95), 4),
            "max": round(max(values), 4) if values else 0.0,
            "mean": round(statistics.fmean(values), 4) if values else 0.0}


def _lead_rows(count: int, seed: int, at: dt.datetime, policy, first: int) -> list[dict]:
    """`count` fresh leads (new phones and references) registered at `at` (aware), as a web form sends them."""
    import random

    from leadflow.clock import zone
    from leadflow.samples.generate import _row, _sellers

    rnd, sellers = random.Random(f"bench-latency|{seed}|{first}"), _sellers()
    naive = at.astimezone(zone(policy)).replace(tzinfo=None, microsecond=0)
    return [_row(rnd, 0, naive, sellers, 0.0, phone_n=900_000_000 + first + k, ref=f"BL{first + k:07d}")
            for k in range(count)]


def measure(ctx, url: str, schema: str | None, folder: Path, seed: int) -> dict:
    """register_lead p50/p95 alone and with CALLERS at once (one shared context: the engine's pool is thread-safe,
    the gate serialises itself, the clock lock serialises the runs), and the intake flow's p95 when a server
    answers. The calls run at "now": the store's clock, which is ahead of the wall clock (run.default_as_of)."""
    from leadflow import engine as engines
    from leadflow.register import register_lead

    with ctx.engine.connect() as conn:
        clock = engines.clock(conn)
    at = clock - dt.timedelta(minutes=1)
    single: list[float] = []
    statuses: dict[str, int] = {}
    for lead in _lead_rows(SINGLE_CALLS, seed, at, ctx.policy, 0):
        t = time.perf_counter()
        out = register_lead(lead, ctx=ctx)
        single.append(time.perf_counter() - t)
        outcome = out["status"] if out["owner"] or out["status"] != "accepted" else "pooled"  # R-ALLOC-5
        statuses[outcome] = statuses.get(outcome, 0) + 1
    together: list[float] = []
    lock, errors = threading.Lock(), []
    start = threading.Barrier(CALLERS)

    def caller(k: int) -> None:
        rows = _lead_rows(CALLS_EACH, seed, at, ctx.policy, 1000 * (k + 1))
        start.wait()
        for lead in rows:
            t = time.perf_counter()
            try:
                register_lead(lead, ctx=ctx)
            except Exception as e:  # counted, not raised: one failing caller must not hide the others' figures
                with lock:
                    errors.append(type(e).__name__)
                continue
            with lock:
                together.append(time.perf_counter() - t)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(CALLERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {"register_lead": _quantiles(single) | {"statuses": statuses},
            f"register_lead x{CALLERS}": _quantiles(together) | {"errors": errors},
            "intake_flow": _flow_latency(url, schema, folder, seed, at, ctx.policy)}


def _flow_latency(url: str, schema: str | None, folder: Path, seed: int, at: dt.datetime, policy) -> dict:
    """p50/p95 of FLOW_FILES intake flow runs of one-row files, on the bench's store; skipped (with why) when no
    Prefect server answers at the project's API address (`leadflow.start`). The runs' final states are counted: a
    run that leaves its lead in the pool ends Failed by design (R-ALLOC-5, issue 9), and its time counts all the
    same."""
    from leadflow.start import prefect_env, server_answers

    prefect_env()
    api = os.environ["PREFECT_API_URL"]
    if not server_answers(api):
        return {"skipped": f"no Prefect server answers at {api.removesuffix('/api')} (start one with "
                           "`leadflow serve` to measure the intake flow)"}
    from leadflow.samples.generate import write_registrations
    from leadflow.settings import get_settings

    store = url if schema is None else f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    saved = os.environ.get("LEADFLOW_DATABASE_URL")
    os.environ["LEADFLOW_DATABASE_URL"] = store  # the flow's tasks wire their context from the settings
    get_settings.cache_clear()
    try:
        from flows.intake import intake_flow
        from tasks.context import _base

        _base.cache_clear()
        times, states = [], {}
        for k, lead in enumerate(_lead_rows(FLOW_FILES, seed, at, policy, 100_000)):
            path = write_registrations(folder / "flow" / f"lead-{k:02d}.csv", [lead])
            t = time.perf_counter()
            state = intake_flow(path=str(path), return_state=True)
            times.append(time.perf_counter() - t)
            states[state.type.value] = states.get(state.type.value, 0) + 1
        return _quantiles(times) | {"states": states}
    finally:
        if saved is None:
            os.environ.pop("LEADFLOW_DATABASE_URL", None)
        else:
            os.environ["LEADFLOW_DATABASE_URL"] = saved
        get_settings.cache_clear()
        from tasks.context import _base

        _base.cache_clear()
