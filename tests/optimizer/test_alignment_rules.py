"""Every rule holds on the outputs of a regional realignment that uses all of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optimizer import datasets
from optimizer.alignment import solve
from optimizer.domain import Scenario
from optimizer.io import read_alignment
from tests.optimizer.plan_checks import assert_plan_valid


@pytest.fixture(scope="module")
def regional(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The bundled Georgia data with locks, hierarchies and account limits added."""
    d = datasets.get_dataset_or_raise("us-regional")
    acc = pd.read_csv(d.file("accounts.csv"), dtype=str)
    reps = pd.read_csv(d.file("reps.csv"), dtype=str)
    acc["locked_rep"] = None
    acc["parent_id"] = None
    acc.loc[0:4, "locked_rep"] = "R002"
    for child in range(10, 40, 3):  # small hierarchies: 3 accounts each
        acc.loc[child + 1, "parent_id"] = acc.loc[child, "account_id"]
        acc.loc[child + 2, "parent_id"] = acc.loc[child, "account_id"]
    reps["max_accounts"] = ["90", "", "", "", "", ""]
    folder = tmp_path_factory.mktemp("regional")
    acc.to_csv(folder / "accounts.csv", index=False)
    reps.to_csv(folder / "reps.csv", index=False)
    return folder / "accounts.csv", folder / "reps.csv"


SCENARIOS = {
    "travel with hard bands": {"balance": {"workload": {"tolerance": 0.08},
                                           "accounts": {"tolerance": 0.5}}},
    "soft potential, disruption budget": {
        "objective": {"travel": 1.0, "balance": 1.0},
        "balance": {"workload": {"tolerance": 0.1}, "potential": {"tolerance": 0.1, "hard": False}},
        "disruption": {"measure": "accounts", "max_share": 0.25}},
    "eligibility and disruption penalty": {
        "objective": {"travel": 1.0, "disruption": 2.0},
        "eligibility": {"C": ["commercial"]},
        "balance": {"workload": {"tolerance": 0.15}}},
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_rules_hold(regional: tuple, name: str) -> None:
    sc = Scenario.model_validate({**SCENARIOS[name], "solver": {"time_limit": 60}})
    data = read_alignment(*regional, sc)
    result = solve(data, sc)
    assert result.report.status.value == "optimal"
    assert result.report.gap <= sc.solver.mip_gap + 1e-12
    assert_plan_valid(data, sc, result)


def test_disruption_budget_binds_and_trades_travel(regional: tuple) -> None:
    """A tighter disruption limit moves fewer accounts and costs travel: the frontier slopes."""
    base = {"balance": {"workload": {"tolerance": 0.1}}, "solver": {"mip_gap": 0.001}}
    free = Scenario.model_validate(base)
    data = read_alignment(*regional, free)
    unlimited = solve(data, free)
    share = unlimited.kpis["after"]["disruption"]["accounts_moved_share"]
    tight = Scenario.model_validate({**base, "disruption": {"max_share": share * 0.75}})
    limited = solve(data, tight)
    assert limited.kpis["after"]["disruption"]["accounts_moved_share"] <= share * 0.75 + 1e-9
    assert limited.terms["travel"] > unlimited.terms["travel"]
    assert_plan_valid(data, tight, limited)


def test_reduced_costs_match_highs(regional: tuple) -> None:
    """The pricing formula reproduces HiGHS' own reduced costs for the pairs in the LP, so
    the pairs it prices out are priced right too."""
    from optimizer.alignment import Pairs, Scaled, _duals_of, build, reduced_costs
    from optimizer.problem import prepare
    from optimizer.solve import HighsOptions, run_highs

    sc = Scenario.model_validate({
        "objective": {"travel": 1.0, "balance": 1.0, "disruption": 0.5},
        "balance": {"workload": {"tolerance": 0.1}, "potential": {"tolerance": 0.2, "hard": False}},
        "disruption": {"max_share": 0.3}})
    p = prepare(read_alignment(*regional, sc), sc)
    s = Scaled.of(p)
    rng = np.random.default_rng(0)
    mask = p.allowed & (rng.random(p.allowed.shape) < 0.6)
    mask[np.arange(p.n_units), np.argmax(p.allowed, axis=1)] = True
    pairs = Pairs.from_mask(mask)
    model = build(s, pairs, relaxed=True, elastic=1e4 * s.obj_scale)
    sol = run_highs(model, HighsOptions(), duals=True)
    d = reduced_costs(s, _duals_of(s, sol.duals, model))
    assert np.allclose(d[pairs.unit, pairs.rep], sol.duals["rc:x"], atol=1e-6)


def test_lp_bound_with_pricing_equals_full_lp(regional: tuple) -> None:
    """Column generation ends at the LP optimum over *all* pairs."""
    from optimizer.alignment import (
        Pairs,
        Scaled,
        _Clock,
        _solve_lp,
        build,
        elastic_price,
    )
    from optimizer.problem import prepare
    from optimizer.solve import HighsOptions, run_highs

    sc = Scenario.model_validate({"balance": {"workload": {"tolerance": 0.05}}})
    p = prepare(read_alignment(*regional, sc), sc)
    s = Scaled.of(p)
    start = np.zeros_like(p.allowed)
    start[np.arange(p.n_units), np.argmin(np.where(p.allowed, s.cost, np.inf), axis=1)] = True
    z, _red, _lp, mask, rounds = _solve_lp(p, s, start, _Clock(60, None), None, None,
                                           elastic_price(p))
    full = run_highs(build(s, Pairs.from_mask(p.allowed), relaxed=True), HighsOptions())
    assert rounds > 1 and mask.sum() < p.allowed.sum()
    assert np.isclose(z, full.objective, rtol=1e-7)


@pytest.mark.parametrize("scale", [3e4, 1e6, 1e-3])
def test_only_the_ratio_of_the_weights_matters(scale: float) -> None:
    """Scaling every weight scales the objective and changes nothing else. A travel weight
    of 30,000 made this feasible scenario 'infeasible': the band violations' elastic price
    did not grow with the weights."""
    from tests.conftest import make_instance

    inst = make_instance(40, 4, 21)
    base = {"balance": {"workload": {"tolerance": 0.15}}, "solver": {"mip_gap": 0.0}}
    plain = Scenario.model_validate(base)
    scaled = Scenario.model_validate({**base, "objective": {"travel": scale}})
    a, b = solve(inst.data(plain), plain), solve(inst.data(scaled), scaled)
    assert a.report.status.value == b.report.status.value == "optimal"
    assert b.report.objective == pytest.approx(scale * a.report.objective, rel=1e-6)
    assert a.assignments["rep_id"].tolist() == b.assignments["rep_id"].tolist()


def test_a_weight_beyond_the_cap_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="less than or equal to 1000000"):
        Scenario.model_validate({"objective": {"travel": 1e7}})
