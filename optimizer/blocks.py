"""Reusable Pyomo pieces of the assignment models (alignment now, design later).

Each `add_*` declares one family of variables or constraints on a ConcreteModel from arrays.
Expressions are built as LinearExpression objects from coefficient lists: the same model as
`sum(...)`, built an order of magnitude faster at national scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import LinearExpression


def linear(coefs: Sequence[float] | np.ndarray, variables: Sequence[object]) -> LinearExpression:
    return LinearExpression(constant=0.0, linear_coefs=list(map(float, coefs)),
                            linear_vars=list(variables))


def group_positions(keys: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Positions of each key value 0..n_groups-1 (stable)."""
    order = np.argsort(keys, kind="stable")
    cuts = np.searchsorted(keys[order], np.arange(n_groups + 1))
    return [order[cuts[g]:cuts[g + 1]] for g in range(n_groups)]


def add_assignment_vars(m: pyo.ConcreteModel, n_pairs: int, *, relaxed: bool) -> list[object]:
    """x[p] = 1 when pair p (a unit–rep pair) is chosen. In the LP, x ≥ 0 without an upper
    bound (the assignment rows imply x ≤ 1), so reduced costs are all of one sign."""
    if relaxed:
        m.x = pyo.Var(range(n_pairs), domain=pyo.NonNegativeReals)
    else:
        m.x = pyo.Var(range(n_pairs), domain=pyo.Binary)
    return [m.x[p] for p in range(n_pairs)]


def add_assignment(m: pyo.ConcreteModel, xs: list[object], pair_unit: np.ndarray,
                   n_units: int) -> None:
    """Every unit goes to exactly one rep."""
    groups = group_positions(pair_unit, n_units)
    m.assign = pyo.Constraint(
        range(n_units),
        rule=lambda _m, u: linear(np.ones(len(groups[u])), [xs[p] for p in groups[u]]) == 1)


def add_loads(m: pyo.ConcreteModel, xs: list[object], pair_rep: np.ndarray, amount: np.ndarray,
              n_reps: int, metrics: list[int]) -> None:
    """total[r, k] = sum of metric k over the units assigned to rep r (k in `metrics`)."""
    groups = group_positions(pair_rep, n_reps)
    m.total = pyo.Var([(r, k) for r in range(n_reps) for k in metrics],
                     domain=pyo.NonNegativeReals)

    def rule(_m: pyo.ConcreteModel, r: int, k: int) -> object:
        g = groups[r]
        return linear([1.0, *(-amount[g, k])], [m.total[r, k]] + [xs[p] for p in g]) == 0

    m.load_def = pyo.Constraint([(r, k) for r in range(n_reps) for k in metrics], rule=rule)


