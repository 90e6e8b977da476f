"""The validation gate (R-VAL-1..3): run a stage's expectation suite on registration records in the
database, through a Great Expectations SQL datasource, and split the rows into passed and
quarantined (with reason codes).

    result = run_gate("sqlite:///store.db", "intake", batch_id="b-2026-11-23")   # the configured policy
    gate = gate_for(url, schema=None, docs_dir=None, policy=policy)   # what the pipeline wires in
    result = gate("tiering", ids=[1, 2, 3])

Speed: Great Expectations' import and context set-up cost seconds, so one ephemeral context and
one SQL datasource are kept per (url, schema, docs_dir, suite values) in the process and reused by
every call (the suite values are what the suites read of the policy, its channels: a gate under a
policy with other channels gets its own suites).

Validating once per record version (issue 10): a GX validation costs about 57 ms at best whatever its
row count, and every suite is a set of row-wise expectations, so a record's outcome is a function of
what its suite reads of it — the suite module's `SELECT` outputs (a column the suite only tests for
NULL is read as 1/NULL, `expectations.given`, so records differing only in a customer id or a time
share one outcome) under the suite values. A gate run therefore (1) reads the batch's (id, key) pairs
in one set-based query, (2) takes the outcomes of known keys from a process-wide cache, (3) validates
the unseen keys in ONE GX call — a query asset over those distinct contents written out as literal
rows, each standing as its lowest id — and caches them, and (4) maps the outcomes back to the ids. The
GateResult (passed, quarantined and their reasons, expectations_failed counted per row, every R-VAL-3
batch error) is the one a validation of every row would give. `prevalidate` fills the cache ahead of
the runs (a replay validates all of a scenario's registrations in one call per suite). Outcomes are
shared by every target with the same suite values and Data Docs site (they hold in any database);
they are dropped by `clear_cache`. `stats()` counts the GX calls and their seconds. Thread-safe: a
target validates under its lock, so a key is validated once.

Data Docs (docs_dir): a page is built for each GX call, listing the contents validated by it (by their
standing ids; a negative id is a prevalidated content not in the store). A gate run whose contents
were all known validates nothing new and builds no new page: its `docs_path` is the site's index,
whose pages hold the validations its outcomes came from.

Next (replaying recorded history under another policy, reusing the recorded validation outcomes): a
recorded run's outcomes can seed the cache without GX, because an outcome depends only on the key and
the suite values. The store would keep, per validation, the suite, the suite values and each distinct
key with its reason codes and failed expectations (a small table, written where `judge` caches a new
outcome); a replay under another policy loads the rows whose suite values equal its own into
`_OUTCOMES` before it starts (the same entry point as `prevalidate`), so only contents the recorded
history never showed under those suites, or suites the new policy changes (other channels), reach GX.
A change of a suite module's code must change the recorded suite identity (e.g. a hash of the suite's
expectation configurations kept beside the suite values), so stale outcomes are never reused.

Privacy (R-REG-7): the query never selects `phone`, `raw` or `name` (a guard refuses a suite that
tries), so no phone can reach the validation results, the GateResult or the Data Docs.

Batch failures (R-VAL-3) are reported in `GateResult.batch_error` (one sentence), never raised:
an empty batch, requested ids that are not in the store, a missing table or column, an expectation
that could not be evaluated, or too many bad rows. The caller must then not run the stage. Rows in
= passed + quarantined holds in every case: when a column is missing the batch's rows are all
quarantined with reason `unvalidated`. A database that cannot be reached, an unknown stage, or a
call without `batch_id` and `ids` raises `GateError`.
"""
from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

# Quiet by default: GX's own log records below WARNING are not wanted in flow logs. An application
# that configured the "great_expectations" logger itself keeps its setting.
_gx_logger = logging.getLogger("great_expectations")
if _gx_logger.level == logging.NOTSET:
    _gx_logger.setLevel(logging.WARNING)

import great_expectations as gx  # noqa: E402
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import (  # noqa: E402
    ExpectationSuiteIdentifier, ValidationResultIdentifier,
)

from expectations import STAGES, stage_module, suite_values  # noqa: E402
from leadflow.policy import Policy  # noqa: E402

__all__ = ["GateError", "GateResult", "run_gate", "gate_for", "prevalidate", "clear_cache", "stats", "reset_stats",
           "STAGES", "UNVALIDATED"]

