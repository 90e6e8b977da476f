"""R-REG-7 end to end (issue 8, item 6): the lifecycle and hostile files, run through the command line at DEBUG
against a real Prefect server, leave no phone number of the inputs — in any written form — on stdout, stderr,
in the Prefect database (every table: log, flow_run_state, task_run_state, events, event_resources, artifact,
flow_run parameters and names …), in any file under PREFECT_HOME (persisted results included), in GX Data Docs,
the data folder, reports or exports. On SQLite and on PostgreSQL.

The hostile part: a file named with a phone (`回访13912340009.csv`), a row the database itself refuses with the
phone in its error (an injected trigger: a crashing task, its exception persisted by Prefect), a phone cell
longer than its column, two numbers and an extension in one cell."""
from __future__ import annotations

import base64
import csv
import pickle
import re
import sqlite3
import subprocess
import unicodedata
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import require_postgres
from tests.e2e.conftest import BIN, ROOT, prefect_server

pytestmark = pytest.mark.slow
SAMPLE = ROOT / "leadflow" / "samples" / "hotline-2026-03-02.csv"
ORG = ROOT / "leadflow" / "samples" / "org.yaml"
HEADER = ["来电编号", "渠道", "客户姓名", "电话", "预计成交金额", "咨询内容", "来电时间", "接听客服"]


@pytest.fixture(scope="module")
def prefect(tmp_path_factory):
    """A Prefect server on a free port with a PREFECT_HOME of its own; yields (env, home, the server's log)."""
    tmp = tmp_path_factory.mktemp("privacy")
    with prefect_server(tmp, PREFECT_LOGGING_LEVEL="DEBUG", LEADFLOW_LOG_LEVEL="DEBUG") as env:
        env.pop("LEADFLOW_DEBUG", None)
        yield env, tmp / "prefect", tmp / "server.log"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """A fresh LeadFlow store: a SQLite file, or a PostgreSQL database of its own (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'leadflow.db'}"
        return
    admin = require_postgres()
    name = f"lf_privacy_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with eng.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()


def _inject_fault(url: str) -> None:
    """The database itself refuses registration BOOM-1, quoting its phone on PostgreSQL (SQLite's RAISE takes a
    literal: there the statement's bound parameters are what could leak)."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(sa.text("CREATE TRIGGER boom BEFORE INSERT ON registrations WHEN NEW.external_ref = "
                                 "'BOOM-1' BEGIN SELECT RAISE(ABORT, 'injected fault'); END"))
        else:
            conn.execute(sa.text("CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                                 "IF NEW.external_ref = 'BOOM-1' THEN "
                                 "RAISE EXCEPTION 'injected fault, phone %, raw %', NEW.phone, NEW.raw; "
                                 "END IF; RETURN NEW; END $$"))
            conn.execute(sa.text("CREATE TRIGGER boom BEFORE INSERT ON registrations FOR EACH ROW "
                                 "EXECUTE FUNCTION boom()"))
    engine.dispose()


