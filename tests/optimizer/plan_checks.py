"""Independent checks that a realignment's output honours every rule of its scenario."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optimizer.alignment import AlignmentResult
from optimizer.domain import AlignmentData, Scenario

REL = 1e-7


def assert_plan_valid(data: AlignmentData, sc: Scenario, result: AlignmentResult) -> None:
    acc, reps = data.accounts, data.reps
    plan = result.assignments
    # Each account exactly once, to a known rep.
    assert sorted(plan["account_id"]) == sorted(acc["account_id"])
    assert plan["account_id"].is_unique
    assert plan["rep_id"].isin(reps["rep_id"]).all()
    rep_of = dict(zip(plan["account_id"], plan["rep_id"], strict=True))
    merged = acc.assign(rep=acc["account_id"].map(rep_of))
    cap = reps.set_index("rep_id")["capacity"]
    share = cap / cap.sum()
    values = {"workload": merged["workload"], "potential": merged["potential"],
              "accounts": pd.Series(1.0, index=merged.index)}
    for metric, v in values.items():
        load = v.groupby(merged["rep"]).sum().reindex(reps["rep_id"]).fillna(0)
        rule = sc.balance.rule(metric)
        fair = v.sum() * share
        if rule.hard and rule.active:
            if rule.tolerance is not None:
                assert (load >= fair * (1 - rule.tolerance) * (1 - REL) - 1e-9).all(), metric
                assert (load <= fair * (1 + rule.tolerance) * (1 + REL) + 1e-9).all(), metric
            if rule.min is not None:
                assert (load >= rule.min * (1 - REL) - 1e-9).all(), metric
            if rule.max is not None:
                assert (load <= rule.max * (1 + REL) + 1e-9).all(), metric
        if metric == "workload":
            assert (load <= cap * (1 + REL)).all(), "capacity"
        if metric == "accounts" and "max_accounts" in reps:
            limit = reps.set_index("rep_id")["max_accounts"]
            assert (load[limit.notna()] <= limit[limit.notna()]).all(), "max_accounts"
    # Locks.
    locked = merged[merged["locked_rep"].notna()]
    assert (locked["rep"] == locked["locked_rep"]).all(), "locks"
    # Hierarchies move whole.
    if sc.keep_hierarchies:
        children = merged[merged["parent_id"].notna()]
        assert (children["rep"].to_numpy() == children["parent_id"].map(rep_of).to_numpy()).all()
    # Eligibility by segment.
    role = reps.set_index("rep_id")["role"]
    for segment, roles in sc.eligibility.items():
        rows = merged[(merged["segment"] == segment) & merged["locked_rep"].isna()]
        assert rows["rep"].map(role).isin(roles).all(), f"eligibility {segment}"
    # Disruption budget.
    if sc.disruption.max_share is not None:
        has = merged["current_rep"].notna()
        w = values[sc.disruption.measure.value]
        moved = w[has & (merged["rep"] != merged["current_rep"])].sum()
        assert moved <= sc.disruption.max_share * w[has].sum() * (1 + REL) + 1e-9
    # The moved flag and previous rep agree with the input.
    prev = acc.set_index("account_id")["current_rep"]
    expected_moved = [
        isinstance(prev[a], str) and prev[a] != r for a, r in zip(plan["account_id"],
                                                                  plan["rep_id"], strict=True)]
    assert list(plan["moved"]) == expected_moved
    # Territory table agrees with the plan.
    terr = result.territories.set_index("rep_id")
    wl = merged.groupby("rep")["workload"].sum().reindex(terr.index).fillna(0)
    assert np.allclose(terr["workload"], wl)
