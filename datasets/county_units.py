"""Shared steps of the county-polygon dataset builders (`build_ga_counties.py`,
`build_nc_counties.py`): account points, compact GeoJSON and the adjacency check."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

DECIMALS = 5  # about 1 m; the GeoJSON coordinates and the account lat/lon
GRID = 10.0**-DECIMALS
MAX_GEOJSON_BYTES = 2_000_000  # simplify the polygons only if the GeoJSON would be larger
SIMPLIFY_TOLERANCE = 0.002  # degrees, about 200 m


def account_points(projected: gpd.GeoSeries) -> gpd.GeoSeries:
    """One point per polygon, in the polygons' (projected) CRS: the centroid, or the
    representative point when the centroid falls outside the polygon."""
    centroid = projected.centroid
    return centroid.where(centroid.within(projected), projected.representative_point())


def check_bounds(points: gpd.GeoSeries, bounds: tuple[float, float, float, float]) -> None:
    """Every point within (lon_min, lat_min, lon_max, lat_max); catches a wrong source CRS."""
    lon_min, lat_min, lon_max, lat_max = bounds
    ok = points.x.between(lon_min, lon_max) & points.y.between(lat_min, lat_max)
    if not ok.all():
        raise ValueError(f"{int((~ok).sum())} points fall outside {bounds}: wrong CRS?")


def touching_pairs(geoms: gpd.GeoSeries) -> set[tuple[int, int]]:
    """Position pairs (i < j) of polygons that touch or overlap (shared edge or corner)."""
    left, right = geoms.sindex.query(geoms, predicate="intersects")
    return {(int(i), int(j)) for i, j in zip(left, right, strict=True) if i < j}


def to_grid(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    """Snap to the output grid (keeps polygons valid) with exterior rings counter-clockwise
    as RFC 7946 asks."""
    snapped = shapely.orient_polygons(shapely.set_precision(geoms.to_numpy(), GRID))
    return gpd.GeoSeries(snapped, index=geoms.index, crs=geoms.crs)


def _rounded(coords: Any) -> Any:
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], float | int):
        return [round(float(c), DECIMALS) for c in coords]
    return [_rounded(c) for c in coords]


def feature_collection(geoms: gpd.GeoSeries, properties: pd.DataFrame) -> str:
    """GeoJSON text, one feature per line so that a rebuild diffs cleanly."""
    features = []
    for geom, props in zip(geoms, properties.to_dict(orient="records"), strict=True):
        shape = shapely.geometry.mapping(geom)
        geometry = {"type": shape["type"], "coordinates": _rounded(shape["coordinates"])}
        feature = {"type": "Feature", "properties": props, "geometry": geometry}
        features.append(json.dumps(feature, separators=(",", ":"), ensure_ascii=False))
    return '{"type":"FeatureCollection","features":[\n' + ",\n".join(features) + "\n]}\n"


def write_units(
    geoms: gpd.GeoSeries, properties: pd.DataFrame, path: Path
) -> dict[str, int | bool]:
    """Write the polygons (WGS84) as GeoJSON, simplified only when over MAX_GEOJSON_BYTES.

    Raises if the written polygons do not have exactly the touching pairs of the source.
    """
    if geoms.crs is None or geoms.crs.to_epsg() != 4326:
        raise ValueError("unit polygons must be in WGS84 (EPSG:4326)")
    source_pairs = touching_pairs(geoms)
    out = to_grid(geoms)
    text = feature_collection(out, properties)
    simplified = len(text.encode("utf-8")) > MAX_GEOJSON_BYTES
    if simplified:
        out = to_grid(geoms.simplify(SIMPLIFY_TOLERANCE, preserve_topology=True))
        text = feature_collection(out, properties)
    if not out.is_valid.all() or out.is_empty.any():
        raise ValueError("written polygons are invalid or empty")
    written_pairs = touching_pairs(out)
    if written_pairs != source_pairs:
        raise ValueError(
            f"adjacency changed: {len(source_pairs)} touching pairs in the source, "
            f"{len(written_pairs)} written ({len(source_pairs ^ written_pairs)} differ)"
        )
    path.write_text(text, encoding="utf-8")
    return {
        "source_pairs": len(source_pairs),
        "written_pairs": len(written_pairs),
        "simplified": simplified,
        "bytes": len(text.encode("utf-8")),
    }


def accounts_table(
    unit_ids: Sequence[str],
    names: Sequence[str],
    points: gpd.GeoSeries,
    workload: np.ndarray,
    potential: np.ndarray,
) -> pd.DataFrame:
    """One account per unit, in the bundled datasets' column order."""
    return pd.DataFrame(
        {
            "account_id": list(unit_ids),
            "unit_id": list(unit_ids),
            "name": list(names),
            "lat": np.round(points.y.to_numpy(), DECIMALS),
            "lon": np.round(points.x.to_numpy(), DECIMALS),
            "workload": workload,
            "potential": potential,
            "visits": 1,
        }
    )


def write_county_dataset(
    out: Path,
    counties: pd.DataFrame,
    polygons: gpd.GeoSeries,
    points: gpd.GeoSeries,
    measure: str,
    hours_per_unit: float,
) -> dict[str, int | bool]:
    """Write units.geojson and accounts.csv of a county data set: potential = `measure`,
    workload = `measure` × `hours_per_unit` (rounded to 0.1 h)."""
    out.mkdir(exist_ok=True)
    report = write_units(
        polygons, pd.DataFrame(counties[["unit_id", "name", measure]]), out / "units.geojson"
    )
    values = counties[measure].to_numpy()
    accounts = accounts_table(
        counties["unit_id"],
        counties["name"],
        points,
        workload=np.round(values * hours_per_unit, 1),
        potential=values,
    )
    accounts.to_csv(out / "accounts.csv", index=False)
    return report
