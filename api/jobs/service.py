"""Job submission, lookup and cancellation: idempotency, validation and the tenant rule.

Routes call these functions and shape the answers; nothing here knows about HTTP.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.config import Settings
from api.datasets import dataset_inputs, get_dataset_or_raise
from api.errors import (
    IdempotencyMismatchError,
    LimitExceededError,
    NotFoundError,
    NotReadyError,
    StateConflictError,
    UnsupportedKindError,
)
from api.executors.base import Executor
from api.jobs import lifecycle
from api.jobs.inputs import JobInputs, check_table_sizes, check_time_limit, inline_inputs
from api.jobs.kinds import KindRunner
from api.jobs.runner import RUNNERS
from api.schemas import (
    FINISHED_STATES,
    JobCreate,
    JobError,
    JobKind,
    JobProgress,
    JobPublic,
    JobScenario,
    JobState,
)
from api.store.tables import Batch, Job, Tenant, utcnow

log = logging.getLogger(__name__)
Stored = TypeVar("Stored", Job, Batch)  # the rows an Idempotency-Key can point at


@dataclass(frozen=True)
class Submission:
    job: Job
    created: bool  # False: an earlier request with the same Idempotency-Key made it


def request_hash(body: BaseModel | dict[str, Any]) -> str:
    """A digest of a request body, to tell a retry from a different request."""
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def runner_for(kind: JobKind) -> KindRunner:
    runner = RUNNERS.get(kind)
    if runner is None:
        supported = ", ".join(sorted(k.value for k in RUNNERS))
        raise UnsupportedKindError(f"kind {kind.value!r} is not run by this server yet "
                                   f"(supported: {supported})")
    return runner


def check_inputs(runner: KindRunner, inputs: JobInputs, settings: Settings) -> None:
    """Everything that can be known before solving: sizes, time limit, rows and scenario."""
    check_table_sizes(accounts=len(inputs.accounts), reps=len(inputs.reps),
                      distances=None if inputs.distances is None else len(inputs.distances),
                      settings=settings)
    for name, table in inputs.tables.items():  # quota tables: one row per territory or rep
        if len(table) > settings.MAX_ACCOUNTS:
            raise LimitExceededError(f"{len(table):,} {name} exceed this server's limit of "
                                     f"{settings.MAX_ACCOUNTS:,} rows per table (MAX_ACCOUNTS)")
    runner.check(inputs)
    check_time_limit(inputs.scenario, default=runner.default_time_limit, settings=settings)
    # A kind that runs many solves (capacity: one design per N) says what they add up to.
    budget = getattr(runner, "time_budget", None)
    if budget is not None and (asked := float(budget(inputs.scenario))) > \
            settings.MAX_TIME_LIMIT:
        raise LimitExceededError(f"the designs of the sweep may take {asked:g} s (time_limit "
                                 f"× designs), over this server's limit of "
                                 f"{settings.MAX_TIME_LIMIT:g} s per job (MAX_TIME_LIMIT)")


def find_idempotent(*, session: Session, model: type[Stored], tenant: Tenant,
                    key: str | None, digest: str) -> Stored | None:
    """The row an earlier request with this key made, if the request was the same."""
    if key is None:
        return None
    row = session.scalar(select(model).where(model.tenant_id == tenant.id,
                                             model.idempotency_key == key))
    if row is not None and row.request_hash != digest:
        raise IdempotencyMismatchError(
            "this Idempotency-Key was already used with a different request body; "
            "use a new key for a new request")
    return row


def dispatch(*, session: Session, executor: Executor, job_ids: list[str]) -> None:
    """Hand committed jobs to the executor. A job the executor refuses stays queued: the
    recovery loop dispatches it again, so a broker outage delays jobs but loses none.

    No transaction is open while the broker is talked to (it may be slow or down for
    seconds): the connection is back in the pool, and mark_dispatched takes one after."""
    session.commit()
    sent = []
    for job_id in job_ids:
        try:
            executor.dispatch(job_id)
            sent.append(job_id)
        except Exception as exc:
            log.warning("dispatch failed; the recovery loop will retry: %s",
                        type(exc).__name__, extra={"job_id": job_id})
    try:
        lifecycle.mark_dispatched(session=session, job_ids=sent)
        session.commit()
    except Exception as exc:
        # The jobs are stored and sent; unmarked, recovery sends them once more (the claim
        # drops the copy). Failing here would tell a client its stored job was refused.
        # close, not rollback: rollback would expire the caller's loaded jobs.
        session.close()
        log.warning("could not mark jobs dispatched; recovery will send them again: %s",
                    type(exc).__name__, extra={"jobs": len(sent)})


def submit_job(*, session: Session, tenant: Tenant, job_in: JobCreate,
               idempotency_key: str | None, settings: Settings,
               executor: Executor) -> Submission:
    """Validate a job, store it queued and dispatch it; honours Idempotency-Key."""
    digest = request_hash(job_in)
    earlier = find_idempotent(session=session, model=Job, tenant=tenant, key=idempotency_key,
                              digest=digest)
    if earlier is not None:
        return Submission(earlier, created=False)
    runner = runner_for(job_in.kind)
    payload: dict[str, Any] = {"scenario": job_in.scenario}
    if job_in.dataset_id is not None:
        get_dataset_or_raise(session=session, tenant=tenant, dataset_id=job_in.dataset_id)
        inputs = dataset_inputs(session=session, dataset_id=job_in.dataset_id,
                                scenario=job_in.scenario)
    else:
        assert job_in.data is not None
        inputs = inline_inputs(job_in.scenario, job_in.data)
        payload["data"] = job_in.data.model_dump(mode="json")
    check_inputs(runner, inputs, settings)
    job = Job(tenant_id=tenant.id, kind=job_in.kind.value, label=job_in.label,
              dataset_id=job_in.dataset_id, payload=payload, request_hash=digest,
              idempotency_key=idempotency_key, state=JobState.queued)
    session.add(job)
    try:
        session.commit()
    except IntegrityError:
        # Two requests with one key raced; the other one stored its job first.
        session.rollback()
        earlier = find_idempotent(session=session, model=Job, tenant=tenant,
                                  key=idempotency_key, digest=digest)
        if earlier is None:
            raise
        return Submission(earlier, created=False)
    log.info("job submitted", extra={"job_id": job.id, "tenant_id": tenant.id,
                                     "kind": job.kind})
    dispatch(session=session, executor=executor, job_ids=[job.id])
    return Submission(job, created=True)


def get_job_or_raise(*, session: Session, tenant: Tenant, job_id: str) -> Job:
    """The tenant's job; another tenant's id is answered exactly like an unknown one."""
    job = session.get(Job, job_id)
    if job is None or job.tenant_id != tenant.id or job.deleted_at is not None:
        raise NotFoundError(f"no job {job_id!r}")
    return job


def list_jobs(*, session: Session, tenant: Tenant, limit: int, offset: int,
              state: JobState | None = None, batch_id: str | None = None,
              ) -> tuple[list[Job], int]:
    where = [Job.tenant_id == tenant.id, Job.deleted_at.is_(None)]
    if state is not None:
        where.append(Job.state == state)
    if batch_id is not None:
        where.append(Job.batch_id == batch_id)
    rows = session.scalars(select(Job).where(*where)
                           .order_by(Job.created_at.desc(), Job.id)
                           .limit(limit).offset(offset)).all()
    count = session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    return list(rows), count


def get_result_or_raise(*, session: Session, tenant: Tenant, job_id: str) -> dict[str, Any]:
    """The job's plan, or why there is none (yet)."""
    job = get_job_or_raise(session=session, tenant=tenant, job_id=job_id)
    if job.result is not None:
        return job.result
    if job.state in (JobState.queued, JobState.running):
        raise NotReadyError(f"job {job.id} is {job.state}; its result is not there yet")
    reason = (job.error or {}).get("message", "no plan was produced")
    raise NotReadyError(f"job {job.id} ended {job.state} without a plan: {reason}")


