"""Greenfield design: brute-force optima on tiny instances and the OR-Library CPMP optima
through the public CLI."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from optimizer.cli import app
from optimizer.design import solve
from optimizer.domain import DesignData, Scenario
from optimizer.errors import InfeasibleScenarioError
from optimizer.validate import validate_accounts
from tests.optimizer.orlib import load, write


def brute_force(x: np.ndarray, y: np.ndarray, w: np.ndarray, p: int, lo: float,
                hi: float) -> float | None:
    """Least total distance over every choice of p centres and every assignment."""
    n = len(x)
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    best = None
    for centres in itertools.combinations(range(n), p):
        for combo in itertools.product(range(p), repeat=n):
            a = np.array(combo)
            if len(set(combo)) < p:
                continue  # every chosen centre is a territory
            loads = np.bincount(a, weights=w, minlength=p)
            if (loads < lo - 1e-9).any() or (loads > hi + 1e-9).any():
                continue
            cost = d[np.arange(n), np.array(centres)[a]].sum()
            if best is None or cost < best - 1e-12:
                best = cost
    return best


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, p = 7, 2
    x, y = rng.uniform(0, 100, n), rng.uniform(0, 100, n)
    w = rng.integers(5, 30, n).astype(float)
    tol = 0.15
    mean = w.sum() / p
    expected = brute_force(x, y, w, p, mean * (1 - tol), mean * (1 + tol))
    acc = pd.DataFrame({"account_id": [f"A{i}" for i in range(n)], "x": x, "y": y,
                        "workload": w})
    sc = Scenario.model_validate({"mode": "design", "metric": "euclidean", "territories": p,
                                  "balance": {"workload": {"tolerance": tol}},
                                  "solver": {"mip_gap": 0}})
    data = DesignData(validate_accounts(acc, sc.metric)[0])
    if expected is None:
        with pytest.raises(InfeasibleScenarioError):
            solve(data, sc)
        return
    result = solve(data, sc)
    assert result.report.status.value == "optimal"
    assert math.isclose(result.report.objective, expected, rel_tol=1e-7)
    assert math.isclose(result.terms["travel"], expected, rel_tol=1e-7)
    loads = result.territories["workload"]
    assert (loads >= mean * (1 - tol) - 1e-9).all() and (loads <= mean * (1 + tol) + 1e-9).all()
    # Each territory's centre is one of the accounts and belongs to it.
    plan = result.assignments.set_index("account_id")["territory_id"]
    for _, t in result.territories.iterrows():
        assert plan[t["centre"]] == t["territory_id"]


def test_too_few_centres_or_too_narrow_bands_explained() -> None:
    acc = pd.DataFrame({"account_id": ["A", "B", "C"], "x": [0, 1, 2], "y": [0, 0, 0],
                        "workload": [10, 10, 100]})
    sc = Scenario.model_validate({"mode": "design", "metric": "euclidean", "territories": 2,
                                  "balance": {"workload": {"max": 50}}})
    with pytest.raises(InfeasibleScenarioError) as err:
        solve(DesignData(validate_accounts(acc, sc.metric)[0]), sc)
    assert any("account C alone has 100 h of workload, more than a territory may hold (50 h)"
               in r for r in err.value.reasons)
    assert any("2 territories of at most 50 h of workload hold 100 h, but the accounts have "
               "120 h" in r for r in err.value.reasons)


def run_orlib(number: int, tmp_path: Path) -> dict:
    inst = load(number)
    files = write(inst, tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [
        "design", "--accounts", str(files["accounts"]), "--distances",
        str(files["distances"]), "--scenario", str(files["scenario"]), "--out", str(out),
        "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    terr = pd.read_csv(out / "territories.csv")
    assert len(terr) == inst.p and (terr["workload"] <= inst.capacity).all()
    assert summary["status"] == "optimal"
    assert math.isclose(summary["objective"], inst.optimum, abs_tol=1e-6)
    assert math.isclose(summary["bound"], inst.optimum, abs_tol=1e-6)
    return summary


@pytest.mark.parametrize("number", range(1, 11))
def test_orlib_50_points(number: int, tmp_path: Path) -> None:
    run_orlib(number, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("number", range(11, 20))
def test_orlib_100_points(number: int, tmp_path: Path) -> None:
    run_orlib(number, tmp_path)
