"""Jobs: submit, follow, fetch the result, cancel."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse

from api.deps import ExecutorDep, MetricsDep, SessionDep, SettingsDep, TenantDep
from api.errors import NotFoundError
from api.jobs import service
from api.routes.common import Limit, Offset, problems
from api.schemas import JobCreate, JobPublic, JobResult, JobScenario, JobsPublic, JobState
from optimizer.io import table_csv

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=problems(401, 404))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


@router.post("", status_code=202, responses={200: {"model": JobPublic,
                                                  "description": "Same Idempotency-Key: the "
                                                                 "job made earlier"},
                                              **problems(413, 422)})
def submit_job(job_in: JobCreate, session: SessionDep, tenant: TenantDep,
               settings: SettingsDep, executor: ExecutorDep, metrics: MetricsDep,
               response: Response, idempotency_key: IdempotencyKey = None) -> JobPublic:
    """Submit a job: validated now, solved in the background; answers with its id at once."""
    submission = service.submit_job(session=session, tenant=tenant, job_in=job_in,
                                    idempotency_key=idempotency_key, settings=settings,
                                    executor=executor)
    if submission.created:
        metrics.jobs_submitted.labels(job_in.kind.value).inc()
    else:
        response.status_code = 200
    response.headers["Location"] = f"/v1/jobs/{submission.job.id}"
    return service.to_public(submission.job)


@router.get("")
def list_jobs(session: SessionDep, tenant: TenantDep, limit: Limit = 50, offset: Offset = 0,
              state: JobState | None = None, batch_id: str | None = None) -> JobsPublic:
    """The tenant's jobs, newest first."""
    jobs, count = service.list_jobs(session=session, tenant=tenant, limit=limit, offset=offset,
                                    state=state, batch_id=batch_id)
    return JobsPublic(data=[service.to_public(j) for j in jobs], count=count)


@router.get("/{job_id}")
def get_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobPublic:
    """A job's state and live progress (phase, incumbent, bound, gap, elapsed)."""
    return service.to_public(service.get_job_or_raise(session=session, tenant=tenant,
                                                      job_id=job_id))


@router.get("/{job_id}/scenario")
def get_scenario(job_id: str, session: SessionDep, tenant: TenantDep) -> JobScenario:
    """What the job was asked to run: its scenario as submitted and its dataset, so that a
    planner can run it again with changes (the web page's *Open* fills its form from it)."""
    return service.to_scenario(service.get_job_or_raise(session=session, tenant=tenant,
                                                        job_id=job_id))


@router.get("/{job_id}/result", responses=problems(409))
def get_result(job_id: str, session: SessionDep, tenant: TenantDep) -> JobResult:
    """The result as JSON: a plan's summary, assignments and territories (align, design), or
    the summary and named tables (capacity, quota)."""
    result = service.get_result_or_raise(session=session, tenant=tenant, job_id=job_id)
    return JobResult.model_validate(result)


@router.get("/{job_id}/result.csv", response_class=Response, responses={
    200: {"content": {"text/csv": {}}, "description": "assignments.csv (align, design) or "
                                                       "the main table (capacity, quota)"},
    **problems(409)})
def get_result_csv(job_id: str, session: SessionDep, tenant: TenantDep) -> Response:
    """A plan's assignments as CSV (assignments.csv); for capacity and quota jobs their
    main table (capacity_curve.csv, hiring_plan.csv, quotas.csv, manager_quotas.csv, ...)."""
    result = service.get_result_or_raise(session=session, tenant=tenant, job_id=job_id)
    if result.get("assignments") is not None:
        name, rows = "assignments", result["assignments"]
    else:
        name = str(result["main_table"])
        rows = result["tables"][name]
    return Response(table_csv(pd.DataFrame.from_records(rows)), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{job_id}-{name}.csv"'})


def _produced_file(job_id: str, session: SessionDep, tenant: TenantDep, name: str) -> Any:
    """A file the job's result carries under `files` (GeoJSON as JSON, binaries as base64)."""
    result = service.get_result_or_raise(session=session, tenant=tenant, job_id=job_id)
    files = result.get("files") or {}
    if name not in files:
        raise NotFoundError(f"{name} was not produced by this job")
    return files[name]


@router.get("/{job_id}/result.geojson", response_class=Response, responses={
    200: {"content": {"application/geo+json": {}}}, **problems(409)})
def get_result_geojson(job_id: str, session: SessionDep, tenant: TenantDep) -> Response:
    """Territory polygons as GeoJSON, when the job produced them."""
    document = _produced_file(job_id, session, tenant, "territories.geojson")
    return JSONResponse(document, media_type="application/geo+json")


@router.get("/{job_id}/result.xlsx", response_class=Response, responses={
    200: {"content": {XLSX: {}}}, **problems(409)})
def get_result_xlsx(job_id: str, session: SessionDep, tenant: TenantDep) -> Response:
    """The workbook, when the job produced one."""
    encoded = _produced_file(job_id, session, tenant, "workbook.xlsx")
    return Response(base64.b64decode(encoded), media_type=XLSX, headers={
        "Content-Disposition": f'attachment; filename="{job_id}-workbook.xlsx"'})


@router.post("/{job_id}/cancel", status_code=202, responses=problems(409))
def cancel_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobPublic:
    """Cancel: a queued job ends at once; a running one stops at the solver's next check and
    ends cancelled, keeping the best plan found so far as its result (if any)."""
    return service.to_public(service.cancel_job(session=session, tenant=tenant, job_id=job_id))


@router.delete("/{job_id}", status_code=204, responses=problems(409))
def delete_job(job_id: str, session: SessionDep, tenant: TenantDep) -> None:
    """Delete an ended job and its result; a queued or running job must be cancelled first,
    and a job of a batch goes with its batch."""
    service.delete_job(session=session, tenant=tenant, job_id=job_id)
