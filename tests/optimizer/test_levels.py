"""Levels and roles: regions, areas and overlay reps over finished plans, with known optima."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy import sparse
from typer.testing import CliRunner

from optimizer import levels
from optimizer.cli import app
from optimizer.distance import haversine_km
from optimizer.errors import InfeasibleScenarioError, InputError
from optimizer.levels import OverlaySettings, Plan, RegionSettings

runner = CliRunner()


def line(xs: list[float], workload: list[float] | None = None) -> pd.DataFrame:
    """Territories T0, T1, ... on the x axis (planar: distances are |x_i - x_j|)."""
    n = len(xs)
    return pd.DataFrame({"territory_id": [f"T{i}" for i in range(n)], "x": xs, "y": 0.0,
                         "workload": workload or [10.0] * n, "potential": 100.0,
                         "accounts": 5})


def groups(result: levels.LevelResult, column: str = "region_id") -> set[frozenset[str]]:
    t = result.territories
    return {frozenset(g["territory_id"]) for _, g in t.groupby(column)}


def test_six_on_a_line_into_two_regions_of_three() -> None:
    plan = Plan(line([0, 1, 2, 3, 4, 5]))
    done = levels.regions(plan, 2, RegionSettings(tolerance=0))
    assert groups(done) == {frozenset({"T0", "T1", "T2"}), frozenset({"T3", "T4", "T5"})}
    regions = done.tables["regions"]
    # Ids run north to south, then west to east; centres are the middle territories.
    assert regions["region_id"].tolist() == ["RG01", "RG02"]
    assert regions["centre"].tolist() == ["T1", "T4"]
    assert regions["territories"].tolist() == [3, 3]
    assert regions["workload"].tolist() == [30.0, 30.0]
    assert regions["accounts"].tolist() == [15.0, 15.0]
    assert regions["travel"].tolist() == [2.0, 2.0]
    assert regions["x"].tolist() == [1.0, 4.0]
    s = done.summary()
    assert list(s)[:5] == ["status", "objective", "bound", "gap", "seconds"]
    assert s["status"] == "optimal" and s["objective"] == pytest.approx(4.0)
    assert s["bound"] == pytest.approx(4.0)
    k = s["kpis"]["region"]
    assert k["band"] == {"span_min": 3, "span_max": 3}
    assert k["span"] == {"min": 3, "max": 3, "mean": 3.0}
    assert k["balance"]["workload"]["cv"] == 0.0
    assert k["travel"]["total"] == pytest.approx(4.0)


def test_balancing_on_workload_changes_the_regions() -> None:
    # Workloads 6, 1, 1, 2: within ±20 % of the mean (5) the only split is {T0} | {T1, T2, T3}
    # (travel 0 + 2); balanced on territory count (2 and 2) the best is {T0, T1} | {T2, T3}.
    t = line([0, 1, 2, 3], [6, 1, 1, 2])
    by_work = levels.regions(Plan(t), 2, RegionSettings(balance_on="workload", tolerance=0.2))
    assert groups(by_work) == {frozenset({"T0"}), frozenset({"T1", "T2", "T3"})}
    assert by_work.summary()["objective"] == pytest.approx(2.0)
    assert sorted(by_work.tables["regions"]["workload"]) == [4.0, 6.0]
    assert by_work.kpis["region"]["band"]["workload_min"] == pytest.approx(4.0)
    by_count = levels.regions(Plan(t), 2, RegionSettings(tolerance=0))
    assert groups(by_count) == {frozenset({"T0", "T1"}), frozenset({"T2", "T3"})}
    assert by_count.summary()["objective"] == pytest.approx(2.0)


def test_count_band_widens_to_whole_numbers() -> None:
    # 6 territories in 4 regions: 1.5 ± 20 % holds no whole number; the band becomes 1..2.
    done = levels.regions(Plan(line([0, 1, 2, 3, 4, 5])), 4, RegionSettings(tolerance=0.2))
    assert done.kpis["region"]["band"] == {"span_min": 1, "span_max": 2}
    assert sorted(done.tables["regions"]["territories"]) == [1, 1, 2, 2]
    assert done.summary()["objective"] == pytest.approx(2.0)  # two pairs one apart


def test_areas_group_regions_and_roll_up() -> None:
    t = line([0, 1, 2, 3, 10, 11, 12, 13])
    assignments = pd.DataFrame({"account_id": [f"A{i}" for i in range(8)],
                                "territory_id": t["territory_id"]})
    settings = RegionSettings(tolerance=0)
    reg = levels.regions(Plan(t, assignments), 4, settings)
    assert groups(reg) == {frozenset({"T0", "T1"}), frozenset({"T2", "T3"}),
                           frozenset({"T4", "T5"}), frozenset({"T6", "T7"})}
    # Regions sit at their workload-weighted centroids 0.5, 2.5, 10.5 and 12.5.
    assert sorted(reg.tables["regions"]["x"]) == [0.5, 2.5, 10.5, 12.5]
    done = levels.areas(reg, 2, settings)
    assert groups(done, "area_id") == {frozenset({"T0", "T1", "T2", "T3"}),
                                       frozenset({"T4", "T5", "T6", "T7"})}
    areas = done.tables["areas"]
    assert areas["regions"].tolist() == [2, 2] and areas["territories"].tolist() == [4, 4]
    assert areas["workload"].tolist() == [40.0, 40.0] and areas["travel"].tolist() == [2, 2]
    s = done.summary()
    assert s["status"] == "optimal"
    assert s["objective"] == pytest.approx(4.0 + 4.0)  # regions' travel + areas' travel
    assert set(s["runs"]) == {"region", "area"}
    # Every row carries both levels, consistently.
    a = done.assignments
    assert a is not None and a["region_id"].notna().all() and a["area_id"].notna().all()
    region_area = done.tables["regions"].set_index("region_id")["area_id"]
    assert (a["region_id"].map(region_area) == a["area_id"]).all()


def test_infeasible_spans_are_explained() -> None:
    plan = Plan(line([0, 1, 2, 3, 4, 5]))
    with pytest.raises(InfeasibleScenarioError) as exc:
        levels.regions(plan, 2, RegionSettings(max_span=2))
    assert exc.value.reasons == ["2 regions of at most 2 territories each hold at most 4 "
                                 "territories, but there are 6"]
    with pytest.raises(InfeasibleScenarioError, match="7 regions need at least 7 territories"):
        levels.regions(plan, 7)
    heavy = Plan(line([0, 1, 2, 3], [6, 1, 1, 2]))
    with pytest.raises(InfeasibleScenarioError) as exc:
        levels.regions(heavy, 2, RegionSettings(balance_on="workload", tolerance=0.1))
    assert exc.value.reasons == ["territory T0 alone has 6 h of workload, more than a region "
                                 "may hold (6 h: mean 5 h +10%)"]


def _matrix(n: int, edges: list[tuple[int, int]]) -> sparse.csr_array:
    rows = [a for a, b in edges] + [b for a, b in edges]
    cols = [b for a, b in edges] + [a for a, b in edges]
    return sparse.csr_array((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))


def test_contiguous_regions_follow_the_adjacency() -> None:
    # On the x axis {T0, T1} | {T2, T3} is nearest (travel 2), but the territories touch only
    # along T0 - T2 - T1 - T3: the contiguous pairs are {T0, T2} | {T1, T3} (travel 4).
    plan = Plan(line([0, 1, 2, 3]), adjacency=_matrix(4, [(0, 2), (2, 1), (1, 3)]))
    free = levels.regions(plan, 2, RegionSettings(tolerance=0, contiguity=False))
    assert groups(free) == {frozenset({"T0", "T1"}), frozenset({"T2", "T3"})}
    assert free.kpis["region"]["contiguity"]["disconnected_regions"] == 2
    done = levels.regions(plan, 2, RegionSettings(tolerance=0))
    assert groups(done) == {frozenset({"T0", "T2"}), frozenset({"T1", "T3"})}
    assert done.summary()["objective"] == pytest.approx(4.0)
    c = done.kpis["region"]["contiguity"]
    assert c["enforced"] and c["disconnected_regions"] == 0
    assert done.tables["regions"]["parts"].tolist() == [1, 1]


def test_territory_adjacency_from_units() -> None:
    # Four unit squares in a row; T1 holds u1 and u3, T2 holds u2, T3 holds u4.
    units = gpd.GeoDataFrame({"unit_id": ["u1", "u2", "u3", "u4"]},
                             geometry=[shapely.box(i, 0, i + 1, 1) for i in range(4)],
                             crs="EPSG:4326")
    accounts = pd.DataFrame({"account_id": ["a1", "a2", "a3", "a4"],
                             "unit_id": ["u1", "u2", "u3", "u4"], "workload": 1.0})
    assignments = pd.DataFrame({"account_id": ["a1", "a2", "a3", "a4"],
                                "territory_id": ["T1", "T2", "T1", "T3"]})
    m = levels.territory_adjacency(accounts, assignments, ["T1", "T2", "T3"], units)
    assert m.toarray().tolist() == [[0, 1, 1], [1, 0, 0], [1, 0, 0]]
    # Accounts whose unit_id the file lacks (another data set's units) place T2 and T3
    # nowhere: every region joining them would be in pieces, so it is bad input.
    elsewhere = accounts.assign(unit_id=["u1", "x2", "u3", None])
    with pytest.raises(InputError) as exc:
        levels.territory_adjacency(elsewhere, assignments, ["T1", "T2", "T3"], units)
    assert [str(i) for i in exc.value.issues] == [
        "units column unit_id: none of the accounts of 2 of the plan's 3 territories has a "
        "unit_id of the units file (it lacks them, or they are empty): T2, T3"]
    # A territory that is the minority in every unit it touches (T3's 1 h in u1, against
    # T1's 10 h) is no such case: it is placed by its units, as on maps (no adjacency of its
    # own), and accepted.
    shared = pd.DataFrame({"account_id": ["a", "b", "c", "d"], "unit_id": ["u1", "u1", "u2", "u1"],
                           "workload": [10.0, 10.0, 10.0, 1.0]})
    plan = pd.DataFrame({"account_id": ["a", "b", "c", "d"],
                         "territory_id": ["T1", "T1", "T2", "T3"]})
    m = levels.territory_adjacency(shared, plan, ["T1", "T2", "T3"], units)
    assert m.toarray().tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]


def test_locations_are_workload_weighted_centroids_or_home_bases() -> None:
    territories = pd.DataFrame({"territory_id": ["T1", "T2"], "rep_id": ["R1", "R2"],
                                "workload": [4.0, 0.0]})
    accounts = pd.DataFrame({"account_id": ["a", "b"], "x": [0.0, 4.0], "y": [0.0, 0.0],
                             "workload": [1.0, 3.0]})
    assignments = pd.DataFrame({"account_id": ["a", "b"], "territory_id": ["T1", "T1"]})
    reps = pd.DataFrame({"rep_id": ["R1", "R2"], "x": [9.0, 7.0], "y": [1.0, 2.0]})
    located, found = levels.locate_territories(territories, assignments, accounts, reps)
    assert located[["x", "y"]].to_numpy().tolist() == [[3.0, 0.0], [7.0, 2.0]]
    assert found.startswith("workload-weighted account centroids")
    # lat/lon average on the sphere: two equal weights on the equator meet half way.
    c = levels.weighted_centroids(np.array(["T"] * 2), np.ones(2),
                                  pd.DataFrame({"lat": [0.0, 0.0], "lon": [0.0, 10.0]}), ["T"])
    assert c.loc[0, "lat"] == pytest.approx(0.0, abs=1e-12) and c.loc[0, "lon"] == \
        pytest.approx(5.0)
    with pytest.raises(InputError) as exc:
        levels.locate_territories(territories, assignments, accounts, None,
                                  source="territories.csv")
    assert str(exc.value.issues[0]) == ("territories.csv row 2, column territory_id: "
                                        "territory T2 has no location (no located accounts "
                                        "and no rep home base)")


def _overlay_plan() -> Plan:
    return Plan(pd.DataFrame({"territory_id": ["A", "B", "C", "D"], "x": [0.0, 1, 10, 11],
                              "y": 0.0, "workload": 1.0, "overlay_hours": 2.0}))


def test_overlay_covers_every_territory_once_per_role() -> None:
    # Role a: O1 at x=0 with capacity 6, O2 at x=11 with capacity 2 (fair shares 6 and 2 of
    # 8 hours): O1 takes three territories, O2 one; D to O2 costs 0 + 11 (A, B, C to O1),
    # C to O2 costs 1 + 12. Role b: S1 alone covers all four.
    reps = pd.DataFrame({"rep_id": ["O1", "O2", "S1"], "x": [0.0, 11, 5], "y": 0.0,
                         "capacity": [6.0, 2, 8], "role": ["a", "a", "b"]})
    done = levels.overlay(_overlay_plan(), reps, "overlay_hours", OverlaySettings(tolerance=0))
    cover = done.tables["overlay"]
    assert (cover.groupby(["territory_id", "role"]).size() == 1).all()
    assert len(cover) == 4 * 2
    a = cover[cover["role"] == "a"].set_index("territory_id")["overlay_id"].to_dict()
    assert a == {"A": "O1", "B": "O1", "C": "O1", "D": "O2"}
    assert set(cover.loc[cover["role"] == "b", "overlay_id"]) == {"S1"}
    # Brute force over all covers of role a with the loads on the fair shares.
    x = np.array([0.0, 1, 10, 11])
    home = np.array([0.0, 11])
    best = min(sum(abs(x[i] - home[r]) for i, r in enumerate(c))
               for c in itertools.product([0, 1], repeat=4) if c.count(0) == 3)
    assert done.reports["overlay:a"].objective == pytest.approx(best) == pytest.approx(11.0)
    per = done.tables["overlay_reps"].set_index("overlay_id")
    assert per.loc["O1", "overlay_hours"] == 6.0 and per.loc["O2", "territories"] == 1
    assert per.loc["S1", "travel"] == pytest.approx(5 + 4 + 5 + 6)
    assert done.territories["overlay_a"].tolist() == ["O1", "O1", "O1", "O2"]
    s = done.summary()
    assert s["status"] == "optimal" and s["objective"] == pytest.approx(11.0 + 20.0)
    assert s["kpis"]["overlay:a"]["balance"]["overlay_hours"]["max_over_fair"] == 1.0


def test_overlay_without_capacity_shares_equally() -> None:
    reps = pd.DataFrame({"rep_id": ["O1", "O2"], "x": [0.0, 11], "y": 0.0})
    measure = pd.Series([1.0, 1, 1, 1], index=["A", "B", "C", "D"], name="calls")
    done = levels.overlay(_overlay_plan(), reps, measure, OverlaySettings(tolerance=0))
    a = done.tables["overlay"].set_index("territory_id")["overlay_id"].to_dict()
    assert a == {"A": "O1", "B": "O1", "C": "O2", "D": "O2"}
    assert done.tables["overlay"]["role"].unique().tolist() == ["overlay"]
    assert done.summary()["objective"] == pytest.approx(2.0)


def test_overlay_problems_are_explained() -> None:
    reps = pd.DataFrame({"rep_id": ["O1", "O2"], "x": [0.0, 11], "y": 0.0,
                         "capacity": [3.0, 1.0], "role": "specialist"})
    with pytest.raises(InfeasibleScenarioError) as exc:
        levels.overlay(_overlay_plan(), reps, "overlay_hours")
    assert exc.value.reasons == ["overlay role specialist: the territories carry 8 of "
                                 "overlay_hours but the 2 overlay rep(s)' capacity adds up to "
                                 "only 4"]
    with pytest.raises(InputError) as err:
        levels.overlay(_overlay_plan(), reps, "visits_per_year")
    assert str(err.value.issues[0]) == "territories column visits_per_year: required column " \
                                       "is missing"
    bad = _overlay_plan().territories.assign(overlay_hours=[2.0, -1.0, 2.0, 2.0])
    with pytest.raises(InputError) as err:
        levels.overlay(Plan(bad), reps, "overlay_hours")
    assert [str(i) for i in err.value.issues] == [
        "territories row 2, column overlay_hours: must be ≥ 0 (got -1.0)"]


def test_cli_align_then_regions_and_overlay(tmp_path: Path) -> None:
    run, reg, ov = tmp_path / "run", tmp_path / "regions", tmp_path / "overlay"
    res = runner.invoke(app, ["align", "--dataset", "us-regional", "--out", str(run),
                              "--time-limit", "10", "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["regions", "--plan", str(run), "--regions", "2", "--areas", "1",
                              "--dataset", "us-regional", "--out", str(reg)])
    assert res.exit_code == 0, res.output
    summary = json.loads((reg / "summary.json").read_text())
    assert list(summary)[:5] == ["status", "objective", "bound", "gap", "seconds"]
    assert summary["status"] == "optimal"
    assert summary["locations"] == "workload-weighted account centroids"
    terr = pd.read_csv(run / "territories.csv")
    out_terr = pd.read_csv(reg / "territories.csv")
    regions = pd.read_csv(reg / "regions.csv")
    areas = pd.read_csv(reg / "areas.csv")
    assignments = pd.read_csv(reg / "assignments.csv")
    assert out_terr["region_id"].notna().all() and out_terr["area_id"].eq("AR01").all()
    assert regions["territories"].tolist() == [3, 3]  # 6 territories, 2 regions, ±20 %
    assert regions["workload"].sum() == pytest.approx(terr["workload"].sum(), rel=1e-5)
    assert regions["accounts"].sum() == len(assignments) == 372
    assert areas["regions"].tolist() == [2] and areas["territories"].tolist() == [6]
    region_of = out_terr.set_index("territory_id")["region_id"]
    assert (assignments["territory_id"].map(region_of) == assignments["region_id"]).all()
    k = summary["kpis"]["region"]
    assert k["span"] == {"min": 3, "max": 3, "mean": 3.0}
    assert k["travel"]["total"] == pytest.approx(regions["travel"].sum(), rel=1e-5)
    # Brute force: every split of the 6 territories into 3 + 3, each region at its best centre.
    lat, lon = out_terr["lat"].to_numpy(), out_terr["lon"].to_numpy()
    d = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])

    def cost(group: list[int]) -> float:
        return float(min(d[group][:, c].sum() for c in group))

    best = min(cost(list(g)) + cost([i for i in range(6) if i not in g])
               for g in itertools.combinations(range(6), 3))
    assert summary["runs"]["region"]["objective"] == pytest.approx(best, rel=1e-4)

    overlay_reps = tmp_path / "overlay_reps.csv"
    overlay_reps.write_text("rep_id,lat,lon,role\nS1,33.75,-84.39,specialist\n"
                            "S2,32.08,-81.09,specialist\nK1,33.0,-83.5,key-account\n")
    res = runner.invoke(app, ["overlay", "--plan", str(run), "--overlay-reps",
                              str(overlay_reps), "--measure", "potential", "--dataset",
                              "us-regional", "--out", str(ov)])
    assert res.exit_code == 0, res.output
    cover = pd.read_csv(ov / "overlay.csv")
    assert (cover.groupby(["territory_id", "role"]).size() == 1).all() and len(cover) == 12
    per = pd.read_csv(ov / "overlay_reps.csv").set_index("overlay_id")
    total = terr["potential"].sum()
    for rep in ("S1", "S2"):  # ±20 % of half the potential each
        assert 0.8 * total / 2 - 1 <= per.loc[rep, "potential"] <= 1.2 * total / 2 + 1
    assert per.loc["K1", "territories"] == 6

    res = runner.invoke(app, ["regions", "--plan", str(run), "--regions", "2", "--max-span",
                              "2", "--dataset", "us-regional", "--out", str(tmp_path / "no")])
    assert res.exit_code == 3
    failed = json.loads((tmp_path / "no" / "summary.json").read_text())
    assert failed["status"] == "infeasible"
    assert failed["reasons"] == ["2 regions of at most 2 territories each hold at most 4 "
                                 "territories, but there are 6"]


def test_territory_data_must_match_the_plan(tmp_path: Path) -> None:
    """--territory-data rows are matched to the plan's territories: an unknown id was
    ignored, and a territory without a row was blamed on territories.csv as 'empty'."""
    plan = tmp_path / "run"
    plan.mkdir()
    (plan / "territories.csv").write_text("territory_id,lat,lon,workload\n"
                                          "T1,33.7,-84.4,100\nT2,32.1,-81.1,100\n")
    (tmp_path / "td.csv").write_text("territory_id,spec_load\nT1,10\nT9,5\nT1 ,3\n")
    (tmp_path / "ov.csv").write_text("rep_id,lat,lon,role\nS1,33.7,-84.4,specialist\n")
    res = runner.invoke(app, ["overlay", "--plan", str(plan), "--overlay-reps",
                              str(tmp_path / "ov.csv"), "--measure", "spec_load",
                              "--territory-data", str(tmp_path / "td.csv"), "--out",
                              str(tmp_path / "o")])
    said = " ".join(res.output.split())
    assert res.exit_code == 2, said
    assert "td.csv row 2, column territory_id: not a territory of the plan (got 'T9')" in said
    assert "td.csv column territory_id: no row for 1 of the plan's territories: T2" in said
    assert "td.csv row 3, column territory_id: duplicate territory_id 'T1' (first on row 1)" \
        in said  # 'T1 ' is T1: it would have doubled the territory in the merge
    assert "territories.csv" not in said
