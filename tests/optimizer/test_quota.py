"""Quota deployment: every method against amounts worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optimizer.errors import InfeasibleScenarioError, InputError
from optimizer.quota import (
    TopDownSettings,
    bottom_up,
    derived_manager,
    fair_quotas,
    overlay,
    ramp_factors,
    round_exact,
    top_down,
)

RAMP = (0.25, 0.5, 0.75)


def territories() -> pd.DataFrame:
    # potential shares 0.5, 0.3, 0.2; history shares 0.4, 0.4, 0.2; C's rep starts in April.
    return pd.DataFrame({"territory_id": ["A", "B", "C"], "rep_id": ["R1", "R2", "R3"],
                         "potential": [500.0, 300.0, 200.0], "history": [400.0, 400.0, 200.0],
                         "start_month": [None, None, 4]})


# --- rounding --------------------------------------------------------------------------------


def test_round_exact_largest_remainder() -> None:
    # floors 1, 1, 1 (sum 3); total 4 → one unit to the largest remainder (1.5).
    assert list(round_exact([1.25, 1.25, 1.5], 1)) == [1, 1, 2]
    # 3 × 333,333.33 = 999,999.99 → 1,000k; floors 333k each, the first gets the extra unit.
    assert list(round_exact([333_333.33] * 3, 1000)) == [334_000, 333_000, 333_000]


def test_round_exact_sum_is_exact_on_awkward_amounts() -> None:
    rng = np.random.default_rng(7)
    amounts = rng.uniform(0, 1e6, 57)
    for unit in (1, 100, 1000, 0.01):
        rounded = round_exact(amounts, unit)
        assert np.allclose(rounded / unit, np.round(rounded / unit))
        assert round(rounded.sum() / unit) == round(amounts.sum() / unit)
        assert np.all(np.abs(rounded - amounts) < unit)


def test_round_exact_ignores_float_noise() -> None:
    # 0.1 + 0.2 is 0.30000000000000004: must stay 3 tenths, not become 4.
    assert np.allclose(round_exact([0.1 + 0.2, 0.7], 0.1), [0.3, 0.7])


# --- top-down --------------------------------------------------------------------------------


def test_ramp_prorating_of_an_april_start() -> None:
    # Months 4..12 in seat = 9 → prorate 9/12 = 0.75; productivity 0.25 + 0.5 + 0.75 + 6 × 1
    # = 7.5 over 9 months → ramp factor 0.8333; together 7.5 / 12 = 0.625.
    prorate, ramp = ramp_factors(4, RAMP)
    assert prorate == pytest.approx(0.75)
    assert ramp == pytest.approx(7.5 / 9)
    assert prorate * ramp == pytest.approx(0.625)
    # A December start sits one month at 25%: 1/12 × 0.25.
    assert ramp_factors(12, RAMP) == pytest.approx((1 / 12, 0.25))
    assert ramp_factors(None, RAMP) == (1.0, 1.0)


def test_top_down_shortfall_absorbed_by_company() -> None:
    # blended = 0.5 × (0.5, 0.3, 0.2) + 0.5 × (0.4, 0.4, 0.2) = (0.45, 0.35, 0.20);
    # target = 1.1 × 1,000 × blended = (495, 385, 220); C carries 0.625 × 220 = 137.5.
    # Raw sum 1,017.5 rounds (halves up) to 1,018: floors 495 + 385 + 137 = 1,017 and the
    # extra unit goes to C's remainder 0.5.
    out = top_down(territories(), 1000, TopDownSettings(potential_weight=0.5,
                                                         over_assignment=1.1, ramp=RAMP))
    assert np.allclose(out["blended_share"], [0.45, 0.35, 0.20])
    assert np.allclose(out["target"], [495, 385, 220])
    assert np.allclose(out["prorate_factor"], [1, 1, 0.75])
    assert np.allclose(out["ramp_factor"], [1, 1, 7.5 / 9])
    assert np.allclose(out["ramped"], [495, 385, 137.5])
    assert np.allclose(out["adjustment"], 0)
    assert list(out["quota"]) == [495, 385, 138]
    assert np.allclose(out["rounding"], [0, 0, 0.5])


def test_top_down_shortfall_spread_over_ramped_reps() -> None:
    # Shortfall 220 - 137.5 = 82.5 over A and B by blended 0.45 : 0.35:
    # A += 82.5 × 0.45/0.8 = 46.40625, B += 82.5 × 0.35/0.8 = 36.09375.
    # Raw (541.40625, 421.09375, 137.5) sums to 1,100; floors 541 + 421 + 137 = 1,099 and
    # the largest remainder (C, 0.5) gets the unit: (541, 421, 138), sum exactly 1,100.
    out = top_down(territories(), 1000, TopDownSettings(
        potential_weight=0.5, over_assignment=1.1, ramp=RAMP, shortfall="spread"))
    assert np.allclose(out["adjustment"], [46.40625, 36.09375, 0])
    assert list(out["quota"]) == [541, 421, 138]
    assert out["quota"].sum() == 1100


def test_top_down_rounding_to_thousands_keeps_the_sum() -> None:
    # Potential only, equal thirds of 1,000,000: 333,333.33 each → 334k, 333k, 333k.
    df = pd.DataFrame({"territory_id": list("XYZ"), "potential": [1.0] * 3,
                       "history": [1.0, 2.0, 3.0]})
    out = top_down(df, 1_000_000, TopDownSettings(potential_weight=1.0, unit=1000))
    assert list(out["quota"]) == [334_000, 333_000, 333_000]
    assert out["quota"].sum() == 1_000_000


def test_top_down_reports_every_bad_row_at_once() -> None:
    df = territories()
    df.loc[0, "potential"] = -1
    df.loc[1, "history"] = None
    with pytest.raises(InputError) as err:
        top_down(df, 1000)
    assert [(i.row, i.field) for i in err.value.issues] == [(1, "potential"), (2, "history")]


def test_spread_without_a_ramped_rep_is_explained() -> None:
    df = territories().assign(start_month=[2, 3, 4])
    with pytest.raises(InfeasibleScenarioError, match="cannot be spread"):
        top_down(df, 1000, TopDownSettings(ramp=RAMP, shortfall="spread"))


# --- bottom-up -------------------------------------------------------------------------------


def submissions() -> pd.DataFrame:
    return pd.DataFrame({"id": ["T1", "T2", "T3", "T4"], "submitted": [100, 200, 300, 400],
                         "manager": ["M1", "M1", "M2", "M2"],
                         "region": ["East", "East", "East", "West"]})


def test_bottom_up_rollup_and_gap() -> None:
    # Σ = 1,000 against 1,200: gap 200; M1 (300) has 30% of it = 60 short, M2 (700) 140.
    out = bottom_up(submissions(), 1200).set_index(["level", "id"])
    assert out.loc[("manager", "M1"), "submitted"] == 300
    assert out.loc[("manager", "M2"), "parent"] == "East"
    assert out.loc[("region", "East"), "submitted"] == 600
    assert out.loc[("region", "West"), "submitted"] == 400
    assert out.loc[("company", "company"), "gap"] == pytest.approx(200)
    assert out.loc[("manager", "M1"), "gap"] == pytest.approx(60)
    assert out.loc[("territory", "T4"), "goal_share"] == pytest.approx(480)
    assert (out["adjustment"] == 0).all()


def test_bottom_up_proportional_close() -> None:
    # × 1.2: 120, 240, 360, 480; sum exactly the goal.
    out = bottom_up(submissions(), 1200, close_gap=True).set_index(["level", "id"])
    assert list(out.loc["territory", "quota"]) == [120, 240, 360, 480]
    assert out.loc[("company", "company"), "quota"] == 1200
    assert out.loc[("manager", "M2"), "adjustment"] == pytest.approx(140)


def test_bottom_up_close_rounds_exactly() -> None:
    # 1,000 × 3 submissions of 1 → 333.33 each → 334, 333, 333.
    df = pd.DataFrame({"id": ["a", "b", "c"], "submitted": [1.0, 1.0, 1.0]})
    out = bottom_up(df, 1000, close_gap=True)
    assert list(out["quota"][:3]) == [334, 333, 333]
    assert out["quota"].iloc[-1] == 1000


# --- derived ---------------------------------------------------------------------------------


def test_derived_manager_quota() -> None:
    # M1 team 100 + 200 = 300 × 0.9 = 270; M2 300 + 400 = 700 × 0.9 = 630.
    q = pd.DataFrame({"manager_id": ["M1", "M1", "M2", "M2"], "quota": [100, 200, 300, 400]})
    out = derived_manager(q, 0.9)
    assert list(out["team_size"]) == [2, 2]
    assert list(out["team_quota"]) == [300, 700]
    assert list(out["quota"]) == [270, 630]


def test_overlay_quota() -> None:
    # S1 covers T1 and half of T2: 100 + 0.5 × 200 = 200; S2 covers T3, T4: 700 × 1.0.
    q = pd.DataFrame({"territory_id": ["T1", "T2", "T3", "T4"], "quota": [100, 200, 300, 400]})
    cov = pd.DataFrame({"overlay_id": ["S1", "S1", "S2", "S2"],
                        "territory_id": ["T1", "T2", "T3", "T4"], "share": [1, 0.5, 1, 1]})
    out = overlay(q, cov)
    assert list(out["covered_quota"]) == [200, 700]
    assert list(out["territories"]) == [2, 2]
    assert list(out["quota"]) == [200, 700]


def test_overlay_unknown_territory() -> None:
    q = pd.DataFrame({"territory_id": ["T1"], "quota": [100]})
    cov = pd.DataFrame({"overlay_id": ["S1"], "territory_id": ["T9"]})
    with pytest.raises(InputError, match="unknown territory 'T9'"):
        overlay(q, cov)


# --- fairness --------------------------------------------------------------------------------


def fair_input() -> pd.DataFrame:
    return pd.DataFrame({"territory_id": ["A", "B", "C"], "potential": [500.0, 300.0, 200.0],
                         "history": [200.0, 400.0, 400.0]})


def test_fair_quotas_keep_ratios_in_band_and_meet_goal() -> None:
    # Company ratio 1,000 / 1,000 = 1; band ±20% → A ∈ [400, 600], B ∈ [240, 360],
    # C ∈ [160, 240]. History quotas (200, 400, 400): A must rise to 400 at least, B and C
    # fall to 360 and 240 at most; 400 + 360 + 240 = 1,000 is the goal, so that is the
    # unique optimum (deviation 200 + 40 + 160).
    out = fair_quotas(fair_input(), 1000, band=(0.8, 1.2))
    assert list(out["quota"]) == [400, 360, 240]
    assert np.allclose(out["history_quota"], [200, 400, 400])
    assert np.allclose(out["quota_to_potential"], [0.8, 1.2, 1.2])
    assert out["quota"].sum() == 1000
    assert (out["relative_ratio"] >= 0.8 - 1e-9).all()
    assert (out["relative_ratio"] <= 1.2 + 1e-9).all()


def test_fair_quotas_leave_history_when_it_is_in_band() -> None:
    # History (500, 300, 200) already has ratio 1 everywhere: nothing moves.
    df = fair_input().assign(history=[500.0, 300.0, 200.0])
    out = fair_quotas(df, 2000, band=(0.9, 1.1))
    assert list(out["quota"]) == [1000, 600, 400]
    assert np.allclose(out["adjustment"], 0)


def test_fair_band_too_low_for_the_goal_is_explained() -> None:
    # Ratios of at most 0.3 of 1,000 potential carry 300 against 400.
    with pytest.raises(InfeasibleScenarioError) as err:
        fair_quotas(fair_input(), 400, band=(0.2, 0.3), relative=False)
    (reason,) = err.value.reasons
    assert reason.startswith("with quota-to-potential ratios of at most 0.3 the territories "
                             "can carry at most 300 against a goal of 400 (100 short)")
    assert "at least 0.4" in reason


def test_fair_band_too_high_for_the_goal_is_explained() -> None:
    with pytest.raises(InfeasibleScenarioError, match="must carry at least 500, more than the "
                                                      "goal of 400"):
        fair_quotas(fair_input(), 400, band=(0.5, 0.8), relative=False)



def test_fair_quotas_stay_optimal_for_amounts_in_the_millions() -> None:
    # Closed form of the LP: clipping the history quotas into the band costs Σ|clip(h) - h|,
    # and whatever the clipped quotas miss of the goal costs one more per unit moved (any move
    # from clip(h) goes away from h). With amounts in the millions an objective scaled by
    # 1/goal once let HiGHS stop at a worse vertex (this instance: 13.8 M instead of 7.9 M).
    rng = np.random.default_rng(18)
    df = pd.DataFrame({"territory_id": [f"T{i}" for i in range(12)],
                       "potential": rng.uniform(1e6, 5e6, 12),
                       "history": rng.uniform(1e5, 9e5, 12)})
    goal = 25e6
    out = fair_quotas(df, goal, band=(0.8, 1.2), unit=1000)
    low, high = out["ratio_min"] * out["potential"], out["ratio_max"] * out["potential"]
    clipped = out["history_quota"].clip(low, high)
    optimum = (clipped - out["history_quota"]).abs().sum() + abs(goal - clipped.sum())
    deviation = (out["quota_unrounded"] - out["history_quota"]).abs().sum()
    assert deviation == pytest.approx(optimum, rel=1e-6)
    assert out["quota"].sum() == goal


def test_a_territory_without_a_manager_rolls_up_to_its_region() -> None:
    subs = pd.DataFrame({"id": ["T1", "T2", "T3", "T4"], "submitted": [100.0, 200, 300, 400],
                         "manager": ["M1", "M1", "M2", None],
                         "region": ["East", "East", "West", "West"]})
    out = bottom_up(subs, 1500).set_index(["level", "id"])["parent"]
    assert out[("territory", "T4")] == "West"  # it was blank
    assert out[("territory", "T1")] == "M1" and out[("manager", "M2")] == "West"
    assert ("manager", "nan") not in out.index and ("manager", "None") not in out.index