def add_bands(m: pyo.ConcreteModel, lo: np.ndarray, hi: np.ndarray, soft_lo: np.ndarray,
              soft_hi: np.ndarray, soft_cost: np.ndarray, metrics: list[int],
              elastic: float | None) -> object:
    """Hard bounds lo ≤ load ≤ hi and soft bands with deviation variables under/over.

    With `elastic`, hard bounds may be violated at that price per unit (artificial
    variables art_lo/art_hi): an LP that is always feasible, whose pricing then brings in
    the pairs that feasibility needs. Returns the objective expression of the penalties.
    """
    n_reps = lo.shape[0]
    keys = [(r, k) for r in range(n_reps) for k in metrics]
    hard_lo = [key for key in keys if lo[key] > 0]
    hard_hi = [key for key in keys if np.isfinite(hi[key])]
    soft = [key for key in keys if soft_cost[key] > 0]
    soft_low = [key for key in soft if soft_lo[key] > 0]
    soft_high = [key for key in soft if np.isfinite(soft_hi[key])]
    terms: list[tuple[float, object]] = []
    if elastic is not None:
        m.art_lo = pyo.Var(hard_lo, domain=pyo.NonNegativeReals)
        m.art_hi = pyo.Var(hard_hi, domain=pyo.NonNegativeReals)
        terms += [(elastic, v) for v in m.art_lo.values()]
        terms += [(elastic, v) for v in m.art_hi.values()]
        m.band_lo = pyo.Constraint(hard_lo, rule=lambda _m, r, k:
                                   m.total[r, k] + m.art_lo[r, k] >= float(lo[r, k]))
        m.band_hi = pyo.Constraint(hard_hi, rule=lambda _m, r, k:
                                   m.total[r, k] - m.art_hi[r, k] <= float(hi[r, k]))
    else:
        m.band_lo = pyo.Constraint(hard_lo, rule=lambda _m, r, k: m.total[r, k] >= float(lo[r, k]))
        m.band_hi = pyo.Constraint(hard_hi, rule=lambda _m, r, k: m.total[r, k] <= float(hi[r, k]))
    m.under = pyo.Var(soft_low, domain=pyo.NonNegativeReals)
    m.over = pyo.Var(soft_high, domain=pyo.NonNegativeReals)
    m.soft_lo = pyo.Constraint(soft_low, rule=lambda _m, r, k:
                               m.total[r, k] + m.under[r, k] >= float(soft_lo[r, k]))
    m.soft_hi = pyo.Constraint(soft_high, rule=lambda _m, r, k:
                               m.total[r, k] - m.over[r, k] <= float(soft_hi[r, k]))
    terms += [(float(soft_cost[key]), m.under[key]) for key in soft_low]
    terms += [(float(soft_cost[key]), m.over[key]) for key in soft_high]
    return linear([c for c, _ in terms], [v for _, v in terms])


def add_disruption_budget(m: pyo.ConcreteModel, xs: list[object], pair_moved: np.ndarray,
                          budget: float | None) -> None:
    """At most `budget` of the disruption measure moves away from today's reps."""
    if budget is None:
        return
    used = np.flatnonzero(pair_moved > 0)
    if not len(used) and budget >= 0:
        return  # no pair moves anything: the row would be 0 <= budget
    m.disruption = pyo.Constraint(expr=linear(pair_moved[used], [xs[p] for p in used])
                                  <= float(budget))


def add_centre_choice(m: pyo.ConcreteModel, n_centres: int, count: int, *, relaxed: bool,
                      fixed_closed: np.ndarray | None = None) -> None:
    """y[j] = 1 when candidate j is a territory centre; exactly `count` are chosen."""
    domain = pyo.UnitInterval if relaxed else pyo.Binary
    m.y = pyo.Var(range(n_centres), domain=domain)
    if fixed_closed is not None:
        for j in np.flatnonzero(fixed_closed):
            m.y[int(j)].fix(0)
    m.centre_count = pyo.Constraint(expr=linear(np.ones(n_centres), list(m.y.values())) == count)


def add_open_centre_link(m: pyo.ConcreteModel, xs: list[object], pair_centre: np.ndarray) -> None:
    """x[i,j] ≤ y[j]: only open centres take units (the strong, pair-wise form)."""
    m.link = pyo.Constraint(range(len(xs)), rule=lambda _m, p: xs[p] <= m.y[int(pair_centre[p])])


def add_centre_bands(m: pyo.ConcreteModel, lo: np.ndarray, hi: np.ndarray, n_centres: int,
                     metrics: list[int]) -> None:
    """lo[k] y[j] ≤ total[j, k] ≤ hi[k] y[j]: bands hold for open centres only."""
    lower = [(j, k) for j in range(n_centres) for k in metrics if lo[k] > 0]
    upper = [(j, k) for j in range(n_centres) for k in metrics if np.isfinite(hi[k])]
    m.band_lo = pyo.Constraint(lower, rule=lambda _m, j, k:
                               m.total[j, k] - float(lo[k]) * m.y[j] >= 0)
    m.band_hi = pyo.Constraint(upper, rule=lambda _m, j, k:
                               m.total[j, k] - float(hi[k]) * m.y[j] <= 0)
