"""Service settings, read from the environment (and an optional `.env` file).

Every knob an operator may turn lives here; the optimizer gets everything as arguments.
Validators refuse values that would lose jobs or data silently.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/territory.db"

PositiveSeconds = Annotated[float, Field(gt=0, le=86_400)]


class Settings(BaseSettings):
    """Service configuration; each field is the environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    DATABASE_URL: str = DEFAULT_DATABASE_URL
    EXECUTOR: Literal["local", "celery"] = "local"
    BROKER_URL: str = "redis://127.0.0.1:6379/0"
    CELERY_QUEUE: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")] = "territory-jobs"
    # Processes the local executor runs beside the API: each solves one job at a time.
    LOCAL_WORKERS: Annotated[int, Field(ge=1, le=64)] = 2
    # Requests of one API process that hold a database session at once; the others wait
    # their turn without a thread (api.deps). The connection pool is this + 5.
    DB_REQUEST_SESSIONS: Annotated[int, Field(ge=1, le=500)] = 20

    # Limits: a request body, and what one job may ask for.
    MAX_REQUEST_BYTES: Annotated[int, Field(ge=1_024, le=2_147_483_648)] = 50_000_000
    MAX_ACCOUNTS: Annotated[int, Field(ge=1)] = 100_000
    MAX_REPS: Annotated[int, Field(ge=1)] = 5_000
    MAX_DISTANCES: Annotated[int, Field(ge=1)] = 2_000_000
    MAX_BATCH_SCENARIOS: Annotated[int, Field(ge=1, le=1_000)] = 50
    MAX_TIME_LIMIT: PositiveSeconds = 3_600.0

    # Durability: a running job writes a heartbeat; one silent for JOB_STALE_SECONDS is
    # re-queued (at most JOB_MAX_ATTEMPTS runs in all) or failed with a reason.
    JOB_HEARTBEAT_SECONDS: PositiveSeconds = 1.0
    JOB_STALE_SECONDS: PositiveSeconds = 60.0
    JOB_MAX_ATTEMPTS: Annotated[int, Field(ge=1, le=100)] = 3
    RECOVERY_INTERVAL_SECONDS: PositiveSeconds = 10.0
    # A queued job sent to the executor this long ago and still not started is sent again:
    # its message may be gone (Redis restarted without persistence, a worker that took it
    # and failed before claiming it). A duplicate costs one look-up: the claim drops it.
    JOB_REDISPATCH_SECONDS: PositiveSeconds = 120.0

    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("DATABASE_URL")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        # Providers hand out postgres:// DSNs; SQLAlchemy needs the driver spelled out.
        for plain in ("postgres://", "postgresql://"):
            if url.startswith(plain):
                url = "postgresql+psycopg://" + url[len(plain):]
        if not url.startswith(("sqlite:///", "postgresql+psycopg://")):
            raise ValueError("DATABASE_URL must be sqlite:///PATH or postgresql+psycopg://...")
        if url in ("sqlite://", "sqlite:///:memory:"):
            raise ValueError("an in-memory SQLite database would lose every job on restart and "
                             "is not shared with the worker processes; give a file path")
        return url

    @field_validator("BROKER_URL")
    @classmethod
    def _redis_broker(cls, url: str) -> str:
        if not url.startswith(("redis://", "rediss://")):
            raise ValueError("BROKER_URL must be a Redis URL (redis:// or rediss://)")
        return url

    @model_validator(mode="after")
    def _safe_combination(self) -> Settings:
        if self.EXECUTOR == "celery" and self.is_sqlite:
            raise ValueError("EXECUTOR=celery needs a database every worker machine can reach: "
                             "set DATABASE_URL to PostgreSQL (postgresql+psycopg://...)")
        if self.JOB_STALE_SECONDS < 3 * self.JOB_HEARTBEAT_SECONDS:
            raise ValueError("JOB_STALE_SECONDS must be at least 3 × JOB_HEARTBEAT_SECONDS, or "
                             "healthy jobs would be taken for dead ones")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        return Path(self.DATABASE_URL.removeprefix("sqlite:///"))


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
