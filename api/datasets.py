"""Datasets: input tables uploaded once, validated, stored and reused by many jobs."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, undefer

from api.config import Settings
from api.errors import LimitExceededError, NotFoundError, StateConflictError
from api.jobs.inputs import JobInputs, check_table_sizes, frame_from_csv, frame_to_csv
from api.schemas import FINISHED_STATES
from api.store.tables import Dataset, Job, Tenant, utcnow
from optimizer import datasets as bundled
from optimizer.domain import DistanceMetric
from optimizer.errors import InputError, Issue
from optimizer.geo import UNIT_SUFFIXES, load_units
from optimizer.io import TooManyRowsError, read_table
from optimizer.validate import validate_alignment, validate_design

log = logging.getLogger(__name__)

READABLE_SUFFIXES = (".csv", ".parquet", ".geojson", ".json", ".xlsx")


@dataclass(frozen=True)
class UploadedFile:
    """One multipart part: the field it came in, the client's file name and its bytes."""

    field: str
    filename: str
    content: bytes


def row_limit(field: str, settings: Settings) -> tuple[int, str] | None:
    """The most rows this server takes in an uploaded table, and the setting that says so."""
    limits = {"accounts": (settings.MAX_ACCOUNTS, "MAX_ACCOUNTS"),
              "reps": (settings.MAX_REPS, "MAX_REPS"),
              "distances": (settings.MAX_DISTANCES, "MAX_DISTANCES")}
    return limits.get(field)


def read_upload(upload: UploadedFile, settings: Settings | None = None) -> pd.DataFrame:
    """Read an uploaded table with the optimizer's reader (CSV, Parquet, GeoJSON, Excel).
    With `settings`, a table over its row limit is refused after reading one row too many
    (not the millions that may follow)."""
    suffix = Path(upload.filename).suffix.lower()
    suffix = suffix if suffix in READABLE_SUFFIXES else ".csv"
    limit = None if settings is None else row_limit(upload.field, settings)
    with tempfile.TemporaryDirectory(prefix="territory-upload-") as folder:
        path = Path(folder) / f"{upload.field}{suffix}"
        path.write_bytes(upload.content)
        try:
            return read_table(path, source=upload.field,
                              max_rows=None if limit is None else limit[0],
                              limit_name=None if limit is None else limit[1])
        except TooManyRowsError as exc:
            assert limit is not None
            raise LimitExceededError(
                f"{upload.field} has more than {exc.limit:,} rows, which exceeds this "
                f"server's limit of {exc.limit:,} {upload.field} per job ({limit[1]})") from exc


def read_units(upload: UploadedFile) -> gpd.GeoDataFrame:
    """Read uploaded unit polygons (GeoJSON, GeoPackage or zipped shapefile) with the
    optimizer's one reader, `geo.load_units`: every problem named by file, row and field."""
    suffix = Path(upload.filename).suffix.lower()
    if suffix not in UNIT_SUFFIXES or suffix == ".shp":  # a bare .shp lacks its .dbf/.shx
        raise InputError([Issue(upload.field, None, None,
                                f"unsupported units file {upload.filename!r} (use GeoJSON, "
                                "GeoPackage or a zipped shapefile)")])
    with tempfile.TemporaryDirectory(prefix="territory-upload-") as folder:
        path = Path(folder) / f"{upload.field}{suffix}"
        path.write_bytes(upload.content)
        return load_units(path)


def units_to_text(units: gpd.GeoDataFrame) -> str:
    """Unit polygons as stored: GeoJSON of unit_id and geometry (WGS84, repaired)."""
    text: str = units[["unit_id", "geometry"]].to_json(drop_id=True)
    return text


def units_from_text(text: str) -> gpd.GeoDataFrame:
    """Stored unit polygons, read back through `geo.load_units` (the models' one reader)."""
    with tempfile.TemporaryDirectory(prefix="territory-units-") as folder:
        path = Path(folder) / "units.geojson"
        path.write_text(text)
        return load_units(path)


def store_dataset(*, session: Session, tenant: Tenant, name: str | None,
                  metric: DistanceMetric, accounts: pd.DataFrame, reps: pd.DataFrame | None,
                  distances: pd.DataFrame | None, settings: Settings,
                  units: gpd.GeoDataFrame | None = None) -> Dataset:
    """Validate the tables (every problem at once) and store them as they were given.
    Without reps (a design-only set) the accounts are validated for a design."""
    n_reps = 0 if reps is None else len(reps)
    check_table_sizes(accounts=len(accounts), reps=n_reps,
                      distances=None if distances is None else len(distances), settings=settings)
    if reps is None:
        validate_design(accounts, distances, metric)
    else:
        validate_alignment(accounts, reps, distances, metric)
    dataset = Dataset(
        tenant_id=tenant.id, name=name, metric=metric.value, accounts_count=len(accounts),
        reps_count=n_reps, distances_count=None if distances is None else len(distances),
        accounts_csv=frame_to_csv(accounts), reps_csv="" if reps is None else frame_to_csv(reps),
        distances_csv=None if distances is None else frame_to_csv(distances),
        units_count=None if units is None else len(units),
        units_geojson=None if units is None else units_to_text(units))
    session.add(dataset)
    session.flush()
    return dataset


