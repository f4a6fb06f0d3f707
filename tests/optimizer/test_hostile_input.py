"""Hostile input to the library: formula injection, unicode and very long ids, coordinate
edge cases, tables over a row limit, malformed GeoJSON and shapefiles. Every case ends in a
plan or a clear InputError naming the row and column, never a crash."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from openpyxl import load_workbook

from optimizer import alignment
from optimizer.distance import haversine_km
from optimizer.domain import DistanceMetric, Scenario
from optimizer.errors import InputError
from optimizer.geo import load_units
from optimizer.io import TooManyRowsError, read_table
from optimizer.outputs import OutputWarning, write_geo_outputs
from optimizer.validate import validate_alignment

FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)", "=HYPERLINK(\"http://x\")"]
SCENARIO = Scenario(balance={"workload": {"tolerance": None}}, solver={"time_limit": 10})


def solve_and_write(accounts: dict, reps: dict, folder: Path) -> tuple[pd.DataFrame, list[str]]:
    data = validate_alignment(pd.DataFrame(accounts), pd.DataFrame(reps), None,
                              DistanceMetric.haversine)
    result = alignment.solve(data, SCENARIO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OutputWarning)
        write_geo_outputs(folder, data.accounts, data.reps, result.assignments,
                          result.territories, result.kpis, result.summary())
    return result.assignments, [str(w.message) for w in caught if w.category is OutputWarning]


def issues_of(exc: pytest.ExceptionInfo[InputError]) -> set[tuple[int | None, str | None]]:
    return {(i.row, i.field) for i in exc.value.issues}


def test_formula_like_ids_and_names_stay_text_in_the_workbook(tmp_path: Path) -> None:
    n = len(FORMULAS)
    accounts = {"account_id": FORMULAS, "name": [f"\t{x}" for x in FORMULAS],
                "segment": ["=1+2"] * n, "lat": np.linspace(33, 34, n),
                "lon": np.linspace(-85, -84, n), "workload": [1] * n, "current_rep": ["-R"] * n}
    reps = {"rep_id": ["-R", "=R"], "lat": [33, 34], "lon": [-85, -84], "capacity": [100, 100]}
    plan, _ = solve_and_write(accounts, reps, tmp_path)
    assert set(plan["account_id"]) == set(FORMULAS)
    book = load_workbook(tmp_path / "workbook.xlsx")
    seen = set()
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value.startswith(("=", "+", "-", "@")):
                    assert cell.quotePrefix, (sheet.title, cell.coordinate)
                    seen.add(cell.value)
    assert set(FORMULAS) | {"=1+2", "-R", "=R"} <= seen


def test_unicode_and_very_long_ids_are_kept(tmp_path: Path) -> None:
    long_id = "x" * 10_000
    ids = ["Ünïcødé-東京-😀", long_id, "ﷺ‮rtl", "A"]
    accounts = {"account_id": ids, "lat": [33, 33.2, 33.4, 33.6], "lon": [-84] * 4,
                "workload": [1] * 4, "current_rep": ["Ř1"] * 4}
    reps = {"rep_id": ["Ř1", "代表2"], "lat": [33, 34], "lon": [-84, -84],
            "capacity": [100, 100]}
    plan, _ = solve_and_write(accounts, reps, tmp_path)
    assert list(plan["account_id"]) == ids
    cells = {c.value for c in load_workbook(tmp_path / "workbook.xlsx")["Assignments"]["A"]}
    assert set(ids) <= cells


def test_antimeridian_neighbours_are_near() -> None:
    assert haversine_km(np.array(10.0), np.array(179.9), np.array(10.0),
                        np.array(-179.9)) == pytest.approx(21.90, abs=0.01)
    assert haversine_km(np.array(0.0), np.array(180.0), np.array(0.0),
                        np.array(-180.0)) == pytest.approx(0.0, abs=1e-9)


def test_accounts_across_the_antimeridian_go_to_the_near_rep(tmp_path: Path) -> None:
    # R0 sits at 179.95 E: the accounts just west of 180° W are 10–20 km from it, 1,000 km+
    # from R1. The plan is right, and the drawings that cannot be made are a warning.
    accounts = {"account_id": ["A", "B", "C"], "lat": [10, 10, 10.1],
                "lon": [179.9, -179.9, -179.95], "workload": [1, 1, 1]}
    reps = {"rep_id": ["R0", "R1"], "lat": [10, 10], "lon": [179.95, -170],
            "capacity": [100, 100]}
    plan, notes = solve_and_write(accounts, reps, tmp_path)
    assert set(plan["rep_id"]) == {"R0"}
    assert (tmp_path / "workbook.xlsx").exists()
    assert not (tmp_path / "territories.geojson").exists()
    assert any("antimeridian" in n for n in notes), notes


def test_poles_and_duplicate_coordinates(tmp_path: Path) -> None:
    poles = {"account_id": ["N", "S", "N2", "S2"], "lat": [90, -90, 89.9, -89.99],
             "lon": [0, 0, 120, -60], "workload": [1, 1, 1, 1]}
    reps = {"rep_id": ["RN", "RS"], "lat": [90, -90], "lon": [0, 0], "capacity": [100, 100]}
    plan, _ = solve_and_write(poles, reps, tmp_path / "poles")
    assert dict(zip(plan["account_id"], plan["rep_id"], strict=True)) == {
        "N": "RN", "N2": "RN", "S": "RS", "S2": "RS"}
    same = {"account_id": ["A", "B", "C", "D"], "lat": [33] * 4, "lon": [-84] * 4,
            "workload": [1] * 4}
    reps = {"rep_id": ["R0", "R1"], "lat": [33, 33], "lon": [-84, -84], "capacity": [100, 100]}
    plan, _ = solve_and_write(same, reps, tmp_path / "same")
    assert len(plan) == 4 and (tmp_path / "same" / "territories.geojson").exists()


def test_nan_inf_and_out_of_range_coordinates_are_named() -> None:
    accounts = pd.DataFrame({"account_id": ["A", "B", "C", "D", "E"],
                             "lat": [np.nan, "inf", 91, "-inf", "33"],
                             "lon": [-84, np.inf, "NaN", -180.5, "east"],
                             "workload": [1] * 5})
    reps = pd.DataFrame({"rep_id": ["R"], "lat": [33], "lon": [-84], "capacity": [1]})
    with pytest.raises(InputError) as caught:
        validate_alignment(accounts, reps, None, DistanceMetric.haversine)
    found = issues_of(caught)
    assert {(1, "lat"), (2, "lat"), (2, "lon"), (3, "lat"), (3, "lon"), (4, "lat"),
            (4, "lon"), (5, "lon")} <= found
    text = str(caught.value)
    assert "accounts row 2, column lat: must be finite (got 'inf')" in text
    assert "accounts row 3, column lat: must be ≤ 90 (got 91)" in text
    assert "accounts row 5, column lon: not a number (got 'east')" in text


def test_a_table_over_the_row_limit_is_refused_early(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    with path.open("w") as f:  # two million rows
        f.write("account_id,lat,lon,workload\n")
        f.writelines("A,1,1,1\n" for _ in range(2_000_000))
    with pytest.raises(TooManyRowsError) as caught:
        read_table(path, max_rows=100_000, limit_name="MAX_ACCOUNTS")
    # Only 100,001 rows were read: the message cannot (and does not) know the real count.
    assert str(caught.value.issues[0]) == (
        "accounts.csv: the table has more than 100,000 rows, the limit (MAX_ACCOUNTS)")
    assert len(read_table(path, max_rows=2_000_000)) == 2_000_000


def _feature_collection(features: list) -> str:
    return json.dumps({"type": "FeatureCollection", "features": features})


@pytest.mark.parametrize(("features", "expected"), [
    ([1, "x"], "row 1: not a GeoJSON Feature"),
    ([{"type": "Feature", "geometry": "x", "properties": {}}], "row 1: not a GeoJSON Feature"),
    ([{"type": "Feature", "geometry": None, "properties": [1]}], "row 1: not a GeoJSON Feature"),
    ([{"type": "Feature", "properties": {"account_id": "A"},
       "geometry": {"type": "Point", "coordinates": [1]}}],
     "row 1, column geometry: a Point needs [lon, lat]"),
])
def test_malformed_geojson_accounts(tmp_path: Path, features: list, expected: str) -> None:
    path = tmp_path / "accounts.geojson"
    path.write_text(_feature_collection(features))
    with pytest.raises(InputError) as caught:
        read_table(path)
    assert expected in str(caught.value)


def test_truncated_geojson_accounts(tmp_path: Path) -> None:
    path = tmp_path / "accounts.geojson"
    path.write_text(_feature_collection([])[:20])
    with pytest.raises(InputError, match="cannot read the file"):
        read_table(path)


def _units() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"unit_id": ["U1", "U2"]},
                            geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
                            crs="EPSG:4326")


def test_units_with_points_lines_nan_or_metres_are_refused(tmp_path: Path) -> None:
    square = [[[0, 0], [1, 0], [1, 1], [0, 0]]]
    path = tmp_path / "units.geojson"
    path.write_text(_feature_collection([
        {"type": "Feature", "properties": {"unit_id": "P"},
         "geometry": {"type": "Point", "coordinates": [1, 2]}},
        {"type": "Feature", "properties": {"unit_id": "L"},
         "geometry": {"type": "LineString", "coordinates": [[1, 2], [3, 4]]}},
        {"type": "Feature", "properties": {"unit_id": "OK"},
         "geometry": {"type": "Polygon", "coordinates": square}},
    ]))
    with pytest.raises(InputError) as caught:
        load_units(path)
    assert [str(i) for i in caught.value.issues] == [
        "units.geojson row 1, column geometry: not a polygon (Point)",
        "units.geojson row 2, column geometry: not a polygon (LineString)"]

    path.write_text(_feature_collection([
        {"type": "Feature", "properties": {"unit_id": "U"},
         "geometry": {"type": "Polygon", "coordinates": square}}]).replace("[1, 0]", "[NaN, 0]"))
    with pytest.raises(InputError, match="row 1, column geometry: coordinates that are not "
                                         "finite"):
        load_units(path)

    path.write_text(_feature_collection([
        {"type": "Feature", "properties": {"unit_id": "U"},
         "geometry": {"type": "Polygon",
                      "coordinates": [[[0, 0], [500_000, 0], [500_000, 9e5], [0, 0]]]}}]))
    with pytest.raises(InputError, match="coordinates out of the range of degrees"):
        load_units(path)


def test_truncated_or_empty_shapefile_zips(tmp_path: Path) -> None:
    folder = tmp_path / "shp"
    folder.mkdir()
    _units().to_file(folder / "units.shp")
    whole = tmp_path / "units.zip"
    with zipfile.ZipFile(whole, "w") as archive:
        for part in folder.iterdir():
            archive.write(part, part.name)
    assert list(load_units(whole)["unit_id"]) == ["U1", "U2"]

    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InputError, match="not a readable zip archive"):
        load_units(truncated)
    empty = tmp_path / "readme.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("readme.txt", "no shapes here")
    with pytest.raises(InputError, match="the zip holds no shapefile"):
        load_units(empty)
    cut = tmp_path / "cut"
    cut.mkdir()
    for part in folder.iterdir():
        (cut / part.name).write_bytes(part.read_bytes())
    (cut / "units.shp").write_bytes((folder / "units.shp").read_bytes()[:120])
    with pytest.raises(InputError, match="missing or empty geometry"):
        load_units(cut / "units.shp")
