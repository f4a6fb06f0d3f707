"""Unit polygons in the service: stored with a dataset, dissolved into territory polygons and
used for `contiguity: true` (the library's path, optimizer.contiguity.unit_graph)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import shapely
from shapely.geometry import box, mapping, shape

from optimizer.datasets import get_dataset_or_raise
from tests.api.harness import wait_for_job
from tests.optimizer.test_contiguity import _one_piece

# A 2 × 2 grid of 0.5° squares in Georgia, one account of workload 10 per square; R1 at the
# south-west centre, R2 at the north-east one; each rep must carry exactly half. East-west
# neighbours are nearer than north-south ones at this latitude (0.5° × cos 33° < 0.5°), so the
# min-travel plan gives R1 the south row and R2 the north row (the only other balanced plans
# cost more: columns, 2 × 0.5° of latitude; diagonals, more still).
CELLS = {"SW": (0, 0), "SE": (1, 0), "NW": (0, 1), "NE": (1, 1)}
LON0, LAT0, SIDE = -84.0, 33.0, 0.5


def _square(i: int, j: int) -> shapely.Polygon:
    return box(LON0 + SIDE * i, LAT0 + SIDE * j, LON0 + SIDE * (i + 1), LAT0 + SIDE * (j + 1))


def _centre(i: int, j: int) -> tuple[float, float]:
    """(lat, lon) of a square's centre."""
    return LAT0 + SIDE * (j + 0.5), LON0 + SIDE * (i + 0.5)


def _grid_files() -> dict[str, tuple[str, bytes, str]]:
    accounts = "account_id,unit_id,lat,lon,workload\n" + "".join(
        f"A{u},{u},{_centre(*ij)[0]},{_centre(*ij)[1]},10\n" for u, ij in CELLS.items())
    reps = "rep_id,lat,lon,capacity\n" + "".join(
        f"{r},{_centre(*CELLS[u])[0]},{_centre(*CELLS[u])[1]},100\n"
        for r, u in (("R1", "SW"), ("R2", "NE")))
    units = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"unit_id": u},
         "geometry": mapping(_square(*ij))} for u, ij in CELLS.items()]}
    return {"accounts": ("accounts.csv", accounts.encode(), "text/csv"),
            "reps": ("reps.csv", reps.encode(), "text/csv"),
            "units": ("grid.geojson", json.dumps(units).encode(), "application/geo+json")}


def _finished_plan(client: httpx.Client, body: dict[str, Any]) -> tuple[dict[str, Any],
                                                                        dict[str, Any]]:
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    done = wait_for_job(client, r.json()["id"], timeout=180)
    assert done["state"] == "succeeded", done
    result = client.get(f"/v1/jobs/{done['id']}/result").json()
    geojson = client.get(f"/v1/jobs/{done['id']}/result.geojson")
    assert geojson.status_code == 200, geojson.text
    return result, geojson.json()


def test_upload_with_units_draws_dissolved_units(acme: httpx.Client) -> None:
    r = acme.post("/v1/datasets", files=_grid_files(), data={"name": "grid"})
    assert r.status_code == 201, r.text
    dataset = r.json()
    assert (dataset["accounts"], dataset["reps"], dataset["units"]) == (4, 2, 4)
    assert acme.get(f"/v1/datasets/{dataset['id']}").json()["units"] == 4

    scenario = {"balance": {"workload": {"tolerance": 0.0}}, "contiguity": True,
                "solver": {"time_limit": 10, "mip_gap": 0}}
    result, geojson = _finished_plan(acme, {"dataset_id": dataset["id"], "scenario": scenario})
    owner = {a["account_id"]: a["rep_id"] for a in result["assignments"]}
    assert owner == {"ASW": "R1", "ASE": "R1", "ANW": "R2", "ANE": "R2"}
    assert result["summary"]["kpis"]["contiguity"]["enforced"] is True
    # Territory polygons are the dissolved squares: exactly the south and north halves.
    polygons = {f["properties"]["territory_id"]: shape(f["geometry"])
                for f in geojson["features"]}
    halves = {"R1": box(LON0, LAT0, LON0 + 2 * SIDE, LAT0 + SIDE),
              "R2": box(LON0, LAT0 + SIDE, LON0 + 2 * SIDE, LAT0 + 2 * SIDE)}
    assert set(polygons) == set(halves)
    for rep, half in halves.items():
        assert polygons[rep].symmetric_difference(half).area < 1e-9 * half.area, rep


