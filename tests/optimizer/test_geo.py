"""Geography: unit loading, rook adjacency, territory polygons (units and Voronoi), KPIs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.cluster.vq import kmeans2
from shapely.geometry import box

from optimizer import datasets, geo
from optimizer.errors import InputError

GA = datasets.get_dataset_or_raise("ga-counties").path
REGIONAL = datasets.get_dataset_or_raise("us-regional").path
NATIONAL = datasets.get_dataset_or_raise("us-accounts").path


@pytest.fixture(scope="module")
def ga_units() -> gpd.GeoDataFrame:
    return geo.load_units(GA / "units.geojson")


@pytest.fixture(scope="module")
def ga_accounts() -> pd.DataFrame:
    return pd.read_csv(GA / "accounts.csv", dtype={"account_id": str, "unit_id": str})


def _kmeans_plan(accounts: pd.DataFrame, k: int, seed: int = 3) -> pd.DataFrame:
    _, label = kmeans2(accounts[["lat", "lon"]].to_numpy(), k, seed=seed, minit="++")
    return pd.DataFrame({"account_id": accounts["account_id"],
                         "territory_id": [f"T{j}" for j in label]})


def _equal_area(gdf: gpd.GeoDataFrame) -> gpd.GeoSeries:
    return gdf.geometry.to_crs("EPSG:5070")  # CONUS Albers equal-area


def _write_geojson(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _feature(props: dict, geometry: dict | None) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _square(x: float, y: float, size: float = 1.0) -> dict:
    return json.loads(shapely.to_geojson(box(x, y, x + size, y + size)))


# -- loading units ----------------------------------------------------------------------------


def test_load_units_ga(ga_units: gpd.GeoDataFrame) -> None:
    assert len(ga_units) == 159
    assert ga_units.crs.to_epsg() == 4326
    assert ga_units["unit_id"].is_unique and ga_units["unit_id"].iloc[0] == "13001"
    assert ga_units.geometry.is_valid.all()


def test_load_units_reprojects(tmp_path: Path, ga_units: gpd.GeoDataFrame) -> None:
    path = tmp_path / "units.gpkg"
    ga_units.head(5).to_crs("EPSG:3857").to_file(path)
    back = geo.load_units(path)
    assert back.crs.to_epsg() == 4326
    assert np.allclose(back.total_bounds, ga_units.head(5).total_bounds, atol=1e-6)


def test_load_units_reports_every_problem(tmp_path: Path) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    path = _write_geojson(tmp_path / "bad.geojson", [
        _feature({"unit_id": "A"}, _square(0, 0)),
        _feature({"unit_id": "A"}, _square(1, 0)),      # duplicate id
        _feature({"unit_id": None}, _square(2, 0)),     # missing id
        _feature({"unit_id": "C"}, None),               # no geometry
        _feature({"unit_id": "D"}, {"type": "Point", "coordinates": [0, 0]}),
        _feature({"unit_id": "E"}, bowtie),             # invalid but repairable
    ])
    with pytest.raises(InputError) as err:
        geo.load_units(path)
    text = str(err.value)
    assert "duplicate unit_id 'A' (rows 1, 2)" in text
    assert "row 3, column unit_id: missing unit_id" in text
    assert "row 4, column geometry: missing or empty geometry" in text
    assert "row 5, column geometry: not a polygon (Point)" in text
    assert "row 6" not in text  # repaired by make_valid


def test_load_units_repairs_invalid_geometry(tmp_path: Path) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    units = geo.load_units(_write_geojson(tmp_path / "u.geojson",
                                          [_feature({"unit_id": 7}, bowtie)]))
    assert units["unit_id"].tolist() == ["7"]
    assert units.geometry.is_valid.all() and math.isclose(shapely.area(units.geometry.iloc[0]), 0.5)


@pytest.mark.parametrize(("name", "message"), [
    ("units.csv", "unsupported units file"),
    ("missing.geojson", "file not found"),
])
def test_load_units_file_errors(tmp_path: Path, name: str, message: str) -> None:
    if name.endswith(".csv"):
        (tmp_path / name).write_text("unit_id\n1\n")
    with pytest.raises(InputError, match=message):
        geo.load_units(tmp_path / name)


def test_load_units_needs_unit_id(tmp_path: Path) -> None:
    path = _write_geojson(tmp_path / "u.geojson", [_feature({"id": "A"}, _square(0, 0))])
    with pytest.raises(InputError, match="column unit_id: missing column"):
        geo.load_units(path)


# -- adjacency ----------------------------------------------------------------------------


def test_adjacency_ga_rook_and_queen(ga_units: gpd.GeoDataFrame) -> None:
    # The dataset builder's counts: 416 edge-sharing pairs, 431 touching pairs.
    rook = geo.adjacency_pairs(ga_units)
    queen = geo.adjacency_pairs(ga_units, rook=False)
    assert len(rook) == 416 and len(queen) == 431
    assert (rook[:, 0] < rook[:, 1]).all()
    assert set(map(tuple, rook)) <= set(map(tuple, queen))
    matrix = geo.adjacency(ga_units)
    assert matrix.shape == (159, 159) and matrix.nnz == 2 * 416
    assert (matrix != matrix.T).nnz == 0 and matrix.diagonal().sum() == 0


def test_adjacency_corner_is_not_rook() -> None:
    # 2 × 2 grid: 4 edge pairs, 2 diagonal corner pairs; a fifth square overlaps one.
    squares = [box(0, 0, 1, 1), box(1, 0, 2, 1), box(0, 1, 1, 2), box(1, 1, 2, 2),
               box(1.5, 1.5, 2.5, 2.5)]
    units = gpd.GeoSeries(squares)
    rook = {tuple(p) for p in geo.adjacency_pairs(units)}
    assert rook == {(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)}
    assert len(geo.adjacency_pairs(units, rook=False)) == 7  # + (0, 3) and (1, 2)


# -- territory polygons from units ------------------------------------------------------------


def test_dissolve_units_preserves_area(ga_units: gpd.GeoDataFrame,
                                       ga_accounts: pd.DataFrame) -> None:
    plan = _kmeans_plan(ga_accounts, 8)
    terr = geo.territory_polygons(ga_accounts, plan, ga_units)
    assert sorted(terr["territory_id"]) == sorted(plan["territory_id"].unique())
    assert terr.crs.to_epsg() == 4326 and terr.geometry.is_valid.all()
    assert math.isclose(_equal_area(terr).area.sum(), _equal_area(ga_units).area.sum(),
                        rel_tol=1e-9)
    # every county lies in the territory of its account
    owner = dict(zip(plan["account_id"], plan["territory_id"], strict=True))
    shapes = dict(zip(terr["territory_id"], terr.geometry, strict=True))
    for uid, g in zip(ga_units["unit_id"], ga_units.geometry, strict=True):
        assert shapes[owner[uid]].buffer(1e-9).covers(g)
    assert terr.attrs["warnings"] == []


def test_split_unit_goes_to_most_workload(ga_units: gpd.GeoDataFrame) -> None:
    accounts = pd.DataFrame({"account_id": ["a", "b", "c", "d"],
                             "unit_id": ["13001", "13001", "13003", "99999"],
                             "workload": [5.0, 8.0, 1.0, 1.0]})
    plan = pd.DataFrame({"account_id": ["a", "b", "c", "d"],
                         "territory_id": ["X", "Y", "X", "X"]})
    ua = geo.assign_units(accounts, plan, ga_units)
    assert ua.territory.to_dict() == {"13001": "Y", "13003": "X"}
    assert ua.split["unit_id"].tolist() == ["13001"]
    assert math.isclose(ua.split["kept_share"].iloc[0], 8 / 13)
    assert ua.unknown_units == ["99999"] and ua.empty_units == 157
    terr = geo.territory_polygons(accounts, plan, ga_units)
    notes = " ".join(terr.attrs["warnings"])
    assert "1 unit(s) hold accounts of more than one territory" in notes
    assert "13001, 62% in Y" in notes and "99999" in notes


# -- Voronoi territories ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def regional() -> tuple[pd.DataFrame, pd.DataFrame, gpd.GeoDataFrame]:
    acc = pd.read_csv(REGIONAL / "accounts.csv", dtype={"account_id": str})
    plan = pd.DataFrame({"account_id": acc["account_id"], "territory_id": acc["current_rep"]})
    return acc, plan, geo.territory_polygons(acc, plan)


def test_voronoi_territories_hold_their_accounts(
        regional: tuple[pd.DataFrame, pd.DataFrame, gpd.GeoDataFrame]) -> None:
    acc, plan, terr = regional
    assert sorted(terr["territory_id"]) == sorted(plan["territory_id"].unique())
    assert terr.crs.to_epsg() == 4326 and terr.geometry.is_valid.all()
    shapes = dict(zip(terr["territory_id"], terr.geometry, strict=True))
    for lon, lat, t in zip(acc["lon"], acc["lat"], plan["territory_id"], strict=True):
        assert shapes[t].contains(shapely.Point(lon, lat)), (lon, lat, t)


def test_voronoi_territories_do_not_overlap(
        regional: tuple[pd.DataFrame, pd.DataFrame, gpd.GeoDataFrame]) -> None:
    _, _, terr = regional
    area = _equal_area(terr)
    union = shapely.union_all(area.to_numpy())
    # The pieces add up to their union: no overlap anywhere.
    assert math.isclose(area.area.sum(), union.area, rel_tol=1e-9)
    pairs = geo.adjacency_pairs(terr, rook=False)
    assert len(pairs) >= 5  # six territories of a connected region touch
    for i, j in pairs:  # neighbours share edges, never area
        shared = area.iloc[i].intersection(area.iloc[j]).area
        assert shared < 1e-9 * min(area.iloc[i].area, area.iloc[j].area)


def test_voronoi_duplicates_and_degenerate_inputs() -> None:
    # Coincident accounts in different territories, a collinear set, a lone account, NaNs.
    acc = pd.DataFrame({"account_id": list("abcdef"),
                        "lat": [33.0, 33.0, 33.0, 33.5, 34.0, np.nan],
                        "lon": [-84.0, -84.0, -84.0, -84.0, -84.0, -84.0],
                        "workload": [1.0, 5.0, 1.0, 1.0, 1.0, 1.0]})
    plan = pd.DataFrame({"account_id": list("abcdef"), "territory_id": list("XYXZZZ")})
    terr = geo.territory_polygons(acc, plan)
    assert set(terr["territory_id"]) == {"Y", "Z"}  # X's only location is mostly Y's
    notes = " ".join(terr.attrs["warnings"])
    assert "1 location(s) hold accounts of more than one territory_id" in notes
    assert "1 account(s) have no coordinates" in notes
    one = geo.territory_polygons(acc.iloc[:1], plan.iloc[:1])
    assert len(one) == 1 and one.geometry.iloc[0].area > 0
    assert one.geometry.iloc[0].contains(shapely.Point(-84.0, 33.0))


def test_national_outline_keeps_alaska_and_hawaii_apart() -> None:
    acc = pd.read_csv(NATIONAL / "accounts.csv", dtype={"account_id": str})
    far = acc["state"].isin(["AK", "HI"])
    sample = pd.concat([acc[far], acc[~far].sample(1500, random_state=1)])
    cells = geo.account_cells(sample["lat"], sample["lon"])
    assert shapely.get_num_geometries(cells.outline) >= 3  # lower 48, AK towns, HI
    plan = pd.DataFrame({"account_id": sample["account_id"],
                         "territory_id": sample["current_rep"]})
    terr = geo.territory_polygons(sample, plan, cells=cells)
    assert terr.geometry.is_valid.all()
    shapes = dict(zip(terr["territory_id"], terr.geometry, strict=True))
    hawaii = sample[sample["state"] == "HI"].iloc[0]
    owner = shapes[hawaii["current_rep"]]
    assert owner.contains(shapely.Point(hawaii["lon"], hawaii["lat"]))
    # No territory bridges the ocean: Hawaii's polygon part stays near Hawaii.
    part = next(p for p in shapely.get_parts(owner)
                if p.contains(shapely.Point(hawaii["lon"], hawaii["lat"])))
    islands = sample[sample["state"] == "HI"]
    assert part.bounds[0] > islands["lon"].min() - 2 and part.bounds[2] < islands["lon"].max() + 2
    assert part.bounds[1] > islands["lat"].min() - 2 and part.bounds[3] < islands["lat"].max() + 2


# -- disconnected parts and contiguity --------------------------------------------------------


def test_disconnected_parts_match_graph_components(ga_units: gpd.GeoDataFrame,
                                                   ga_accounts: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    plan = pd.DataFrame({"account_id": ga_accounts["account_id"],
                         "territory_id": rng.choice(["A", "B", "C"], len(ga_accounts))})
    terr = geo.territory_polygons(ga_accounts, plan, ga_units)
    parts = geo.disconnected_parts(terr)
    # Independent check: explode multi-part counties into single pieces, build the rook
    # graph of the pieces and count each territory's connected components.
    label = ga_units["unit_id"].map(dict(zip(plan["account_id"], plan["territory_id"],
                                             strict=True)))
    pieces = gpd.GeoDataFrame({"t": label}, geometry=ga_units.geometry).explode(
        index_parts=False).reset_index(drop=True)
    comps = geo.territory_components(geo.adjacency(pieces), pieces["t"].to_numpy())
    assert parts == comps
    assert max(parts.values()) > 1


def test_unit_components_contiguity(ga_units: gpd.GeoDataFrame,
                                    ga_accounts: pd.DataFrame) -> None:
    # Fulton (13121) and Chatham (13051) are far apart: one territory in two pieces.
    plan = pd.DataFrame({"account_id": ga_accounts["account_id"], "territory_id": "rest"})
    plan.loc[plan["account_id"].isin(["13121", "13051"]), "territory_id"] = "split"
    comps = geo.unit_components(ga_accounts, plan, ga_units)
    assert comps == {"rest": 1, "split": 2}
    terr = geo.territory_polygons(ga_accounts, plan, ga_units)
    assert geo.disconnected_parts(terr)["split"] == 2
    kpis = geo.geo_kpis(terr, comps)
    assert kpis["disconnected_territories"] == 1 and kpis["disconnected_parts"] == 1


def test_territory_components_ignores_unlabelled_units() -> None:
    path_graph = geo.adjacency(gpd.GeoSeries([box(i, 0, i + 1, 1) for i in range(4)]))
    assert geo.territory_components(path_graph, ["a", None, "a", "b"]) == {"a": 2, "b": 1}


# -- compactness ------------------------------------------------------------------------------


def test_compactness_polsby_popper() -> None:
    polys = gpd.GeoDataFrame(
        {"territory_id": ["square", "disc", "strip", "north"]},
        geometry=[box(0, 0, 0.1, 0.1),                      # near the equator: a square
                  shapely.Point(10, 0).buffer(0.1, 64),
                  box(20, 0, 20.4, 0.01),
                  box(0, 60, 1, 61)],                       # 1° × 1° at 60° N: 1 : 2
        crs="EPSG:4326")
    pp = geo.compactness(polys)
    assert math.isclose(pp["square"], math.pi / 4, rel_tol=1e-3)
    assert math.isclose(pp["disc"], 1.0, rel_tol=2e-3)
    assert pp["strip"] < 0.1
    # width = cos(60.5°) × 111 km ≈ 0.49 × height: 4π·r / (2(1+r))² with r ≈ 0.49
    r = math.cos(math.radians(60.5))
    assert math.isclose(pp["north"], 4 * math.pi * r / (2 * (1 + r)) ** 2, rel_tol=0.01)
    kpis = geo.geo_kpis(polys)
    assert set(kpis) == {"compactness_mean", "compactness_min"}
    assert math.isclose(kpis["compactness_min"], pp["strip"])