def cancel_job(*, session: Session, tenant: Tenant, job_id: str) -> Job:
    """Cancel a queued job at once, or ask a running one to stop (its worker polls the flag;
    it then ends cancelled, keeping the best plan found so far as its result)."""
    for _ in range(3):  # the job may start between our read and our write; read again
        job = get_job_or_raise(session=session, tenant=tenant, job_id=job_id)
        if job.state == JobState.cancelled:
            return job
        if job.state in (JobState.succeeded, JobState.failed):
            raise StateConflictError(f"job {job.id} already {job.state}; nothing to cancel")
        if job.state == JobState.queued:
            values: dict[str, Any] = {
                "state": JobState.cancelled, "cancel_requested": True,
                "finished_at": utcnow(),
                "error": {"type": "cancelled", "message": "cancelled before it started"}}
        else:
            values = {"cancel_requested": True}
        done = session.execute(update(Job).where(Job.id == job.id, Job.state == job.state)
                               .values(**values).execution_options(synchronize_session=False))
        session.commit()
        if done.rowcount == 1:  # type: ignore[attr-defined]
            session.refresh(job)
            log.info("job cancel requested", extra={"job_id": job.id, "state": job.state})
            return job
        session.expire(job)
    raise StateConflictError(f"job {job_id} changed state while cancelling; try again")


def tombstone() -> dict[str, Any]:
    """A deleted job's values: its data gone, what /metrics counts (kind, state, run time)
    kept, and its Idempotency-Key free again."""
    return {"deleted_at": utcnow(), "payload": {}, "result": None, "summary": None,
            "progress": None, "error": None, "label": None, "idempotency_key": None}


def delete_job(*, session: Session, tenant: Tenant, job_id: str) -> None:
    """Delete an ended job with its payload and result. A queued or running job is refused
    (cancel it first: deleting it would drop work a worker may be doing), and so is a job of
    a batch (the batch is deleted whole, so its comparison never silently loses a row)."""
    job = get_job_or_raise(session=session, tenant=tenant, job_id=job_id)
    if job.batch_id is not None:
        raise StateConflictError(f"job {job.id} belongs to batch {job.batch_id}; delete the "
                                 "batch to delete its jobs")
    if job.state not in FINISHED_STATES:
        raise StateConflictError(f"job {job.id} is {job.state}; cancel it and delete it once "
                                 "it has ended")
    done = session.execute(update(Job).where(Job.id == job.id, Job.deleted_at.is_(None))
                           .values(**tombstone()).execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise NotFoundError(f"no job {job_id!r}")  # another request deleted it meanwhile
    session.commit()
    log.info("job deleted", extra={"job_id": job.id, "tenant_id": tenant.id})


def to_scenario(job: Job) -> JobScenario:
    return JobScenario(id=job.id, kind=JobKind(job.kind), label=job.label,
                       dataset_id=job.dataset_id, scenario=job.payload.get("scenario") or {})


def to_public(job: Job) -> JobPublic:
    return JobPublic(
        id=job.id, kind=JobKind(job.kind), label=job.label, state=JobState(job.state),
        batch_id=job.batch_id, dataset_id=job.dataset_id, created_at=job.created_at,
        started_at=job.started_at, finished_at=job.finished_at, attempts=job.attempts,
        cancel_requested=job.cancel_requested,
        progress=None if job.progress is None else JobProgress.model_validate(job.progress),
        error=None if job.error is None else JobError.model_validate(job.error),
        result_available=job.result_status is not None, result_status=job.result_status)
