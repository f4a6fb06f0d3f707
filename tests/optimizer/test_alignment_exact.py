"""The realignment optimum equals brute-force enumeration on instances small enough to list."""

from __future__ import annotations

import math

import numpy as np
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


def test_first_plan_is_the_rounded_lp() -> None:
    """With tight two-sided bands and many small accounts per rep the first plan comes from
    the LP at once (solved again with narrowed bands; its whole assignments kept, a small
    MIP for the accounts it splits): every unit placed on an allowed pair, every band held,
    costing no less than the LP bound; the solve reports it before any other plan and still
    proves its gap."""
    from optimizer import alignment
    from optimizer.problem import prepare

    inst = make_instance(800, 8, 5)
    inst.reps["capacity"] = 1e6  # only the ±4 % workload band binds
    sc = scenario(balance={"workload": {"tolerance": 0.04}},
                  solver={"mip_gap": 0.005, "time_limit": 60})
    data = inst.data(sc)
    p = prepare(data, sc)
    s = alignment.Scaled.of(p)
    duals, _ = alignment.lagrangian_warm_start(s)
    clock = alignment._Clock(60, None)
    mask = alignment._initial_pairs(p, s, duals)
    z_lp, _red, lp, mask, _rounds = alignment._solve_lp(p, s, mask, clock, None, None,
                                                        alignment.ELASTIC_PENALTY * s.obj_scale)
    split = int(((lp["x"] > 1e-6) & (lp["x"] < 1 - 1e-6)).sum())
    assert split > 0  # the LP alone is not a plan
    rounded = alignment._round_lp(p, s, mask, lp["x"], clock, None, None)
    assert rounded is not None
    cost, plan = rounded
    assert (plan >= 0).all() and p.allowed[np.arange(p.n_units), plan].all()
    loads = np.stack([np.bincount(plan, weights=p.amount[:, k], minlength=p.n_reps)
                      for k in range(3)], axis=1)
    assert (loads >= p.lo - 1e-6).all() and (loads <= p.hi + 1e-6).all()
    assert cost >= z_lp - 1e-9

    messages: list[str] = []
    result = solve(data, sc, on_progress=lambda pr: messages.append(pr.message))
    firsts = [m for m in messages if m.startswith("first plan")]
    assert firsts == ["first plan: the LP rounded"]
    assert result.report.status.value == "optimal" and result.report.gap <= 0.005
