"""Reading inputs (CSV, Parquet, GeoJSON, Excel; YAML/JSON scenarios) and writing run outputs.

Nothing else in the optimizer touches files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ValidationError

from optimizer.domain import AlignmentData, DesignData, Scenario
from optimizer.errors import InputError, Issue
from optimizer.geo import centre_unit_points
from optimizer.validate import validate_alignment, validate_design

T = TypeVar("T", bound=BaseModel)


class TooManyRowsError(InputError):
    """A table longer than the caller's limit; raised before the rest of it is read."""

    def __init__(self, source: str, limit: int, setting: str | None) -> None:
        self.limit = limit
        named = f" ({setting})" if setting else ""
        super().__init__([Issue(source, None, None,
                                f"the table has more than {limit:,} rows, the limit{named}")])


def read_table(path: str | Path, source: str | None = None, *, max_rows: int | None = None,
               limit_name: str | None = None) -> pd.DataFrame:
    """A table as strings-and-numbers, from .csv, .parquet, .geojson/.json or .xlsx.

    CSV and Excel cells are read as text, exactly as written: ids keep their leading zeros,
    and a segment "NA" (North America) or a name "None" stays that. Only an empty cell is
    missing; validation parses numbers (and there also reads NA, N/A, null… as missing).
    GeoJSON point features without lat/lon properties get them from the geometry.
    With `max_rows`, a longer table raises TooManyRowsError (naming `limit_name`, the
    setting) after reading at most `max_rows + 1` rows of a CSV or Excel file, or only the
    row count of a Parquet file.
    """
    p = Path(path)
    name = source or p.name
    if not p.exists():
        raise InputError([Issue(name, None, None, f"file not found: {p}")])
    suffix = p.suffix.lower()
    nrows = None if max_rows is None else max_rows + 1
    try:
        if suffix == ".parquet":
            if max_rows is not None and pq.ParquetFile(p).metadata.num_rows > max_rows:
                raise TooManyRowsError(name, max_rows, limit_name)
            frame = pd.read_parquet(p)
        elif suffix in (".geojson", ".json"):
            frame = _read_geojson(p, name)
        elif suffix in (".xlsx", ".xls"):
            frame = pd.read_excel(p, dtype=str, nrows=nrows, keep_default_na=False,
                                  na_values=[""])
        else:
            frame = pd.read_csv(p, dtype=str, skipinitialspace=True, encoding="utf-8-sig",
                                nrows=nrows, keep_default_na=False, na_values=[""])
        if max_rows is not None and len(frame) > max_rows:
            raise TooManyRowsError(name, max_rows, limit_name)
        return frame
    except InputError:
        raise
    except (ValueError, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError([Issue(name, None, None, f"cannot read the file: {exc}")]) from exc


def _read_geojson(path: Path, source: str) -> pd.DataFrame:
    doc = json.loads(path.read_text(encoding="utf-8"))
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list):
        raise InputError([Issue(source, None, None, "not a GeoJSON FeatureCollection")])
    rows = []
    issues = []
    for row, f in enumerate(features, start=1):
        # Hostile or broken files: say which feature is wrong instead of failing on it.
        props = f.get("properties") if isinstance(f, dict) else None
        geom = f.get("geometry") if isinstance(f, dict) else None
        if not isinstance(f, dict) or not isinstance(props or {}, dict) or \
                not isinstance(geom or {}, dict):
            issues.append(Issue(source, row, None, "not a GeoJSON Feature with a properties "
                                "object and a geometry object (or null)"))
            continue
        props = dict(props or {})
        geom = geom or {}
        if geom.get("type") == "Point" and "lat" not in props and "lon" not in props:
            coords = geom.get("coordinates")
            if not isinstance(coords, list) or len(coords) < 2:
                issues.append(Issue(source, row, "geometry", "a Point needs [lon, lat]"))
                continue
            props["lon"], props["lat"] = coords[0], coords[1]
        rows.append(props)
    if issues:
        raise InputError(issues)
    return pd.DataFrame(rows)


def _pydantic_issues(exc: ValidationError, source: str) -> list[Issue]:
    issues = []
    for err in exc.errors():
        field = ".".join(str(x) for x in err["loc"]) or None
        issues.append(Issue(source, None, field, err["msg"]))
    return issues


def scenario_from_dict(data: dict[str, Any] | None, source: str = "scenario") -> Scenario:
    """A scenario from parsed YAML/JSON; unknown keys and bad values are InputErrors."""
    try:
        return Scenario.model_validate(data or {})
    except ValidationError as exc:
        raise InputError(_pydantic_issues(exc, source)) from exc


def read_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON file that holds one mapping (scenarios, plans)."""
    p = Path(path)
    if not p.exists():
        raise InputError([Issue(p.name, None, None, f"file not found: {p}")])
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError([Issue(p.name, None, None, f"not valid YAML/JSON: {exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise InputError([Issue(p.name, None, None, f"not UTF-8 text: {exc}")]) from exc
    except ValueError as exc:  # a value YAML types but cannot build: start: 2027-13-01
        raise InputError([Issue(p.name, None, None, f"a value YAML reads as a date or "
                                                    f"number is not one: {exc}")]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError([Issue(p.name, None, None, "expected a mapping of keys to values")])
    return data


def model_from_mapping(model: type[T], data: dict[str, Any], source: str) -> T:
    """Validate a mapping into a pydantic model; every problem becomes an Issue."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(_pydantic_issues(exc, source)) from exc


