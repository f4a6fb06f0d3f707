"""Batches: many scenarios over one dataset, submitted at once and compared side by side."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, undefer

from api.config import Settings
from api.datasets import dataset_inputs, get_dataset_or_raise, store_dataset
from api.errors import LimitExceededError, NotFoundError, StateConflictError
from api.executors.base import Executor
from api.jobs.inputs import JobInputs, inline_inputs
from api.jobs.service import (
    check_inputs,
    dispatch,
    find_idempotent,
    request_hash,
    runner_for,
    to_public,
    tombstone,
)
from api.schemas import (
    FINISHED_STATES,
    BatchCreate,
    BatchPublic,
    JobKind,
    JobState,
    ScenarioComparison,
)
from api.store.tables import Batch, Dataset, Job, Tenant, utcnow
from optimizer.domain import DistanceMetric
from optimizer.errors import InputError, Issue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSubmission:
    batch: Batch
    created: bool


def _check_scenarios(batch_in: BatchCreate, base: JobInputs, settings: Settings) -> None:
    """Check every scenario against the data; report all problems of all scenarios at once,
    each scenario's own ones under `scenarios[i]` and the data's ones once."""
    runner = runner_for(batch_in.kind)
    issues: list[Issue] = []
    for i, item in enumerate(batch_in.scenarios):
        inputs = replace(base, scenario=item.scenario)  # the dataset's units too
        try:
            check_inputs(runner, inputs, settings)
        except InputError as exc:
            for issue in exc.issues:
                if issue.source == "scenario":
                    issue = Issue(f"scenarios[{i}].scenario", issue.row, issue.field,
                                  issue.message)
                if issue not in issues:
                    issues.append(issue)
        except LimitExceededError as exc:
            raise LimitExceededError(f"scenarios[{i}]: {exc.detail}") from exc
    if issues:
        raise InputError(issues)


def _dataset_for(*, session: Session, tenant: Tenant, batch_in: BatchCreate,
                 settings: Settings) -> tuple[Dataset, JobInputs]:
    if batch_in.dataset_id is not None:
        dataset = get_dataset_or_raise(session=session, tenant=tenant,
                                       dataset_id=batch_in.dataset_id)
        return dataset, dataset_inputs(session=session, dataset_id=dataset.id, scenario={})
    assert batch_in.data is not None
    base = inline_inputs({}, batch_in.data)
    _check_scenarios(batch_in, base, settings)
    # Inline tables are stored once, as a dataset, and every job of the batch points at it:
    # accounts with reps, or accounts alone (design, capacity sizing), in the first
    # scenario's metric (a capacity plan's is its sizing scenario's).
    first = batch_in.scenarios[0].scenario
    if batch_in.kind is JobKind.capacity:
        first = (first.get("sizing") or {}).get("scenario") or {}
    metric = DistanceMetric(first.get("metric", "haversine"))
    dataset = store_dataset(session=session, tenant=tenant, name="inline data of a batch",
                            metric=metric, accounts=base.accounts,
                            reps=base.reps if batch_in.data.reps else None,
                            distances=base.distances, settings=settings)
    return dataset, base


def submit_batch(*, session: Session, tenant: Tenant, batch_in: BatchCreate,
                 idempotency_key: str | None, settings: Settings,
                 executor: Executor) -> BatchSubmission:
    """Validate every scenario, store one queued job per scenario and dispatch them."""
    digest = request_hash(batch_in)
    earlier = find_idempotent(session=session, model=Batch, tenant=tenant, key=idempotency_key,
                              digest=digest)
    if earlier is not None:
        return BatchSubmission(earlier, created=False)
    runner_for(batch_in.kind)
    if batch_in.kind is JobKind.quota:
        # A dataset holds accounts, reps and units, not a quota job's tables.
        raise InputError([Issue("batch", None, "kind", (
            "quota jobs are not batched: their tables (territories, submissions, coverage) "
            "go with each job; submit one job per scenario to POST /v1/jobs"))])
    if len(batch_in.scenarios) > settings.MAX_BATCH_SCENARIOS:
        raise LimitExceededError(
            f"{len(batch_in.scenarios)} scenarios exceed this server's limit of "
            f"{settings.MAX_BATCH_SCENARIOS} per batch (MAX_BATCH_SCENARIOS)")
    dataset, base = _dataset_for(session=session, tenant=tenant, batch_in=batch_in,
                                 settings=settings)
    if batch_in.dataset_id is not None:
        _check_scenarios(batch_in, base, settings)
    batch = Batch(tenant_id=tenant.id, kind=batch_in.kind.value, dataset_id=dataset.id,
                  idempotency_key=idempotency_key, request_hash=digest)
    session.add(batch)
    session.flush()
    jobs = [Job(tenant_id=tenant.id, kind=batch_in.kind.value, label=item.label,
                batch_id=batch.id, dataset_id=dataset.id, payload={"scenario": item.scenario},
                request_hash=request_hash(item), state=JobState.queued)
            for item in batch_in.scenarios]
    session.add_all(jobs)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        earlier = find_idempotent(session=session, model=Batch, tenant=tenant,
                                  key=idempotency_key, digest=digest)
        if earlier is None:
            raise
        return BatchSubmission(earlier, created=False)
    log.info("batch submitted", extra={"batch_id": batch.id, "tenant_id": tenant.id,
                                       "jobs": len(jobs)})
    dispatch(session=session, executor=executor, job_ids=[j.id for j in jobs])
    return BatchSubmission(batch, created=True)


def get_batch_or_raise(*, session: Session, tenant: Tenant, batch_id: str) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None or batch.tenant_id != tenant.id or batch.deleted_at is not None:
        raise NotFoundError(f"no batch {batch_id!r}")
    return batch


def delete_batch(*, session: Session, tenant: Tenant, batch_id: str) -> None:
    """Delete a batch with all its jobs (as `service.delete_job` does) once every one has
    ended; while any is queued or running the batch is refused whole (cancel them first).
    Its dataset stays: it is the tenant's to delete, and other jobs may use it."""
    batch = get_batch_or_raise(session=session, tenant=tenant, batch_id=batch_id)
    states = session.scalars(select(Job.state).where(Job.batch_id == batch.id)).all()
    active = sum(state not in FINISHED_STATES for state in states)
    if active:
        raise StateConflictError(f"{active} of the {len(states)} jobs of batch {batch.id} are "
                                 "still queued or running; cancel them or wait until they "
                                 "have ended")
    # An ended job never runs again, so nothing can start between the check and the update.
    done = session.execute(update(Batch).where(Batch.id == batch.id, Batch.deleted_at.is_(None))
                           .values(deleted_at=utcnow(), idempotency_key=None)
                           .execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise NotFoundError(f"no batch {batch_id!r}")  # another request deleted it meanwhile
    session.execute(update(Job).where(Job.batch_id == batch.id).values(**tombstone())
                    .execution_options(synchronize_session=False))
    session.commit()
    log.info("batch deleted", extra={"batch_id": batch.id, "tenant_id": tenant.id,
                                     "jobs": len(states)})


def _kpi(summary: dict[str, Any], *path: str) -> float | None:
    value: Any = summary.get("kpis", {}).get("after", {})
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) else None


