"""The national realignment (16,943 accounts × 100 reps) reaches its proven gap."""

from __future__ import annotations

import pytest

from optimizer import datasets
from optimizer.alignment import solve
from optimizer.io import read_alignment, read_scenario
from tests.optimizer.plan_checks import assert_plan_valid


@pytest.mark.slow
def test_national_realignment_proves_its_gap() -> None:
    d = datasets.get_dataset_or_raise("us-accounts")
    sc = read_scenario(d.file("scenario.yaml"))
    data = read_alignment(d.file("accounts.csv"), d.file("reps.csv"), sc)
    result = solve(data, sc)
    r = result.report
    assert r.status.value == "optimal"
    assert r.gap <= 0.005
    # The bound is over every account–rep pair, not only the ones the models held.
    assert r.pricing["pairs_allowed"] == len(data.accounts) * len(data.reps)
    assert r.pricing["pairs_in_mip"] < r.pricing["pairs_allowed"] / 10
    assert_plan_valid(data, sc, result)
    before, after = result.kpis["before"], result.kpis["after"]
    assert before["utilisation"]["over_capacity_reps"] > 0
    assert after["utilisation"]["over_capacity_reps"] == 0
    assert after["balance"]["workload"]["share_within_tolerance"] == 1.0
