"""Maps (PNG and offline HTML) and the run's geographic outputs."""

from __future__ import annotations

import json
import re
import warnings
from importlib import resources
from pathlib import Path

import geopandas as gpd
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from optimizer import datasets, geo, maps
from optimizer.io import read_alignment, read_scenario
from optimizer.outputs import OutputWarning, write_geo_outputs

REGIONAL = datasets.get_dataset_or_raise("us-regional")
NATIONAL = datasets.get_dataset_or_raise("us-accounts")
GA = datasets.get_dataset_or_raise("ga-counties").path
LEAFLET_JS = (resources.files("optimizer") / "assets" / "leaflet" / "leaflet.js").read_text(
    encoding="utf-8")


@pytest.fixture(scope="module")
def regional() -> tuple[pd.DataFrame, pd.DataFrame, gpd.GeoDataFrame]:
    acc = pd.read_csv(REGIONAL.path / "accounts.csv", dtype={"account_id": str})
    acc["territory_id"] = acc["current_rep"]
    reps = pd.read_csv(REGIONAL.path / "reps.csv")
    terr = geo.territory_polygons(acc, acc[["account_id", "territory_id"]])
    centres = reps.rename(columns={"rep_id": "label"})[["lat", "lon", "label"]]
    return acc, centres, terr


def _png_shape(path: Path) -> tuple[int, ...]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return tuple(mpimg.imread(path).shape)


def _external_refs(page: str) -> list[str]:
    """http(s) URLs in the page outside the inlined Leaflet source (whose comments and
    attribution link name its home page)."""
    return re.findall(r"https?://[^\s\"'<>)]+", page.replace(LEAFLET_JS, ""))


def test_colours_differ_between_neighbours() -> None:
    counties = geo.load_units(GA / "units.geojson").rename(columns={"unit_id": "territory_id"})
    colours = maps.territory_colours(counties)
    assert set(colours) == set(counties["territory_id"])
    assert len(set(colours.values())) <= len(maps.PALETTE)
    ids = counties["territory_id"].to_numpy()
    for i, j in geo.adjacency_pairs(counties, rook=False):
        assert colours[ids[i]] != colours[ids[j]]


def test_png_regional(tmp_path: Path,
                      regional: tuple[pd.DataFrame, pd.DataFrame, gpd.GeoDataFrame]) -> None:
    acc, centres, terr = regional
    path = maps.write_map_png(tmp_path / "map.png", terr, acc, centres, "Georgia",
                              outline_label="border")
    h, w, _ = _png_shape(path)
    assert 1200 <= w <= 3000 and 1000 <= h <= 4000
    rgb = (mpimg.imread(path)[..., :3].reshape(-1, 3) * 255).astype(np.int64)
    assert len(np.unique(rgb @ np.array([65536, 256, 1]))) > 50  # colours: not blank


def test_png_national_sample_has_insets(tmp_path: Path) -> None:
    acc = pd.read_csv(NATIONAL.path / "accounts.csv", dtype={"account_id": str})
    far = acc["state"].isin(["AK", "HI"])
    sample = pd.concat([acc[far], acc[~far].sample(1500, random_state=2)])
    sample["territory_id"] = sample["current_rep"]
    terr = geo.territory_polygons(sample, sample[["account_id", "territory_id"]])
    panels = maps._panels(sample["lon"].to_numpy(), sample["lat"].to_numpy(),
                          terr.geometry.to_numpy())
    assert len(panels) == 3  # lower 48, then the Alaska and Hawaii insets
    main = panels[0].bounds
    assert main[0] > -130 and main[2] < -60 and main[1] > 20 and main[3] < 53  # no AK, HI
    _, w, _ = _png_shape(maps.write_map_png(tmp_path / "us.png", terr, sample))
    assert w == 2400


def test_html_offline_and_complete(tmp_path: Path,
                                   regional: tuple[pd.DataFrame, pd.DataFrame,
                                                   gpd.GeoDataFrame]) -> None:
    acc, centres, terr = regional
    table = acc.groupby("territory_id").agg(workload=("workload", "sum"),
                                            accounts=("account_id", "size")).reset_index()
    path = maps.write_map_html(tmp_path / "map.html", terr, table, acc, centres=centres,
                               title="Georgia")
    page = path.read_text(encoding="utf-8")
    assert LEAFLET_JS in page  # inlined, not linked
    assert _external_refs(page) == []
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    data = json.loads(re.search(r"const DATA = (.*);\n", page).group(1))
    ids = {f["properties"]["id"] for f in data["territories"]["features"]}
    assert ids == set(terr["territory_id"])
    assert len(data["points"]) == len(acc) and len(data["centres"]) == len(centres)
    first = data["territories"]["features"][0]["properties"]
    assert set(first["kpi"]) == {"workload", "accounts"}


def test_html_escapes_user_text(tmp_path: Path) -> None:
    evil = "</script><script>alert(1)</script>%%APP%%"
    terr = gpd.GeoDataFrame({"territory_id": [evil]},
                            geometry=[gpd.points_from_xy([0], [0])[0].buffer(1)],
                            crs="EPSG:4326")
    page = maps.write_map_html(tmp_path / "m.html", terr, title=evil).read_text()
    assert "</script><script>alert" not in page
    assert "&lt;/script&gt;" in page  # the <title>
    data = json.loads(re.search(r"const DATA = (.*);\n", page).group(1))
    assert data["territories"]["features"][0]["properties"]["id"] == evil


