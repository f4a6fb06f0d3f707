"""The column-generation bound of OR-Library CPMP instances, to check how strong the design's
Lagrangian bound can get: a set-partitioning master LP (HiGHS, directly) over (centre, set of
points) columns, priced by the same exact knapsack dynamic programme the design uses. Its
optimum equals the best Lagrangian bound of the assignment rows with 0/1 knapsacks.

    python bench/cg_bound.py 8 20        # prints: instance, optimum, bound, gap, seconds
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import highspy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from optimizer.design import _integer_knapsacks  # the design's own knapsack DP
from tests.optimizer.orlib import load

ARTIFICIAL = 1e4  # cost of the start columns that make the first master feasible


def bound(number: int) -> tuple[int, float, float]:
    inst = load(number)
    xy = inst.accounts[["x", "y"]].to_numpy()
    demand = inst.accounts["workload"].to_numpy()
    n, p = len(demand), inst.p
    cost = np.floor(np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]))
    started = time.perf_counter()
    master = highspy.Highs()
    master.setOptionValue("output_flag", False)
    rhs = np.r_[np.ones(n), p]  # every point once; p columns
    master.addRows(n + 1, rhs, rhs, 0, np.array([0]), np.array([], dtype=np.int32),
                   np.array([]))
    for row in range(n + 1):
        master.addCol(ARTIFICIAL, 0, highspy.kHighsInf, 1, np.array([row], dtype=np.int32),
                      np.array([1.0]))
    best = -np.inf
    while True:
        master.run()
        dual = np.asarray(master.getSolution().row_dual)
        pi, sigma = dual[:n], dual[n]
        reduced = cost.T - pi  # (centre, point)
        _, profile, took = _integer_knapsacks(reduced, demand, 0, inst.capacity, keep=True)
        assert took is not None
        values = profile.min(axis=1)
        best = max(best, float(pi.sum() + np.sort(values)[:p].sum()))  # L(pi)
        added = 0
        for j in np.flatnonzero(values - sigma < -1e-9):
            load_, items = int(np.argmin(profile[j])), []
            for item in range(n - 1, -1, -1):
                if took[item, j, load_]:
                    items.append(item)
                    load_ -= int(demand[item])
            rows = np.array([*items, n], dtype=np.int32)
            master.addCol(float(cost[items, j].sum()), 0, highspy.kHighsInf, len(rows), rows,
                          np.ones(len(rows)))
            added += 1
        if not added:
            break
    return inst.optimum, best, time.perf_counter() - started


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["20"]:
        optimum, lagrangian, seconds = bound(int(arg))
        print(f"#{arg}: optimum {optimum}, column-generation bound {lagrangian:.2f} "
              f"({(optimum - lagrangian) / optimum:.1%} below), {seconds:.1f} s")
