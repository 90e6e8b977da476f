"""The gate's id scope (R-VAL-1: the gate validates exactly the records a stage reads) at any number of gaps."""
from __future__ import annotations

import sqlite3

from expectations.gate import RANGES_MAX, _id_clause


def _selected(ids: list[int], upto: int) -> list[int]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE r (id INTEGER PRIMARY KEY)")
    db.executemany("INSERT INTO r VALUES (?)", [(i,) for i in range(1, upto + 1)])
    return [i for (i,) in db.execute(f"SELECT id FROM r WHERE {_id_clause(ids)} ORDER BY id")]


def test_r_val_1_a_batch_of_consecutive_ids_is_a_few_ranges_and_selects_exactly_them():
    ids = [*range(1, 50), 52, 60, *range(70, 90)]
    assert _id_clause(ids).count("BETWEEN") == 2
    assert _selected(ids, 100) == ids


def test_r_val_1_ids_with_thousands_of_gaps_are_one_in_list_not_an_or_per_range():
    """A pool with gaps (issue 10): an OR of thousands of ranges costs rows × ranges, and SQLite refuses a tree
    deeper than 1000 levels; one IN list within the bounds selects the same records."""
    ids = [i for i in range(1, 30_000) if i % 7]  # 4,285 gaps
    clause = _id_clause(ids)
    assert clause.count("BETWEEN") == 1 and " OR " not in clause
    assert _selected(ids, 30_000) == ids
    few = [i for i in range(1, 10 * (RANGES_MAX - 1)) if i % 10]
    assert " OR " in _id_clause(few) and _selected(few, 1000) == few
