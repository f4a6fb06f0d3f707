"""A job's input tables, from inline records or a stored dataset, and the size limits."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd

from api.config import Settings
from api.errors import LimitExceededError
from api.schemas import InlineData, Record


@dataclass(frozen=True)
class JobInputs:
    """What a job runner gets: the raw scenario mapping and the raw (unvalidated) tables."""

    scenario: dict[str, Any]
    accounts: pd.DataFrame
    reps: pd.DataFrame
    distances: pd.DataFrame | None = None
    # Tables of the kinds that take other inputs (quota: territories, submissions, coverage).
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    # A dataset's unit polygons (geo.load_units): territory boundaries and contiguity.
    units: gpd.GeoDataFrame | None = None


def frame_from_records(records: list[Record]) -> pd.DataFrame:
    """A table from JSON records; row i of the list is data row i + 1 in error messages."""
    return pd.DataFrame.from_records(records) if records else pd.DataFrame()


def frame_from_csv(text: str) -> pd.DataFrame:
    """A stored CSV table, read as text like optimizer.io.read_table reads files ('' is the
    empty table a dataset without reps stores)."""
    if not text.strip():
        return pd.DataFrame()
    return pd.read_csv(io.StringIO(text), dtype=str, skipinitialspace=True,
                       keep_default_na=False, na_values=[""])


def frame_to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def inline_inputs(scenario: dict[str, Any], data: InlineData) -> JobInputs:
    distances = None if data.distances is None else frame_from_records(data.distances)
    tables = {name: frame_from_records(rows) for name, rows in (
        ("territories", data.territories), ("submissions", data.submissions),
        ("coverage", data.coverage)) if rows is not None}
    return JobInputs(scenario, frame_from_records(data.accounts), frame_from_records(data.reps),
                     distances, tables)


def check_table_sizes(*, accounts: int, reps: int, distances: int | None,
                      settings: Settings) -> None:
    """Refuse inputs larger than this server takes (before validating them row by row)."""
    limits = (("accounts", accounts, settings.MAX_ACCOUNTS, "MAX_ACCOUNTS"),
              ("reps", reps, settings.MAX_REPS, "MAX_REPS"),
              ("distances", distances or 0, settings.MAX_DISTANCES, "MAX_DISTANCES"))
    for what, count, limit, name in limits:
        if count > limit:
            raise LimitExceededError(f"{count:,} {what} exceed this server's limit of "
                                     f"{limit:,} {what} per job ({name})")


def check_time_limit(scenario: dict[str, Any], *, default: float, settings: Settings) -> None:
    solver = scenario.get("solver") or {}
    asked = float(solver.get("time_limit", default)) if isinstance(solver, dict) else default
    if asked > settings.MAX_TIME_LIMIT:
        raise LimitExceededError(f"solver.time_limit {asked:g} s exceeds this server's limit of "
                                 f"{settings.MAX_TIME_LIMIT:g} s per job (MAX_TIME_LIMIT)")
