r"""Border search: two bordering territories at a time, split again by a MIP with contiguity.

Above `contiguity.EXACT_UNITS` units a contiguous plan comes from a repair and local moves
(boundary moves, swaps), which stop at a local optimum where the repair left tentacles. Here
the units of two bordering territories s and d (a few hundred on a map of thousands) are
split between them again, z[u] = 1 when unit u goes to s:

    min   Σ_u c[u,s] z[u] + c[u,d] (1 − z[u])
    s.t.  lo[s] ≤ Σ_u a[u] z[u] ≤ hi[s],  lo[d] ≤ Σ_u a[u] (1 − z[u]) ≤ hi[d]  (per metric)
          what moves away from today's reps stays within what the budget leaves
          each territory keeps its root unit (a design's centre; in a realignment the unit
          nearest the rep's home base), and a unit away from the root's node has a
          neighbour in its territory
          cut rounds (the root form of `optimizer.contiguity`) until both are one piece

The rounds creep towards the contiguous optimum by small steps, so each round's plan is also
made a candidate: the pieces it leaves cut off go to the other territory of the pair, and
boundary moves restore any band that breaks (they may reach the neighbours). A candidate is
kept when every territory is whole, every band holds and the plan costs less. Measured on a
70 × 70 grid among 30 reps: the first round gives most of the gain, so a pair gets
`PAIR_SECONDS`, and many quick pairs beat few thorough ones. Pairs are visited in sweeps,
those with the cheapest single move across their border first, until a sweep finds nothing
or the deadline passes.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np
import pyomo.environ as pyo
from scipy import sparse

from optimizer.solve import HighsOptions, run_highs

if TYPE_CHECKING:
    from optimizer.contiguity import Contiguity

PAIR_SECONDS = 0.5  # cut rounds on one pair of territories
MAX_ROUNDS = 20  # cut rounds per pair
TOL = 1e-9


def improve(contig: Contiguity, plan: np.ndarray, deadline: float = math.inf) -> np.ndarray:
    """A cheaper plan, contiguous and within the bands like `plan`, re-splitting pairs of
    bordering territories until a sweep finds nothing or `deadline` (time.perf_counter())."""
    if contig.strays(plan) or not contig.within_bands(plan):
        return plan
    while time.perf_counter() < deadline:
        improved = False
        for s, d in _bordering(contig, plan):
            if time.perf_counter() >= deadline:
                break
            better = _resplit(contig, plan, s, d, deadline)
            if better is not None:
                plan, improved = better, True
                contig.report.border_resplits += 1
        if not improved:
            break
    return plan


def _bordering(contig: Contiguity, plan: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of bordering territories (s < d), the cheapest single move across first."""
    moves = contig.boundary_moves(plan)
    u, src, dst = (moves[c].to_numpy() for c in ("unit", "src", "to"))
    dcost = contig.bands.cost[u, dst] - contig.bands.cost[u, src]
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    key = lo * contig.n_terr + hi
    order = np.argsort(dcost, kind="stable")
    _, first = np.unique(key[order], return_index=True)
    ranked = order[np.sort(first)]  # each pair at its cheapest move, cheapest first
    return [(int(lo[i]), int(hi[i])) for i in ranked]


def _root(contig: Contiguity, plan: np.ndarray, t: int) -> int:
    """The unit that stays in t: a design's centre, else a unit at the node nearest the
    rep's home base, else t's cheapest unit."""
    if contig.roots is not None and contig.roots[t] >= 0:
        return int(contig.roots[t])
    members = np.flatnonzero(plan == t)
    if contig.hints[t] >= 0:
        at = contig.units_at_nodes(np.array([contig.hints[t]]))
        at = at[plan[at] == t]
        if len(at):
            return int(at[0])
    return int(members[np.argmin(contig.bands.cost[members, t])])


