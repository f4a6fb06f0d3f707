"""Shared fixtures: tiny random instances and an independent brute-force reference."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from optimizer.distance import haversine_km
from optimizer.domain import AlignmentData, Scenario
from optimizer.validate import validate_alignment


@dataclass
class Instance:
    accounts: pd.DataFrame
    reps: pd.DataFrame

    def data(self, scenario: Scenario) -> AlignmentData:
        return validate_alignment(self.accounts, self.reps, None, scenario.metric)


def make_instance(n: int, r: int, seed: int, *, current: bool = True) -> Instance:
    rng = np.random.default_rng(seed)
    accounts = pd.DataFrame({
        "account_id": [f"A{i}" for i in range(n)],
        "lat": rng.uniform(33.0, 35.0, n).round(4),
        "lon": rng.uniform(-85.0, -83.0, n).round(4),
        "workload": rng.integers(10, 100, n).astype(float),
        "potential": rng.integers(1_000, 50_000, n).astype(float),
        "visits": rng.integers(1, 5, n).astype(float),
        "segment": rng.choice(["A", "B"], n),
    })
    reps = pd.DataFrame({
        "rep_id": [f"R{j}" for j in range(r)],
        "lat": rng.uniform(33.0, 35.0, r).round(4),
        "lon": rng.uniform(-85.0, -83.0, r).round(4),
        "capacity": [1000.0] * r,
        "role": ["enterprise"] + ["commercial"] * (r - 1),
    })
    if current:
        accounts["current_rep"] = rng.choice(reps["rep_id"], n)
    return Instance(accounts, reps)


@pytest.fixture
def instance_factory():
    return make_instance


def brute_force(inst: Instance, scenario: Scenario) -> tuple[float, np.ndarray] | None:
    """Enumerate every assignment; return (objective, assignment) of the best feasible one,
    computing the scenario's objective from its definition (independently of the optimizer)."""
    acc, reps = inst.accounts, inst.reps
    n, r = len(acc), len(reps)
    dist = haversine_km(acc["lat"].to_numpy()[:, None], acc["lon"].to_numpy()[:, None],
                        reps["lat"].to_numpy()[None, :], reps["lon"].to_numpy()[None, :])
    dist = dist * scenario.circuity
    visits = acc["visits"].to_numpy() if "visits" in acc else np.ones(n)
    travel = visits[:, None] * dist
    values = {"workload": acc["workload"].to_numpy(float),
              "potential": acc.get("potential", pd.Series(np.zeros(n))).to_numpy(float),
              "accounts": np.ones(n)}
    cap = reps["capacity"].to_numpy(float)
    share = cap / cap.sum()
    rep_index = {rid: j for j, rid in enumerate(reps["rep_id"])}
    cur = np.array([rep_index.get(x, -1) if isinstance(x, str) else -1
                    for x in acc.get("current_rep", pd.Series([None] * n))])
    locked = np.array([rep_index.get(x, -1) if isinstance(x, str) else -1
                       for x in acc.get("locked_rep", pd.Series([None] * n))])
    parent = acc.get("parent_id", pd.Series([None] * n))
    ids = list(acc["account_id"])
    roles = list(reps.get("role", pd.Series([None] * r)))
    max_acc = reps.get("max_accounts", pd.Series([np.nan] * r)).to_numpy(float)

    allowed = np.ones((n, r), dtype=bool)
    for i in range(n):
        seg = acc["segment"].iloc[i] if "segment" in acc else None
        if seg in scenario.eligibility:
            allowed[i] = [roles[j] in scenario.eligibility[seg] for j in range(r)]
        if locked[i] >= 0:
            allowed[i] = False
            allowed[i, locked[i]] = True
    # Families: root of each account.
    def root(i: int) -> int:
        seen = i
        while isinstance(parent.iloc[seen], str) and scenario.keep_hierarchies:
            seen = ids.index(parent.iloc[seen])
        return seen
    roots = [root(i) for i in range(n)]
    fam_allowed = {}
    for i in range(n):
        fam_allowed[roots[i]] = fam_allowed.get(roots[i], np.ones(r, bool)) & allowed[i]
    family_travel = {}
    for i in range(n):
        family_travel[roots[i]] = family_travel.get(roots[i], 0) + travel[i]
    ideal = sum(np.min(np.where(fam_allowed[f], family_travel[f], np.inf))
                for f in fam_allowed)
    measure = values[scenario.disruption.measure.value]
    moved_total = measure[cur >= 0].sum()

    best: tuple[float, np.ndarray] | None = None
    for combo in itertools.product(range(r), repeat=n):
        a = np.array(combo)
        if not allowed[np.arange(n), a].all():
            continue
        if any(a[i] != a[roots[i]] for i in range(n)):
            continue
        ok = True
        soft = 0.0
        loads = {m: np.bincount(a, weights=v, minlength=r) for m, v in values.items()}
        if (loads["workload"] > cap + 1e-9).any():
            continue
        if (~np.isnan(max_acc) & (loads["accounts"] > np.nan_to_num(max_acc, nan=np.inf))).any():
            continue
        for m, v in values.items():
            rule = scenario.balance.rule(m)
            if not rule.active:
                continue
            fair = v.sum() * share
            lo = np.zeros(r)
            hi = np.full(r, np.inf)
            if rule.tolerance is not None:
                lo, hi = np.maximum(lo, fair * (1 - rule.tolerance)), fair * (1 + rule.tolerance)
            if rule.min is not None:
                lo = np.maximum(lo, rule.min)
            if rule.max is not None:
                hi = np.minimum(hi, rule.max)
            outside = np.maximum(0, lo - loads[m]) + np.maximum(0, loads[m] - hi)
            if rule.hard:
                if (outside > 1e-9).any():
                    ok = False
                    break
            else:
                soft += scenario.objective.balance * rule.weight * (outside / fair).sum() / r
        if not ok:
            continue
        moved = measure[(cur >= 0) & (a != cur)].sum()
        if scenario.disruption.max_share is not None and \
                moved > scenario.disruption.max_share * moved_total + 1e-9:
            continue
        obj = scenario.objective.travel * travel[np.arange(n), a].sum() / ideal + soft
        if moved_total > 0:
            obj += scenario.objective.disruption * moved / moved_total
        if best is None or obj < best[0] - 1e-12:
            best = (obj, a)
    return best
