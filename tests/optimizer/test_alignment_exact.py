"""The realignment optimum equals brute-force enumeration on instances small enough to list."""

from __future__ import annotations

import math

import pytest

from optimizer.alignment import solve
from optimizer.distance import haversine_km
from optimizer.domain import Scenario
from optimizer.errors import InfeasibleScenarioError
from tests.conftest import brute_force, make_instance

EXACT = {"solver": {"mip_gap": 0.0, "time_limit": 60}}


def scenario(**kwargs: object) -> Scenario:
    return Scenario.model_validate({**EXACT, **kwargs})


CASES = {
    "travel, hard workload band": {"balance": {"workload": {"tolerance": 0.25}}},
    "travel, tight band": {"balance": {"workload": {"tolerance": 0.12}}},
    "travel, absolute min and max": {"balance": {"workload": {"min": 120, "max": 200}}},
    "travel + soft potential balance": {
        "objective": {"travel": 1.0, "balance": 2.0},
        "balance": {"workload": {"tolerance": 0.3},
                    "potential": {"tolerance": 0.05, "hard": False}}},
    "travel + disruption penalty": {
        "objective": {"travel": 1.0, "disruption": 0.5},
        "balance": {"workload": {"tolerance": 0.3}}},
    "disruption budget on workload": {
        "balance": {"workload": {"tolerance": 0.3}},
        "disruption": {"measure": "workload", "max_share": 0.3}},
    "account-count band": {"balance": {"workload": {"tolerance": None},
                                        "accounts": {"min": 2, "max": 3}}},
    "eligibility by segment": {"eligibility": {"A": ["enterprise"]},
                                   "balance": {"workload": {"tolerance": None}}},
    "eligibility with a band": {"eligibility": {"B": ["commercial"]},
                                    "balance": {"workload": {"tolerance": 0.4}}},
}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_brute_force(case: str, seed: int) -> None:
    inst = make_instance(8, 3, seed)
    sc = scenario(**CASES[case])
    expected = brute_force(inst, sc)
    if expected is None:
        with pytest.raises(InfeasibleScenarioError):
            solve(inst.data(sc), sc)
        return
    result = solve(inst.data(sc), sc)
    assert result.report.status.value == "optimal"
    assert math.isclose(result.report.objective, expected[0], rel_tol=1e-6, abs_tol=1e-9)
    # The bound is valid and closes the gap.
    assert result.report.bound <= expected[0] + 1e-7
    assert result.report.gap <= 1e-6


def test_locks_and_hierarchies_match_brute_force() -> None:
    inst = make_instance(8, 3, 11)
    inst.accounts.loc[0, "locked_rep"] = "R2"
    inst.accounts.loc[3, "parent_id"] = "A4"
    inst.accounts.loc[5, "parent_id"] = "A4"
    inst.accounts.loc[6, "parent_id"] = "A0"  # joins the locked account's family
    inst.reps["max_accounts"] = [4, 4, 5]
    sc = scenario(balance={"workload": {"tolerance": 0.5}})
    expected = brute_force(inst, sc)
    assert expected is not None
    result = solve(inst.data(sc), sc)
    assert math.isclose(result.report.objective, expected[0], rel_tol=1e-6)
    rep = dict(zip(result.assignments["account_id"], result.assignments["rep_id"], strict=True))
    assert rep["A0"] == "R2" and rep["A6"] == "R2"
    assert rep["A3"] == rep["A4"] == rep["A5"]
    counts = result.assignments["rep_id"].value_counts()
    assert (counts.reindex(["R0", "R1", "R2"]).fillna(0).to_numpy() <= [4, 4, 5]).all()


def test_travel_only_is_min_travel_subject_to_balance() -> None:
    """Travel weight alone with hard bands: the plan's raw travel is the least travel of any
    assignment meeting the bands (enumerated), and the objective is that travel over the
    ideal travel."""
    inst = make_instance(9, 3, 5)
    sc = scenario(balance={"workload": {"tolerance": 0.15}})
    expected = brute_force(inst, sc)
    assert expected is not None
    acc, reps = inst.accounts, inst.reps
    dist = haversine_km(acc["lat"].to_numpy(), acc["lon"].to_numpy(),
                        reps["lat"].to_numpy()[expected[1]], reps["lon"].to_numpy()[expected[1]])
    least_travel = float((acc["visits"].to_numpy() * dist).sum())
    result = solve(inst.data(sc), sc)
    assert math.isclose(result.terms["travel"], least_travel, rel_tol=1e-9)
    assert math.isclose(result.report.objective, result.terms["travel_over_ideal"],
                        rel_tol=1e-9)