def test_bad_unit_polygons_are_refused_at_upload(acme: httpx.Client) -> None:
    files = _grid_files()
    units = json.loads(files["units"][1])
    units["features"][1]["geometry"] = {"type": "Point", "coordinates": [-83.5, 33.2]}
    del units["features"][2]["properties"]["unit_id"]
    files["units"] = ("units.geojson", json.dumps(units).encode(), "application/geo+json")
    r = acme.post("/v1/datasets", files=files)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    issues = {(i["source"], i["row"], i["field"]): i["message"] for i in r.json()["issues"]}
    assert issues[("units.geojson", 2, "geometry")] == "not a polygon (Point)"
    assert issues[("units.geojson", 3, "unit_id")] == "missing unit_id"

    files["units"] = ("units.csv", b"unit_id,lat,lon\nSW,33.2,-83.7\n", "text/csv")
    r = acme.post("/v1/datasets", files=files)
    assert r.status_code == 422
    assert "unsupported units file" in r.json()["issues"][0]["message"]


def test_bundled_county_sets_import_with_their_polygons(acme: httpx.Client) -> None:
    importable = {d["name"]: d["importable"] for d in acme.get("/v1/bundled").json()["data"]}
    # Accounts with polygons (design only) import; us-zips' units are points, not polygons.
    assert importable["ga-counties"] and importable["nc-counties"]
    assert importable["us-regional"] and not importable["us-zips"]
    r = acme.post("/v1/bundled/nc-counties")
    assert r.status_code == 201, r.text
    assert (r.json()["accounts"], r.json()["reps"], r.json()["units"]) == (100, 0, 100)
    assert acme.post("/v1/bundled/us-zips").status_code == 404


def test_contiguous_design_on_georgia_counties(acme: httpx.Client, tmp_path: Path) -> None:
    r = acme.post("/v1/bundled/ga-counties")
    assert r.status_code == 201, r.text
    dataset = r.json()
    assert (dataset["accounts"], dataset["reps"], dataset["units"]) == (159, 0, 159)

    scenario = {"mode": "design", "territories": 5, "contiguity": True,
                "balance": {"workload": {"tolerance": 0.20, "hard": True}},
                "solver": {"time_limit": 5}}
    result, geojson = _finished_plan(acme, {"kind": "design", "dataset_id": dataset["id"],
                                            "scenario": scenario})
    summary = result["summary"]
    assert summary["status"] in ("optimal", "feasible")
    assert summary["kpis"]["contiguity"]["enforced"]
    assert summary["kpis"]["contiguity"]["unfixed_parts"] == 0
    assert summary["kpis"]["after"]["geography"]["disconnected_parts"] == 0
    # Every territory is one piece, by the same geometric check as the library's tests.
    (tmp_path / "territories.geojson").write_text(json.dumps(geojson))
    pd.DataFrame(result["assignments"]).to_csv(tmp_path / "assignments.csv", index=False)
    ga = get_dataset_or_raise("ga-counties")
    accounts, units = ga.file("accounts.csv"), ga.file("units.geojson")
    assert accounts is not None and units is not None
    pieces = _one_piece(tmp_path, accounts, units)
    assert len(pieces) == 5 and set(pieces.values()) == {0}, pieces
    # The hard ±20 % band around the fair share (total workload / 5) holds.
    total = pd.read_csv(accounts)["workload"].sum()
    loads = [t["workload"] for t in result["territories"]]
    assert sum(loads) == pytest.approx(total)
    assert all(abs(w / (total / 5) - 1) <= 0.20 + 1e-9 for w in loads), loads


