"""Benchmark: registration intake + allocation of N generated leads, on SQLite or PostgreSQL.

    .venv/bin/python benchmarks/bench_intake.py --leads 50000 [--database-url postgresql://postgres@127.0.0.1:5432/test]

Runs the same stage code the intake flow runs (stage -> gate -> decide -> allocate), without Prefect,
on a fresh database (a temporary SQLite file or a fresh PostgreSQL schema), and prints the seconds
and rows per second of each step. Figures go in the notes, never in timed tests.
"""
from __future__ import annotations

import argparse
import datetime as dt
import time

from leadflow.policy import load_policy
from leadflow.samples.generate import leads, org
from leadflow.simulate import replay_database
from leadflow.stages import intake
from leadflow.stages.allocation import allocate_pool
from leadflow.stages.context import StageContext
from leadflow.stages.people import load_org
from leadflow.store.db import create_all
from leadflow.wiring import make_gate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=20000)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    rows = leads(dt.date(2026, 7, 1), args.leads)
    for i, r in enumerate(rows, start=1):
        r["row_number"] = i
    policy = load_policy()
    now = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    with replay_database(args.database_url) as (engine, url, schema):
        create_all(engine)
        ctx = StageContext(engine=engine, policy=policy, gate=make_gate(url, schema, policy))
        o = org()
        with engine.begin() as conn:
            load_org(conn, o["departments"], o["people"])
        timings = {}
        t = time.perf_counter()
        with engine.begin() as conn:
            intake.stage_rows(conn, ctx, "bench", "bench", rows, now)
        timings["stage (normalise + bulk insert)"] = time.perf_counter() - t
        t = time.perf_counter()
        gate = ctx.gate("intake", batch_id="bench")
        timings["gate (GX intake suite)"] = time.perf_counter() - t
        t = time.perf_counter()
        with engine.begin() as conn:
            summary = intake.decide(conn, ctx, "bench", dict(gate.quarantined), now)
        timings["decide (accept / attach / quarantine)"] = time.perf_counter() - t
        t = time.perf_counter()
        with engine.begin() as conn:
            alloc = allocate_pool(conn, ctx, now)
        timings["allocate (rotation, bulk write)"] = time.perf_counter() - t
    total = sum(timings.values())
    print(f"{args.leads} leads on {engine.dialect.name}: accepted {summary['accepted']}, attached "
          f"{summary['attached']}, quarantined {summary['quarantined']}, allocated {alloc['allocated']}")
    for step, s in timings.items():
        print(f"  {step:42s} {s:7.2f} s  {args.leads / s:9.0f} rows/s")
    print(f"  {'total':42s} {total:7.2f} s  {args.leads / total:9.0f} rows/s")


if __name__ == "__main__":
    main()
