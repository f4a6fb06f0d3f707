"""The hiring-plan MILP: optimum checked by enumeration, ratios, and unreachable goals."""

from __future__ import annotations

import itertools
import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimizer.errors import InfeasibleScenarioError
from optimizer.hiring import (
    HiringPlanInput,
    RoleRatio,
    RoleSpec,
    evaluate,
    roster_from_reps,
    solve,
    write_hiring_plan_png,
)

RAMP = [0.25, 0.5]
KEEP = 0.9  # 10% monthly attrition


def one_role(**update: object) -> HiringPlanInput:
    """6 months, one AE role, at most one hire a month, no lead time, one ramped rep."""
    body: dict[str, object] = {
        "months": 6,
        "roles": [RoleSpec(name="ae", cost_per_month=10.0, productivity=100.0, ramp=RAMP,
                           attrition=0.1, max_hires_per_month=1, hire_cost=5.0,
                           initial=[12])],
        "goal": [300.0, 600.0],
    }
    body.update(update)
    return HiringPlanInput.model_validate(body)


def brute_force(h: tuple[int, ...]) -> tuple[float, np.ndarray]:
    """Cost and monthly revenue of start vector h, written independently of the model:
    a cohort starting in s is KEEP^(t-s) strong in month t, productive RAMP[t-s] (then 1)."""
    cost = 0.0
    revenue = np.zeros(6)
    for t in range(6):
        heads = KEEP ** t
        fte = KEEP ** t  # the starting rep is fully ramped
        for s in range(t + 1):
            if h[s]:
                ramp = RAMP[t - s] if t - s < len(RAMP) else 1.0
                heads += KEEP ** (t - s)
                fte += KEEP ** (t - s) * ramp
        cost += 10.0 * heads
        revenue[t] = 100.0 * fte
    return cost + 5.0 * sum(h), revenue


def test_min_cost_matches_enumeration_of_all_64_plans() -> None:
    inp = one_role()
    best: tuple[float, tuple[int, ...]] | None = None
    for h in itertools.product((0, 1), repeat=6):
        cost, rev = brute_force(h)
        if rev[:3].sum() >= 300 - 1e-9 and rev[3:].sum() >= 600 - 1e-9 and \
                (best is None or cost < best[0] - 1e-9):
            best = (cost, h)
    assert best is not None
    result = solve(inp)
    assert result.status == "optimal"
    assert math.isclose(result.objective or 0.0, best[0], rel_tol=1e-9)
    assert math.isclose(result.total_cost, best[0], rel_tol=1e-9)
    assert tuple(int(v) for v in result.hires["ae"]) == best[1]
    assert (result.periods["shortfall"] <= 1e-6).all()


def test_max_revenue_within_budget_matches_enumeration() -> None:
    inp = one_role(objective="max_revenue", budget=250.0, goal=[])
    best = max((brute_force(h)[1].sum(), h) for h in itertools.product((0, 1), repeat=6)
               if brute_force(h)[0] <= 250.0 + 1e-9)
    result = solve(inp)
    assert math.isclose(result.objective or 0.0, best[0], rel_tol=1e-9)
    assert tuple(int(v) for v in result.hires["ae"]) == best[1]
    assert result.total_cost <= 250.0 + 1e-6


def test_evaluate_by_hand() -> None:
    # One hire starting in month 2 (index 1), no starting roster, 10% attrition:
    # month 1: 0 heads; month 2: 1 head at 25%; month 3: 0.9 heads at 50% = 0.45 FTE;
    # month 4: 0.81 heads fully ramped = 0.81 FTE.
    inp = one_role(roles=[RoleSpec(name="ae", cost_per_month=10.0, productivity=100.0,
                                   ramp=RAMP, attrition=0.1)])
    table, months, periods = evaluate(inp, np.array([[0, 1, 0, 0, 0, 0]]))
    assert np.allclose(table["headcount"][:4], [0, 1, 0.9, 0.81])
    assert np.allclose(table["ramped_fte"][:4], [0, 0.25, 0.45, 0.81])
    assert np.allclose(months["revenue"][:4], [0, 25, 45, 81])
    assert math.isclose(periods["revenue"][0], 70.0)
    assert math.isclose(periods["shortfall"][0], 230.0)


def test_lead_time_shifts_decisions_before_starts() -> None:
    roles = [RoleSpec(name="ae", cost_per_month=10.0, productivity=100.0, ramp=RAMP,
                      attrition=0.1, max_hires_per_month=1, lead_time=2, initial=[12])]
    result = solve(one_role(roles=roles, goal=[200.0, 450.0]))
    hires = result.hires["ae"]
    assert hires[:2].sum() == 0  # nothing can start before the lead time
    ae = result.table[result.table["role"] == "ae"]
    assert np.allclose(ae["decisions"].to_numpy()[:4], hires[2:])


def test_ratio_one_manager_per_two_aes_every_month() -> None:
    inp = HiringPlanInput(
        months=6,
        roles=[RoleSpec(name="ae", cost_per_month=10.0, productivity=100.0, initial=[12] * 2),
               RoleSpec(name="manager", cost_per_month=20.0, initial=[12])],
        ratios=[RoleRatio(role="manager", per="ae", count=2)],
        goal=[900.0, 1200.0])
    result = solve(inp)
    wide = result.table.pivot(index="month", columns="role", values="headcount")
    assert (wide["manager"] >= wide["ae"] / 2 - 1e-9).all()
    # No ramp, no attrition. Q1 needs 900 = 600 from the two AEs + 300 more AE-months × 100:
    # one AE from month 2 (200) and one from month 3 (100) is the cheapest way (9 AE-months;
    # two from month 2 would cost 10). Q2 then has 4 AEs × 3 months × 100 = 1,200 exactly.
    # From month 2 there are 3 AEs, needing 1.5 managers: a second manager starts in month 2.
    assert list(result.hires["ae"]) == [0, 1, 1, 0, 0, 0]
    assert list(result.hires["manager"]) == [0, 1, 0, 0, 0, 0]


