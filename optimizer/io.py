"""Reading inputs (CSV, Parquet, GeoJSON, Excel; YAML/JSON scenarios) and writing run outputs.

Nothing else in the optimizer touches files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import yaml
from pydantic import BaseModel, ValidationError

from optimizer.domain import AlignmentData, DesignData, Scenario
from optimizer.errors import InputError, Issue
from optimizer.validate import validate_alignment, validate_design

T = TypeVar("T", bound=BaseModel)


def read_table(path: str | Path, source: str | None = None) -> pd.DataFrame:
    """A table as strings-and-numbers, from .csv, .parquet, .geojson/.json or .xlsx.

    CSV cells are read as text so ids keep their leading zeros; validation parses numbers.
    GeoJSON point features without lat/lon properties get them from the geometry.
    """
    p = Path(path)
    name = source or p.name
    if not p.exists():
        raise InputError([Issue(name, None, None, f"file not found: {p}")])
    suffix = p.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(p)
        if suffix in (".geojson", ".json"):
            return _read_geojson(p)
        if suffix in (".xlsx", ".xls"):
            return pd.read_excel(p, dtype=str)
        return pd.read_csv(p, dtype=str, skipinitialspace=True, encoding="utf-8-sig")
    except InputError:
        raise
    except (ValueError, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError([Issue(name, None, None, f"cannot read the file: {exc}")]) from exc


def _read_geojson(path: Path) -> pd.DataFrame:
    doc = json.loads(path.read_text(encoding="utf-8"))
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list):
        raise InputError([Issue(path.name, None, None, "not a GeoJSON FeatureCollection")])
    rows = []
    for f in features:
        props = dict(f.get("properties") or {})
        geom = f.get("geometry") or {}
        if geom.get("type") == "Point" and "lat" not in props and "lon" not in props:
            coords = geom.get("coordinates") or [None, None]
            props["lon"], props["lat"] = coords[0], coords[1]
        rows.append(props)
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
                distances: str | Path | None = None) -> DesignData:
    """Read and validate the inputs of a greenfield design."""
    acc = read_table(accounts)
    dist = read_table(distances) if distances is not None else None
    names = (Path(accounts).name, Path(distances).name if distances else "distances")
    return validate_design(acc, dist, scenario.metric, sources=names)


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


def write_tables(out_dir: str | Path, summary: dict[str, Any],
                 tables: dict[str, pd.DataFrame]) -> Path:
    """Write summary.json and each table as <name>.csv into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")
    write_json(out / "summary.json", summary)
    return out