def read_scenario(path: str | Path | None) -> Scenario:
    if path is None:
        return Scenario()
    return scenario_from_dict(read_mapping(path), Path(path).name)


def read_alignment(accounts: str | Path, reps: str | Path, scenario: Scenario,
                   distances: str | Path | None = None) -> AlignmentData:
    """Read and validate the inputs of a realignment; every problem is reported at once."""
    issues: list[Issue] = []
    frames: list[pd.DataFrame | None] = []
    for path in (accounts, reps, distances):
        if path is None:
            frames.append(None)
            continue
        try:
            frames.append(read_table(path))
        except InputError as exc:
            issues += exc.issues
            frames.append(None)
    if issues:
        raise InputError(issues)
    acc, rep, dist = frames
    assert acc is not None and rep is not None
    names = (Path(accounts).name, Path(reps).name, Path(distances).name if distances else "")
    return validate_alignment(acc, rep, dist, scenario.metric, sources=names)


def read_design(accounts: str | Path, scenario: Scenario,
                distances: str | Path | None = None,
                units: gpd.GeoDataFrame | None = None) -> DesignData:
    """Read and validate the inputs of a greenfield design; `units` are unit polygons read
    by `geo.load_units` (units named by `centres` are candidates at their points)."""
    acc = read_table(accounts)
    dist = read_table(distances) if distances is not None else None
    names = (Path(accounts).name, Path(distances).name if distances else "distances")
    points = centre_unit_points(units, scenario.centres, acc.get("account_id", pd.Series()))
    return validate_design(acc, dist, scenario.metric, sources=names, unit_points=points)


def check_output_folder(folder: Path, option: str = "--out") -> None:
    """Refuse, before any work, an output folder that is, or lies below, an existing file
    (its outputs could not be written after the run)."""
    for place in (folder, *folder.parents):
        if place.exists() and not place.is_dir():
            where = "is a file" if place == folder else f"lies below {place}, which is a file"
            raise InputError([Issue("command line", None, option,
                                    f"{folder} {where}, not a folder for the outputs")])


def check_finished_run(folder: Path) -> None:
    """Refuse a run folder whose summary.json says its run failed: its plan files, if any
    are left, belong to no run the planner can trust."""
    summary = folder / "summary.json"
    if not summary.exists():
        return
    try:
        status = json.loads(summary.read_text(encoding="utf-8")).get("status")
    except (ValueError, AttributeError):
        return  # not a summary this tool wrote: the tables are judged on their own
    if status in ("infeasible", "error"):
        raise InputError([Issue(str(folder), None, None,
                                f"the run in this folder ended with status {status} "
                                "(see its summary.json): it has no plan to use")])


def read_plan(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A finished plan: territories.csv and (if there) assignments.csv of a run's output
    folder, or a territories table given directly. Text cells as in `read_table`."""
    p = Path(path)
    if p.is_dir():
        check_finished_run(p)
        territories = read_table(p / "territories.csv")
        assigned = p / "assignments.csv"
        assignments = read_table(assigned) if assigned.exists() else None
    else:
        territories, assignments = read_table(p), None
    if "territory_id" not in territories.columns:
        raise InputError([Issue("territories.csv" if p.is_dir() else p.name, None,
                                "territory_id", "required column is missing")])
    if assignments is not None:
        missing = [c for c in ("account_id", "territory_id") if c not in assignments.columns]
        if missing:
            raise InputError([Issue("assignments.csv", None, c, "required column is missing")
                              for c in missing])
    return territories, assignments


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN/inf/NA become null, numpy scalars Python numbers, tuples lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(json_safe(data), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")


CSV_DECIMALS = 6


def table_csv(frame: pd.DataFrame) -> str:
    """A table as the CLI writes it and the API serves it: floats rounded to CSV_DECIMALS
    (every digit a planner may add up, no float noise) and a float column of whole numbers
    (counts, rounded quotas) as integers, 62 rather than 62.0."""
    out = frame.round(CSV_DECIMALS)
    for column in out.columns:
        values = out[column]
        if not pd.api.types.is_float_dtype(values):
            continue
        known = values.dropna().to_numpy()
        if len(known) and np.isfinite(known).all() and (known == np.round(known)).all() \
                and np.abs(known).max() < 2 ** 53:
            out[column] = values.astype("Int64")
    return out.to_csv(index=False)


def write_tables(out_dir: str | Path, summary: dict[str, Any],
                 tables: dict[str, pd.DataFrame]) -> Path:
    """Write summary.json and each table as <name>.csv (`table_csv`: a quota of
    18,052,637.03 stays that, not 1.80526e+07) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        (out / f"{name}.csv").write_text(table_csv(frame), encoding="utf-8")
    write_json(out / "summary.json", summary)
    return out