def test_unreachable_goal_names_the_binding_throughput() -> None:
    # With one hire a month, Q2 peaks at 1,059.5 (every month hires); 1,100 needs more.
    with pytest.raises(InfeasibleScenarioError) as err:
        solve(one_role(goal=[300.0, 1100.0]))
    (reason,) = err.value.reasons
    assert reason.startswith("Q2 revenue can reach at most 1,060 against a goal of 1,100 "
                             "(40, 4% short)")
    assert "recruiting throughput (max 1 ae hires/month) binds, with unlimited hiring the goal " \
           "is reachable" in reason


def test_unreachable_goal_shortfall_is_the_best_plan() -> None:
    # The best Q2 is all six hires: revenue computed independently.
    _, rev = brute_force((1, 1, 1, 1, 1, 1))
    with pytest.raises(InfeasibleScenarioError) as err:
        solve(one_role(goal=[300.0, 1100.0]))
    best = rev[3:].sum()
    assert f"at most {best:,.0f} against" in err.value.reasons[0]


def test_lead_time_binds() -> None:
    # A 2-month lead time and a first month at 0%: nobody new sells in Q1, which stays at
    # the starting rep's 3 × 100 however many are hired; without the lead time a hire in
    # month 1 sells at 50% in month 2 and 100% in month 3.
    roles = [RoleSpec(name="ae", cost_per_month=10.0, productivity=100.0, ramp=[0.0, 0.5],
                      lead_time=2, initial=[12])]
    with pytest.raises(InfeasibleScenarioError, match=r"Q1 revenue can reach at most 300 against "
                       r"a goal of 1,000 \(700, 70% short\): the hiring lead time \(2 months "
                       r"for ae\) binds, with no lead time the goal is reachable"):
        solve(one_role(roles=roles, goal=[1000.0, 0.0]))


def test_goal_out_of_reach_of_any_hiring_is_said_so() -> None:
    # Three months at 0% productivity: Q1 is the starting rep's 300 whatever the plan.
    roles = [RoleSpec(name="ae", cost_per_month=10.0, productivity=100.0, ramp=[0.0] * 3,
                      max_hires_per_month=1, initial=[12])]
    with pytest.raises(InfeasibleScenarioError, match=r"Q1 revenue can reach at most 300 against "
                       r"a goal of 1,000 .*: even with unlimited hiring"):
        solve(one_role(roles=roles, goal=[1000.0, 0.0]))


def test_budget_binds_jointly() -> None:
    with pytest.raises(InfeasibleScenarioError) as err:
        solve(one_role(budget=60.0))
    assert "the budget (60) binds" in " ".join(err.value.reasons)


def test_roster_over_budget_is_explained_before_solving() -> None:
    inp = one_role(objective="max_revenue", budget=10.0, goal=[])
    with pytest.raises(InfeasibleScenarioError, match="starting roster alone costs 47 over 6 "
                                                     "months against a budget of 10"):
        solve(inp)


def test_ratio_before_lead_time_is_explained() -> None:
    inp = HiringPlanInput(
        months=6,
        roles=[RoleSpec(name="ae", cost_per_month=10.0, productivity=100.0, initial=[12] * 9),
               RoleSpec(name="manager", cost_per_month=20.0, lead_time=2, initial=[12])],
        ratios=[RoleRatio(role="manager", per="ae", count=8)],
        goal=[0.0, 0.0])
    with pytest.raises(InfeasibleScenarioError, match=r"in month 1 the roster has 9 ae needing "
                                                     r"1\.12 manager"):
        solve(inp)


def test_roster_from_reps_and_png(tmp_path: Path) -> None:
    reps = pd.DataFrame({"rep_id": ["R1", "R2", "R3"], "role": ["ae", "ae", "manager"],
                         "start_date": ["2024-03-15", "2025-02-01", None]})
    roster = roster_from_reps(reps, date(2025, 1, 1))
    assert roster == {"ae": [10, -1], "manager": [10_000]}
    png = write_hiring_plan_png(tmp_path / "hiring_plan.png", solve(one_role()))
    assert png.stat().st_size > 10_000


def test_signed_rep_joins_in_its_start_month() -> None:
    roles = [RoleSpec(name="ae", cost_per_month=10.0, productivity=100.0, ramp=RAMP,
                      initial=[-2])]
    table, _, _ = evaluate(one_role(roles=roles), np.zeros((1, 6)))
    assert np.allclose(table["headcount"], [0, 0, 1, 1, 1, 1])
    assert np.allclose(table["ramped_fte"], [0, 0, 0.25, 0.5, 1, 1])


def test_input_checks() -> None:
    with pytest.raises(ValueError, match="goal needs 2 amounts"):
        one_role(goal=[1.0])
    with pytest.raises(ValueError, match="unknown role"):
        one_role(ratios=[RoleRatio(role="manager", per="ae", count=8)])
