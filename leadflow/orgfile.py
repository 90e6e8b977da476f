"""`leadflow org load ORG.yaml`: departments and people in a scenario's shape, loaded idempotently."""
from __future__ import annotations

from pathlib import Path

import yaml


class OrgFileError(ValueError):
    """An org file that cannot be read; one sentence."""


def read_org_file(path: str | Path) -> tuple[list[dict], list[dict]]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise OrgFileError(f"{Path(path).name}: cannot read the org file ({e.strerror}).") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise OrgFileError(f"{Path(path).name}: the org file is not valid YAML.") from None
    if not isinstance(data, dict) or not isinstance(data.get("departments"), list) \
            or not isinstance(data.get("people"), list):
        raise OrgFileError(f"{Path(path).name}: the org file needs a 'departments' list and a 'people' list.")
    for i, d in enumerate(data["departments"]):
        if not isinstance(d, dict) or "id" not in d:
            raise OrgFileError(f"{Path(path).name}: departments[{i}] has no id.")
    for i, p in enumerate(data["people"]):
        if not isinstance(p, dict) or "id" not in p:
            raise OrgFileError(f"{Path(path).name}: people[{i}] has no id.")
    return data["departments"], data["people"]


def load_org_file(path: str | Path, ctx=None) -> dict:
    from leadflow.stages.people import load_org
    from leadflow.wiring import stage_context

    departments, people = read_org_file(path)
    ctx = ctx or stage_context(with_gate=False)
    with ctx.engine.begin() as conn:
        return load_org(conn, departments, people)
