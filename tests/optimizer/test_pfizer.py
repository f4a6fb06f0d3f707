"""The published Pfizer Turkey optima (proven with zero gap) reached through the public paths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optimizer.alignment import solve
from optimizer.cli import app
from optimizer.domain import Scenario
from optimizer.validate import validate_alignment
from tests.optimizer.pfizer import frames, references

CASES = [(name, ref) for name in ("pfizer22", "pfizer100") for ref in references(name)]


def scenario_for(ref: dict, metric: str) -> Scenario:
    low, high = ref["workload_bounds"]
    body: dict = {"metric": metric, "solver": {"mip_gap": 0.0},
                  "balance": {"workload": {"min": low, "max": high}}}
    if ref["kind"] == "disruption":
        body["objective"] = {"travel": 0.0, "disruption": 1.0}
        body["disruption"] = {"measure": "workload"}
    return Scenario.model_validate(body)


@pytest.mark.parametrize(("name", "ref"), CASES,
                         ids=[f"{n}-{r['kind']}-{r['workload_bounds']}" for n, r in CASES])
def test_reaches_published_optimum(name: str, ref: dict) -> None:
    accounts, reps, distances = frames(name)
    # pfizer22 comes as a distance matrix; pfizer100 as coordinates (Euclidean).
    metric = "matrix" if name == "pfizer22" else "euclidean"
    sc = scenario_for(ref, metric)
    data = validate_alignment(accounts, reps, distances if metric == "matrix" else None,
                              sc.metric)
    result = solve(data, sc)
    assert result.report.status.value == "optimal"
    after = result.kpis["after"]
    if ref["kind"] == "distance":
        assert math.isclose(result.terms["travel"], ref["total_distance"], rel_tol=1e-6)
    else:
        assert math.isclose(after["disruption"]["workload_moved"],
                            ref["disruption_index_moved"], rel_tol=1e-6)
    workload = result.territories["workload"]
    low, high = ref["workload_bounds"]
    assert (workload >= low - 1e-9).all() and (workload <= high + 1e-9).all()


def test_cli_with_distances_file(tmp_path: Path) -> None:
    """The same optimum through `territory align` with a distances.csv and a scenario file."""
    accounts, reps, distances = frames("pfizer22")
    accounts.to_csv(tmp_path / "accounts.csv", index=False)
    reps.to_csv(tmp_path / "reps.csv", index=False)
    distances.to_csv(tmp_path / "distances.csv", index=False)
    (tmp_path / "scenario.yaml").write_text(
        "metric: matrix\nbalance:\n  workload: {tolerance: 0.15}\nsolver: {mip_gap: 0}\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [
        "align", "--accounts", str(tmp_path / "accounts.csv"), "--reps",
        str(tmp_path / "reps.csv"), "--distances", str(tmp_path / "distances.csv"),
        "--scenario", str(tmp_path / "scenario.yaml"), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "optimal"
    assert math.isclose(summary["objective_terms"]["travel"], 160.32, rel_tol=1e-6)
