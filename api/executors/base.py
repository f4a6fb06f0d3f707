"""The executor protocol: how the API hands a stored job to something that runs it.

An executor moves job *ids* only; the job, its state and its result live in the database,
and every run goes through api.jobs.runner.run_job, which claims the job first. So a job
dispatched twice still runs once.
"""

from __future__ import annotations

from typing import Protocol


class Executor(Protocol):
    name: str

    def start(self) -> None:
        """Start whatever runs beside the API (processes, connections)."""

    def dispatch(self, job_id: str) -> None:
        """Queue a committed job for running; may raise if the queue cannot be reached."""

    def problem(self) -> str | None:
        """Why the executor cannot take jobs now (for /readyz), or None when it can."""

    def shutdown(self) -> None:
        """Stop; jobs that were running are re-queued (now or by recovery)."""
