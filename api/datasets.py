"""Datasets: input tables uploaded once, validated, stored and reused by many jobs."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.config import Settings
from api.errors import NotFoundError
from api.jobs.inputs import JobInputs, check_table_sizes, frame_from_csv, frame_to_csv
from api.store.tables import Dataset, Tenant
from optimizer import datasets as bundled
from optimizer.domain import DistanceMetric
from optimizer.errors import InputError, Issue
from optimizer.io import read_table
from optimizer.validate import validate_alignment

READABLE_SUFFIXES = (".csv", ".parquet", ".geojson", ".json", ".xlsx")


@dataclass(frozen=True)
class UploadedFile:
    """One multipart part: the field it came in, the client's file name and its bytes."""

    field: str
    filename: str
    content: bytes


def read_upload(upload: UploadedFile) -> pd.DataFrame:
    """Read an uploaded table with the optimizer's reader (CSV, Parquet, GeoJSON, Excel)."""
    suffix = Path(upload.filename).suffix.lower()
    suffix = suffix if suffix in READABLE_SUFFIXES else ".csv"
    with tempfile.TemporaryDirectory(prefix="territory-upload-") as folder:
        path = Path(folder) / f"{upload.field}{suffix}"
        path.write_bytes(upload.content)
        return read_table(path, source=upload.field)


def store_dataset(*, session: Session, tenant: Tenant, name: str | None,
                  metric: DistanceMetric, accounts: pd.DataFrame, reps: pd.DataFrame,
                  distances: pd.DataFrame | None, settings: Settings) -> Dataset:
    """Validate the tables (every problem at once) and store them as they were given."""
    check_table_sizes(accounts=len(accounts), reps=len(reps),
                      distances=None if distances is None else len(distances), settings=settings)
    validate_alignment(accounts, reps, distances, metric)
    dataset = Dataset(
        tenant_id=tenant.id, name=name, metric=metric.value, accounts_count=len(accounts),
        reps_count=len(reps), distances_count=None if distances is None else len(distances),
        accounts_csv=frame_to_csv(accounts), reps_csv=frame_to_csv(reps),
        distances_csv=None if distances is None else frame_to_csv(distances))
    session.add(dataset)
    session.flush()
    return dataset


def create_dataset(*, session: Session, tenant: Tenant, uploads: dict[str, UploadedFile],
                   name: str | None, metric: DistanceMetric, settings: Settings) -> Dataset:
    """A dataset from uploaded files `accounts`, `reps` and optionally `distances`."""
    tables: dict[str, pd.DataFrame] = {}
    issues: list[Issue] = []
    for field, upload in uploads.items():
        try:
            tables[field] = read_upload(upload)
        except InputError as exc:
            issues += exc.issues
    if issues:
        raise InputError(issues)
    return store_dataset(session=session, tenant=tenant, name=name, metric=metric,
                         accounts=tables["accounts"], reps=tables["reps"],
                         distances=tables.get("distances"), settings=settings)


BUNDLED_TABLES = ("accounts.csv", "reps.csv")


def list_bundled() -> list[tuple[bundled.Dataset, bool]]:
    """The bundled data sets, each with whether it can be imported (has both tables)."""
    return [(d, all(d.file(f) is not None for f in BUNDLED_TABLES)) for d in bundled.available()]


def import_bundled(*, session: Session, tenant: Tenant, name: str,
                   settings: Settings) -> Dataset:
    """Copy a bundled data set's accounts/reps into the tenant's datasets, through the same
    validation and size limits as an upload (a bundled table is no exception to MAX_ACCOUNTS)."""
    try:
        found = bundled.get_dataset_or_raise(name)
    except InputError as exc:
        # An unknown name in the URL is a missing resource, not bad input.
        raise NotFoundError(f"no bundled data set {name!r}") from exc
    uploads: dict[str, UploadedFile] = {}
    for table in BUNDLED_TABLES:
        path = found.file(table)
        if path is None:
            raise NotFoundError(f"bundled data set {name!r} has no {table}")
        field = table.removesuffix(".csv")
        uploads[field] = UploadedFile(field=field, filename=table, content=path.read_bytes())
    return create_dataset(session=session, tenant=tenant, uploads=uploads, name=name,
                          metric=DistanceMetric.haversine, settings=settings)


def get_dataset_or_raise(*, session: Session, tenant: Tenant, dataset_id: str) -> Dataset:
    """The tenant's dataset; another tenant's id is answered exactly like an unknown one."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.tenant_id != tenant.id:
        raise NotFoundError(f"no dataset {dataset_id!r}")
    return dataset


def list_datasets(*, session: Session, tenant: Tenant, limit: int,
                  offset: int) -> tuple[list[Dataset], int]:
    rows = session.scalars(select(Dataset).where(Dataset.tenant_id == tenant.id)
                           .order_by(Dataset.created_at.desc(), Dataset.id)
                           .limit(limit).offset(offset)).all()
    count = session.scalar(select(func.count()).select_from(Dataset)
                           .where(Dataset.tenant_id == tenant.id)) or 0
    return list(rows), count


def dataset_inputs(*, session: Session, dataset_id: str, scenario: dict[str, Any]) -> JobInputs:
    """A job's inputs from a stored dataset (its tables are read back as text)."""
    dataset = session.get_one(Dataset, dataset_id)
    distances = None if dataset.distances_csv is None else frame_from_csv(dataset.distances_csv)
    return JobInputs(scenario, frame_from_csv(dataset.accounts_csv),
                     frame_from_csv(dataset.reps_csv), distances)
