"""Build the bundled `nc-counties` dataset from the NC SIDS example shipped in `libpysal`.

North Carolina's 100 counties: polygons, names, FIPS codes and 1979-84 live births from
libpysal's `sids2` example (the classic Cressie NC SIDS shapefile). It has no population,
so workload and potential are modelled from births (see nc-counties/SOURCE.md). Run from
the repository root:

    python datasets/build_nc_counties.py
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from county_units import account_points, check_bounds, write_county_dataset
from pyproj import Transformer
from pyproj.crs import CoordinateOperation

HERE = Path(__file__).resolve().parent
OUT = HERE / "nc-counties"
SOURCE = Path(str(files("libpysal"))) / "examples" / "sids2" / "sids2.shp"

# sids2.shp has no .prj; it is "unprojected, lat-lon" (sids2.html) on NAD27 (the identical
# nc.shp in R's sf package declares NAD27). NAD27 -> WGS84 uses one pinned grid-free
# transformation so the output does not depend on which PROJ grids are installed.
NAD27_TO_WGS84 = 1173  # EPSG "NAD27 to WGS 84 (4)": CONUS 3-parameter shift, about 10 m
PROJECTED_CRS = "EPSG:32617"  # WGS 84 / UTM zone 17N, for centroids
NORTH_CAROLINA = (-84.4, 33.8, -75.4, 36.6)  # lon_min, lat_min, lon_max, lat_max
N_COUNTIES = 100
HOURS_PER_BIRTH = 1 / 100  # yearly workload: one hour per 100 live births in 1979-84


def load_counties() -> gpd.GeoDataFrame:
    raw = gpd.read_file(SOURCE)
    counties = gpd.GeoDataFrame(
        {
            "unit_id": raw["FIPS"].astype(str).str.zfill(5),
            "name": raw["NAME"].astype(str),
            "births": raw["BIR79"].astype(int),
        },
        geometry=raw.geometry,
    )
    if len(counties) != N_COUNTIES or not counties["unit_id"].str.startswith("37").all():
        raise ValueError("expected the 100 North Carolina counties (FIPS 37xxx)")
    return counties.sort_values("unit_id", kind="stable").reset_index(drop=True)


def nad27_to_wgs84(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    """Apply EPSG:1173 to lon/lat geometries (the operation itself takes lat, lon)."""
    op = CoordinateOperation.from_epsg(NAD27_TO_WGS84)
    transformer = Transformer.from_pipeline(op.to_proj4())

    def shift(xy: np.ndarray) -> np.ndarray:
        lat, lon = transformer.transform(xy[:, 1], xy[:, 0], errcheck=True)
        return np.column_stack([lon, lat])

    return gpd.GeoSeries(shapely.transform(geoms.to_numpy(), shift), index=geoms.index, crs=4326)


def main() -> None:
    counties = load_counties()
    wgs84 = nad27_to_wgs84(counties.geometry)
    points = account_points(wgs84.to_crs(PROJECTED_CRS)).to_crs(4326)
    check_bounds(points, NORTH_CAROLINA)
    report = write_county_dataset(OUT, counties, wgs84, points, "births", HOURS_PER_BIRTH)
    print(f"nc-counties: {len(counties)} counties, {report}")


if __name__ == "__main__":
    main()
