"""Runs one job in a worker process: claim it, load its inputs, solve, store the outcome.

Executors only call `run_job(job_id, ...)`; which optimizer a kind runs is the RUNNERS
registry, so a new kind is one line here (and its module beside align.py).

Outcomes, as stored on the job:
- a plan (align, design) or tables (capacity, quota) → succeeded, with them as result
  (summary status optimal or feasible);
- cancelled while solving → cancelled, *keeping the incumbent plan as result when the
  solver had one* (result_available true); cancelled before any plan → cancelled, no result;
- bad input → failed, error type invalid-input with the issues;
- infeasible scenario → failed, error type infeasible, message "infeasible: ..." and the
  optimizer's business reasons (a scenario that cannot be met is not a plan);
- solver trouble → failed, error type solver-error; anything else → internal-error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from api.datasets import dataset_inputs
from api.errors import issue_dict
from api.jobs import lifecycle
from api.jobs.align import AlignRunner
from api.jobs.capacity import CapacityRunner
from api.jobs.design import DesignRunner
from api.jobs.inputs import JobInputs, inline_inputs
from api.jobs.kinds import JobOutcome, KindRunner, SolveControls
from api.jobs.monitor import JobMonitor
from api.jobs.quota import QuotaRunner
from api.schemas import InlineData, JobKind, JobState
from api.store.db import Database
from api.store.tables import Job
from optimizer.errors import (
    InfeasibleScenarioError,
    InputError,
    SolveCancelledError,
    SolverError,
)

log = logging.getLogger(__name__)

RUNNERS: dict[JobKind, KindRunner] = {
    JobKind.align: AlignRunner(),
    JobKind.design: DesignRunner(),
    JobKind.capacity: CapacityRunner(),
    JobKind.quota: QuotaRunner(),
}


@dataclass(frozen=True)
class RunnerConfig:
    """What a worker process needs to run jobs (picklable, for the local process pool)."""

    database_url: str
    heartbeat_seconds: float
    max_attempts: int
    log_level: str = "INFO"


def job_inputs(*, session: Session, job: Job) -> JobInputs:
    """The inputs of a stored job: its inline tables, or its dataset's."""
    scenario: dict[str, Any] = job.payload.get("scenario") or {}
    if job.dataset_id is not None:
        return dataset_inputs(session=session, dataset_id=job.dataset_id, scenario=scenario)
    return inline_inputs(scenario, InlineData.model_validate(job.payload["data"]))


def _failure(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, **extra}


def _invalid_input(exc: InputError) -> dict[str, Any]:
    return _failure("invalid-input", f"{len(exc.issues)} problem(s) in the input",
                    issues=[issue_dict(i) for i in exc.issues])


def _solve(runner: KindRunner, inputs: JobInputs, monitor: JobMonitor) -> tuple[
        JobState, JobOutcome | None, dict[str, Any] | None]:
    controls = SolveControls(on_progress=monitor.report, should_stop=monitor.should_stop)
    try:
        outcome = runner.run(inputs, controls)
    except InputError as exc:
        return JobState.failed, None, _invalid_input(exc)
    except InfeasibleScenarioError as exc:
        return JobState.failed, None, _failure(
            "infeasible", "infeasible: " + "; ".join(exc.reasons), reasons=exc.reasons)
    except SolveCancelledError as exc:
        return JobState.cancelled, None, _failure("cancelled", str(exc))
    except SolverError as exc:
        return JobState.failed, None, _failure("solver-error", str(exc))
    state = JobState.cancelled if outcome.cancelled else JobState.succeeded
    return state, outcome, None


def run_job(job_id: str, *, db: Database, config: RunnerConfig, worker: str) -> None:
    """Run one job to its end state, if it is still waiting to run (else do nothing)."""
    with db.session() as session:
        claim = lifecycle.claim(session=session, job_id=job_id, worker=worker,
                                max_attempts=config.max_attempts)
    if claim is None:
        log.info("job not claimed: already taken, finished or cancelled",
                 extra={"job_id": job_id})
        return
    context = {"job_id": job_id, "attempt": claim.attempt}
    log.info("job started", extra=context)
    state, outcome, error = JobState.failed, None, None
    monitor = JobMonitor(db=db, claim=claim, interval=config.heartbeat_seconds)
    try:
        with db.session() as session:
            job = session.get_one(Job, job_id)
            runner = RUNNERS[JobKind(job.kind)]
            inputs = job_inputs(session=session, job=job)
        with monitor:
            state, outcome, error = _solve(runner, inputs, monitor)
    except InputError as exc:  # its inputs are gone (a dataset deleted as it was submitted)
        state, outcome, error = JobState.failed, None, _invalid_input(exc)
    except Exception as exc:
        log.exception("job crashed", extra=context)
        state, outcome, error = JobState.failed, None, _failure(
            "internal-error", f"internal error ({type(exc).__name__}); see the worker log")
    with db.session() as session:
        stored = lifecycle.finish(
            session=session, claim=claim, state=state,
            result=outcome.result if outcome else None,
            result_status=outcome.status if outcome else None, error=error,
            progress=monitor.last_progress)
    if not stored:
        log.warning("job outcome dropped: the job was given to another attempt", extra=context)
        return
    log.info("job finished", extra={**context, "state": str(state),
                                    "result_status": outcome.status if outcome else None})
