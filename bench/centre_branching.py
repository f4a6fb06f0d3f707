"""An experiment behind the OR-Library target (issue 6): branch on centres and re-optimise the
Lagrangian bound at every node (assignment rows relaxed, exact 0/1 knapsacks by the design's
own dynamic programme). Given the published optimum as incumbent, it times the proof alone.
It is not the product's method: instance 8 needs thousands of nodes (HiGHS closes it in about
25 s), because the relaxation itself sits 6 % below the optimum (bench/cg_bound.py).

    python bench/centre_branching.py 1 8   # prints: instance, root bound, nodes, seconds

A node whose p centres are all fixed while its bound is still below the optimum leaves a
generalised assignment problem; it is solved exactly by HiGHS and counted apart.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import highspy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from optimizer.design import _integer_knapsacks, _knapsack_items  # the design's own DP
from tests.optimizer.orlib import load

NODE_STEPS, ROOT_STEPS = 60, 600  # subgradient steps per node (warm-started) and at the root


def _chosen_sets(r: np.ndarray, demand: np.ndarray, capacity: int) -> np.ndarray:
    """0/1 solutions (rows × items) of the knapsacks min r·x, demand·x ≤ capacity."""
    _, f, took = _integer_knapsacks(r, demand, 0, capacity, keep=True)
    assert took is not None
    x = np.zeros(r.shape, dtype=bool)
    for row in range(r.shape[0]):
        x[row, _knapsack_items(f, took, demand, row, 0)] = True
    return x


def _relaxation(cost: np.ndarray, demand: np.ndarray, capacity: int, p: int, lam: np.ndarray,
                forced: np.ndarray, closed: np.ndarray
                ) -> tuple[float, np.ndarray, np.ndarray] | None:
    """L(λ) with the forced centres open and the closed ones out: the bound, the centres it
    opens and every candidate's knapsack value; None when no p centres are left."""
    value = _integer_knapsacks(np.ascontiguousarray((cost - lam[:, None]).T), demand, 0,
                               capacity)[0]
    free = ~forced & ~closed
    k = p - int(forced.sum())
    if k < 0 or free.sum() < k:
        return None
    pick = np.argsort(np.where(free, value, np.inf), kind="stable")[:k]
    chosen = np.concatenate([np.flatnonzero(forced), pick])
    return float(lam.sum() + value[chosen].sum()), chosen, value


def _ascent(cost: np.ndarray, demand: np.ndarray, capacity: int, p: int, lam: np.ndarray,
            forced: np.ndarray, closed: np.ndarray, target: float, steps: int
            ) -> tuple[float, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Polyak subgradient steps towards `target`; stops once the bound exceeds it."""
    best, best_lam, best_at, scale, stuck = -math.inf, lam, None, 2.0, 0
    for _ in range(steps):
        relaxed = _relaxation(cost, demand, capacity, p, lam, forced, closed)
        if relaxed is None:
            return math.inf, lam, None
        bound, chosen, value = relaxed
        if bound > best + 1e-9:
            best, best_lam, best_at, stuck = bound, lam.copy(), (chosen, value), 0
        else:
            stuck += 1
            if stuck >= 10:
                scale, stuck = scale / 2, 0
        if best > target or scale < 1e-3:
            break
        x = _chosen_sets(np.ascontiguousarray((cost - lam[:, None])[:, chosen].T), demand,
                         capacity)
        g = 1.0 - x.sum(axis=0)
        if not g.any():
            break  # the relaxation's plan is a plan
        lam = lam + scale * (target - bound) / float(g @ g) * g
    return best, best_lam, best_at


def _assignment(cost: np.ndarray, demand: np.ndarray, capacity: int,
                centres: np.ndarray) -> float:
    """The least cost of assigning every point to one of `centres` within capacity (HiGHS
    MIP; inf when none fits)."""
    n, k = len(demand), len(centres)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    cols = n * k  # column i * k + c: point i to centres[c]
    h.addVars(cols, np.zeros(cols), np.ones(cols))
    h.changeColsCost(cols, np.arange(cols, dtype=np.int32), cost[:, centres].ravel())
    h.changeColsIntegrality(cols, np.arange(cols, dtype=np.int32),
                            np.full(cols, highspy.HighsVarType.kInteger))
    for i in range(n):
        h.addRow(1, 1, k, np.arange(i * k, (i + 1) * k, dtype=np.int32), np.ones(k))
    for c in range(k):
        h.addRow(0, capacity, n, np.arange(c, cols, k, dtype=np.int32), demand.astype(float))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return math.inf
    return float(h.getInfo().objective_function_value)


def prove(number: int) -> tuple[int, float, int, int, float]:
    inst = load(number)
    xy = inst.accounts[["x", "y"]].to_numpy()
    cost = np.floor(np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]))
    demand = inst.accounts["workload"].to_numpy(int)
    n, p, capacity = len(demand), inst.p, inst.capacity
    target = inst.optimum - 1 + 1e-6  # integral travel: a better plan costs ≤ optimum − 1
    started = time.perf_counter()
    none = np.zeros(n, dtype=bool)
    stack = [(none, none, np.sort(cost, axis=1)[:, 1], ROOT_STEPS)]
    nodes, leaves, root = 0, 0, math.nan
    while stack:
        forced, closed, lam, steps = stack.pop()
        nodes += 1
        bound, lam, at = _ascent(cost, demand, capacity, p, lam, forced, closed, target, steps)
        root = bound if nodes == 1 else root
        if bound > target or at is None:
            continue
        chosen, value = at
        free = ~forced & ~closed
        # Close the candidates that cannot be in a better plan (swapped in for the costliest
        # free chosen centre, the bound passes the target).
        swappable = chosen[free[chosen]]
        if not len(swappable):  # all p centres fixed: the assignment decides
            leaves += 1
            if _assignment(cost, demand, capacity, np.flatnonzero(forced)) <= target:
                raise RuntimeError("a plan below the published optimum")
            continue
        out = free & (bound + value - value[swappable].max() > target)
        out[chosen] = False
        closed = closed | out
        j = min(swappable, key=lambda c: value[c])
        opened, shut = forced.copy(), closed.copy()
        opened[j], shut[j] = True, True
        stack.append((forced, shut, lam, NODE_STEPS))  # then without j
        stack.append((opened, closed, lam, NODE_STEPS))  # first with j open
    return inst.optimum, root, nodes, leaves, time.perf_counter() - started


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        optimum, root, nodes, leaves, seconds = prove(int(arg))
        print(f"#{arg}: optimum {optimum}, root bound {root:.2f}, proven with {nodes:,} nodes "
              f"({leaves:,} of them assignments solved by HiGHS) in {seconds:.1f} s", flush=True)
