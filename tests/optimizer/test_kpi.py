"""KPIs checked against hand-computed values on a three-account example."""

from __future__ import annotations

import math

import numpy as np

from optimizer.domain import Balance
from optimizer.kpi import Band, Book, alignment_kpis, bands_of, territory_table


def book() -> Book:
    return Book(
        workload=np.array([10.0, 20.0, 30.0]),
        potential=np.array([100.0, 0.0, 50.0]),
        visits=np.array([2.0, 1.0, 1.0]),
        distance=np.array([[5.0, 50.0], [40.0, 4.0], [30.0, 3.0]]),
        capacity=np.array([100.0, 300.0]),
        current=np.array([0, 0, -1]),
    )


def test_territory_table() -> None:
    t = territory_table(book(), np.array([0, 1, 1]))
    assert t["workload"].tolist() == [10.0, 50.0]
    assert t["potential"].tolist() == [100.0, 50.0]
    assert t["accounts"].tolist() == [1.0, 2.0]
    assert t["travel"].tolist() == [10.0, 7.0]  # 2 visits × 5; 1 × 4 + 1 × 3
    assert t["utilisation"].tolist() == [0.1, 50 / 300]


def test_alignment_kpis() -> None:
    k = alignment_kpis(book(), np.array([0, 1, 1]), {"workload": Band(0.1)})
    wl = k["balance"]["workload"]
    # fair shares by capacity: 60 × (0.25, 0.75) = (15, 45); loads (10, 50)
    assert math.isclose(wl["max_over_fair"], 50 / 45)
    assert math.isclose(wl["min_over_fair"], 10 / 15)
    assert math.isclose(wl["max_over_mean"], 50 / 30)
    assert math.isclose(wl["cv"], np.std([10, 50]) / 30)
    assert wl["share_within_tolerance"] == 0.0
    assert k["travel"]["total"] == 17.0
    # workload-weighted distance: (10×5 + 20×4 + 30×3) / 60
    assert math.isclose(k["travel"]["workload_weighted_mean_distance"], 220 / 60)
    d = k["disruption"]
    assert d["accounts_moved"] == 1.0 and d["accounts_moved_share"] == 0.5  # A1 left R0
    assert d["workload_moved"] == 20.0 and math.isclose(d["workload_moved_share"], 20 / 30)
    assert d["potential_moved_share"] == 0.0
    assert k["utilisation"]["over_capacity_reps"] == 0


def test_a_metric_nobody_has_is_even() -> None:
    """No potential given (all 0): every ratio is 1 and the spread 0; max/mean read 0 while
    max/fair read 1."""
    b = book()
    b = Book(b.workload, np.zeros(3), b.visits, b.distance, b.capacity, b.current)
    pot = alignment_kpis(b, np.array([0, 1, 1]), {})["balance"]["potential"]
    assert {k: pot[k] for k in ("max_over_mean", "min_over_mean", "max_over_fair",
                                "min_over_fair", "cv")} == {
        "max_over_mean": 1.0, "min_over_mean": 1.0, "max_over_fair": 1.0,
        "min_over_fair": 1.0, "cv": 0.0}


def test_within_tolerance_judges_the_band_the_scenario_sets() -> None:
    """Loads (10, 50) against fair shares (15, 45): absolute bands are judged as given, a
    tolerance of 0 is 0 (not the ±10 % shown when a metric has no band at all)."""
    def share(rule: dict) -> float:
        bands = bands_of(Balance.model_validate({"workload": rule}))
        wl = alignment_kpis(book(), np.array([0, 1, 1]), bands)["balance"]["workload"]
        return float(wl["share_within_tolerance"])  # type: ignore[index]

    assert share({"tolerance": None, "min": 10, "max": 50}) == 1.0
    assert share({"tolerance": None, "min": 12}) == 0.5
    assert share({"tolerance": 0.12}) == 0.5  # 50/45 is within 12 %, 10/15 is not
    assert share({"tolerance": 0.5, "max": 40}) == 0.5  # both within 50 %; 50 is over 40
    assert share({"tolerance": 0.5}) == 1.0
    assert share({"tolerance": None}) == 0.0  # no band: ±10 %
    assert share({"tolerance": 0.0}) == 0.0
