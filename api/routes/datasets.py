"""Datasets: upload input tables once, reuse them in many jobs and batches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from api import datasets
from api.deps import SessionDep, SettingsDep, TenantDep
from api.routes.common import Limit, Offset, problems
from api.schemas import DatasetPublic, DatasetsPublic
from api.store.tables import Dataset
from optimizer.domain import DistanceMetric

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=problems(401, 404))


def to_public(dataset: Dataset) -> DatasetPublic:
    return DatasetPublic(id=dataset.id, name=dataset.name, metric=dataset.metric,
                         accounts=dataset.accounts_count, reps=dataset.reps_count,
                         distances=dataset.distances_count, units=dataset.units_count,
                         created_at=dataset.created_at)


def _uploaded(field: str, upload: UploadFile) -> datasets.UploadedFile:
    return datasets.UploadedFile(field=field, filename=upload.filename or f"{field}.csv",
                                 content=upload.file.read())


@router.post("", status_code=201, responses=problems(413, 422))
def upload_dataset(
    session: SessionDep, tenant: TenantDep, settings: SettingsDep,
    accounts: Annotated[UploadFile, File(description="accounts.csv (or .parquet/.geojson/.xlsx)")],
    reps: Annotated[UploadFile, File(description="reps.csv")],
    distances: Annotated[UploadFile | None, File(description="distances.csv")] = None,
    units: Annotated[UploadFile | None, File(
        description="Unit polygons with unit_id (GeoJSON, GeoPackage or zipped shapefile): "
                    "territory boundaries and contiguity.")] = None,
    name: Annotated[str | None, Form(max_length=200)] = None,
    metric: Annotated[DistanceMetric, Form(description="Metric to validate for (coordinates "
                                                       "needed).")] = DistanceMetric.haversine,
) -> DatasetPublic:
    """Upload accounts, reps and optional distances and unit polygons; validated now, stored
    for reuse."""
    uploads = {"accounts": _uploaded("accounts", accounts), "reps": _uploaded("reps", reps)}
    if distances is not None:
        uploads["distances"] = _uploaded("distances", distances)
    if units is not None:
        uploads["units"] = _uploaded("units", units)
    dataset = datasets.create_dataset(session=session, tenant=tenant, uploads=uploads,
                                      name=name, metric=metric, settings=settings)
    session.commit()
    return to_public(dataset)


@router.get("")
def list_datasets(session: SessionDep, tenant: TenantDep, limit: Limit = 50,
                  offset: Offset = 0) -> DatasetsPublic:
    """The tenant's datasets, newest first."""
    rows, count = datasets.list_datasets(session=session, tenant=tenant, limit=limit,
                                         offset=offset)
    return DatasetsPublic(data=[to_public(d) for d in rows], count=count)


@router.get("/{dataset_id}")
def get_dataset(dataset_id: str, session: SessionDep, tenant: TenantDep) -> DatasetPublic:
    """A dataset's size and the metric it was validated for."""
    return to_public(datasets.get_dataset_or_raise(session=session, tenant=tenant,
                                                   dataset_id=dataset_id))


@router.delete("/{dataset_id}", status_code=204, responses=problems(409))
def delete_dataset(dataset_id: str, session: SessionDep, tenant: TenantDep) -> None:
    """Delete a dataset's tables once no queued or running job reads them; ended jobs keep
    their results."""
    datasets.delete_dataset(session=session, tenant=tenant, dataset_id=dataset_id)