def _resplit(contig: Contiguity, plan: np.ndarray, s: int, d: int,
             deadline: float) -> np.ndarray | None:
    """The plan with s and d split again more cheaply (the best candidate of the rounds),
    or None when nothing cheaper is found within `PAIR_SECONDS`."""
    units = np.flatnonzero((plan == s) | (plan == d))
    roots = _root(contig, plan, s), _root(contig, plan, d)
    root_nodes = [set(contig.pair_node[contig.pair_unit == r].tolist()) for r in roots]
    local = np.full(contig.n_units, -1)  # unit -> its position in `units` (-1: outside)
    local[units] = np.arange(len(units))
    model = build(contig, plan, units, local, s, d, roots, root_nodes)
    best: tuple[float, np.ndarray] | None = None
    stop = min(deadline, time.perf_counter() + PAIR_SECONDS)
    for _ in range(MAX_ROUNDS):
        left = stop - time.perf_counter()
        if left <= 0.05:
            break
        in_s = np.flatnonzero((plan if best is None else best[1])[units] == s).tolist()
        sol = run_highs(model, HighsOptions(time_limit=left, mip_gap=1e-6, threads=1),
                        start={"z": dict.fromkeys(in_s, 1.0)})
        if not sol.has_solution:
            break
        trial = plan.copy()
        trial[units] = np.where(sol.values["z"] > 0.5, s, d)
        away = [_away(contig, trial, t, near) for t, near in zip((s, d), root_nodes,
                                                                  strict=True)]
        whole = _hand_over(contig, trial, (s, d), away, deadline)
        if whole is not None:
            cost = contig.plan_cost(whole)
            if cost < (contig.plan_cost(plan) if best is None else best[0]) - TOL:
                best = (cost, whole)
        if not any(away):
            break  # the MIP's own plan is whole: the pair is solved
        for side, pieces in ((1, away[0]), (0, away[1])):
            for piece in pieces:
                for lhs, rhs in _cuts(contig, trial, (s, d)[1 - side], piece, local):
                    if side:  # z[i] ≤ Σ z[v]
                        model.cuts.add(model.z[lhs] <= sum(model.z[v] for v in rhs))
                    else:  # 1 − z[i] ≤ Σ (1 − z[v])
                        model.cuts.add(sum(model.z[v] for v in rhs) - model.z[lhs]
                                       <= len(rhs) - 1)
    return None if best is None else best[1]


def _away(contig: Contiguity, trial: np.ndarray, t: int, root_nodes: set[int]
          ) -> list[np.ndarray]:
    """The nodes of each piece of t that does not hold its root."""
    nodes = contig.nodes_of(trial, t)
    n, labels = contig.components(nodes)
    if n <= 1:
        return []
    anchor = set(labels[np.isin(nodes, list(root_nodes))].tolist())
    return [nodes[labels == label] for label in range(n) if label not in anchor]


def _hand_over(contig: Contiguity, trial: np.ndarray, pair: tuple[int, int],
               away: list[list[np.ndarray]], deadline: float) -> np.ndarray | None:
    """`trial` with each cut-off piece handed to the other territory of the pair, and the
    bands restored by boundary moves (none begun after `deadline`), when that leaves every
    territory whole and within its bands, and the disruption within its budget."""
    out = trial.copy()
    for t, other, pieces in ((pair[0], pair[1], away[0]), (pair[1], pair[0], away[1])):
        for piece in pieces:
            inside = contig.units_at_nodes(piece)
            inside = inside[trial[inside] == t]
            if not contig.bands.allowed[inside, other].all():
                return None
            out[inside] = other
    b = contig.bands
    if not contig.in_one_piece(out, *pair) or (
            b.budget is not None and contig.moved_amount(out) > b.budget + 1e-9):
        return None
    if not contig.within_bands(out):
        counted = contig.report.repaired_moves  # resplits are counted apart
        out = contig.rebalance(out, improve=False, deadline=deadline)
        contig.report.repaired_moves = counted
        if not contig.within_bands(out) or contig.strays(out):
            return None
    return out