# -- write_geo_outputs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regional_run() -> dict:
    sc = read_scenario(REGIONAL.file("scenario.yaml"))
    data = read_alignment(REGIONAL.file("accounts.csv"), REGIONAL.file("reps.csv"), sc)
    acc = data.accounts
    # A plan without solving: today's alignment, with a few accounts moved.
    plan = acc["current_rep"].astype(str).to_numpy(dtype=object).copy()
    plan[:10] = "R001"
    assignments = pd.DataFrame({"account_id": acc["account_id"], "territory_id": plan,
                                "rep_id": plan, "previous_rep": acc["current_rep"],
                                "moved": plan != acc["current_rep"].astype(str).to_numpy()})
    territories = (acc.assign(territory_id=plan).groupby("territory_id")
                   .agg(workload=("workload", "sum"), accounts=("account_id", "size"))
                   .reset_index())
    territories["rep_id"] = territories["territory_id"]
    territories["centre"] = None
    kpis = {"before": {"travel": {"total": 2.0}}, "after": {"travel": {"total": 1.0}}}
    summary = {"status": "optimal", "objective": 1.0, "kpis": kpis, "warnings": []}
    return {"accounts": acc, "reps": data.reps, "assignments": assignments,
            "territories": territories, "kpis": kpis, "summary": summary}


def test_write_geo_outputs_regional(tmp_path: Path, regional_run: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutputWarning)
        paths = write_geo_outputs(tmp_path, **regional_run).files
    assert [p.name for p in paths] == ["territories.geojson", "map.png", "map.html",
                                       "workbook.xlsx"]
    doc = json.loads((tmp_path / "territories.geojson").read_text())
    assert len(doc["features"]) == len(regional_run["territories"])
    props = doc["features"][0]["properties"]
    assert {"territory_id", "rep_id", "workload", "accounts", "compactness"} <= set(props)
    assert 0 < props["compactness"] <= 1
    ring = doc["features"][0]["geometry"]["coordinates"]
    assert doc["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon") and ring
    kpis = pd.read_excel(tmp_path / "workbook.xlsx", sheet_name="KPIs")
    assert "geography.compactness_mean" in set(kpis["key"])
    assert regional_run["kpis"]["after"].keys() == {"travel"}  # the input is not modified


def test_write_geo_outputs_with_units(tmp_path: Path) -> None:
    units = geo.load_units(GA / "units.geojson")
    acc = pd.read_csv(GA / "accounts.csv", dtype={"account_id": str, "unit_id": str})
    north = acc["lat"] > 33.0
    plan = np.where(north, "N", "S").astype(object)
    plan[acc["account_id"] == "13051"] = "N"  # Chatham, on the coast: N in two pieces
    assignments = pd.DataFrame({"account_id": acc["account_id"], "territory_id": plan,
                                "rep_id": plan})
    territories = pd.DataFrame({"territory_id": ["N", "S"], "rep_id": ["N", "S"],
                                "centre": ["13121", "13021"]})
    kpis = {"after": {"travel": {"total": 1.0}}}
    write_geo_outputs(tmp_path, acc, None, assignments, territories, kpis, {}, units)
    doc = json.loads((tmp_path / "territories.geojson").read_text())
    parts = {f["properties"]["territory_id"]: f["properties"]["parts"]
             for f in doc["features"]}
    assert parts == {"N": 2, "S": 1}
    sheet = pd.read_excel(tmp_path / "workbook.xlsx", sheet_name="KPIs")
    row = sheet.set_index("key").loc["geography.disconnected_parts"]
    assert row["After"] == 1


def test_write_geo_outputs_without_coordinates(tmp_path: Path, regional_run: dict) -> None:
    run = dict(regional_run)
    run["accounts"] = run["accounts"].drop(columns=["lat", "lon"])
    with pytest.warns(OutputWarning, match="no coordinates"):
        paths = write_geo_outputs(tmp_path, **run).files
    assert [p.name for p in paths] == ["workbook.xlsx"]
    summary = pd.read_excel(tmp_path / "workbook.xlsx", sheet_name="Summary")
    assert summary["Value"].astype(str).str.contains("no coordinates").any()


@pytest.mark.slow
def test_write_geo_outputs_national(tmp_path: Path) -> None:
    sc = read_scenario(NATIONAL.file("scenario.yaml"))
    data = read_alignment(NATIONAL.file("accounts.csv"), NATIONAL.file("reps.csv"), sc)
    acc = data.accounts
    assignments = pd.DataFrame({"account_id": acc["account_id"],
                                "territory_id": acc["current_rep"],
                                "rep_id": acc["current_rep"],
                                "previous_rep": acc["current_rep"], "moved": False})
    territories = pd.DataFrame({"territory_id": data.reps["rep_id"],
                                "rep_id": data.reps["rep_id"], "centre": None})
    outputs = write_geo_outputs(tmp_path, acc, data.reps, assignments, territories,
                              {"after": {}}, {"status": "optimal"})
    paths = outputs.files
    assert len(paths) == 4
    assert (tmp_path / "map.html").stat().st_size < 5_000_000
    doc = json.loads((tmp_path / "territories.geojson").read_text())
    assert len(doc["features"]) == 100
