"""The executor the settings name (imports stay lazy: celery is not needed for local)."""

from __future__ import annotations

from api.config import Settings
from api.executors.base import Executor
from api.jobs.runner import RunnerConfig


def runner_config(settings: Settings) -> RunnerConfig:
    return RunnerConfig(database_url=settings.DATABASE_URL,
                        heartbeat_seconds=settings.JOB_HEARTBEAT_SECONDS,
                        max_attempts=settings.JOB_MAX_ATTEMPTS,
                        log_level=settings.LOG_LEVEL)


def make_executor(settings: Settings) -> Executor:
    if settings.EXECUTOR == "celery":
        from api.executors.celery import CeleryExecutor

        return CeleryExecutor(settings)
    from api.executors.local import LocalExecutor

    return LocalExecutor(runner_config(settings), workers=settings.LOCAL_WORKERS)
