"""Bundled data sets: list them, and import one into the tenant's datasets (the web page's
"use the demo data" button, without the client downloading and re-uploading the files)."""

from __future__ import annotations

from fastapi import APIRouter

from api import datasets
from api.deps import SessionDep, SettingsDep, TenantDep
from api.routes.common import problems
from api.routes.datasets import to_public
from api.schemas import BundledListPublic, BundledPublic, DatasetPublic

router = APIRouter(prefix="/bundled", tags=["bundled"], responses=problems(401, 404))


@router.get("")
def list_bundled(tenant: TenantDep) -> BundledListPublic:
    """The data sets shipped with the service (a key is needed, like every /v1 route)."""
    del tenant  # only authenticates: the catalogue is the same for every tenant
    return BundledListPublic(data=[
        BundledPublic(name=d.name, description=d.description, importable=importable)
        for d, importable in datasets.list_bundled()])


@router.post("/{name}", status_code=201, responses=problems(422))
def import_bundled(name: str, session: SessionDep, tenant: TenantDep,
                   settings: SettingsDep) -> DatasetPublic:
    """Import a bundled data set's accounts.csv with its reps.csv and/or units.geojson (unit
    polygons) as a new dataset of the tenant; one without reps serves design jobs."""
    dataset = datasets.import_bundled(session=session, tenant=tenant, name=name,
                                      settings=settings)
    session.commit()
    return to_public(dataset)
