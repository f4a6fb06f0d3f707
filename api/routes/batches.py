"""Batches: many scenarios over one dataset, compared side by side."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import ExecutorDep, MetricsDep, SessionDep, SettingsDep, TenantDep
from api.jobs import batches
from api.routes.common import Limit, Offset, problems
from api.routes.jobs import IdempotencyKey
from api.schemas import BatchCreate, BatchesPublic, BatchPublic

router = APIRouter(prefix="/batches", tags=["batches"], responses=problems(401, 404))


@router.post("", status_code=202, responses=problems(413, 422))
def submit_batch(batch_in: BatchCreate, session: SessionDep, tenant: TenantDep,
                 settings: SettingsDep, executor: ExecutorDep, metrics: MetricsDep,
                 response: Response, idempotency_key: IdempotencyKey = None) -> BatchPublic:
    """Submit one job per scenario over one dataset (or inline data, stored once)."""
    submission = batches.submit_batch(session=session, tenant=tenant, batch_in=batch_in,
                                      idempotency_key=idempotency_key, settings=settings,
                                      executor=executor)
    if submission.created:
        metrics.jobs_submitted.labels(batch_in.kind.value).inc(len(batch_in.scenarios))
    else:
        response.status_code = 200
    response.headers["Location"] = f"/v1/batches/{submission.batch.id}"
    return batches.batch_view(session=session, batch=submission.batch)


@router.get("")
def list_batches(session: SessionDep, tenant: TenantDep, limit: Limit = 20,
                 offset: Offset = 0) -> BatchesPublic:
    """The tenant's batches, newest first."""
    rows, count = batches.list_batches(session=session, tenant=tenant, limit=limit,
                                       offset=offset)
    return BatchesPublic(data=[batches.batch_view(session=session, batch=b) for b in rows],
                         count=count)


@router.get("/{batch_id}")
def get_batch(batch_id: str, session: SessionDep, tenant: TenantDep) -> BatchPublic:
    """Each job's state and a KPI comparison of the succeeded ones."""
    batch = batches.get_batch_or_raise(session=session, tenant=tenant, batch_id=batch_id)
    return batches.batch_view(session=session, batch=batch)


@router.delete("/{batch_id}", status_code=204, responses=problems(409))
def delete_batch(batch_id: str, session: SessionDep, tenant: TenantDep) -> None:
    """Delete a batch and all its jobs once every one has ended; its dataset stays."""
    batches.delete_batch(session=session, tenant=tenant, batch_id=batch_id)
