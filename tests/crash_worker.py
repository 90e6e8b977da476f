"""The crash tests' scenario, worker and yardstick (issue 8, item 3): a small store lived through five steps,
any of which a worker process can run with a failpoint set (`leadflow/failpoints.py`) so that it dies there.

The steps, on a tiny org (two departments; A, B and C grades; managers; a receptionist), clock started at T0:

- `register-1`  Mon 09:05  a registration file of 20 rows (two quarantined, one attached, one non-target for a
                           manager): 17 leads allocated;
- `events-1`    Mon 09:12  an event file of 14 rows: contacts, CRM entries, leaves for both A-grade people, a
                           contact for a customer not registered yet (waits), a row with a bad time (refused);
- `register-2`  Mon 10:00  the SLA checks since 09:05 first (R-SLA-1 breaches, pauses); then 8 rows: 2 allocated,
                           6 to the pool (A: everyone on leave; B, C: everyone paused); the waiting contact applies;
- `tick-1`      Tue 09:00  the SLA checks due overnight; the pool offered again: 3 allocated, 3 still waiting;
- `tick-2`      Tue 10:00  the 24-hour CRM deadlines fall due (R-SLA-2 breaches and fines).

    python -m tests.crash_worker URL SCHEMA|- WORKDIR STEP     # one step, as below
    python -m tests.crash_worker --serve                       # import once, fork a child per step (`Forker`)

A step runs as the production entry points run it (`engine.register` with the file's digest as its batch id, as
`tasks.intake.batch_id_for` names it; `leadflow.events.api.record_file`; `engine.tick`) and prints its summary as
JSON. A database error ends it as the command line ends one: `leadflow.store.transient.database_sentence` on
stderr, exit 1. `fingerprint` and `accounting_problems` say whether a store recovered: equal to a reference store
that lived the same steps uncrashed, every row accounted for once, nothing doubled.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday

DEPARTMENTS = [{"id": "d1"}, {"id": "d2"}]
PEOPLE = [{"id": "m1", "department": "d1", "role": "manager"},
          {"id": "m2", "department": "d2", "role": "manager"},
          {"id": "a1", "department": "d1", "role": "sales", "grade": "A", "rank": 1},
          {"id": "b1", "department": "d1", "role": "sales", "grade": "B", "rank": 1},
          {"id": "c1", "department": "d1", "role": "sales", "grade": "C", "rank": 1},
          {"id": "c2", "department": "d1", "role": "sales", "grade": "C", "rank": 2},
          {"id": "a2", "department": "d2", "role": "sales", "grade": "A", "rank": 1},
          {"id": "b2", "department": "d2", "role": "sales", "grade": "B", "rank": 1},
          {"id": "c3", "department": "d2", "role": "sales", "grade": "C", "rank": 1},
          {"id": "k1", "department": "d1", "role": "receptionist"}]

REG_HEADER = "channel,name,phone,amount,inquiry,registered_at,registered_by,target,region,external_ref\n"
AMOUNTS = ["90万", "50万", "25万", "8万", "25万"]  # tiers A, B, C, D, C


def _reg_line(i: int, at: str, amount: str, phone: str | None = None, target: str = "是") -> str:
    phone = phone or f"139{i:04d}{i:04d}"
    return f"hotline,客户{i},{phone},{amount},展厅绿植,{at},k1,{target},上海,TB-{i:03d}\n"


def registration_file_1() -> str:
    lines = [_reg_line(i, f"2026-03-02 09:0{i % 5}", AMOUNTS[i % 5]) for i in range(1, 18)]
    lines.append(_reg_line(18, "2026-03-02 09:04", "30万", phone="12345"))        # phone_format
    lines.append(_reg_line(19, "2026-03-02 09:04", "abc"))                         # amount
    lines.append(_reg_line(20, "2026-03-02 09:04", "50万", phone="139 0003 0003"))  # R-REG-5: attached to 3
    lines[5] = _reg_line(6, "2026-03-02 09:01", "50万", target="否")                # non-target: a manager's
    return REG_HEADER + "".join(lines)


def registration_file_2() -> str:
    rows = [(901, "95万"), (902, "85万"), (903, "120万"), (904, "45万"), (905, "22万"), (906, "6万"),
            (907, "60万"), (908, "30万")]
    return REG_HEADER + "".join(_reg_line(i, "2026-03-02 09:55", amount) for i, amount in rows)


def event_file_1() -> str:
    rows = ["type,at,customer,by,person,kind"]
    rows += [f"contact,2026-03-02 09:08,TB-{i:03d},,," for i in range(1, 9)]
    rows += ["crm_entry,2026-03-02 09:10,TB-001,,,", "crm_entry,2026-03-02 09:11,TB-002,,,",
             "leave,2026-03-02 09:10,,,a1,personal", "leave,2026-03-02 09:10,,,a2,sick",
             "contact,2026-03-02 09:11,TB-901,,,",       # waits: TB-901 comes with the second file
             "contact,2026-03-02 99:08,TB-009,,,"]       # bad_time
    return "\n".join(rows) + "\n"


FILES = {"register-1": ("来电登记-1.csv", registration_file_1), "events-1": ("400导出-1.csv", event_file_1),
         "register-2": ("来电登记-2.csv", registration_file_2)}
STEPS = [("register-1", T0 + dt.timedelta(minutes=5)), ("events-1", T0 + dt.timedelta(minutes=12)),
         ("register-2", T0 + dt.timedelta(hours=1)), ("tick-1", T0 + dt.timedelta(days=1)),
         ("tick-2", T0 + dt.timedelta(days=1, hours=1))]
AS_OF = dict(STEPS)
PHONES = [f"139{i:04d}{i:04d}" for i in list(range(1, 21)) + list(range(901, 909))]


def write_files(workdir: Path) -> None:
    """The step's input files (UTF-8), the same bytes every time: a file's digest is its batch id."""
    for name, content in FILES.values():
        (workdir / name).write_text(content(), encoding="utf-8")


def store_context(url: str, schema: str | None):
    """A production stage context on one store: the engine, the default policy, the real GX gate."""
    from leadflow.policy import load_policy
    from leadflow.stages.context import StageContext
    from leadflow.store.db import make_engine
    from leadflow.wiring import make_gate

    policy = load_policy()
    return StageContext(engine=make_engine(url, schema=schema), policy=policy, gate=make_gate(url, schema, policy))


def prepare(ctx) -> None:
    """A fresh store: every table, the org, and the clock started at T0."""
    from leadflow import engine
    from leadflow.stages.people import load_org
    from leadflow.store.db import create_all

    create_all(ctx.engine)
    with ctx.engine.begin() as conn:
        load_org(conn, DEPARTMENTS, PEOPLE)
    engine.tick(ctx, T0)


def perform(ctx, workdir: Path, step: str) -> dict:
    """Run one step through the production entry points; its summary (counts only, JSON-able)."""
    from leadflow import engine
    from leadflow.events.api import record_file
    from leadflow.intake.readers import read_registration_file
    from tasks.intake import batch_id_for

    as_of = AS_OF[step]
    if step.startswith("register"):
        path = workdir / FILES[step][0]
        batch_id, digest = batch_id_for(str(path))
        s = engine.register(ctx, batch_id, path.name, read_registration_file(path), as_of, digest)
        return {k: s.get(k) for k in ("rows_in", "accepted", "attached", "quarantined", "already_registered")} | {
            "allocated": s["allocation"]["allocated"], "pooled": s["allocation"]["pooled"],
            "allocated_first": (s["run"].get("pool_before") or {}).get("allocated", 0)}
    if step.startswith("events"):
        s = record_file(workdir / FILES[step][0], as_of=as_of, operator="crash-test", ctx=ctx)
        return {k: s.get(k) for k in ("rows_in", "applied", "duplicate", "waiting", "refused", "already_recorded")}
    out = engine.tick(ctx, as_of)
    return {"stages_run": len(out["timed"]), "allocated": out["pool"]["allocated"], "pooled": out["pool"]["pooled"]}


# --- what a recovered store must look like ------------------------------------------------------------
WALL_CLOCK = {("ledger", "recorded_at"), ("ledger", "flow_run_id")}  # when it was written, not what happened
_IN_TEXT = re.compile(r"\b(registration|customer) (\d+)\b")
_BREACH_KEY = re.compile(r"^(\d+):(R-[A-Z]+-\d+)$")


def fingerprint(conn) -> dict[str, list[tuple]]:
    """Every table's rows with surrogate ids replaced by natural keys, sorted: two stores that lived the same
    steps have equal fingerprints, however many sequence values a crashed transaction used up (PostgreSQL)."""
    from leadflow.store.models import Base
    from leadflow.store.references import CHECKED

    keys = _natural_keys(conn)
    out = {}
    for table in Base.metadata.sorted_tables:
        rows = []
        for r in conn.execute(table.select()).mappings():
            row = []
            for col in table.columns:
                if (table.name, col.name) in WALL_CLOCK or col.primary_key and col.autoincrement is True:
                    continue  # a surrogate id: its value depends on the sequence, not on what happened
                target = next((fk.column.table.name for fk in col.foreign_keys), None) or \
                    CHECKED.get(table.name, {}).get(col.name)  # a reference checked per batch (migration 0007)
                value = r[col.name]
                if target in keys and value is not None:
                    value = keys[target].get(value, f"?{value}")
                row.append((col.name, _norm(value, keys)))
            rows.append(tuple(row))
        out[table.name] = sorted(rows, key=repr)
    return out


def _natural_keys(conn) -> dict[str, dict[int, str]]:
    from sqlalchemy import text

    customers = {cid: ref for cid, ref in conn.execute(text(
        "SELECT customer_id, external_ref FROM registrations WHERE status = 'accepted'"))}
    registrations = {i: f"{b[:12]}#{n}" for i, b, n in conn.execute(text(
        "SELECT id, batch_id, row_number FROM registrations"))}
    assignments = {i: f"{customers.get(c, c)}@{s}:{p}" for i, c, s, p in conn.execute(text(
        "SELECT id, customer_id, started_at, person_id FROM assignments"))}
    events = {i: f"{b[:12]}#{n}" for i, b, n in conn.execute(text("SELECT id, batch_id, row_number FROM events"))}
    return {"customers": customers, "registrations": registrations, "assignments": assignments, "events": events}


def _norm(value, keys):
    if isinstance(value, str):
        m = _BREACH_KEY.match(value)
        if m:
            return f"{keys['assignments'].get(int(m[1]), '?' + m[1])}:{m[2]}"
        return _IN_TEXT.sub(lambda m: f"{m[1]} {keys[m[1] + 's'].get(int(m[2]), '?' + m[2])}", value)
    if isinstance(value, dict):
        return tuple(sorted((k, _norm(keys["registrations"].get(v, v) if k == "registration" else
                                       keys["customers"].get(v, v) if k in ("customer", "customer_id") else v, keys))
                            for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_norm(v, keys) for v in value)
    return value


def accounting_problems(conn, workdir: Path) -> list[str]:
    """Every row accounted for exactly once, and nothing doubled: the problems found (none: an empty list).

    Intake: per batch rows in = accepted + attached + quarantined = its registrations = the file's data lines,
    and none left staged. Events: per delivery rows in = applied + duplicate + waiting + refused, none pending.
    At most one open assignment per customer, one assignment per customer and start, one breach per key, one
    fine per source (ledger entries doubled show against the reference's, in `fingerprint`)."""
    from sqlalchemy import text

    q = lambda sql: conn.execute(text(sql)).all()  # noqa: E731
    problems = []
    lines = {batch: len((workdir / name).read_text(encoding="utf-8").splitlines()) - 1
             for batch, name in _batch_files(workdir)}
    for bid, rows_in, acc, att, qua, finished, n, staged in q(
            "SELECT b.id, b.rows_in, b.accepted, b.attached, b.quarantined, b.finished_at, count(r.id), "
            "sum(CASE WHEN r.status = 'staged' THEN 1 ELSE 0 END) FROM intake_batches b "
            "LEFT JOIN registrations r ON r.batch_id = b.id GROUP BY b.id, b.rows_in, b.accepted, b.attached, "
            "b.quarantined, b.finished_at"):
        if finished is None or rows_in != acc + att + qua or n != rows_in or staged or lines.get(bid) != n:
            problems.append(f"intake batch {bid}: rows in {rows_in} (file {lines.get(bid)}), accepted {acc} + "
                            f"attached {att} + quarantined {qua}, {n} registrations, {staged} staged, "
                            f"finished {finished}")
    for bid, rows_in, app, dup, wait, ref, n, pending in q(
            "SELECT b.id, b.rows_in, b.applied, b.duplicate, b.waiting, b.refused, count(e.id), "
            "sum(CASE WHEN e.status = 'pending' THEN 1 ELSE 0 END) FROM event_batches b "
            "LEFT JOIN events e ON e.batch_id = b.id GROUP BY b.id, b.rows_in, b.applied, b.duplicate, "
            "b.waiting, b.refused"):
        if rows_in != app + dup + wait + ref or n != rows_in - dup or pending:
            problems.append(f"event delivery {bid}: rows in {rows_in} = applied {app} + duplicate {dup} + "
                            f"waiting {wait} + refused {ref}? {n} events, {pending} pending")
    doubled = {
        "open assignments": "SELECT customer_id FROM assignments WHERE ended_at IS NULL GROUP BY customer_id",
        "assignments": "SELECT customer_id FROM assignments GROUP BY customer_id, started_at",
        "breaches": "SELECT key FROM breaches GROUP BY key",
        "fines": "SELECT source_key FROM fines GROUP BY source_key",
    }  # ledger entries: two breaches of one person at one deadline are two equal entries; `fingerprint` counts
    for what, sql in doubled.items():
        n = q(f"SELECT count(*) FROM ({sql} HAVING count(*) > 1) AS d")[0][0]
        if n:
            problems.append(f"{n} {what} twice")
    return problems


def _batch_files(workdir: Path):
    from tasks.intake import batch_id_for

    for step in ("register-1", "register-2"):
        yield batch_id_for(str(workdir / FILES[step][0]))[0], FILES[step][0]


def differences(got: dict, want: dict, limit: int = 6) -> list[str]:
    """Per table, the rows one fingerprint has and the other lacks (a few of each; phones masked, R-REG-7)."""
    from collections import Counter

    from leadflow.rules.registration import mask_phones_in_text

    out = []
    for table in sorted(set(got) | set(want)):
        g, w = Counter(got.get(table, [])), Counter(want.get(table, []))
        extra, missing = list((g - w).elements()), list((w - g).elements())
        if extra or missing:
            out.append(mask_phones_in_text(f"{table}: {len(extra)} extra {extra[:limit]}, "
                                           f"{len(missing)} missing {missing[:limit]}"))
    return out


class Forker:
    """A warm `python -m tests.crash_worker --serve` process: `start(argv, env, out)` forks a child for a step,
    `wait()` its return code (-9: SIGKILL). Imports are paid once, not once per crash."""

    def __init__(self):
        import subprocess

        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADFLOW_FAILPOINT", "PGAPPNAME"))}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.crash_worker", "--serve"], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline()
        if "ready" not in ready:
            raise RuntimeError(f"the crash worker did not start (exit {self.proc.wait()})")

    def start(self, argv: list[str], env: dict[str, str], out: Path) -> int:
        """Fork a child running `main(argv)` with `env`; its pid."""
        self.out, self.pid = out, None
        self.proc.stdin.write(json.dumps({"argv": argv, "env": env, "out": str(out)}) + "\n")
        self.proc.stdin.flush()
        self.pid = json.loads(self._line(30))["pid"]
        return self.pid

    def _line(self, timeout: float) -> str:
        import select

        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            if getattr(self, "pid", None):
                os.kill(self.pid, signal.SIGKILL)  # our own child, stuck: the test fails, the suite goes on
            raise TimeoutError(f"the crash worker's child did not finish within {timeout:.0f} s")
        return self.proc.stdout.readline()

    def wait(self, timeout: float = 120) -> tuple[int, str, str]:
        """(return code, stdout, stderr) of the child started last."""
        answer = json.loads(self._line(timeout))
        read = lambda s: Path(f"{self.out}.{s}").read_text(encoding="utf-8", errors="replace")  # noqa: E731
        return answer["returncode"], read("stdout"), read("stderr")

    def run(self, argv: list[str], env: dict[str, str], out: Path) -> tuple[int, str, str]:
        self.start(argv, env, out)
        return self.wait()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    @classmethod
    def shared(cls) -> Forker:
        """One warm worker for the whole test process, closed when it exits."""
        if _SHARED.get("forker") is None or _SHARED["forker"].proc.poll() is not None:
            import atexit

            _SHARED["forker"] = cls()
            atexit.register(_SHARED["forker"].close)
        return _SHARED["forker"]


