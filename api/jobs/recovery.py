"""Durability: no job stays 'running' for a process that is gone, none stays unsent.

At API start and then every RECOVERY_INTERVAL_SECONDS, in every API process:
- a running job whose process is gone (same host, pid not alive) or whose heartbeat is older
  than JOB_STALE_SECONDS is re-queued, or failed with the reason after JOB_MAX_ATTEMPTS;
- re-queued jobs and queued jobs never handed to the executor are dispatched, and so are
  queued jobs handed over more than JOB_REDISPATCH_SECONDS ago and not started since (the
  broker may have lost the message: a Redis restart without persistence loses them all);
- at start only, every queued job is dispatched again (the previous process may have died
  with them in its local queue; a duplicate in the broker is dropped by the claim).
Concurrent passes in several API processes are safe: each transition is conditional.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import and_, or_, select

from api.config import Settings
from api.executors.base import Executor
from api.jobs import lifecycle
from api.jobs.service import dispatch
from api.schemas import JobState
from api.store.db import Database
from api.store.tables import Job, utcnow

log = logging.getLogger(__name__)
UNSENT_GRACE_SECONDS = 5.0


def release_lost_jobs(*, db: Database, settings: Settings) -> list[str]:
    """Re-queue (or fail) running jobs whose process is gone or silent; the re-queued ids."""
    requeued: list[str] = []
    with db.session() as session:
        running = session.scalars(select(Job).where(Job.state == JobState.running)).all()
        for job in running:
            if lifecycle.owner_is_gone(job.worker):
                requeued += lifecycle.release_worker(
                    session=session, worker=job.worker or "",
                    why=f"its worker process {job.worker} is gone",
                    max_attempts=settings.JOB_MAX_ATTEMPTS)
        requeued += lifecycle.release_stale(
            session=session, stale_before=utcnow() - timedelta(seconds=settings.JOB_STALE_SECONDS),
            max_attempts=settings.JOB_MAX_ATTEMPTS)
    return requeued


def recovery_pass(*, db: Database, executor: Executor, settings: Settings,
                  resend_all_queued: bool = False) -> list[str]:
    """One pass; returns the ids dispatched."""
    requeued = release_lost_jobs(db=db, settings=settings)
    with db.sessions() as session:
        unsent = select(Job.id).where(Job.state == JobState.queued)
        if not resend_all_queued:
            # Skip jobs just committed: the request that stored them is dispatching them.
            now = utcnow()
            settled = now - timedelta(seconds=UNSENT_GRACE_SECONDS)
            overdue = now - timedelta(seconds=settings.JOB_REDISPATCH_SECONDS)
            unsent = unsent.where(or_(
                and_(Job.dispatched_at.is_(None), Job.created_at < settled),
                Job.dispatched_at < overdue))
        ids = list(dict.fromkeys([*requeued,
                                  *session.scalars(unsent.order_by(Job.created_at)).all()]))
        if ids:
            log.info("dispatching recovered jobs", extra={"jobs": len(ids),
                                                          "requeued": len(requeued)})
            dispatch(session=session, executor=executor, job_ids=ids)
    return ids


class RecoveryLoop:
    """Runs recovery_pass in a background thread of the API process."""

    def __init__(self, *, db: Database, executor: Executor, settings: Settings) -> None:
        self._db = db
        self._executor = executor
        self._settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-recovery", daemon=True)

    def start(self) -> None:
        recovery_pass(db=self._db, executor=self._executor, settings=self._settings,
                      resend_all_queued=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.RECOVERY_INTERVAL_SECONDS):
            try:
                recovery_pass(db=self._db, executor=self._executor, settings=self._settings)
            except Exception:
                log.exception("job recovery pass failed; will try again")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
