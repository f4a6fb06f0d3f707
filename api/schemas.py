"""Request and response bodies of the API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class JobKind(StrEnum):
    """What a job computes. Which kinds this server runs: see api.jobs.runner.RUNNERS."""

    align = "align"
    design = "design"
    capacity = "capacity"
    quota = "quota"


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINISHED_STATES = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})

# A record is one row of a table, keyed like the CSV columns.
Cell = str | int | float | bool | None
Record = dict[str, Cell]
_STRICT = ConfigDict(extra="forbid")


# Tables sent inline with a job or batch
class InlineData(BaseModel):
    model_config = _STRICT

    accounts: list[Record] = Field(
        default_factory=list, description="One record per account (accounts.csv columns); "
                                          "needed by align, design and capacity sizing.")
    reps: list[Record] = Field(default_factory=list,
                               description="One record per rep (reps.csv columns); "
                                           "not used by `design`; `capacity`: the roster "
                                           "(role, start_date) and the rep capacity.")
    distances: list[Record] | None = Field(
        default=None, description="Optional user matrix: from_id, to_id, distance.")
    territories: list[Record] | None = Field(
        default=None, description="`quota`: one record per territory (territory_id, "
                                  "potential, history, rep_id, start_month, manager_id, "
                                  "quota), as territories.csv.")
    submissions: list[Record] | None = Field(
        default=None, description="`quota` bottom-up: territory_id (or rep_id or id), "
                                  "submitted, manager, region.")
    coverage: list[Record] | None = Field(
        default=None, description="`quota` derived: overlay_id, territory_id, share.")


class _DataSource(BaseModel):
    """Exactly one of inline `data` or an uploaded `dataset_id`."""

    model_config = _STRICT

    data: InlineData | None = None
    dataset_id: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _one_source(self) -> _DataSource:
        if (self.data is None) == (self.dataset_id is None):
            raise ValueError("give exactly one of 'data' (inline records) or 'dataset_id'")
        return self


# Properties to receive via API on job creation
class JobCreate(_DataSource):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "kind": "align",
        "label": "regional, ±10 % workload",
        "scenario": {"balance": {"workload": {"tolerance": 0.1}},
                     "solver": {"time_limit": 60, "mip_gap": 0.005}},
        "data": {
            "accounts": [{"account_id": "A1", "lat": 33.75, "lon": -84.39, "workload": 120,
                          "current_rep": "R1"},
                         {"account_id": "A2", "lat": 32.08, "lon": -81.09, "workload": 80}],
            "reps": [{"rep_id": "R1", "lat": 33.75, "lon": -84.39, "capacity": 1600},
                     {"rep_id": "R2", "lat": 32.08, "lon": -81.09, "capacity": 1600}]}}, {
        "kind": "capacity",
        "scenario": {"sizing": {"capacity_hours": 1600, "travel_speed": 60,
                                "target_utilisation": 0.9, "min_territories": 1,
                                "max_territories": 2, "time_limit": 10,
                                "scenario": {"circuity": 1.2}}},
        "data": {"accounts": [
            {"account_id": "A1", "lat": 33.75, "lon": -84.39, "workload": 700, "visits": 4},
            {"account_id": "A2", "lat": 32.08, "lon": -81.09, "workload": 600, "visits": 4}]}}, {
        "kind": "quota",
        "scenario": {"method": "top-down", "goal": 1000000, "potential_weight": 0.5},
        "data": {"territories": [
            {"territory_id": "T1", "potential": 500000, "history": 300000},
            {"territory_id": "T2", "potential": 300000, "history": 400000}]}}]})

    kind: JobKind = JobKind.align
    label: str | None = Field(default=None, max_length=200)
    scenario: dict[str, Any] = Field(
        default_factory=dict,
        description="What to compute; unknown keys are errors. align, design: the scenario "
                    "(same keys as a scenario YAML file); `contiguity: true` needs a "
                    "`dataset_id` whose dataset has unit polygons (inline `data` carries no "
                    "units, so it is refused with 422 there). capacity: the capacity plan "
                    "(same keys as a `territory capacity --plan` file): `sizing` "
                    "(optimizer.capacity.SizingSettings: capacity_hours, travel_speed, "
                    "visits_per_trip, target_utilisation, min_territories, "
                    "max_territories, step, time_limit and mip_gap per design, scenario) "
                    "and/or a hiring plan (months, roles, ratios, goal, goal_period, budget, "
                    "objective) with `start` (YYYY-MM-DD). quota: method (top-down | fair | "
                    "bottom-up | derived), goal, potential_weight, over_assignment, ramp, "
                    "shortfall, unit, band, close_gap, manager_factor, overlay_factor.")


class JobProgress(BaseModel):
    phase: str
    elapsed: float
    incumbent: float | None = None
    bound: float | None = None
    gap: float | None = None
    message: str = ""
    updated_at: datetime | None = None


class JobError(BaseModel):
    """Why a job failed (or was cancelled before it had a plan)."""

    type: str = Field(description="invalid-input | infeasible | solver-error | cancelled | "
                                  "worker-lost | internal-error")
    message: str
    reasons: list[str] = Field(default_factory=list)
    issues: list[dict[str, Any]] = Field(default_factory=list)


# Properties to return via API for a job
class JobPublic(BaseModel):
    id: str
    kind: JobKind
    label: str | None
    state: JobState
    batch_id: str | None
    dataset_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    cancel_requested: bool
    progress: JobProgress | None
    error: JobError | None
    result_available: bool = Field(description="A result can be fetched from /result.")
    result_status: str | None = Field(
        description="summary.json status of the result: optimal | feasible.")


# What a job was asked to run, for running it again with changes
class JobScenario(BaseModel):
    id: str
    kind: JobKind
    label: str | None
    dataset_id: str | None = Field(description="The dataset it ran on (None: inline data).")
    scenario: dict[str, Any] = Field(
        description="The scenario as submitted, without the defaults filled in.")


# A page of jobs
class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int = Field(description="All the tenant's jobs matching the filter, not just this page.")


class JobResult(BaseModel):
    """A job's result. align and design (a plan): summary.json, assignments.csv and
    territories.csv as JSON. capacity and quota: summary.json and named tables (the CSVs the
    CLI writes, e.g. capacity_curve, quotas, manager_quotas); `main_table` is the one
    /result.csv serves."""

    summary: dict[str, Any]
    assignments: list[dict[str, Any]] | None = Field(
        default=None, description="align, design: one record per account.")
    territories: list[dict[str, Any]] | None = Field(
        default=None, description="align, design: one record per territory.")
    tables: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, description="capacity, quota: records of each output table.")
    main_table: str | None = Field(default=None,
                                   description="capacity, quota: the table of /result.csv.")


# One scenario of a batch
class BatchScenario(BaseModel):
    model_config = _STRICT

    label: str | None = Field(default=None, max_length=200)
    scenario: dict[str, Any] = Field(default_factory=dict)


# Properties to receive via API on batch creation
class BatchCreate(_DataSource):
    kind: JobKind = JobKind.align
    scenarios: list[BatchScenario] = Field(min_length=1)


class ScenarioComparison(BaseModel):
    """KPIs of one succeeded job of a batch (from its summary's kpis.after)."""

    job_id: str
    label: str | None
    status: str | None
    objective: float | None
    gap: float | None
    travel: float | None
    workload_max_over_fair: float | None
    workload_min_over_fair: float | None
    workload_cv: float | None
    accounts_moved_share: float | None


# Properties to return via API for a batch
class BatchPublic(BaseModel):
    id: str
    kind: JobKind
    dataset_id: str
    created_at: datetime
    state: str = Field(description="running while any job is queued or running, then finished")
    counts: dict[str, int] = Field(description="Number of jobs per state.")
    jobs: list[JobPublic]
    comparison: list[ScenarioComparison]


class BatchesPublic(BaseModel):
    data: list[BatchPublic]
    count: int


# Properties to return via API for a dataset
class DatasetPublic(BaseModel):
    id: str
    name: str | None
    metric: str = Field(description="The distance metric the tables were validated for.")
    accounts: int
    reps: int = Field(description="0: a design-only dataset (no reps; design jobs only).")
    distances: int | None
    units: int | None = Field(
        default=None, description="Unit polygons stored with the dataset (null: none). With "
                                  "them, plans' territories.geojson is dissolved units and "
                                  "`contiguity: true` can be asked.")
    created_at: datetime


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


class BundledPublic(BaseModel):
    """A data set shipped with the package; `POST /v1/bundled/{name}` copies it in."""

    name: str
    description: str
    importable: bool = Field(description="It has accounts.csv with reps.csv (an alignment "
                                         "input) or with units.geojson (polygons: a "
                                         "design-only set); the others are geography for "
                                         "notebooks.")


class BundledListPublic(BaseModel):
    data: list[BundledPublic]


class Problem(BaseModel):
    """An error answer (RFC 9457, application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    issues: list[dict[str, Any]] | None = Field(
        default=None, description="Field-level problems: source, row (1-based), field, message.")