_SHARED: dict[str, Forker] = {}


def main(argv: list[str]) -> int:
    """Run one step (URL SCHEMA|- WORKDIR STEP); 0 done, 1 a database error, 2 any other error (one line)."""
    from sqlalchemy.exc import SQLAlchemyError

    from leadflow.errors import one_line
    from leadflow.rules.registration import mask_phones_in_text
    from leadflow.store.transient import database_sentence

    url, schema, workdir, step = argv
    ctx = store_context(url, None if schema == "-" else schema)
    try:
        print(json.dumps(perform(ctx, Path(workdir), step)))
    except SQLAlchemyError as e:  # as `leadflow` ends on a database error (leadflow/cli.py)
        print(f"leadflow: {database_sentence(e)}", file=sys.stderr)
        return 1
    except Exception as e:
        print(f"leadflow: {mask_phones_in_text(one_line(e))}", file=sys.stderr)
        return 2
    return 0


def serve() -> None:
    """`--serve`: import once, then fork a child per job line read on stdin (importing Prefect and Great
    Expectations takes seconds; a kill -9 must cost only the child). A job is {"argv", "env", "out"}: the child
    takes `env`, writes its stdout and stderr to `out`.stdout / `out`.stderr and runs `main(argv)`. Answers one
    line per job: {"returncode" (-9 for SIGKILL, as subprocess reports it), "seconds"}."""
    import os
    import threading
    import time

    import expectations.gate  # noqa: F401  the heavy imports, shared by every child
    import leadflow.engine  # noqa: F401
    import leadflow.events.api  # noqa: F401
    import tasks.intake  # noqa: F401

    assert threading.active_count() == 1, "a thread would not survive the fork"
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(job)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status),
                          "seconds": round(time.monotonic() - started, 3)}), flush=True)


def _child(job: dict) -> None:
    import os
    import traceback

    rc = 70
    try:
        os.environ.update(job["env"])
        for fd, suffix in ((1, "stdout"), (2, "stderr")):
            f = os.open(f"{job['out']}.{suffix}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(f, fd)
            os.close(f)
        rc = main(job["argv"])
    except BaseException:  # a bug in the worker itself: the test shows the traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        sys.exit(main(sys.argv[1:]))