def _csv(path: Path, rows: list[list[str]], header=HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def _inputs(folder: Path) -> list[Path]:
    folder.mkdir()
    named = _csv(folder / "回访13912340009.csv", [
        ["V-1", "400", "钱先生", "13912340009", "30万", "回访", "2026-03-02 09:30", "k1"],
        ["V-2", "400", "孙女士", "(0571) 8765 4321", "20万", "回访", "2026-03-02 09:31", "k1"]])
    boom = _csv(folder / "boom.csv", [
        ["BOOM-0", "400", "李先生", "13700137001", "30万", "x", "2026-03-02 09:40", "k1"],
        ["BOOM-1", "400", "李女士", "+86 137-0013-7002", "30万", "x", "2026-03-02 09:41", "k1"]])
    hostile = _csv(folder / "hostile.csv", [
        ["X-1", "400", "赵先生", "13600136001 / 13600136002 / 021-61234568 转 123 / 13600136003", "30万", "两个号码",
         "2026-03-02 09:50", "k1"],
        ["X-2", "400", "=1+2", "１３６００１３６００４", "约80万", "'; DROP TABLE registrations; --",
         "2026-03-02 09:51", "k1"],
        ["X-3", "400", "@SUM(1)", "13600136005", "1,2,3", "0001-01-01 00:00", "0001-01-01 00:00", "k1"]])
    events = _csv(folder / "events.csv", [
        ["contact", "2026-03-02 10:05", "138 0013 8000", "s1", "", ""],
        ["contact", "2026-03-02 10:06", "+86 139-0013-9000", "s2", "", ""],
        ["link", "2026-03-02 10:07", "H20260302-001", "", "13512345678", "alias"],
        ["contact", "2026-03-02 10:08", "13199998888", "s1", "", ""]],  # unknown customer: waits, then refused
        header=["type", "at", "customer", "by", "phone", "relation"])
    return [named, boom, hostile, events]


def _numbers(files: list[Path]) -> set[str]:
    """Every phone number the inputs hold (cells and file names), normalised (R-REG-2)."""
    from leadflow.rules.registration import normalise_phone

    texts = [SAMPLE.read_bytes().decode("gbk")] + [f.read_text(encoding="utf-8") + f.name for f in files]
    found = set()
    for text in texts:
        for cell in re.split(r"[,\n/]|转", text):
            for part in (cell, cell.strip().strip('"')):
                number, kind = normalise_phone(part)
                if kind in ("mobile", "landline"):
                    found.add(number)
    return found


_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4}\s?){16,}[A-Za-z0-9+/=]{0,4}")
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015._·()（）\[\]+]")


def _normalised(text: str) -> str:
    """Text as the scan reads it: full-width as ASCII, JSON's \\uff1x escapes as digits, separators removed."""
    text = re.sub(r"\\uff1([0-9])", r"\1", text)
    text = unicodedata.normalize("NFKC", text)
    return _SEPARATORS.sub("", text)


def _leaks(text: str, numbers: set[str]) -> set[str]:
    flat = _normalised(text)
    return {n for n in numbers if n in flat or (n.startswith("0") and "86" + n[1:] in flat)}


class Scan:
    def __init__(self, numbers: set[str]):
        self.numbers, self.found, self.bytes, self.files, self.rows = numbers, {}, 0, 0, 0

    def text(self, where: str, text: str) -> None:
        self.bytes += len(text.encode("utf-8", "replace"))
        leaked = _leaks(text, self.numbers)
        if leaked:
            self.found[where] = sorted(leaked)

    def blob(self, where: str, data: bytes) -> None:
        """Bytes as text, and every base64 run in them decoded (Prefect's persisted results are base64 pickles)."""
        self.text(where, data.decode("utf-8", "replace"))
        for m in _BASE64.finditer(data):
            try:
                decoded = base64.b64decode(re.sub(rb"\s", b"", m.group()) + b"==")
            except ValueError:
                continue
            self.text(f"{where} (base64)", decoded.decode("utf-8", "replace"))

    def file(self, path: Path) -> None:
        self.files += 1
        self.blob(str(path), path.read_bytes())

    def tree(self, root: Path) -> None:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                self.file(p)

    def prefect_tables(self, db: Path) -> dict[str, int]:
        """Every text column of every table of Prefect's database, table by table."""
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        counts = {}
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
                counts[table] = len(rows)
                self.rows += len(rows)
                self.text(f"prefect table {table}", "\n".join(" | ".join(str(v) for v in r) for r in rows))
        finally:
            conn.close()
        return counts