log = logging.getLogger("leadflow.gate")

TABLE = "registrations"  # leadflow.store.models.Registration.__tablename__
# Columns that hold or may hold a phone or a person's free text: never selected (R-REG-7).
_FORBIDDEN = re.compile(r"\b(phone|raw|name)\b", re.IGNORECASE)
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SITE = "leadflow"
DOCS_RESULTS_DIR = "_results"  # GX's validation results, under docs_dir (never in the repo)
DOCS_INDEX_LIMIT = 100  # validation runs listed on the Data Docs index (latest first)
_BULKY = ("unexpected_list", "unexpected_index_list", "partial_unexpected_list",
          "partial_unexpected_index_list", "partial_unexpected_counts")
# The reason given to the rows of a batch whose suite could not run at all (a missing column).
UNVALIDATED = "unvalidated"


_STATS = {"calls": 0, "seconds": 0.0}
_STATS_LOCK = threading.Lock()


def stats() -> dict[str, Any]:
    """How many Great Expectations validations this process ran and their wall time:
    {"calls": int, "seconds": float} (a gate run answered from the cache adds nothing)."""
    with _STATS_LOCK:
        return dict(_STATS)


def reset_stats() -> None:
    """Set the counts of `stats()` back to zero (a benchmark's measured part starts)."""
    with _STATS_LOCK:
        _STATS.update(calls=0, seconds=0.0)


class GateError(RuntimeError):
    """The gate could not run at all (bad arguments, a database that cannot be reached)."""


@dataclass
class GateResult:
    """The outcome of one gate run. When `batch_error` is set the stage must not run (R-VAL-3);
    `passed` / `quarantined` are then still filled where the rows could be validated."""

    stage: str
    rows_in: int = 0
    passed: list[int] = field(default_factory=list)
    quarantined: dict[int, list[str]] = field(default_factory=dict)
    batch_error: str | None = None
    docs_path: str | None = None
    expectations_failed: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.batch_error is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# targets: one engine, GX context and datasource per (url, schema, docs_dir), reused


def _resolve_url(url: str) -> sa.URL:
    """A SQLAlchemy URL; a driverless postgresql:// falls back to psycopg2 when psycopg (SQLAlchemy
    2.1's default) is not installed."""
    try:
        parsed = make_url(url)
    except Exception:
        raise GateError("the database URL is not a valid SQLAlchemy URL.") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise GateError(f"unsupported database '{backend}' for the validation gate: use sqlite or postgresql.")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise GateError("the validation gate needs a SQLite file, not an in-memory database.")
    if parsed.drivername == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def _where(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True).split("@")[-1]


