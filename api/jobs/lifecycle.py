"""The job state machine. Every transition is one conditional UPDATE, so concurrent API
processes, workers and recovery loops can race on a job and exactly one of them wins.

    queued ──claim──▶ running ──finish──▶ succeeded | failed | cancelled
      ▲  │                │
      │  └──cancel──▶ cancelled
      └───release (worker dead or silent; attempts left)── running

A running job belongs to one attempt: its heartbeats and final write only land while the
job is still running under that attempt number, so a run that was given up (say, a worker
that froze and came back) cannot overwrite the attempt that replaced it.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.schemas import JobState
from api.store.tables import Job, utcnow

log = logging.getLogger(__name__)


def this_worker() -> str:
    """The name a process puts on the jobs it runs: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_gone(worker: str | None) -> bool:
    """True when `worker` is a process of this host that no longer runs (or is a zombie).

    Processes of other hosts cannot be checked from here; their heartbeats tell.
    """
    if not worker or ":" not in worker:
        return False
    host, _, pid_text = worker.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass(frozen=True)
class Claim:
    """The right to run one attempt of a job."""

    job_id: str
    attempt: int
    started_at: datetime


def claim(*, session: Session, job_id: str, worker: str, max_attempts: int) -> Claim | None:
    """Take a queued job (or a running one whose process died on this host) for `worker`."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    if job.state == JobState.queued:
        expected = JobState.queued
    elif job.state == JobState.running and owner_is_gone(job.worker):
        expected = JobState.running
        if job.attempts >= max_attempts:
            _release(session, job, f"its worker process {job.worker} died", max_attempts)
            return None
    else:
        return None
    now = utcnow()
    attempt = job.attempts + 1
    taken = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == expected, Job.attempts == job.attempts)
        .values(state=JobState.running, attempts=attempt, worker=worker, started_at=now,
                heartbeat_at=now, progress=None, error=None)
        .execution_options(synchronize_session=False))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return Claim(job_id, attempt, now)


def heartbeat(*, session: Session, claim: Claim,
              progress: dict[str, Any] | None) -> tuple[bool, bool]:
    """Prove the attempt is alive (and store progress). Returns (still ours, cancel asked)."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = progress
    done = session.execute(
        update(Job)
        .where(Job.id == claim.job_id, Job.state == JobState.running,
               Job.attempts == claim.attempt)
        .values(**values).execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False, False
    cancel = session.scalar(select(Job.cancel_requested).where(Job.id == claim.job_id))
    return True, bool(cancel)


def finish(*, session: Session, claim: Claim, state: JobState,
           result: dict[str, Any] | None = None, result_status: str | None = None,
           error: dict[str, Any] | None = None,
           progress: dict[str, Any] | None = None) -> bool:
    """Record how the attempt ended; False if the job was meanwhile given to another attempt."""
    now = utcnow()
    values: dict[str, Any] = {
        "state": state, "result": result, "result_status": result_status, "error": error,
        "summary": None if result is None else result.get("summary"),
        "finished_at": now, "heartbeat_at": now,
        "run_seconds": (now - claim.started_at).total_seconds()}
    if progress is not None:
        values["progress"] = progress
    done = session.execute(
        update(Job)
        .where(Job.id == claim.job_id, Job.state == JobState.running,
               Job.attempts == claim.attempt)
        .values(**values)
        .execution_options(synchronize_session=False))
    return done.rowcount == 1  # type: ignore[attr-defined]


def _release(session: Session, job: Job, why: str, max_attempts: int,
             *, counts: bool = True) -> str | None:
    """A running job whose process is gone: re-queue it, or end it with the reason.

    With `counts` False (the service itself stopped the run, say at shutdown), the lost run
    does not use up one of the job's attempts. Returns the job id when it was re-queued
    (the caller dispatches it after commit).
    """
    now = utcnow()
    if job.cancel_requested:
        values: dict[str, Any] = {
            "state": JobState.cancelled, "finished_at": now,
            "error": {"type": "cancelled", "message": f"cancelled; {why} before it stopped"}}
    elif counts and job.attempts >= max_attempts:
        values = {"state": JobState.failed, "finished_at": now,
                  "error": {"type": "worker-lost",
                            "message": f"gave up after {job.attempts} attempt(s): {why}"}}
    else:
        values = {"state": JobState.queued, "progress": None, "dispatched_at": None}
        if not counts:
            values["attempts"] = job.attempts - 1
    done = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state == JobState.running, Job.attempts == job.attempts,
               Job.worker == job.worker)
        .values(**values).execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return None
    log.warning("job released", extra={"job_id": job.id, "reason": why,
                                       "new_state": str(values["state"])})
    return job.id if values["state"] == JobState.queued else None


def release_stale(*, session: Session, stale_before: datetime, max_attempts: int) -> list[str]:
    """Release every running job whose heartbeat is older than `stale_before`."""
    stale = session.scalars(select(Job).where(Job.state == JobState.running,
                                              Job.heartbeat_at < stale_before)).all()
    requeued = []
    for job in stale:
        why = f"its worker {job.worker} stopped sending heartbeats"
        if (job_id := _release(session, job, why, max_attempts)) is not None:
            requeued.append(job_id)
    return requeued


def release_worker(*, session: Session, worker: str, why: str, max_attempts: int,
                   counts: bool = True) -> list[str]:
    """Release the running jobs of one worker process known to be gone."""
    jobs = session.scalars(select(Job).where(Job.state == JobState.running,
                                             Job.worker == worker)).all()
    return [job_id for job in jobs
            if (job_id := _release(session, job, why, max_attempts, counts=counts)) is not None]


def mark_dispatched(*, session: Session, job_ids: list[str]) -> None:
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(job_ids), Job.state == JobState.queued)
                        .values(dispatched_at=utcnow())
                        .execution_options(synchronize_session=False))