def _cuts(contig: Contiguity, trial: np.ndarray, t: int, piece: np.ndarray,
          local: np.ndarray) -> list[tuple[int, list[int]]]:
    """Per unit of t in a piece away from its root: (unit, units on the piece's border),
    in local indices; the border's units outside the pair are never in t."""
    rhs = local[contig.units_at_nodes(contig.border(piece))]
    rhs_list = [int(v) for v in rhs[rhs >= 0]]
    inside = contig.units_at_nodes(piece)
    return [(int(local[u]), rhs_list)
            for u in inside[(trial[inside] == t) & (local[inside] >= 0)]]


def build(contig: Contiguity, plan: np.ndarray, units: np.ndarray, local: np.ndarray, s: int,
          d: int, roots: tuple[int, int], root_nodes: list[set[int]]) -> pyo.ConcreteModel:
    """The MIP of one pair (see the module docstring) over `units`, the units of s and d
    in `plan` (`local`: each unit's position among them), keeping each root unit (at
    `root_nodes`) in its territory; `cuts` is an empty ConstraintList for the rounds."""
    b = contig.bands
    k = len(units)
    m = pyo.ConcreteModel()
    m.I = pyo.RangeSet(0, k - 1)
    m.z = pyo.Var(m.I, domain=pyo.Binary)
    dc = b.cost[units, s] - b.cost[units, d]
    m.cost = pyo.Objective(expr=pyo.quicksum(float(dc[i]) * m.z[i] for i in range(k)),
                           sense=pyo.minimize)
    for i in np.flatnonzero(~b.allowed[units, s]):
        m.z[int(i)].fix(0)
    for i in np.flatnonzero(~b.allowed[units, d]):
        m.z[int(i)].fix(1)
    m.bands = pyo.ConstraintList()
    amount = b.amount[units]
    total = amount.sum(axis=0)
    for metric in range(amount.shape[1]):
        if not amount[:, metric].any():
            continue
        load = pyo.quicksum(float(amount[i, metric]) * m.z[i] for i in range(k)
                            if amount[i, metric])
        lo = max(b.lo[s, metric], total[metric] - b.hi[d, metric])
        hi = min(b.hi[s, metric], total[metric] - b.lo[d, metric])
        if np.isfinite(lo) and lo > 0:
            m.bands.add(load >= float(lo))
        if np.isfinite(hi):
            m.bands.add(load <= float(hi))
    if b.moved is not None and b.budget is not None:
        left = b.budget - contig.moved_amount(plan) + b.moved[units, plan[units]].sum()
        dm = b.moved[units, s] - b.moved[units, d]
        m.budget = pyo.Constraint(expr=pyo.quicksum(float(dm[i]) * m.z[i] for i in range(k))
                                  <= float(left - b.moved[units, d].sum()) + 1e-9)
    m.z[int(local[roots[0]])].fix(1)
    m.z[int(local[roots[1]])].fix(0)
    # A unit away from its root's node has a neighbour in its territory (the cut of the
    # piece {its node}, for every unit at once).
    mine = local[contig.pair_unit] >= 0
    nodes, at = contig.pair_node[mine], local[contig.pair_unit[mine]]
    held = sparse.csr_array((np.ones(len(at)), (nodes, at)), shape=(contig.graph.n, k))
    near = (contig.adj @ held)[nodes]
    m.neighbours = pyo.ConstraintList()
    for row, (node, i) in enumerate(zip(nodes.tolist(), at.tolist(), strict=True)):
        rhs = near.indices[near.indptr[row]:near.indptr[row + 1]].tolist()
        if node not in root_nodes[0]:
            m.neighbours.add(m.z[i] <= pyo.quicksum(m.z[v] for v in rhs))
        if node not in root_nodes[1]:
            m.neighbours.add(pyo.quicksum(m.z[v] for v in rhs) - m.z[i] <= len(rhs) - 1)
    m.cuts = pyo.ConstraintList()
    return m