class _Target:
    def __init__(self, url: str, schema: str | None, docs_dir: Path | None, policy: Policy):
        self.url = _resolve_url(url)
        self.policy = policy  # the suites are built from it
        self.backend = self.url.get_backend_name()
        if schema is not None:
            if self.backend != "postgresql":
                raise GateError("a schema can only be given for PostgreSQL.")
            if not _SCHEMA.fullmatch(schema):
                raise GateError(f"invalid schema name {schema!r}.")
        self.schema = schema
        self.table_sql = f'"{schema}".{TABLE}' if schema else TABLE
        self.docs_dir = docs_dir
        # outcomes are shared by every target with the same suites and Data Docs site (see `_known`)
        self.scope = (str(docs_dir) if docs_dir is not None else None, suite_values(policy))
        if self.backend == "sqlite":
            self.engine: Engine = sa.create_engine(self.url, connect_args={"timeout": 30})
        else:
            self.engine = sa.create_engine(self.url, connect_args={"connect_timeout": 5}, pool_pre_ping=True)
        self.lock = threading.RLock()
        self.counter = itertools.count(1)
        self.suites: dict[str, gx.ExpectationSuite] = {}
        self.docs_suites_built = False
        self.context = gx.get_context(mode="ephemeral", project_config=self._config())
        conn_str = self.url.render_as_string(hide_password=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.backend == "sqlite":
                self.datasource = self.context.data_sources.add_sqlite(name="leadflow", connection_string=conn_str)
            else:
                self.datasource = self.context.data_sources.add_postgres(name="leadflow", connection_string=conn_str)

    def _config(self) -> DataContextConfig:
        """An ephemeral context. With a docs_dir, the validation results are kept as files under
        docs_dir/_results, so a later process's Data Docs build keeps (and lists) the pages of earlier
        ones: GX's index builder deletes pages whose results its own store does not hold."""
        defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
        sites: dict = {}
        if self.docs_dir is not None:
            defaults.stores[defaults.validation_results_store_name]["store_backend"] = {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(self.docs_dir / DOCS_RESULTS_DIR),
            }
            sites[_SITE] = {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(self.docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                       "validation_results_limit": DOCS_INDEX_LIMIT},
            }
        return DataContextConfig(
            store_backend_defaults=defaults,
            data_docs_sites=sites,
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )

    def suite(self, stage: str) -> tuple[gx.ExpectationSuite, Any]:
        module = stage_module(stage)
        if not self.suites:
            # every stage's suite at once: with Data Docs, the index drops the page of a suite its
            # context does not hold, so all six are added whatever stage runs first
            for name in STAGES:
                mod = stage_module(name)
                for out, expr in mod.SELECT.items():  # R-REG-7: by construction, not by luck
                    if _FORBIDDEN.search(out) or _FORBIDDEN.search(expr):
                        raise GateError(f"the {name} suite selects a forbidden column ({out}); "
                                        "phones never leave the store.")
                built = mod.suite(self.policy)
                self.suites[name] = self.context.suites.add(built) if self.docs_dir is not None else built
        return self.suites[stage], module

    # -- the rows of the batch, before GX ------------------------------------------------------

    def select_rows(self, where: str, module: Any) -> tuple[list[tuple[int, tuple]], str | None]:
        """The batch's rows as (id, key): the key is what the suite reads of the row (its `SELECT` outputs, in
        order), so two rows with one key have one outcome. With a message, and no keys, when the table or a
        required column is missing. One set-based query."""
        query = f"SELECT {_select_sql(module)} FROM {self.table_sql} WHERE {where}"
        try:
            with self.engine.connect() as conn:
                return [(int(r[0]), tuple(r[1:])) for r in conn.execute(sa.text(query))], None
        except (sa.exc.ProgrammingError, sa.exc.OperationalError) as e:
            problem = self._schema_problem(module.REQUIRED)
            if problem:
                return [(i, ()) for i in self._ids_only(where)], problem
            raise GateError(f"cannot read the registrations at {_where(self.url)} ({type(e).__name__}).") from None

    def _ids_only(self, where: str) -> list[int]:
        """The batch's ids when the suite's columns are not all there (empty if even that fails)."""
        try:
            with self.engine.connect() as conn:
                return [int(i) for i in conn.execute(sa.text(f"SELECT id FROM {self.table_sql} WHERE {where}")).scalars()]
        except Exception:
            return []

    def _schema_problem(self, required: Iterable[str]) -> str | None:
        try:
            insp = sa.inspect(self.engine)
            if not insp.has_table(TABLE, schema=self.schema):
                return f"the {TABLE} table does not exist in the database."
            have = {c["name"] for c in insp.get_columns(TABLE, schema=self.schema)}
        except Exception:
            return None
        missing = [c for c in ("id", *required) if c not in have]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            return f"the {TABLE} table is missing the required column{plural} {', '.join(missing)}."
        return None

    # -- GX ------------------------------------------------------------------------------------

    def validate(self, stage: str, suite: gx.ExpectationSuite, module: Any, unseen: dict[int, tuple]):
        """One GX validation of the distinct record contents `unseen` ({representative id: key}): a query asset
        over those rows written out as literals beneath a typed, empty select of the table (so every column has
        the table's type on PostgreSQL, even an all-NULL one). Returns GX's results and the batch id."""
        query = self._distinct_rows_sql(module, unseen)
        result_format = {
            "result_format": "COMPLETE",
            "unexpected_index_column_names": ["id"],
            "return_unexpected_index_query": False,
            # GX truncates a SQL unexpected_index_list at partial_unexpected_count (default 20)
            "partial_unexpected_count": max(len(unseen), 1),
        }
        asset_name = f"{stage}_{next(self.counter)}"
        with self.lock:
            started = time.perf_counter()
            asset = self.datasource.add_query_asset(name=asset_name, query=query)
            try:
                batch = asset.add_batch_definition_whole_table("batch").get_batch()
                results = batch.validate(suite, result_format=result_format)
            finally:
                self.datasource.delete_asset(asset_name)
                with _STATS_LOCK:
                    _STATS["calls"] += 1
                    _STATS["seconds"] += time.perf_counter() - started
        return results, batch.id

    def _distinct_rows_sql(self, module: Any, unseen: dict[int, tuple]) -> str:
        outs = ["id", *module.SELECT]
        typed = f"SELECT {_select_sql(module)} FROM {self.table_sql} WHERE 1 = 0"
        dialect = self.engine.dialect
        rows = [[_literal(rep, dialect), *(_literal(v, dialect) for v in key)] for rep, key in sorted(unseen.items())]
        if self.backend == "sqlite":
            # a VALUES list is not bound by SQLite's 500-term limit on compound selects; SQLite types by value
            values = ", ".join("(" + ", ".join(r) + ")" for r in rows)
            return f"{typed} UNION ALL SELECT * FROM (VALUES {values}) AS gate_rows"
        # PostgreSQL types a UNION's literals by its first, typed branch (a VALUES list would type them alone)
        return " UNION ALL ".join([typed, *("SELECT " + ", ".join(f"{v} AS {c}" for v, c in zip(r, outs))
                                            for r in rows)])

    def judge(self, stage: str, suite: gx.ExpectationSuite, module: Any, rows: list[tuple[int, tuple]],
              label: str) -> tuple[dict[tuple, _Outcome], str | None, str | None]:
        """The outcome of every distinct key among `rows`: from the cache, and the unseen keys in one GX call
        (their lowest id stands for them in the results and the Data Docs). Returns (outcome by key, a message
        when GX's results cannot be trusted — nothing is then cached —, the Data Docs index when a page was
        built). Under the target's lock: a key is validated once however many threads ask."""
        reps: dict[tuple, int] = {}
        for i, key in rows:
            if key not in reps or i < reps[key]:
                reps[key] = i
        with self.lock:
            known = _known(self.scope, stage)
            out = {key: known[key] for key in reps if key in known}
            unseen = {rep: key for key, rep in reps.items() if key not in out}
            if not unseen:
                return out, None, None
            results, batch_identifier = self.validate(stage, suite, module, unseen)
            by_rep, untrusted = _read_results(stage, results)
            new = {key: by_rep.get(rep, _PASSED) for rep, key in unseen.items()}
            if untrusted is None:
                if len(known) + len(new) > CACHE_LIMIT:
                    known.clear()  # a bound on memory; the outcomes stay right, only their reuse starts over
                known.update(new)
            docs = self.build_docs(stage, suite, results, batch_identifier, label) if self.docs_dir else None
        return {**out, **new}, untrusted, docs

    def keys_of(self, module: Any, records: list[dict]) -> list[tuple]:
        """The keys of record contents that are not in the store (column -> value, as a record would be
        stored): the suite's SELECT computed by the database over them written out as literals, so a key is
        exactly what `select_rows` reads of such a record. One query."""
        if not records:
            return []
        cols = ["id", *module.REQUIRED]
        dialect = self.engine.dialect
        rows = [[_literal(-n, dialect), *(_literal(_stored(r.get(c)), dialect) for c in module.REQUIRED)]
                for n, r in enumerate(records, start=1)]
        typed = f"SELECT {', '.join(cols)} FROM {self.table_sql} WHERE 1 = 0"
        if self.backend == "sqlite":
            literal = f"{typed} UNION ALL SELECT * FROM (VALUES {', '.join('(' + ', '.join(r) + ')' for r in rows)})"
        else:
            literal = " UNION ALL ".join([typed, *("SELECT " + ", ".join(f"{v} AS {c}" for v, c in zip(r, cols))
                                                   for r in rows)])
        query = f"SELECT {_select_sql(module)} FROM ({literal}) AS {TABLE}"
        with self.engine.connect() as conn:
            return [tuple(r[1:]) for r in conn.execute(sa.text(query))]

    def build_docs(self, stage: str, suite, results, batch_identifier: str, label: str) -> str:
        """Render this run's validation page (and, once per process, the suite pages) and the index.
        The stored copy is then slimmed to its counts: the page is rendered, and the index, which
        rereads the latest results on every build, only needs their status."""
        run_id = RunIdentifier(run_name=f"{stage}-{label}", run_time=dt.datetime.now(dt.timezone.utc))
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
            run_id=run_id, batch_identifier=batch_identifier)
        results.meta["run_id"] = run_id
        store = self.context.validation_results_store
        resources: list = [key]
        if not self.docs_suites_built:
            resources += [ExpectationSuiteIdentifier(name=s.name) for s in self.suites.values()]
        with self.lock:
            store.set(key, results)
            self.context.build_data_docs(site_names=[_SITE], resource_identifiers=resources)
            self.docs_suites_built = True
            for r in results.results:
                r.result = {k: v for k, v in (r.result or {}).items() if k not in _BULKY}
            store.set(key, results)
        return str(self.docs_dir / "index.html")

    def dispose(self) -> None:
        """Close every pooled connection: ours, the datasource's and its execution engine's."""
        self.engine.dispose()
        for get in (lambda: self.datasource.get_engine(),
                    lambda: self.datasource.get_execution_engine().engine):
            try:
                get().dispose()
            except Exception:  # a datasource that never connected
                pass