def comparison_row(job: Job) -> ScenarioComparison:
    summary = job.summary or {}
    return ScenarioComparison(
        job_id=job.id, label=job.label, status=summary.get("status"),
        objective=summary.get("objective"), gap=summary.get("gap"),
        travel=_kpi(summary, "travel", "total"),
        workload_max_over_fair=_kpi(summary, "balance", "workload", "max_over_fair"),
        workload_min_over_fair=_kpi(summary, "balance", "workload", "min_over_fair"),
        workload_cv=_kpi(summary, "balance", "workload", "cv"),
        accounts_moved_share=_kpi(summary, "disruption", "accounts_moved_share"))


def batch_view(*, session: Session, batch: Batch) -> BatchPublic:
    """The batch with each job's state and a KPI table of its succeeded jobs."""
    jobs = session.scalars(select(Job).where(Job.batch_id == batch.id)
                           .options(undefer(Job.summary))
                           .order_by(Job.created_at, Job.id)).all()
    counts = Counter(j.state for j in jobs)
    active = counts[JobState.queued] + counts[JobState.running]
    return BatchPublic(
        id=batch.id, kind=JobKind(batch.kind), dataset_id=batch.dataset_id,
        created_at=batch.created_at, state="running" if active else "finished",
        counts={str(state): n for state, n in counts.items()},
        jobs=[to_public(j) for j in jobs],
        comparison=[comparison_row(j) for j in jobs if j.state == JobState.succeeded])


def list_batches(*, session: Session, tenant: Tenant, limit: int,
                 offset: int) -> tuple[list[Batch], int]:
    where = [Batch.tenant_id == tenant.id, Batch.deleted_at.is_(None)]
    rows = session.scalars(select(Batch).where(*where)
                           .order_by(Batch.created_at.desc(), Batch.id)
                           .limit(limit).offset(offset)).all()
    count = session.scalar(select(func.count()).select_from(Batch).where(*where)) or 0
    return list(rows), count
