"""Writing a run's geographic and planner outputs: territories.geojson, map.png, map.html
and workbook.xlsx (assignments.csv, territories.csv and summary.json are `optimizer.io`'s).

Problems that should not fail a finished run (no coordinates, split units, shared
locations) are issued as `OutputWarning`s; the caller records them in the run summary.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.errors import GEOSException

from optimizer.geo import (
    WGS84,
    AccountCells,
    account_cells,
    compactness,
    dissolve_cells,
    geo_kpis,
    territory_polygons,
    undrawable_extent,
    unit_components,
)
from optimizer.workbook import write_workbook

REGION_COLUMNS = ("state", "region")  # account columns whose areas are drawn as outlines
GEOJSON_DECIMALS = 6  # about 0.1 m
# The geography drawn from territory polygons: written, or skipped, together.
MAP_FILES = ("territories.geojson", "map.png", "map.html")


@dataclass
class GeoOutputs:
    """What write_geo_outputs wrote, and the KPIs and territory table it enriched
    (compactness, contiguity) so the caller can put them in summary.json."""

    files: list[Path]
    kpis: dict[str, Any]
    territories: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


class OutputWarning(UserWarning):
    """An output could not be written in full; the run itself is fine."""


def _coordinates(accounts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    if "lat" not in accounts.columns or "lon" not in accounts.columns:
        return None
    lat = pd.to_numeric(accounts["lat"], errors="coerce").to_numpy(float)
    lon = pd.to_numeric(accounts["lon"], errors="coerce").to_numpy(float)
    if not (np.isfinite(lat) & np.isfinite(lon)).any():
        return None
    return lat, lon


def _json_safe(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def territories_geojson(polygons: gpd.GeoDataFrame, table: pd.DataFrame) -> str:
    """GeoJSON text: one feature per territory row (properties = the row), WGS84, RFC 7946
    ring orientation, coordinates rounded to 6 decimals; a territory without accounts to
    draw has a null geometry.

    Parameters
    ----------
    polygons : geopandas.GeoDataFrame
        territory_id, geometry.
    table : pandas.DataFrame
        One row per territory with territory_id.

    Returns
    -------
    str
    """
    geom_of = dict(zip(polygons["territory_id"].astype(str),
                       polygons.to_crs(WGS84).geometry, strict=True))
    features = []
    for rec in table.to_dict(orient="records"):
        g = geom_of.get(str(rec["territory_id"]))
        geometry = None
        if g is not None and not g.is_empty:
            g = shapely.orient_polygons(shapely.set_precision(g, 10.0**-GEOJSON_DECIMALS))
            geometry = json.loads(shapely.to_geojson(g))
        features.append({"type": "Feature",
                         "properties": {str(k): _json_safe(v) for k, v in rec.items()},
                         "geometry": geometry})
    return json.dumps({"type": "FeatureCollection", "features": features},
                      separators=(",", ":"), ensure_ascii=False) + "\n"


def _centres(reps: pd.DataFrame | None, territories: pd.DataFrame) -> pd.DataFrame:
    """Home bases of the reps that hold a territory, or a design's centres (`centre_lat`,
    `centre_lon`: an account's location or a unit's point)."""
    rows: list[dict[str, Any]] = []
    if {"centre", "centre_lat", "centre_lon"} <= set(territories.columns):
        rows = [{"lat": lat, "lon": lon, "label": f"{tid} (centre {c})"}
                for tid, c, lat, lon in zip(territories["territory_id"], territories["centre"],
                                            territories["centre_lat"],
                                            territories["centre_lon"], strict=True)]
    elif reps is not None and {"rep_id", "lat", "lon"} <= set(reps.columns):
        held = set(territories["rep_id"].astype(str)) if "rep_id" in territories.columns \
            else set(territories["territory_id"].astype(str))
        for r in reps.itertuples(index=False):
            if str(r.rep_id) in held:
                name = getattr(r, "name", None)
                label = f"{r.rep_id} ({name})" if isinstance(name, str) and name != r.rep_id \
                    else str(r.rep_id)
                rows.append({"lat": r.lat, "lon": r.lon, "label": label})
    out = pd.DataFrame(rows, columns=["lat", "lon", "label"])
    out["lat"] = pd.to_numeric(out["lat"], errors="coerce")
    out["lon"] = pd.to_numeric(out["lon"], errors="coerce")
    return out[out["lat"].notna() & out["lon"].notna()].reset_index(drop=True)


def _outlines(accounts: pd.DataFrame, cells: AccountCells | None,
              units: gpd.GeoDataFrame | None) -> tuple[gpd.GeoDataFrame | None, str]:
    if units is not None:
        return units[["unit_id", "geometry"]], "unit border"
    if cells is None:
        return None, ""
    for column in REGION_COLUMNS:
        if column in accounts.columns and accounts[column].nunique(dropna=True) > 1:
            # Approximate: the accounts' Voronoi cells dissolved by their state; good for
            # orientation, not a legal border.
            return dissolve_cells(cells, accounts[column].to_numpy(dtype=object),
                                  name=column), f"{column} (approx.)"
    return None, ""


def _previous_plan(assignments: pd.DataFrame) -> pd.DataFrame | None:
    if "previous_rep" not in assignments.columns or assignments["previous_rep"].isna().all():
        return None
    return pd.DataFrame({"account_id": assignments["account_id"],
                         "territory_id": assignments["previous_rep"]})


def write_geo_outputs(out_dir: str | Path, accounts: pd.DataFrame, reps: pd.DataFrame | None,
                      assignments: pd.DataFrame, territories: pd.DataFrame,
                      kpis: Mapping[str, Any] | None, summary: Mapping[str, Any] | None,
                      units: gpd.GeoDataFrame | None = None, *,
                      title: str | None = None) -> GeoOutputs:
    """Write territories.geojson, map.png, map.html and workbook.xlsx into `out_dir`.

    Territory polygons come from `units` when given, else from the accounts' Voronoi cells
    (`optimizer.geo`). The territory table gains `compactness` (Polsby–Popper) and, with
    units, `parts` (pieces in the unit adjacency graph, 1 = contiguous); the KPIs gain a
    `geography` group before and after. Without coordinates (metric ``matrix``) and without
    units no polygon can be drawn: the maps and the GeoJSON are skipped with an
    `OutputWarning` and the workbook is still written.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The run's output folder (created if needed).
    accounts : pandas.DataFrame
        Validated accounts: account_id, lat, lon (optional), workload, potential, unit_id,
        name, state ... (extra columns are fine).
    reps : pandas.DataFrame, optional
        rep_id, lat, lon, name: home bases to mark (realignment).
    assignments : pandas.DataFrame
        The plan: account_id, territory_id, rep_id, previous_rep, moved, ...
    territories : pandas.DataFrame
        One row per territory: territory_id, rep_id, centre, workload, ...
    kpis : mapping, optional
        ``{"before": ..., "after": ...}`` nested KPI dicts (summary.json's ``kpis``).
    summary : mapping, optional
        summary.json's content, for the workbook's Summary sheet.
    units : geopandas.GeoDataFrame, optional
        Unit polygons (from `geo.load_units`).
    title : str, optional
        Map title (default: "Territory plan" and the run status).

    Returns
    -------
    GeoOutputs
        The files written, the KPIs with their `geography` group and the territory table
        with `compactness` (and `parts`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    notes: list[str] = []
    table = territories.copy()
    kpis_out: dict[str, Any] = copy.deepcopy(dict(kpis or {}))
    coords = _coordinates(accounts)
    status = (summary or {}).get("status")
    heading = title or ("Territory plan" + (f" ({status})" if status else ""))

    if coords is None and units is None:
        notes.append("accounts have no coordinates (lat, lon) and no units were given: "
                     "territories.geojson, map.png and map.html are not written")
    else:
        try:
            cells = account_cells(*coords) if coords is not None and units is None else None
            after = territory_polygons(accounts, assignments, units, cells=cells)
            notes += after.attrs.get("warnings", [])
            components = (unit_components(accounts, assignments, units)
                          if units is not None else None)
            pp = compactness(after)
            table["compactness"] = table["territory_id"].astype(str).map(pp)
            if components is not None:
                table["parts"] = table["territory_id"].astype(str).map(components)
            if isinstance(kpis_out.get("after"), dict):
                kpis_out["after"]["geography"] = geo_kpis(after, components)
            before_plan = _previous_plan(assignments)
            if before_plan is not None and isinstance(kpis_out.get("before"), dict):
                before = territory_polygons(accounts, before_plan, units, cells=cells)
                before_parts = (unit_components(accounts, before_plan, units)
                                if units is not None else None)
                kpis_out["before"]["geography"] = geo_kpis(before, before_parts)

            path = out / "territories.geojson"
            path.write_text(territories_geojson(after, table), encoding="utf-8")
            written.append(path)

            # Imported here: matplotlib costs half a second, which runs without maps (a
            # distance matrix and no coordinates) should not pay.
            from optimizer.maps import write_map_html, write_map_png

            outlines, outline_label = _outlines(accounts, cells, units)
            centres = _centres(reps, table)
            points = accounts.copy()
            points["territory_id"] = points["account_id"].astype(str).map(
                pd.Series(assignments["territory_id"].to_numpy(),
                          index=assignments["account_id"].astype(str).to_numpy()))
            if coords is None:
                points = points.iloc[0:0].assign(lat=pd.Series(dtype=float),
                                                 lon=pd.Series(dtype=float))
            written.append(write_map_png(out / "map.png", after, points, centres, heading,
                                         outlines, outline_label=outline_label or "border"))
            # Coordinates are for the map's markers, not the planner's popup.
            hidden = ["centre_lat", "centre_lon"] + (
                ["centre"] if "centre" in table.columns and table["centre"].isna().all() else [])
            popup = table.drop(columns=[c for c in hidden if c in table.columns])
            written.append(write_map_html(out / "map.html", after, popup, points,
                                          centres=centres, outlines=outlines, title=heading))
        except GEOSException as exc:
            # A finished plan is never lost to its drawing: skip the maps, keep the rest.
            why = (undrawable_extent(*coords) if coords is not None else None) or str(exc)
            notes.append(f"territory polygons could not be drawn ({why}): "
                         "territories.geojson, map.png and map.html are not written")
            table = territories.copy()
            kpis_out = copy.deepcopy(dict(kpis or {}))
            for name in MAP_FILES:
                (out / name).unlink(missing_ok=True)
            written = [w for w in written if w.parent != out or w.name not in MAP_FILES]

    for note in notes:
        warnings.warn(note, OutputWarning, stacklevel=2)
    book_summary = dict(summary or {})
    if notes:
        book_summary["warnings"] = [*list(book_summary.get("warnings") or []), *notes]
    enriched = assignments.copy()
    by_id = accounts.set_index(accounts["account_id"].astype(str))
    for column in ("workload", "potential", "visits"):
        if column in accounts.columns and column not in enriched.columns:
            enriched[column] = enriched["account_id"].astype(str).map(by_id[column]).to_numpy()
    written.append(write_workbook(out / "workbook.xlsx", enriched, table, kpis_out,
                                  book_summary))
    return GeoOutputs(written, kpis_out, table, notes)