_TARGETS: dict[tuple, _Target] = {}
_TARGETS_LOCK = threading.Lock()


def _key(url: str, schema: str | None, docs_dir: str | Path | None) -> tuple:
    docs = Path(docs_dir).resolve() if docs_dir is not None else None
    return (url, schema, str(docs) if docs else None)


def release(url: str, schema: str | None = None, docs_dir: str | Path | None = None) -> None:
    """Forget the targets of one database (under any policy) and close their connections (a replay's
    schema is about to be dropped)."""
    where = _key(url, schema, docs_dir)
    with _TARGETS_LOCK:
        gone = [_TARGETS.pop(k) for k in [k for k in _TARGETS if k[:3] == where]]
    for target in gone:
        target.dispose()


def _target(url: str, schema: str | None, docs_dir: str | Path | None, policy: Policy) -> _Target:
    docs = Path(docs_dir).resolve() if docs_dir is not None else None
    key = (*_key(url, schema, docs_dir), suite_values(policy))
    with _TARGETS_LOCK:
        target = _TARGETS.get(key)
        if target is None:
            target = _TARGETS[key] = _Target(url, schema, docs, policy)
        return target


def clear_cache() -> None:
    """Forget every cached context and validation outcome and dispose of the engines (tests, or before dropping
    a schema)."""
    with _TARGETS_LOCK:
        for target in _TARGETS.values():
            target.dispose()
        _TARGETS.clear()
        _OUTCOMES.clear()


