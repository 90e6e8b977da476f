"""Every key of the default policy is read by the code: a key nothing reads is a rule the operator
believes they can change and cannot (the policy is the single source of every number and switch)."""
from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from leadflow.policy import DEFAULT_POLICY_PATH, Policy

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("leadflow", "expectations", "flows", "tasks", "deployments")
POLICY_MODULE = ROOT / "leadflow" / "policy" / "__init__.py"  # declares the keys: no read counts there


def _model_of(annotation) -> type[BaseModel] | None:
    """The policy model a field holds (itself, or in a tuple of them), None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found:
            return found
    return None


def _leaves(data, model: type[BaseModel], path: tuple[str, ...] = ()):
    """(key path, field names along it) of every leaf key in `data`, following the policy model: a
    field holding a model (or a list of them) is walked into, any other field is a leaf."""
    items = data if isinstance(data, list) else [data]
    for item in items:
        for key, value in item.items():
            field = model.model_fields[key]
            sub = _model_of(field.annotation)
            if sub is not None and value:
                yield from _leaves(value, sub, (*path, key))
            else:
                yield (*path, key)


def _attributes_read() -> set[str]:
    """Names read as `.name` (not called as a method) anywhere in the application's source."""
    names: set[str] = set()
    for folder in SOURCES:
        for file in (ROOT / folder).rglob("*.py"):
            if file == POLICY_MODULE:
                continue
            tree = ast.parse(file.read_text(encoding="utf-8"))
            called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
            names |= {n.attr for n in ast.walk(tree)
                      if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load) and id(n) not in called}
    return names


DEFAULT = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
LEAVES = sorted(set(_leaves(DEFAULT, Policy)))
READ = _attributes_read()


def test_the_walk_finds_the_policys_keys():
    assert ("registration", "company_channels") in LEAVES and ("allocation", "manager_tiers") in LEAVES
    assert ("misjudgment", "hotline_ban_months") in LEAVES
    assert ("conversion", "dormant_return", "months") in LEAVES
    assert ("tiers",) in LEAVES  # a mapping of tier -> amount is one key, read as a whole


@pytest.mark.parametrize("path", LEAVES, ids=".".join)
def test_every_key_of_the_default_policy_is_read_by_the_code(path):
    unread = [segment for segment in path if segment not in READ]
    assert not unread, (f"policy key {'.'.join(path)} is never read: no `.{unread[-1]}` in "
                        f"{', '.join(SOURCES)} — read it where its rule is, or remove the key")