def test_contiguity_needs_units(acme: httpx.Client, regional: dict[str, Any]) -> None:
    contiguous = {"mode": "design", "territories": 3, "contiguity": True,
                  "solver": {"time_limit": 5}}
    regional_id = acme.post("/v1/bundled/us-regional").json()["id"]
    for body in ({"kind": "design", "dataset_id": regional_id, "scenario": contiguous},
                 {"kind": "align", "data": regional,
                  "scenario": {"contiguity": True}}):
        r = acme.post("/v1/jobs", json=body)
        assert r.status_code == 422, r.text
        assert any(i["source"] == "scenario" and i["field"] == "contiguity"
                   and "needs unit polygons" in i["message"] for i in r.json()["issues"])
    # A design-only dataset has no reps to realign.
    counties = acme.post("/v1/bundled/ga-counties").json()["id"]
    r = acme.post("/v1/jobs", json={"kind": "align", "dataset_id": counties, "scenario": {}})
    assert r.status_code == 422
    assert any(i["source"] == "reps" and i["message"] == "no reps" for i in r.json()["issues"])
    # A batch over a dataset with units passes the same check (then is cancelled: no solve
    # is needed to show it was accepted).
    r = acme.post("/v1/batches", json={"kind": "design", "dataset_id": counties,
                                       "scenarios": [{"scenario": contiguous}]})
    assert r.status_code == 202, r.text
    job_id = r.json()["jobs"][0]["id"]
    acme.post(f"/v1/jobs/{job_id}/cancel")
    assert wait_for_job(acme, job_id, timeout=120)["state"] in ("cancelled", "succeeded")


def _grid_design(client: httpx.Client, centres: str | list[str]
                 ) -> tuple[str, dict[str, Any], dict[str, str], dict[str, str]]:
    """A contiguous design of the grid into 2 equal territories: the dataset id, the
    scenario, each account's territory and each territory's centre."""
    dataset = client.post("/v1/datasets", files=_grid_files()).json()["id"]
    scenario = {"mode": "design", "territories": 2, "centres": centres, "contiguity": True,
                "balance": {"workload": {"tolerance": 0.0}},
                "solver": {"time_limit": 20, "mip_gap": 0}}
    result, _ = _finished_plan(client, {"kind": "design", "dataset_id": dataset,
                                        "scenario": scenario})
    assert result["summary"]["status"] == "optimal"
    territory = {a["account_id"]: a["territory_id"] for a in result["assignments"]}
    return dataset, scenario, territory, {t["territory_id"]: t["centre"]
                                          for t in result["territories"]}


def test_design_with_unit_centres(acme: httpx.Client, regional: dict[str, Any]) -> None:
    """`centres: units`: the centres are squares of the dataset's polygons, and with contiguity
    each territory holds its centre square."""
    _, scenario, territory, centres = _grid_design(acme, "units")
    assert set(centres.values()) <= set(CELLS)
    for tid, square in centres.items():
        assert territory[f"A{square}"] == tid  # the centre square's account is in it
    # The optimum pairs squares in rows (see CELLS): two territories of two, each centre one
    # of its own squares, 0.5° of longitude at 33.25° and 33.75° N between the two.
    rows = {frozenset(a for a, t in territory.items() if t == tid) for tid in centres}
    assert rows == {frozenset({"ASW", "ASE"}), frozenset({"ANW", "ANE"})}

    # Without polygons the job is refused at submission, naming the key.
    r = acme.post("/v1/jobs", json={"kind": "design", "data": {"accounts": regional["accounts"]},
                                    "scenario": {**scenario, "contiguity": False}})
    assert r.status_code == 422, r.text
    assert any(i["field"] == "centres" and "needs the units' polygons" in i["message"]
               for i in r.json()["issues"])


def test_design_with_listed_unit_and_account_centres(acme: httpx.Client) -> None:
    """A list of centres may name units of the dataset's polygons as well as accounts; an
    id that is neither is refused at submission."""
    dataset, scenario, territory, centres = _grid_design(acme, ["SW", "ANE"])
    centre_of = {c: tid for tid, c in centres.items()}
    assert set(centre_of) == {"SW", "ANE"}
    # As in the test above, rows: the SW square's territory holds its account and ASE.
    assert {a for a, t in territory.items() if t == centre_of["SW"]} == {"ASW", "ASE"}

    r = acme.post("/v1/jobs", json={"kind": "design", "dataset_id": dataset,
                                    "scenario": {**scenario, "centres": ["SW", "ZZ"]}})
    assert r.status_code == 422, r.text
    assert [(i["field"], i["message"]) for i in r.json()["issues"]] == [
        ("centres", "1 listed centre(s) neither an account nor a unit: ZZ")]