def test_r_reg_7_no_phone_of_the_inputs_anywhere_after_the_lifecycle_and_hostile_files_at_debug(prefect, store_url,
                                                                                             tmp_path):
    base_env, home, server_log = prefect
    env = {**base_env, "LEADFLOW_DATA_DIR": str(tmp_path / "data"), "LEADFLOW_DATABASE_URL": store_url}
    files = _inputs(tmp_path / "in")
    numbers = _numbers(files)
    assert len(numbers) >= 20 and "13912340009" in numbers and "02161234567" in numbers
    outputs: list[tuple[str, subprocess.CompletedProcess]] = []

    def run(*args: str, ok=(0, 1)) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / "leadflow"), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        outputs.append((" ".join(args), done))
        assert done.returncode in ok, f"leadflow {' '.join(args)}: {done.stderr[-3000:]}"
        return done

    named, boom, hostile, events = files
    run("db", "upgrade", ok=(0,))
    run("org", "load", str(ORG), ok=(0,))
    _inject_fault(store_url)
    done = run("register", str(SAMPLE), str(named), str(hostile), "--as-of", "2026-03-02T11:00+08:00")
    assert "回访139****0009.csv: rows in 2" in done.stdout and "hostile.csv: rows in 3" in done.stdout
    crashed = run("register", str(boom), "--as-of", "2026-03-02T11:02+08:00")
    assert crashed.returncode == 1 and "injected fault" in crashed.stderr  # the database failed that run
    if not store_url.startswith("sqlite"):  # PostgreSQL's error quoted the phone: it reached the operator masked
        assert "phone 137****7002" in crashed.stderr
    run("record", str(events), "--as-of", "2026-03-02T11:10+08:00")
    run("dispute", "138 0013 8000", "--as-of", "2026-03-02T11:20+08:00")
    run("tick", "--as-of", "2026-03-04T11:00+08:00")
    for what, fmt in (("allocations", "csv"), ("breaches", "json"), ("fairness", "table"), ("customers", "csv")):
        run("report", what, "--since", "2026-03-01", "--until", "2026-03-05", "--format", fmt, ok=(0,))
    run("state", "--json", ok=(0,))

    probe = Scan(numbers)  # the scanner itself: it finds every number in the forms the inputs write them
    probe.text("sample", SAMPLE.read_bytes().decode("gbk"))
    for f in files:
        probe.file(f)
    probe.blob("a persisted exception", base64.encodebytes(pickle.dumps(ValueError(f"phone {sorted(numbers)[0]}"))))
    assert set().union(*probe.found.values()) == numbers and "a persisted exception (base64)" in probe.found
    if store_url.startswith("sqlite"):  # and in a binary database file, where the store keeps them
        probe.file(Path(store_url.removeprefix("sqlite:///")))
        assert probe.found[store_url.removeprefix("sqlite:///")]

    scan = Scan(numbers)
    for command, done in outputs:
        scan.text(f"stdout of leadflow {command}", done.stdout)
        scan.text(f"stderr of leadflow {command}", done.stderr)
    tables = scan.prefect_tables(home / "prefect.db")
    scan.tree(home)                                  # the database files themselves, persisted results, logs
    scan.file(server_log)                            # what the Prefect server itself logged
    scan.tree(tmp_path / "data")                     # GX Data Docs, the spool, anything else LeadFlow wrote
    for table in ("log", "flow_run", "flow_run_state", "task_run_state", "events", "event_resources", "artifact"):
        assert tables.get(table), f"Prefect's {table} table is empty: the scan would prove nothing"
    assert (tmp_path / "data" / "gx_docs").is_dir()
    assert list((home / "storage").iterdir())  # the crashed run's exception, persisted by Prefect, was scanned
    assert not list((tmp_path / "data" / "spool").rglob("*.csv"))  # the spool keeps no copy
    print(f"\nR-REG-7 scan ({store_url.split(':')[0]}): {len(numbers)} numbers, {scan.bytes:,} bytes in {scan.files} "
          f"files + {len(outputs) * 2} streams, {scan.rows:,} Prefect rows in {len(tables)} tables")
    assert scan.found == {}
