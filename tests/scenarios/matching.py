"""The `expect:` comparison of ../shared/tools/check_scenario.py, for in-process scenario tests."""
from __future__ import annotations

import json


def match(expected, actual, path="expect") -> list[str]:
    """Mismatch descriptions (empty when `actual` satisfies `expected`); lists match as sets."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping, got {json.dumps(actual, ensure_ascii=False)}"]
        if not expected and actual:  # `{}` means "nothing here", not "anything" (as check_scenario.py)
            return [f"{path}: expected an empty mapping, got {json.dumps(actual, ensure_ascii=False)[:400]}"]
        problems = []
        for key, want in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += match(want, actual[key], f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {json.dumps(actual, ensure_ascii=False)}"]
        if len(expected) != len(actual):
            return [f"{path}: expected {len(expected)} elements, got {len(actual)}: "
                    f"{json.dumps(actual, ensure_ascii=False)[:400]}"]
        unused = list(range(len(actual)))
        for i, want in enumerate(expected):
            hit = next((j for j in unused if not match(want, actual[j])), None)
            if hit is None:
                return [f"{path}[{i}]: no element matches {json.dumps(want, ensure_ascii=False)}; "
                        f"got {json.dumps(actual, ensure_ascii=False)[:400]}"]
            unused.remove(hit)
        return []
    if isinstance(expected, bool) or isinstance(actual, bool):
        return [] if expected is actual else [f"{path}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return [] if abs(expected - actual) <= 1e-9 else [f"{path}: expected {expected}, got {actual}"]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]
