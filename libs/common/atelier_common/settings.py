"""What every service's settings share: the base class of ``BillingSettings``, ``TasksSettings``
and ``GatewaySettings`` (pydantic-settings, read from the environment only).

Each service adds its own fields; the ones here are the settings the three must agree on (the
market, the shared data directory, the internal credential) or read the same way (the log level,
where the embedded database lives when no URL is configured).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MARKETS = ("local", "global", "cn")
MARKET_PATTERN = f"^({'|'.join(MARKETS)})$"
DEV_INTERNAL_TOKEN = "dev-internal-token"  # the embedded default's; `make run` replaces it


class ServiceSettings(BaseSettings):
    """The settings of one service. Subclasses name their embedded database file
    (``DATABASE_FILE``) and add their own fields."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # The SQLite file under ATELIER_DATA_DIR used when no database URL is configured.
    DATABASE_FILE: ClassVar[str]

    market: str = Field("local", validation_alias="MARKET", pattern=MARKET_PATTERN)
    data_dir: Path = Field(Path("var"), validation_alias="ATELIER_DATA_DIR")
    internal_token: SecretStr = Field(
        SecretStr(DEV_INTERNAL_TOKEN), validation_alias="ATELIER_INTERNAL_TOKEN"
    )
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")

    # ``<SERVICE>_PROCESSES`` in each subclass: how many processes ``serve`` runs; 0 = cores.
    processes_setting: int = 1

    @property
    def processes(self) -> int:
        """How many processes ``serve`` runs on the one port (0 in the setting: one per core)."""
        return self.processes_setting or os.cpu_count() or 1

    def embedded_database_url(self) -> str:
        """The embedded default: SQLite in the data directory, as an absolute path (so an
        operator command run from elsewhere names the same file)."""
        return f"sqlite:///{(self.data_dir / self.DATABASE_FILE).resolve()}"

    # --- start-up checks (atelier_common.startup); subclasses say what they need ---
    def unbuilt_parts(self) -> list[str]:
        return []

    def missing_settings(self) -> list[str]:
        return []
