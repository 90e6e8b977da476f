"""One settings object: where the database, the policy and the data folder are (env LEADFLOW_*)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:  # pragma: no cover
    from leadflow.policy import Policy

PROJECT_DIR = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_")

    data_dir: Path = PROJECT_DIR / "data"
    database_url: str = ""
    policy_file: Path | None = None
    notifier: str = "log"  # log | webhook:<prefect block name>

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / 'leadflow.db'}"

    @property
    def docs_dir(self) -> Path:
        return self.data_dir / "gx_docs"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def configured_policy() -> Policy:
    """The policy the settings name (LEADFLOW_POLICY_FILE, else the default), loaded once per file:
    for code that has no stage context (run names, schedules)."""
    return _policy_at(get_settings().policy_file)


@lru_cache(maxsize=8)
def _policy_at(path: Path | None) -> Policy:
    from leadflow.policy import load_policy

    return load_policy(path)
