"""The realignment optimum equals brute-force enumeration on instances small enough to list."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from optimizer.alignment import solve
from optimizer.distance import haversine_km
from optimizer.domain import AlignmentData, Scenario
from optimizer.errors import InfeasibleScenarioError
from tests.conftest import Instance, brute_force, make_instance

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


def _lp_to_round(data: AlignmentData, sc: Scenario) -> tuple[Any, Any, np.ndarray, float, dict]:
    """The problem, its scaled form, the LP's pairs, value and solution as `solve` has
    them when it rounds the LP."""
    from optimizer import alignment
    from optimizer.problem import prepare

    p = prepare(data, sc)
    s = alignment.Scaled.of(p)
    duals, _ = alignment.lagrangian_warm_start(s)
    mask = alignment._initial_pairs(p, s, duals)
    z_lp, _red, lp, mask, _rounds = alignment._solve_lp(
        p, s, mask, alignment._Clock(60, None), None, None,
        alignment.elastic_price(p))
    return p, s, mask, z_lp, lp


def _assert_rounded_plan(p: Any, rounded: tuple[float, np.ndarray] | None, z_lp: float) -> None:
    """Every unit on an allowed pair, every band held, no cheaper than the LP."""
    assert rounded is not None
    cost, plan = rounded
    assert (plan >= 0).all() and p.allowed[np.arange(p.n_units), plan].all()
    loads = np.stack([np.bincount(plan, weights=p.amount[:, k], minlength=p.n_reps)
                      for k in range(3)], axis=1)
    assert (loads >= p.lo - 1e-6).all() and (loads <= p.hi + 1e-6).all()
    assert cost >= z_lp - 1e-9


def test_first_plan_is_the_rounded_lp() -> None:
    """With tight two-sided bands and many small accounts per rep the first plan comes from
    the LP at once (solved again with narrowed bands; its whole assignments kept, a small
    MIP for the accounts it splits): every unit placed on an allowed pair, every band held,
    costing no less than the LP bound; the solve reports it before any other plan and still
    proves its gap."""
    from optimizer import alignment

    inst = make_instance(800, 8, 5)
    inst.reps["capacity"] = 1e6  # only the ±4 % workload band binds
    sc = scenario(balance={"workload": {"tolerance": 0.04}},
                  solver={"mip_gap": 0.005, "time_limit": 60})
    data = inst.data(sc)
    p, s, mask, z_lp, lp = _lp_to_round(data, sc)
    split = int(((lp["x"] > 1e-6) & (lp["x"] < 1 - 1e-6)).sum())
    assert split > 0  # the LP alone is not a plan
    clock = alignment._Clock(60, None)
    _assert_rounded_plan(p, alignment._round_lp(p, s, mask, lp["x"], clock, None, None,
                                                large_whole=False), z_lp)

    messages: list[str] = []
    result = solve(data, sc, on_progress=lambda pr: messages.append(pr.message))
    firsts = [m for m in messages if m.startswith("first plan")]
    assert firsts == ["first plan: the LP rounded"]
    assert result.report.status.value == "optimal" and result.report.gap <= 0.005


def _big_accounts_instance(seed: int) -> Instance:
    """1,200 accounts of 3 h and 14 big ones around three cities, each 29 % of a rep's fair
    share, for 12 reps with a ±10 % band: the national shape with generated reps (356
    accounts of 29 % among 16,943)."""
    rng = np.random.default_rng(seed)
    n, r, big = 1200, 12, 14
    lat, lon = rng.uniform(33.0, 35.0, n), rng.uniform(-85.0, -83.0, n)
    cities = rng.uniform([33.2, -84.8], [34.8, -83.2], (3, 2))
    idx = rng.choice(n, big, replace=False)
    at = cities[rng.integers(0, 3, big)]
    lat[idx] = at[:, 0] + rng.normal(0, 0.05, big)
    lon[idx] = at[:, 1] + rng.normal(0, 0.05, big)
    workload = np.full(n, 3.0)
    workload[idx] = round(0.29 * 3.0 * (n - big) / (r - 0.29 * big), 1)
    accounts = pd.DataFrame({"account_id": [f"A{i}" for i in range(n)], "lat": lat.round(4),
                             "lon": lon.round(4), "workload": workload, "visits": 1.0})
    reps = pd.DataFrame({"rep_id": [f"R{j}" for j in range(r)],
                         "lat": rng.uniform(33.0, 35.0, r).round(4),
                         "lon": rng.uniform(-85.0, -83.0, r).round(4), "capacity": 1e6})
    return Instance(accounts, reps)


@pytest.mark.parametrize("seed", [2, 4, 6])
def test_rounding_keeps_big_accounts_whole(seed: int) -> None:
    """A few accounts large against the band (29 % of a fair share, ±10 %) among many
    small ones: no narrowing of the bands leaves room for rounding them, so the rounding's
    `large_whole` attempt keeps their pairs whole (a MIP in those alone) and narrows by the
    small accounts. Without that attempt these instances get no rounded plan; with it the
    plan holds every band. (The solve tries the local search before it, next test.)"""
    from optimizer import alignment

    inst = _big_accounts_instance(seed)
    sc = scenario(balance={"workload": {"tolerance": 0.10}},
                  solver={"mip_gap": 0.005, "time_limit": 60})
    data = inst.data(sc)
    p, s, mask, z_lp, lp = _lp_to_round(data, sc)
    assert alignment._round_lp(p, s, mask, lp["x"], alignment._Clock(60, None), None, None,
                               large_whole=False) is None
    rounded = alignment._round_lp(p, s, mask, lp["x"], alignment._Clock(60, None), None, None,
                                  large_whole=True)
    _assert_rounded_plan(p, rounded, z_lp)


@pytest.mark.parametrize("seed", [2, 4, 6])
def test_local_search_gives_the_first_plan_when_narrowing_fails(seed: int) -> None:
    """Where no narrowed LP rounds (the big accounts above), the first plan comes from the
    local search (optimizer.repair) from the LP's largest shares: it holds every band on
    allowed pairs, its objective is the model's, and the solve starts from it and proves
    its gap. (At 16,943 accounts × 300 generated reps this is what gives a plan at all.)"""
    from optimizer import alignment

    inst = _big_accounts_instance(seed)
    sc = scenario(balance={"workload": {"tolerance": 0.10}},
                  solver={"mip_gap": 0.005, "time_limit": 60})
    data = inst.data(sc)
    p, s, mask, z_lp, lp = _lp_to_round(data, sc)
    searched = alignment._searched_plan(p, s, mask, lp["x"], 10.0)
    _assert_rounded_plan(p, searched, z_lp)
    assert searched is not None
    cost, plan = searched
    assert cost == pytest.approx(float(s.cost[np.arange(p.n_units), plan].sum()))

    messages: list[str] = []
    result = solve(data, sc, on_progress=lambda pr: messages.append(pr.message))
    assert [m for m in messages if m.startswith("first plan")] == [
        "first plan: local search from the LP"]
    assert result.report.status.value == "optimal" and result.report.gap <= 0.005


def test_no_plan_message_names_the_accounts_too_large_for_the_band() -> None:
    """When the time runs out before any plan, the error says the scenario is not shown
    infeasible and names what makes whole plans hard: the accounts that take most of the
    band of every rep they may go to (here the 14 big ones, 29 % of a fair share against
    ±10 %), the largest with its amount and a rep's band. Without such accounts the message
    does not invent them."""
    from optimizer import alignment
    from optimizer.problem import prepare

    inst = _big_accounts_instance(2)
    sc = scenario(balance={"workload": {"tolerance": 0.10}})
    p = prepare(inst.data(sc), sc)
    message = alignment._no_plan_message(p, alignment.Scaled.of(p), 120)
    big = inst.accounts[inst.accounts["workload"] > 3.0]
    assert message.startswith("no plan found within the time limit (120 s). ")
    assert "not shown to be infeasible" in message
    assert "14 accounts each take more than 45% of the width of the workload band" in message
    named = message.split("the largest against it, ")[1].split(",")[0]
    assert named in set(big["account_id"])
    fair = inst.accounts["workload"].sum() / len(inst.reps)
    assert f"{big['workload'].iloc[0]:,.0f} h" in message
    band = re.search(r"band is ([\d,.]+) h–([\d,.]+) h", message)
    assert band is not None, message
    shown = [float(v.replace(",", "")) for v in band.groups()]  # to a tenth of an hour
    assert shown == pytest.approx([0.9 * fair, 1.1 * fair], abs=0.051)

    small = make_instance(800, 8, 5)
    small.reps["capacity"] = 1e6
    sc = scenario(balance={"workload": {"tolerance": 0.04}})
    p = prepare(small.data(sc), sc)
    message = alignment._no_plan_message(p, alignment.Scaled.of(p), 60)
    assert "accounts each take" not in message and message.endswith("more room.")


def _neighbourhood_search(p: Any, s: Any, mask: np.ndarray, lp: dict, start: np.ndarray
                          ) -> tuple[float, np.ndarray]:
    from optimizer import alignment

    z, plan, cancelled = alignment._improve_by_neighbourhoods(
        p, s, mask, lp["x"], start, alignment._Clock(60, None), None, None,
        good_enough=-math.inf, on_better=lambda _z, _m: None)
    assert not cancelled
    return z, plan


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_neighbourhood_search_over_every_rep_is_exact(case: str, seed: int) -> None:
    """With no more reps than one neighbourhood holds, the neighbourhood search's one MIP
    is the whole problem: from the local search's plan it reaches the enumerated optimum
    (so the sub-problem's costs, bands, soft bands and budget are the problem's)."""
    from optimizer import alignment

    inst = make_instance(8, 3, seed)
    sc = scenario(**CASES[case])
    expected = brute_force(inst, sc)
    if expected is None:
        return  # infeasible: covered by test_matches_brute_force
    p, s, mask, _z_lp, lp = _lp_to_round(inst.data(sc), sc)
    assert p.n_reps <= alignment.NEIGHBOURHOOD_REPS
    searched = alignment._searched_plan(p, s, mask, lp["x"], 10.0)
    assert searched is not None
    z, plan = _neighbourhood_search(p, s, mask, lp, searched[1])
    assert z <= searched[0] + 1e-9
    assert math.isclose(z / s.obj_scale, expected[0], rel_tol=1e-6, abs_tol=1e-9)
    assert math.isclose(z, s.plan_cost(plan), rel_tol=1e-12)


@pytest.mark.parametrize("seed", [4, 5])
def test_neighbourhood_search_keeps_every_rule(seed: int) -> None:
    """60 accounts, 8 reps, a ±20 % band and at most 30 % of accounts moved: each MIP
    reassigns the accounts of 4 reps, so the disruption budget left to them depends on the
    rest of the plan. From a costly start (the local search run to raise the cost), the
    plan it ends with holds every band and the budget (counted from the output, not the
    model), costs less than its start and no less than the optimum's proven bound."""
    from optimizer import repair

    inst = make_instance(60, 8, seed)
    inst.reps["capacity"] = 1e6
    sc = scenario(balance={"workload": {"tolerance": 0.2}},
                  disruption={"measure": "accounts", "max_share": 0.3})
    data = inst.data(sc)
    p, s, mask, z_lp, lp = _lp_to_round(data, sc)
    current = inst.accounts["current_rep"].map(
        {rid: j for j, rid in enumerate(inst.reps["rep_id"])}).to_numpy()
    unit, rep = np.nonzero(p.allowed)
    costly = repair.repair(repair.Bands(s.amount, s.lo, s.hi, p.allowed, -s.cost, s.moved,
                                        s.budget), unit, rep, current, 10.0)
    assert costly is not None
    z, plan = _neighbourhood_search(p, s, mask, lp, costly)
    _assert_rounded_plan(p, (z, plan), z_lp)
    assert (plan != current).sum() <= 0.3 * 60
    assert z < s.plan_cost(costly) - 1e-9
    report = solve(data, sc).report
    assert report.status.value == "optimal"
    assert z / s.obj_scale >= report.bound * (1 - 1e-9)
