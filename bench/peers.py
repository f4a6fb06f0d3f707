"""Peers for the OR-Library capacitated p-median instances (run inside measure.py children).

Both solve the textbook formulation with the CBC binary bundled in PuLP:

    min Σ d[i,j] x[i,j]
    Σ_j x[i,j] = 1 ∀i;  Σ_j y[j] = p;  x[i,j] ≤ y[j] ∀i,j;  Σ_i w[i] x[i,j] ≤ C y[j] ∀j;
    x, y binary.

- `pulp_cbc`: the formulation written directly in PuLP.
- `spopt_cbc`: PySAL spopt's `PMedian.from_cost_matrix` with `facility_capacities` — the same
  constraints. spopt weights the objective by demand (Σ w[i] d[i,j] x[i,j]) while the
  published CPMP optima are unweighted, so it is given d[i,j] / w[i] as the cost matrix
  (every OR-Library demand is positive), which makes its objective Σ d[i,j] x[i,j] again.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
import pulp

from bench.data import orlib_instance


def _matrix(number: int) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    inst = orlib_instance(number)
    x = inst.accounts["x"].to_numpy(float)
    y = inst.accounts["y"].to_numpy(float)
    d = np.floor(np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]))
    w = inst.accounts["workload"].to_numpy(float)
    return d, w, inst.p, inst.capacity, inst.optimum


def _cbc(time_limit: float) -> pulp.LpSolver:
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=0.0)


def _outcome(prob: pulp.LpProblem, optimum: int) -> dict[str, Any]:
    value = pulp.value(prob.objective)
    # sol_status 1: optimal (proven); 2: integer feasible only (stopped at the time limit).
    proven = prob.status == pulp.LpStatusOptimal and prob.sol_status == pulp.LpSolutionOptimal
    objective = None if value is None else float(value)
    return {"status": "optimal" if proven else (
                "feasible" if objective is not None and prob.sol_status in (
                    pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible) else "no_solution"),
            "proven": proven, "objective": objective, "optimum": optimum,
            "matches_optimum": objective is not None and abs(objective - optimum) < 1e-6}


def pulp_cbc(number: int, time_limit: float) -> dict[str, Any]:
    d, w, p, cap, optimum = _matrix(number)
    n = len(w)
    t = time.perf_counter()
    prob = pulp.LpProblem(f"cpmp_{number}", pulp.LpMinimize)
    x = [[pulp.LpVariable(f"x_{i}_{j}", cat=pulp.LpBinary) for j in range(n)] for i in range(n)]
    y = [pulp.LpVariable(f"y_{j}", cat=pulp.LpBinary) for j in range(n)]
    prob += pulp.lpSum(d[i, j] * x[i][j] for i in range(n) for j in range(n))
    for i in range(n):
        prob += pulp.lpSum(x[i]) == 1
    prob += pulp.lpSum(y) == p
    for i in range(n):
        for j in range(n):
            prob += x[i][j] <= y[j]
    for j in range(n):
        prob += pulp.lpSum(w[i] * x[i][j] for i in range(n)) <= cap * y[j]
    seconds_build = time.perf_counter() - t
    t = time.perf_counter()
    prob.solve(_cbc(time_limit))
    seconds_solve = time.perf_counter() - t
    return _outcome(prob, optimum) | {"seconds_build": seconds_build,
                                      "seconds_solve": seconds_solve}


def spopt_cbc(number: int, time_limit: float) -> dict[str, Any]:
    from spopt.locate import PMedian

    d, w, p, cap, optimum = _matrix(number)
    t = time.perf_counter()
    model = PMedian.from_cost_matrix(d / w[:, None], w, p_facilities=p,
                                     facility_capacities=np.full(len(w), float(cap)))
    seconds_build = time.perf_counter() - t
    t = time.perf_counter()
    # spopt raises when CBC stops without proof; the status below says so.
    with contextlib.suppress(RuntimeError):
        model.solve(_cbc(time_limit), results=False)
    seconds_solve = time.perf_counter() - t
    out = _outcome(model.problem, optimum)
    if out["objective"] is not None:  # undo the d / w rounding noise
        out["objective"] = round(out["objective"], 6)
        out["matches_optimum"] = abs(out["objective"] - optimum) < 1e-4
    return out | {"seconds_build": seconds_build, "seconds_solve": seconds_solve}