def create_dataset(*, session: Session, tenant: Tenant, uploads: dict[str, UploadedFile],
                   name: str | None, metric: DistanceMetric, settings: Settings) -> Dataset:
    """A dataset from uploaded files `accounts`, `reps` (absent: a design-only set) and
    optionally `distances` and `units` (polygons, checked now)."""
    tables: dict[str, pd.DataFrame] = {}
    units: gpd.GeoDataFrame | None = None
    issues: list[Issue] = []
    for field, upload in uploads.items():
        try:
            if field == "units":
                units = read_units(upload)
            else:
                tables[field] = read_upload(upload, settings)
        except InputError as exc:
            issues += exc.issues
    if issues:
        raise InputError(issues)
    return store_dataset(session=session, tenant=tenant, name=name, metric=metric,
                         accounts=tables["accounts"], reps=tables.get("reps"),
                         distances=tables.get("distances"), settings=settings, units=units)


# What a bundled set's files become: accounts and reps (realignment) or accounts and unit
# polygons (design only; ga-counties, nc-counties). us-zips' units.csv holds points only.
BUNDLED_FILES = {"accounts": "accounts.csv", "reps": "reps.csv", "units": "units.geojson"}


def _importable(d: bundled.Dataset) -> bool:
    return d.file("accounts.csv") is not None and (
        d.file("reps.csv") is not None or d.file("units.geojson") is not None)


def list_bundled() -> list[tuple[bundled.Dataset, bool]]:
    """The bundled data sets, each with whether it can be imported: accounts with reps, or
    accounts with unit polygons (design jobs only)."""
    return [(d, _importable(d)) for d in bundled.available()]


def import_bundled(*, session: Session, tenant: Tenant, name: str,
                   settings: Settings) -> Dataset:
    """Copy a bundled data set's accounts, reps and unit polygons (those it has) into the
    tenant's datasets, through the same validation and size limits as an upload (a bundled
    table is no exception to MAX_ACCOUNTS)."""
    try:
        found = bundled.get_dataset_or_raise(name)
    except InputError as exc:
        # An unknown name in the URL is a missing resource, not bad input.
        raise NotFoundError(f"no bundled data set {name!r}") from exc
    if not _importable(found):
        raise NotFoundError(f"bundled data set {name!r} has no accounts.csv with reps.csv or "
                            "units.geojson to import")
    uploads = {field: UploadedFile(field=field, filename=file, content=path.read_bytes())
               for field, file in BUNDLED_FILES.items()
               if (path := found.file(file)) is not None}
    return create_dataset(session=session, tenant=tenant, uploads=uploads, name=name,
                          metric=DistanceMetric.haversine, settings=settings)


def get_dataset_or_raise(*, session: Session, tenant: Tenant, dataset_id: str) -> Dataset:
    """The tenant's dataset; another tenant's id is answered exactly like an unknown one."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.tenant_id != tenant.id or dataset.deleted_at is not None:
        raise NotFoundError(f"no dataset {dataset_id!r}")
    return dataset


def list_datasets(*, session: Session, tenant: Tenant, limit: int,
                  offset: int) -> tuple[list[Dataset], int]:
    where = [Dataset.tenant_id == tenant.id, Dataset.deleted_at.is_(None)]
    rows = session.scalars(select(Dataset).where(*where)
                           .order_by(Dataset.created_at.desc(), Dataset.id)
                           .limit(limit).offset(offset)).all()
    count = session.scalar(select(func.count()).select_from(Dataset).where(*where)) or 0
    return list(rows), count


def delete_dataset(*, session: Session, tenant: Tenant, dataset_id: str) -> None:
    """Delete a dataset's tables. Refused while a job that reads them is queued or running
    (cancel those first). The row stays as a tombstone (name, sizes, dates), so ended jobs
    and batches keep their results and their `dataset_id` still says what they ran on; to
    the API the dataset is gone (404)."""
    dataset = get_dataset_or_raise(session=session, tenant=tenant, dataset_id=dataset_id)
    active = session.scalar(select(func.count()).select_from(Job).where(
        Job.dataset_id == dataset.id, Job.state.not_in(FINISHED_STATES))) or 0
    if active:
        raise StateConflictError(f"{active} job(s) reading dataset {dataset.id} are still "
                                 "queued or running; cancel them or wait until they have "
                                 "ended")
    done = session.execute(
        update(Dataset).where(Dataset.id == dataset.id, Dataset.deleted_at.is_(None))
        .values(deleted_at=utcnow(), accounts_csv="", reps_csv="", distances_csv=None,
                units_geojson=None).execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise NotFoundError(f"no dataset {dataset_id!r}")  # another request deleted it
    session.commit()
    log.info("dataset deleted", extra={"dataset_id": dataset.id, "tenant_id": tenant.id})


def dataset_inputs(*, session: Session, dataset_id: str, scenario: dict[str, Any]) -> JobInputs:
    """A job's inputs from a stored dataset (its tables are read back as text)."""
    # Row and tables in one read, so a deletion in between cannot leave empty tables.
    dataset = session.get_one(Dataset, dataset_id, options=[undefer("*")],
                              populate_existing=True)
    if dataset.deleted_at is not None:  # deleted while the job was being submitted
        raise InputError([Issue("dataset_id", None, None, f"dataset {dataset_id} was deleted "
                                "before this job ran")])
    distances = None if dataset.distances_csv is None else frame_from_csv(dataset.distances_csv)
    units = None if dataset.units_geojson is None else units_from_text(dataset.units_geojson)
    return JobInputs(scenario, frame_from_csv(dataset.accounts_csv),
                     frame_from_csv(dataset.reps_csv), distances, units=units)