# (docs_dir, suite values, stage) -> record key -> outcome. A key is what the stage's suite reads of a record (its
# SELECT outputs), the suites are fixed by the suite values, so the outcome holds in any database: a replay on a
# fresh store reuses what an earlier one validated. A Data Docs site keeps its own, so each content it lists
# was validated (and paged) under it.
_OUTCOMES: dict[tuple, dict[tuple, "_Outcome"]] = {}
CACHE_LIMIT = 200_000  # keys per (site, suites, stage); distinct contents are few, this only bounds memory


def _known(scope: tuple, stage: str) -> dict[tuple, "_Outcome"]:
    with _TARGETS_LOCK:
        return _OUTCOMES.setdefault((*scope, stage), {})


def _select_sql(module: Any) -> str:
    """`id` and the suite's checked columns, as the suite's expectations name them."""
    return ", ".join(["id", *(expr if expr == out else f"{expr} AS {out}" for out, expr in module.SELECT.items())])


def _stored(value: Any) -> Any:
    """A record value as the store keeps it: a JSON column's list or dict as its JSON text."""
    import json

    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _literal(value: Any, dialect: Any) -> str:
    """A value the gate read, written back as a SQL literal of the same database (quotes escaped)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE") if dialect.name == "postgresql" else str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.datetime):
        value = value.isoformat(sep=" ")  # a text literal: the typed first branch of the query types it
    if isinstance(value, str):  # standard SQL quoting; backslashes too where the server still escapes with them
        if getattr(dialect, "_backslash_escapes", False):
            value = value.replace("\\", "\\\\")
        return "'" + value.replace("'", "''") + "'"
    return str(sa.literal(value).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


# --------------------------------------------------------------------------------------------
# the batch's WHERE clause (literal SQL: GX query assets take no bound parameters)


RANGES_MAX = 64  # beyond this many ranges, one IN list: an OR of ranges is tested range by range for every row


def _id_clause(ids: list[int]) -> str:
    """`id` in the given set (sorted ids): as a few ranges when the ids are mostly consecutive (a batch's are);
    otherwise as one IN list within the bounds. A long constant IN list is hashed by PostgreSQL and indexed by
    SQLite, so its cost grows with the rows, where an OR of thousands of ranges (a pool with gaps) costs rows ×
    ranges — minutes at a million records — and SQLite refuses an expression nested deeper than 1000 levels."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    if len(runs) > RANGES_MAX:
        return f"(id BETWEEN {ids[0]} AND {ids[-1]} AND id IN ({', '.join(map(str, ids))}))"
    parts, singles = [], []
    for lo, hi in runs:
        if hi - lo >= 2:
            parts.append(f"id BETWEEN {lo} AND {hi}")
        else:
            singles.extend(range(lo, hi + 1))
    if singles:
        parts.append(f"id IN ({', '.join(map(str, singles))})")
    return "(" + " OR ".join(parts) + ")"


def _batch_where(ids: list[int] | None, batch_id: str | None, undecided_only: bool = False) -> str:
    clauses = []
    if batch_id is not None:
        clauses.append("batch_id = '" + str(batch_id).replace("'", "''") + "'")
        if undecided_only:  # intake: a resumed batch does not re-judge the rows it already decided
            clauses.append("status = 'staged'")
    if ids is not None:
        clauses.append(_id_clause(ids) if ids else "1 = 0")
    return " AND ".join(clauses)


def _label(ids: list[int] | None, batch_id: str | None) -> str:
    if batch_id is not None:
        text = f"batch-{batch_id}"
    elif ids:
        text = f"ids-{ids[0]}-{ids[-1]}-n{len(ids)}"
    else:
        text = "ids-none"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


# --------------------------------------------------------------------------------------------
# results -> GateResult


def _condition_text(cond: Any) -> str:
    if cond is None:
        return ""
    if isinstance(cond, dict):
        col = (cond.get("column") or {}).get("name", "?")
        if cond.get("type") == "nullity":
            return f"{col} IS {'NULL' if cond.get('is_null') else 'NOT NULL'}"
        return f"{col} {cond.get('operator', '?')} {cond.get('parameter')!r}"
    return repr(cond)


def _expectation_name(config: Any) -> str:
    kwargs = config.kwargs or {}
    name = f"{config.type}({kwargs.get('column', '')})"
    cond = kwargs.get("row_condition")
    return f"{name} where {_condition_text(cond)}" if cond else name


def _raised(result: Any) -> bool:
    info = result.exception_info or {}
    if "raised_exception" in info:
        return bool(info.get("raised_exception"))
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def _row_reasons(row: dict, meta: dict) -> set[str]:
    """An expectation with `reasons_from` takes the failing row's reason codes from that column's value (a
    JSON list noted by staging); only the codes the expectation lists are taken, anything else is `validation`."""
    import json

    try:
        codes = json.loads(row.get(meta["reasons_from"]) or "[]")
    except (TypeError, ValueError):
        codes = []
    allowed = set(meta.get("reasons") or ())
    found = {c for c in codes if isinstance(c, str) and c in allowed} if isinstance(codes, list) else set()
    return found or {meta.get("reason") or "validation"}


class _Outcome(NamedTuple):
    """What a suite made of one record content: its reason codes (sorted; none = passed) and the expectations it
    failed (their names, in the suite's order)."""

    reasons: tuple[str, ...]
    failed: tuple[str, ...]


_PASSED = _Outcome((), ())


def _read_results(stage: str, results: Any) -> tuple[dict[int, _Outcome], str | None]:
    """Each validated row's outcome by its id (rows absent passed every expectation); a message when a result
    cannot be trusted (the outcomes read so far are then partial)."""
    reasons: dict[int, set[str]] = {}
    failed: dict[int, list[str]] = {}
    untrusted = None
    for r in results.results:
        config = r.expectation_config
        name = _expectation_name(config)
        if _raised(r):
            untrusted = f"the {stage} check {name} could not be evaluated."
            break
        meta = config.meta or {}
        reason = meta.get("reason") or "validation"
        res = r.result or {}
        count = int(res.get("unexpected_count") or 0)
        rows = res.get("unexpected_index_list") or []
        if count:
            for row in rows:
                failed.setdefault(int(row["id"]), []).append(name)
        if len(rows) != count:
            untrusted = f"the {stage} check {name} reported {count} failing rows but identified {len(rows)}."
            break
        for row in rows:
            found = _row_reasons(row, meta) if "reasons_from" in meta else {reason}
            reasons.setdefault(int(row["id"]), set()).update(found)
    if untrusted is None:
        for r in results.results:  # a row its reader could not split is judged by that alone, not by its fields
            decisive = set((r.expectation_config.meta or {}).get("decisive") or ())
            for i, rs in reasons.items():
                if rs & decisive:
                    rs.intersection_update(set(r.expectation_config.meta.get("reasons") or ()))
    ids = set(reasons) | set(failed)
    return {i: _Outcome(tuple(sorted(reasons.get(i, ()))) if untrusted is None else (), tuple(failed.get(i, ())))
            for i in ids}, untrusted


# --------------------------------------------------------------------------------------------
# the public API


def run_gate(url: str, stage: str, ids: list[int] | None = None, batch_id: str | None = None,
             schema: str | None = None, docs_dir: str | Path | None = None, policy: Policy | None = None,
             max_bad_fraction: float | None = None, min_rows_for_fraction: int | None = None) -> GateResult:
    """Validate the `registrations` rows selected by `batch_id` and/or `ids` (both: the rows of the
    batch among those ids) with the stage's suite (R-VAL-1). Rows failing an expectation are
    quarantined with its reason code (R-VAL-2); a broken batch is reported in `batch_error` (R-VAL-3).

    The suites and the thresholds come from `policy` (default: the configured policy); a threshold
    given here overrides the policy's.

    Only the record contents the process has not validated under these suites reach Great Expectations,
    all in one call (see the module docstring); a run whose contents were all known makes no GX call and
    builds no Data Docs page (`docs_path` is then the site's index). Returns the GateResult; raises
    GateError (unknown stage, no selection, database unreachable).
    """
    if stage not in STAGES:
        raise GateError(f"unknown validation stage {stage!r}: use one of {', '.join(STAGES)}.")
    if ids is None and batch_id is None:
        raise GateError("the gate needs a batch_id or a list of registration ids.")
    if policy is None:
        from leadflow.settings import configured_policy

        policy = configured_policy()
    if max_bad_fraction is None:
        max_bad_fraction = policy.validation.max_bad_fraction
    if min_rows_for_fraction is None:
        min_rows_for_fraction = policy.validation.min_rows_for_fraction
    wanted = sorted({int(i) for i in ids}) if ids is not None else None
    target = _target(url, schema, docs_dir, policy)
    suite, module = target.suite(stage)
    gate = GateResult(stage=stage)

    where = _batch_where(wanted, batch_id, undecided_only=stage == "intake")
    rows, problem = target.select_rows(where, module)
    found = [i for i, _ in rows]
    if problem:  # the rows cannot be checked: all of them are held back, none passes (R-VAL-2, R-VAL-3)
        gate.batch_error = f"The {stage} gate cannot run: {problem}"
        gate.rows_in = len(found)
        gate.quarantined = {i: [UNVALIDATED] for i in found}
        return _done(gate)
    gate.rows_in = len(found)
    if wanted is not None and batch_id is None and len(found) < len(wanted):
        absent = sorted(set(wanted) - set(found))
        shown = ", ".join(map(str, absent[:5])) + (" …" if len(absent) > 5 else "")
        gate.batch_error = (f"The {stage} batch is broken: {len(absent)} of the {len(wanted)} requested "
                            f"registrations are not in the store ({shown}).")
    if not found:
        what = f"batch {batch_id!r}" if batch_id is not None else "the requested ids"
        gate.batch_error = f"The {stage} batch is empty: {what} selects no registrations."
        return _done(gate)

    outcomes, untrusted, docs_path = target.judge(stage, suite, module, rows, _label(wanted, batch_id))
    failed: dict[str, int] = {}
    for i, key in rows:
        outcome = outcomes[key]
        if outcome.reasons:
            gate.quarantined[i] = list(outcome.reasons)
        for name in outcome.failed:
            failed[name] = failed.get(name, 0) + 1
    gate.expectations_failed = failed
    gate.quarantined = dict(sorted(gate.quarantined.items()))
    if target.docs_dir is not None:
        gate.docs_path = docs_path or str(target.docs_dir / "index.html")
    if untrusted:  # nothing of this run is trusted, so nothing is quarantined by it (nor cached)
        gate.batch_error = f"The {stage} gate failed as a whole: {untrusted}"
        gate.quarantined = {}
    ids_all = set(found) | set(gate.quarantined)  # nothing dropped, even a row added meanwhile
    gate.rows_in = len(ids_all)
    gate.passed = sorted(i for i in ids_all if i not in gate.quarantined)

    bad = len(gate.quarantined)
    if gate.batch_error is None and gate.rows_in >= min_rows_for_fraction and bad / gate.rows_in > max_bad_fraction:
        gate.batch_error = (f"The {stage} batch failed validation as a whole: {bad} of {gate.rows_in} rows "
                            f"({bad / gate.rows_in:.0%}) are bad, above the {max_bad_fraction:.0%} threshold.")
    return _done(gate)


def _done(gate: GateResult) -> GateResult:
    log.info("validation gate %s: %d in, %d passed, %d quarantined%s", gate.stage, gate.rows_in,
             len(gate.passed), len(gate.quarantined), f"; {gate.batch_error}" if gate.batch_error else "")
    return gate


def prevalidate(url: str, stage: str, records: list[dict], schema: str | None = None,
                docs_dir: str | Path | None = None, policy: Policy | None = None) -> int:
    """Validate record contents ahead of the runs that will meet them, in one GX call (R-VAL-1): `records` are
    registration rows as they would be stored (column -> value; at least the suite's `REQUIRED` columns), not
    necessarily in the store. Their outcomes go into the gate's cache, so a later `run_gate` on records with
    the same content runs no GX at all. Nothing is written to the store and no GateResult is made; a content
    never met costs one row of that one call. Returns how many distinct contents were validated now (0: all
    were known). Raises GateError for an unknown stage or an unreachable database."""
    if stage not in STAGES:
        raise GateError(f"unknown validation stage {stage!r}: use one of {', '.join(STAGES)}.")
    if policy is None:
        from leadflow.settings import configured_policy

        policy = configured_policy()
    target = _target(url, schema, docs_dir, policy)
    suite, module = target.suite(stage)
    try:
        keys = target.keys_of(module, records)
    except (sa.exc.ProgrammingError, sa.exc.OperationalError) as e:
        raise GateError(f"cannot compute the {stage} keys at {_where(target.url)} ({type(e).__name__}).") from None
    # a negative id stands for a content that is not a stored record (the Data Docs show it so)
    rows = [(-n, key) for n, key in enumerate(dict.fromkeys(keys), start=1)]
    if not rows:
        return 0
    known = _known(target.scope, stage)
    unseen = sum(1 for _, key in rows if key not in known)
    if unseen:
        target.judge(stage, suite, module, rows, f"prevalidate-{stage}-n{unseen}")
    return unseen


def gate_for(url: str, schema: str | None = None, docs_dir: str | Path | None = None,
             policy: Policy | None = None, max_bad_fraction: float | None = None,
             min_rows_for_fraction: int | None = None) -> Callable[..., GateResult]:
    """`gate(stage, ids=None, batch_id=None) -> GateResult` bound to a database and a policy (what the
    pipeline wires in). The context is created at the first call and reused."""

    def gate(stage: str, ids: list[int] | None = None, batch_id: str | None = None) -> GateResult:
        return run_gate(url, stage, ids=ids, batch_id=batch_id, schema=schema, docs_dir=docs_dir, policy=policy,
                        max_bad_fraction=max_bad_fraction, min_rows_for_fraction=min_rows_for_fraction)

    gate.url, gate.schema, gate.docs_dir = url, schema, docs_dir  # type: ignore[attr-defined]
    gate.close = lambda: release(url, schema, docs_dir)  # type: ignore[attr-defined]
    gate.prevalidate = lambda stage, records: prevalidate(  # type: ignore[attr-defined]
        url, stage, records, schema=schema, docs_dir=docs_dir, policy=policy)
    return gate
