r"""Realignment: assign accounts to existing reps, balancing workload, potential and travel
with as little disruption as allowed.

Formulation (units u = accounts, or whole hierarchies; reps r; metrics k)
--------------------------------------------------------------------------
Parameters: c[u,r] objective cost of the pair (travel and disruption terms, see below);
a[u,k] amount of metric k in unit u; lo[r,k], hi[r,k] hard bounds (bands, capacity,
max_accounts); slo/shi[r,k] soft bands with cost w[r,k]; m[u,r] disruption measure moved
if u goes to r; B the disruption budget; P the allowed pairs (eligibility, locks, known
distances).

Variables: x[u,r] ∈ {0,1} for (u,r) ∈ P; load[r,k] ≥ 0; under[r,k], over[r,k] ≥ 0.

    (1) min  Σ c[u,r] x[u,r] + Σ w[r,k] (under[r,k] + over[r,k])
    (2) Σ_r x[u,r] = 1                                   every unit to one rep
    (3) load[r,k] = Σ_u a[u,k] x[u,r]                     territory totals
    (4) lo[r,k] ≤ load[r,k] ≤ hi[r,k]                     hard bands, capacity, limits
    (5) load[r,k] + under[r,k] ≥ slo[r,k];  load[r,k] - over[r,k] ≤ shi[r,k]   soft bands
    (6) Σ m[u,r] x[u,r] ≤ B                               disruption budget

Objective terms are normalised so weights compare: travel / ideal travel (every account at
its nearest allowed rep), mean relative deviation outside soft bands, and the share of the
disruption measure moved. With travel weight 1 alone and hard bands, (1)–(6) is exactly the
min-travel-subject-to-balance problem (its optimum scaled by a constant).

Method (why it proves its gap on the full problem while the models stay small)
------------------------------------------------------------------------------
1. Dual warm start: a subgradient method on the Lagrangian dual of (3) gives multipliers that
   say which few reps each unit could sensibly go to.
2. LP with pricing: the LP relaxation over those pairs (hard bounds elastic, so it is always
   feasible) is solved by HiGHS; its duals price every allowed pair, the ones with negative
   reduced cost join, and the LP is solved again until none is left. The LP value is then
   the LP bound of the *full* problem, whatever pairs the LP held.
3. MIP over the pairs that can matter: for any plan x, cost(x) ≥ z_LP + Σ d[u,r] x[u,r] with
   d ≥ 0 the final reduced costs. So a plan within G of z_LP uses only pairs with d ≤ G, and
   the MIP over those pairs (HiGHS) loses nothing within G. Its best bound b holds for the
   full problem once G ≥ incumbent - z_LP; the bound reported is max(z_LP, min(b, incumbent)).
   Its first plan comes from the LP where possible (without contiguity): the LP solved again
   with the hard bands narrowed by about one unit, its whole assignments kept and a small MIP
   over the units it splits (`_round_lp`); where no narrowed LP is feasible, a local search
   from the LP's largest shares (moves, ejection chains, exchanges: optimizer.repair); and
   last, the narrowed rounding with accounts large against the band kept whole. With tight
   bands HiGHS can otherwise spend the whole time limit looking for any plan.
4. Neighbourhood search: where the MIP ends at its time limit (it gets NEIGHBOURHOOD_SHARE
   less than the time left), small MIPs reassign the accounts of a few competing reps at a
   time, the rest fixed (`_improve_by_neighbourhoods`): HiGHS stalls on the whole problem
   long before these local improvements run out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from optimizer import blocks, contiguity, repair
from optimizer.domain import AlignmentData, Scenario
from optimizer.errors import InfeasibleScenarioError, SolveCancelledError, SolverError
from optimizer.kpi import alignment_kpis, bands_of, territory_table
from optimizer.problem import METRICS, Problem, fmt, prepare, unused_eligibility
from optimizer.result import PlanResult, RunReport
from optimizer.solve import (
    HighsOptions,
    Progress,
    ProgressCallback,
    RunStatus,
    StopCheck,
    Termination,
    relative_gap,
    run_highs,
)

ELASTIC_PENALTY = 1e4  # per fair share of violation, times the plan's cost (n_units)


def elastic_price(p: Problem) -> float:
    """The LP's price of a band violation, per fair share: far above any plan's cost (about
    n_units in solver units, whatever the weights: see Scaled)."""
    return ELASTIC_PENALTY * max(p.n_units, 1)
MAX_PRICING_ROUNDS = 60
# With contiguity on large inputs (the repair method), the share of the time limit kept for
# repairing the plan's cut-off pieces and polishing the repaired plan.
REPAIR_SHARE = 0.2


@dataclass(frozen=True)
class Pairs:
    """The unit–rep pairs a model holds (sorted by unit)."""

    unit: np.ndarray
    rep: np.ndarray

    @staticmethod
    def from_mask(mask: np.ndarray) -> Pairs:
        u, r = np.nonzero(mask)
        return Pairs(u, r)

    def __len__(self) -> int:
        return len(self.unit)


@dataclass(frozen=True)
class Scaled:
    """The problem in the solver's units: objective × n_units / weight_scale (a plan costs
    about n_units), metric k in fair shares, disruption as a share of what could move."""

    cost: np.ndarray  # (U, R)
    amount: np.ndarray  # (U, 3)
    moved: np.ndarray  # (U, R)
    lo: np.ndarray
    hi: np.ndarray
    soft_lo: np.ndarray
    soft_hi: np.ndarray
    soft_cost: np.ndarray
    budget: float | None
    obj_scale: float
    metric_scale: np.ndarray
    metrics: list[int]

    def plan_cost(self, plan: np.ndarray) -> float:
        """Objective (1) of a whole plan (unit -> rep), in solver units."""
        load = np.zeros(self.lo.shape)
        np.add.at(load, plan, self.amount)
        outside = np.maximum(self.soft_lo - load, 0.0) + np.maximum(load - self.soft_hi, 0.0)
        return float(self.cost[np.arange(len(plan)), plan].sum()
                     + (self.soft_cost * outside).sum())

    @staticmethod
    def of(p: Problem) -> Scaled:
        # A plan costs about n_units whatever the weights: the elastic price and HiGHS'
        # tolerances stay in proportion (a travel weight of 30,000 made plans look infeasible).
        obj = float(max(p.n_units, 1)) / p.weight_scale
        mean_fair = p.fair.mean(axis=0)
        ms = np.where(mean_fair > 0, 1.0 / np.where(mean_fair > 0, mean_fair, 1.0), 1.0)
        share = 1.0 / p.moved_total if p.moved_total > 0 else 1.0
        return Scaled(
            cost=p.cost * obj, amount=p.amount * ms, moved=p.moved * share,
            lo=p.lo * ms, hi=p.hi * ms, soft_lo=p.soft_lo * ms, soft_hi=p.soft_hi * ms,
            soft_cost=p.soft_cost * obj / ms,
            budget=None if p.disruption_budget is None else p.disruption_budget * share,
            obj_scale=obj, metric_scale=ms, metrics=p.constrained_metrics())


def build(s: Scaled, pairs: Pairs, *, relaxed: bool = False,
          elastic: float | None = None) -> pyo.ConcreteModel:
    """The realignment model (1)–(6) over `pairs`, in solver units (see Scaled)."""
    n_units, n_reps = s.cost.shape
    m = pyo.ConcreteModel(name="realignment")
    xs = blocks.add_assignment_vars(m, len(pairs), relaxed=relaxed)
    # (2) every unit to one rep
    blocks.add_assignment(m, xs, pairs.unit, n_units)
    # (3) territory totals of the constrained metrics
    blocks.add_loads(m, xs, pairs.rep, s.amount[pairs.unit], n_reps, s.metrics)
    # (4)–(5) hard and soft bands
    penalties = blocks.add_bands(m, s.lo, s.hi, s.soft_lo, s.soft_hi, s.soft_cost, s.metrics,
                                 elastic)
    # (6) disruption budget
    pair_moved = s.moved[pairs.unit, pairs.rep]
    if s.budget is not None and elastic is not None:
        m.art_budget = pyo.Var(domain=pyo.NonNegativeReals)
        used = np.flatnonzero(pair_moved > 0)
        m.disruption = pyo.Constraint(expr=blocks.linear(
            [*pair_moved[used], -1.0], [xs[p] for p in used] + [m.art_budget]) <= s.budget)
        penalties = penalties + elastic * m.art_budget
    else:
        blocks.add_disruption_budget(m, xs, pair_moved, s.budget)
    # (1) objective
    m.objective = pyo.Objective(
        expr=blocks.linear(s.cost[pairs.unit, pairs.rep], xs) + penalties, sense=pyo.minimize)
    return m


# ---------------------------------------------------------------------------------------------
# Pricing


@dataclass
class Duals:
    """Row duals of the LP in HiGHS' convention (reduced cost = c - A'y)."""

    unit: np.ndarray  # (U,) assignment rows
    load: np.ndarray  # (R, 3) load rows (0 for unconstrained metrics)
    budget: float  # disruption row (≤ 0)


def reduced_costs(s: Scaled, duals: Duals) -> np.ndarray:
    """Reduced cost of every unit–rep pair, in or out of the LP (inf where not allowed)."""
    d = s.cost - duals.unit[:, None] + s.amount @ duals.load.T
    if duals.budget != 0.0:
        d -= duals.budget * s.moved
    return d


def _duals_of(s: Scaled, sol_duals: dict[str, np.ndarray], model: pyo.ConcreteModel) -> Duals:
    n_units, n_reps = s.cost.shape
    unit = np.zeros(n_units)
    keys = list(model.assign.keys())
    unit[np.array(keys, dtype=int)] = sol_duals.get("assign", np.zeros(len(keys)))
    load = np.zeros((n_reps, 3))
    if "load_def" in sol_duals:
        for (r, k), y in zip(model.load_def.keys(), sol_duals["load_def"], strict=True):
            load[r, k] = y
    budget = float(sol_duals["disruption"][0]) if "disruption" in sol_duals else 0.0
    return Duals(unit, load, budget)


def lagrangian_warm_start(s: Scaled, iterations: int = 150) -> tuple[Duals, float]:
    """Multipliers of the load rows (3) from projected subgradient ascent on the Lagrangian
    dual, and the best Lagrangian bound seen (a valid lower bound on the full problem)."""
    n_units, n_reps = s.cost.shape
    ks = s.metrics
    theta = np.zeros((n_reps, 3))
    beta = 0.0  # multiplier of (6), ≥ 0 (the LP dual is -beta)
    # Breakpoints of the per-rep load function: hard bounds, soft bands.
    hi_f = np.where(np.isfinite(s.hi), s.hi, np.maximum.reduce(
        [s.lo, np.where(np.isfinite(s.soft_hi), s.soft_hi, 0), s.soft_lo]))
    slope_up = np.where(np.isfinite(s.soft_hi) & (s.soft_cost > 0), s.soft_cost, 0.0)
    theta_max = np.where(np.isfinite(s.hi), np.inf, slope_up)
    cand = np.stack([s.lo, hi_f, np.clip(s.soft_lo, s.lo, hi_f),
                     np.clip(np.where(np.isfinite(s.soft_hi), s.soft_hi, hi_f), s.lo, hi_f)])

    def penalty(level: np.ndarray) -> np.ndarray:
        return s.soft_cost * (np.maximum(0, s.soft_lo - level) + np.maximum(0, level - s.soft_hi))

    best = -math.inf
    best_theta, best_beta = theta.copy(), beta
    delta = None
    stall = 0
    units = np.arange(n_units)
    for _ in range(iterations):
        red = s.cost + s.amount @ theta.T
        if s.budget is not None and beta > 0:
            red = red + beta * s.moved
        choice = np.argmin(red, axis=1)
        value = float(red[units, choice].sum())
        inner = penalty(cand) - theta[None] * cand  # (4, R, 3)
        pick = np.argmin(inner, axis=0)
        level = np.take_along_axis(cand, pick[None], axis=0)[0]
        value += float(np.take_along_axis(inner, pick[None], axis=0)[0][:, ks].sum())
        if s.budget is not None:
            value -= beta * s.budget
        if value > best + 1e-9 * abs(best if np.isfinite(best) else 1):
            best, best_theta, best_beta, stall = value, theta.copy(), beta, 0
        else:
            stall += 1
        if delta is None:
            delta = 0.05 * abs(value) + 1.0
        if stall >= 10:
            delta *= 0.5
            stall = 0
        loads = np.zeros((n_reps, 3))
        np.add.at(loads, choice, s.amount)
        g = loads - level
        g[:, [k for k in range(3) if k not in ks]] = 0.0
        g_beta = float(s.moved[units, choice].sum() - s.budget) if s.budget is not None else 0.0
        norm = float((g * g).sum() + g_beta * g_beta)
        if norm < 1e-18:
            break  # the relaxed plan satisfies every band: it is optimal for the dual
        step = (best + delta - value) / norm
        theta = np.minimum(theta + step * g, theta_max)
        beta = max(0.0, beta + step * g_beta)
    return Duals(np.zeros(n_units), best_theta, -best_beta), best


# ---------------------------------------------------------------------------------------------
# Results


# A realignment's result is the common plan result (optimizer.result).
AlignmentResult = PlanResult


class _Clock:
    def __init__(self, limit: float, on_progress: ProgressCallback | None) -> None:
        self.start = time.perf_counter()
        self.limit = limit
        self.on_progress = on_progress
        self.build = 0.0
        self.solve = 0.0
        self._last: tuple[float, float | None, float | None] = (-1.0, None, None)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def left(self) -> float:
        return max(0.0, self.limit - self.elapsed)

    def tell(self, phase: str, incumbent: float | None = None, bound: float | None = None,
             message: str = "") -> None:
        if self.on_progress is None:
            return
        now = self.elapsed
        last_time, last_inc, last_bound = self._last
        same = (incumbent, bound) == (last_inc, last_bound)
        if phase == "mip" and now - last_time < 0.5 and same:
            return  # HiGHS calls back very often; pass on changes and a heartbeat
        self._last = (now, incumbent, bound)
        self.on_progress(Progress(phase, now, incumbent, bound, relative_gap(incumbent, bound),
                                  message))


def _timed_build(clock: _Clock, *args: Any, **kwargs: Any) -> pyo.ConcreteModel:
    t = time.perf_counter()
    model = build(*args, **kwargs)
    clock.build += time.perf_counter() - t
    return model


def _initial_pairs(p: Problem, s: Scaled, duals: Duals, per_unit: int = 3) -> np.ndarray:
    """Working set: each unit's few best pairs under the warm-start multipliers, its current
    rep when disruption matters, and its locked rep."""
    red = reduced_costs(s, duals)
    red = np.where(p.allowed, red, np.inf)
    k = min(per_unit, p.n_reps)
    best = np.argpartition(red, k - 1, axis=1)[:, :k] if k < p.n_reps else np.tile(
        np.arange(p.n_reps), (p.n_units, 1))
    mask = np.zeros_like(p.allowed)
    np.put_along_axis(mask, best, True, axis=1)
    if s.budget is not None or (s.moved > 0).any():
        stay = np.argmin(s.moved, axis=1)
        has = s.moved.max(axis=1) > 0
        mask[np.flatnonzero(has), stay[has]] = True
    return mask & p.allowed


def _solve_lp(p: Problem, s: Scaled, mask: np.ndarray, clock: _Clock, threads: int | None,
              should_stop: StopCheck | None, elastic: float,
              ) -> tuple[float, np.ndarray, dict[str, np.ndarray], np.ndarray, int]:
    """Column generation: LP over `mask`, price all allowed pairs, add the negative ones,
    repeat. Returns (LP value, reduced costs, values of x and the elastic variables, final
    mask, rounds)."""
    tol = 1e-7 * max(1.0, float(np.nanmax(np.where(np.isfinite(s.cost), s.cost, 0))))
    for rounds in range(1, MAX_PRICING_ROUNDS + 1):
        pairs = Pairs.from_mask(mask)
        model = _timed_build(clock, s, pairs, relaxed=True, elastic=elastic)
        sol = run_highs(model, HighsOptions(time_limit=max(clock.left, 1.0), threads=threads),
                        should_stop=should_stop, duals=True)
        clock.solve += sol.seconds_solve + sol.seconds_compile
        if sol.termination is Termination.cancelled:
            raise SolveCancelledError("cancelled while solving the LP relaxation")
        if sol.termination is Termination.time_limit:
            raise SolverError(_lp_out_of_time(clock, rounds, mask))
        if sol.termination is not Termination.optimal or sol.objective is None:
            raise SolverError(f"the LP relaxation ended with {sol.termination.value}")
        duals = _duals_of(s, sol.duals, model)
        red = np.where(p.allowed, reduced_costs(s, duals), np.inf)
        clock.tell("lp", bound=None, message=f"pricing round {rounds}: LP {sol.objective:.6g}")
        negative = (red < -tol) & ~mask
        if not negative.any():
            values = {k: v for k, v in sol.values.items() if k.startswith("art") or k == "x"}
            return sol.objective, np.maximum(red, 0.0), values, mask, rounds
        # Add up to 3 of each unit's most negative pairs.
        cand = np.where(negative, red, np.inf)
        k = min(3, p.n_reps)
        best = np.argpartition(cand, k - 1, axis=1)[:, :k] if k < p.n_reps else np.tile(
            np.arange(p.n_reps), (p.n_units, 1))
        add = np.zeros_like(mask)
        np.put_along_axis(add, best, True, axis=1)
        mask = mask | (add & negative)
        if clock.left <= 0:
            raise SolverError(_lp_out_of_time(clock, rounds, mask))
    raise SolverError("LP pricing did not converge")


def _lp_out_of_time(clock: _Clock, rounds: int, mask: np.ndarray) -> str:
    """For a planner: the time ran out before the LP that every plan starts from."""
    return (f"no plan found within the time limit ({clock.limit:g} s): plans are rounded "
            f"from the LP relaxation, and it was still being solved (pricing round {rounds}, "
            f"{int(mask.sum()):,} account–rep pairs). Raise solver.time_limit.")


def _max_art(lp: dict[str, np.ndarray]) -> float:
    return max([float(v.max()) for k, v in lp.items() if k.startswith("art") and len(v)] or [0.0])


def _explain_infeasible(p: Problem, s: Scaled, mask: np.ndarray, clock: _Clock,
                        threads: int | None, should_stop: StopCheck | None,
                        measure: str) -> list[str]:
    """Why the LP relaxation cannot meet the hard rules, in business terms. Bands first
    (phase-1 LP without the disruption limit), then the disruption limit (least movement
    that the bands need, an LP bound)."""
    free = np.where(np.isfinite(s.cost), 0.0, np.inf)
    bands = replace(s, cost=free, soft_cost=np.zeros_like(s.soft_cost), budget=None)
    _, _, lp, _, _ = _solve_lp(p, bands, mask, clock, threads, should_stop, 1.0)
    reasons = []
    if _max_art(lp) > 1e-7:
        probe = build(bands, Pairs(np.zeros(0, int), np.zeros(0, int)), relaxed=True,
                      elastic=1.0)
        for name, side in (("art_lo", "minimum"), ("art_hi", "maximum")):
            keys = list(getattr(probe, name).keys()) if hasattr(probe, name) else []
            for (r, k), v in zip(keys, lp.get(name, []), strict=False):
                if v > 1e-6:
                    metric = METRICS[k]
                    bound = (p.lo if side == "minimum" else p.hi)[r, k]
                    limit = p.hi_reason[r, k] if side == "maximum" else "its minimum"
                    what = "short of" if side == "minimum" else "over"
                    reasons.append(
                        f"even the closest plan leaves rep {p.rep_ids[r]}'s {metric.value} "
                        f"{fmt(metric, v / s.metric_scale[k])} {what} {limit} of "
                        f"{fmt(metric, bound)} (given eligibility, locks and hierarchies)")
        return reasons or ["the balance bands, locks and limits cannot all hold at once"]
    if s.budget is not None:
        least = replace(bands, cost=np.where(np.isfinite(s.cost), s.moved, np.inf))
        z, _, _, _, _ = _solve_lp(p, least, mask, clock, threads, should_stop, 1e4)
        return [f"the disruption limit lets {s.budget:.1%} of {measure} move, but meeting the "
                f"balance bands and limits moves at least {z:.1%}"]
    return ["the balance bands, locks and limits cannot all hold at once"]


# The LP-rounded first plan: its MIP over the units the LP splits gets at most this share of
# the time left (and at most LP_ROUNDING_SECONDS).
LP_ROUNDING_SHARE = 0.1
LP_ROUNDING_SECONDS = 15.0
# The band margins tried, as shares of the unit size `_round_lp` measures per rep.
NARROWING = (1.0, 0.5)
# The widest margin, as a share of the band's half width. A unit larger than that is large
# at the rep: no margin absorbs rounding it, so the last attempt keeps such pairs whole.
MAX_MARGIN = 0.9


def _half_band(s: Scaled) -> np.ndarray:
    """Half the width of each rep's hard band per metric (inf where it has no upper bound)."""
    return np.where(np.isfinite(s.hi), (s.hi - s.lo) / 2, np.inf)


def _no_plan_message(p: Problem, s: Scaled, time_limit: float) -> str:
    """Why a run ended without a plan although its relaxation meets every rule, for a
    planner: the accounts too large for the bands they must fit in, and what to change."""
    message = (f"no plan found within the time limit ({time_limit:g} s). Splitting accounts "
               "between reps would meet every rule, so the scenario is not shown to be "
               "infeasible, but no whole assignment was found in time.")
    half_band = _half_band(s)
    for k in s.metrics:
        # Large as in the rounding (MAX_MARGIN of half the band) at every rep it may go to:
        # each rep's plan is then a packing of a few large accounts among small ones.
        room = np.where(p.allowed, half_band[None, :, k], np.inf).min(axis=1)
        large = np.flatnonzero(s.amount[:, k] > MAX_MARGIN * room)
        if len(large) == 0:
            continue
        u = int(large[np.argmax(s.amount[large, k] / room[large])])
        r = int(np.argmin(np.where(p.allowed[u], half_band[:, k], np.inf)))
        metric = METRICS[k]
        message += (f" {len(large):,} accounts each take more than {MAX_MARGIN / 2:.0%} of "
                    f"the width of the {metric.value} band of every rep they may go to (the "
                    f"largest against it, {p.unit_label[u]}, {fmt(metric, p.amount[u, k])}; "
                    f"rep {p.rep_ids[r]}'s band is {fmt(metric, p.lo[r, k])}–"
                    f"{fmt(metric, p.hi[r, k])}).")
    return message + " A longer time limit or a wider tolerance gives the search more room."


def _round_lp(p: Problem, s: Scaled, mask: np.ndarray, x: np.ndarray, clock: _Clock,
              threads: int | None, should_stop: StopCheck | None, large_whole: bool
              ) -> tuple[float, np.ndarray] | None:
    """A first plan from the LP. The LP is solved again with every hard band narrowed by
    a margin (the largest unit the LP `x` splits onto the rep, at least the rep's median
    unit; then half of that); its whole assignments stay, and a small MIP with the true
    bands places the units it splits. A basic solution splits about one unit per
    binding row, so rounding moves a rep's load by about one unit, which the narrowing
    leaves room for. (Rounding the LP itself fails: it leaves reps exactly on their band
    limits.) Where some units are large against the band (a few big accounts among many
    small ones), `large_whole` instead keeps their pairs whole in the narrowed model (a MIP
    in those pairs alone) and narrows by the small units only: costlier, so it comes after
    the local search (`_searched_plan`). Without a start the restricted MIP must find its
    first plan itself, which with tight two-sided bands can take most of the time limit.
    None when no attempt finds a plan."""
    pairs = Pairs.from_mask(mask)
    half_band = _half_band(s)
    large = np.zeros(len(pairs), dtype=bool)
    for k in s.metrics:
        large |= s.amount[pairs.unit, k] > MAX_MARGIN * half_band[pairs.rep, k]
    split = (x > 1e-6) & (x < 1 - 1e-6)
    assigned = x > 0.5

    def unit_size(among: np.ndarray) -> np.ndarray:
        """Per rep and metric: the largest of `among` the LP splits onto it, at least its
        median assigned unit of `among`."""
        size = np.zeros_like(s.lo)
        cut, held = split & among, assigned & among
        by_rep = blocks.group_positions(pairs.rep[held], len(s.lo))
        for k in s.metrics:
            np.maximum.at(size[:, k], pairs.rep[cut], s.amount[pairs.unit[cut], k])
            for r, members in enumerate(by_rep):
                if len(members):
                    typical = np.median(s.amount[pairs.unit[held][members], k])
                    size[r, k] = max(size[r, k], typical)
        return size

    attempts = [(share, False) for share in NARROWING] if not large_whole else \
        [(1.0, True)] if large.any() and not large.all() else []
    for share, whole_large in attempts:
        size = unit_size(~large if whole_large else np.ones(len(pairs), dtype=bool))
        margin = np.minimum(size * share, MAX_MARGIN * half_band)
        narrowed = replace(s, lo=np.where(s.lo > 0, s.lo + margin, s.lo),
                           hi=np.where(np.isfinite(s.hi), s.hi - margin, s.hi))
        model = _timed_build(clock, narrowed, pairs, relaxed=True)
        for i in np.flatnonzero(large) if whole_large else ():
            model.x[int(i)].domain = pyo.Binary
        # At most a quarter of the time left: the restricted MIP can still find a plan itself.
        lp = run_highs(model, HighsOptions(time_limit=max(0.25 * clock.left, 0.5),
                                           mip_gap=1e-2, threads=threads),
                       should_stop=should_stop)
        clock.solve += lp.seconds_solve + lp.seconds_compile
        if lp.termination is Termination.cancelled:
            return None
        if not lp.has_solution or "x" not in lp.values:
            continue
        whole = lp.values["x"] > 1 - 1e-6
        settled = np.zeros(p.n_units, dtype=bool)
        settled[pairs.unit[whole]] = True
        keep = whole | ~settled[pairs.unit]
        sub = Pairs(pairs.unit[keep], pairs.rep[keep])
        sol = run_highs(_timed_build(clock, s, sub),
                        HighsOptions(time_limit=max(min(LP_ROUNDING_SECONDS,
                                                        LP_ROUNDING_SHARE * clock.left), 0.5),
                                     mip_gap=1e-3, threads=threads),
                        should_stop=should_stop)
        clock.solve += sol.seconds_solve + sol.seconds_compile
        whole_note = f", {int(large.sum()):,} large pairs whole" if whole_large else ""
        clock.tell("mip", None, None, message=f"LP rounding: bands narrowed by {share:g} "
                   f"unit{whole_note}, {int((~settled).sum()):,} split units, "
                   f"{sol.termination.value} in {sol.seconds_solve:.1f} s")
        if sol.has_solution and sol.objective is not None:
            chosen = sol.values["x"] > 0.5
            plan = np.full(p.n_units, -1)
            plan[sub.unit[chosen]] = sub.rep[chosen]
            return float(sol.objective), plan
        if sol.termination is Termination.cancelled:
            return None
    return None


# The local search's candidate reps per unit: the LP's pairs and this many cheapest others.
# It gets SEARCH_SHARE of the time left, at most SEARCH_SECONDS (it polls no cancellation).
SEARCH_NEAREST = 8
SEARCH_SHARE = 0.1
SEARCH_SECONDS = 5.0
# The neighbourhood search gets this share of the time left once a first plan exists (the
# MIP over the whole problem the rest; a plan proven sooner leaves it unused). Each of its
# MIPs reassigns the units of NEIGHBOURHOOD_REPS reps, for at most NEIGHBOURHOOD_SECONDS.
NEIGHBOURHOOD_SHARE = 0.3
NEIGHBOURHOOD_REPS = 4
NEIGHBOURHOOD_SECONDS = 1.0
MAX_NEIGHBOURHOOD_ROUNDS = 10


def _candidates(p: Problem, s: Scaled, mask: np.ndarray) -> np.ndarray:
    """(U, R): the LP's pairs and each unit's SEARCH_NEAREST cheapest allowed reps."""
    candidates = mask & p.allowed
    if p.n_reps <= SEARCH_NEAREST:
        return p.allowed.copy()
    cost = np.where(p.allowed, s.cost, np.inf)
    nearest = np.argpartition(cost, SEARCH_NEAREST - 1, axis=1)[:, :SEARCH_NEAREST]
    np.put_along_axis(candidates, nearest, True, axis=1)
    return candidates & p.allowed


def _searched_plan(p: Problem, s: Scaled, mask: np.ndarray, x: np.ndarray, seconds: float
                   ) -> tuple[float, np.ndarray] | None:
    """A first plan by local search (optimizer.repair) from each unit's largest LP share,
    over the `_candidates` pairs: the start when the LP's rounding finds none. At
    16,943 × 300 every band holds after about a second, and exchanges make the plan
    cheaper for about two more."""
    pairs = Pairs.from_mask(mask)
    order = np.lexsort((-x, pairs.unit))
    lead = np.ones(len(order), dtype=bool)
    lead[1:] = pairs.unit[order][1:] != pairs.unit[order][:-1]
    start = np.full(p.n_units, -1)
    start[pairs.unit[order][lead]] = pairs.rep[order][lead]
    unit, rep = np.nonzero(_candidates(p, s, mask))
    plan = repair.repair(repair.Bands(s.amount, s.lo, s.hi, p.allowed, s.cost, s.moved,
                                      s.budget), unit, rep, start, seconds)
    return None if plan is None else (s.plan_cost(plan), plan)


def _improve_by_neighbourhoods(p: Problem, s: Scaled, mask: np.ndarray, x: np.ndarray,
                               plan: np.ndarray, clock: _Clock, threads: int | None,
                               should_stop: StopCheck | None, good_enough: float,
                               on_better: Callable[[float, str], None]
                               ) -> tuple[float, np.ndarray, bool]:
    """Large-neighbourhood search, for where HiGHS stalls on the whole problem: the units of
    NEIGHBOURHOOD_REPS reps that compete for the same units are reassigned among those
    reps by a small MIP with everything else fixed (hard and soft bands and the disruption
    budget hold exactly). Reps whose units cost most above their LP cost go first; rounds
    repeat until one gains nothing, the plan costs `good_enough` or less, or time runs
    out. Returns (objective, plan, cancelled)."""
    plan = plan.copy()
    z = s.plan_cost(plan)
    pairs = Pairs.from_mask(mask)
    lp_cost = np.bincount(pairs.unit, weights=x * s.cost[pairs.unit, pairs.rep],
                          minlength=p.n_units)
    compete = _candidates(p, s, mask).astype(float)
    shared = compete.T @ compete  # (R, R): units that may go to both reps
    np.fill_diagonal(shared, -1.0)
    others = min(NEIGHBOURHOOD_REPS, p.n_reps) - 1  # the diagonal sorts last: not itself
    neighbours = np.argsort(-shared, axis=1, kind="stable")[:, :others]
    units_all = np.arange(p.n_units)
    for round_ in range(1, MAX_NEIGHBOURHOOD_ROUNDS + 1):
        z_round = z
        excess = np.bincount(plan, weights=s.cost[units_all, plan] - lp_cost,
                             minlength=p.n_reps)
        for r in np.argsort(-excess, kind="stable"):
            if clock.left <= 0.2 or z <= good_enough:
                return z, plan, False
            if should_stop is not None and should_stop():
                return z, plan, True
            group = np.concatenate(([r], neighbours[r]))
            inside = np.zeros(p.n_reps, dtype=bool)
            inside[group] = True
            units = np.flatnonzero(inside[plan])
            position = np.full(p.n_reps, -1)
            position[group] = np.arange(len(group))
            now = position[plan[units]]
            # The budget the rest of the plan leaves (a solution may overshoot by rounding).
            budget = None if s.budget is None else max(
                s.budget - float(s.moved[units_all, plan][~inside[plan]].sum()), 0.0)
            sub = replace(s, cost=s.cost[units][:, group], amount=s.amount[units],
                          moved=s.moved[units][:, group], lo=s.lo[group], hi=s.hi[group],
                          soft_lo=s.soft_lo[group], soft_hi=s.soft_hi[group],
                          soft_cost=s.soft_cost[group], budget=budget)
            sub_pairs = Pairs.from_mask(p.allowed[units][:, group])
            model = _timed_build(clock, sub, sub_pairs)
            start: dict[str, dict[object, float]] = {"x": {
                int(i): 1.0 for i in np.flatnonzero(sub_pairs.rep == now[sub_pairs.unit])}}
            sol = run_highs(model, HighsOptions(time_limit=min(NEIGHBOURHOOD_SECONDS,
                                                               max(clock.left, 0.1)),
                                                mip_gap=1e-6, threads=threads),
                            should_stop=should_stop, start=start)
            clock.solve += sol.seconds_solve + sol.seconds_compile
            if sol.termination is Termination.cancelled:
                return z, plan, True
            before = sub.plan_cost(now)
            if sol.has_solution and sol.objective is not None and \
                    sol.objective < before - 1e-9 * max(1.0, abs(before)):
                chosen = sol.values["x"] > 0.5
                plan[units[sub_pairs.unit[chosen]]] = group[sub_pairs.rep[chosen]]
                z = s.plan_cost(plan)
                on_better(z, f"neighbourhood search round {round_}")
        if z >= z_round - 1e-9 * max(1.0, abs(z_round)):
            break
    return z, plan, False


def _window_for(sorted_positive: np.ndarray, extra_pairs: int) -> float:
    """The reduced-cost threshold that lets about `extra_pairs` non-zero pairs in."""
    if len(sorted_positive) == 0:
        return 1e-9
    return float(sorted_positive[min(max(extra_pairs, 1), len(sorted_positive)) - 1])


def _solve_restricted_mip(p: Problem, s: Scaled, mask: np.ndarray, clock: _Clock,
                          gap: float, threads: int | None, should_stop: StopCheck | None,
                          incumbent: np.ndarray | None, to_normal: float,
                          z_lp: float, stop_at: float,
                          give_up_above: float | None, covering: bool,
                          contig: contiguity.Contiguity | None = None) -> tuple[Any, Pairs]:
    pairs = Pairs.from_mask(mask)
    model = _timed_build(clock, s, pairs)
    start: dict[str, dict[object, float]] | None = None
    if incumbent is not None:
        chosen = mask.copy()
        chosen[:] = False
        chosen[np.arange(p.n_units), incumbent] = True
        chosen_pairs = np.flatnonzero(chosen[pairs.unit, pairs.rep])
        start = {"x": {int(i): 1.0 for i in chosen_pairs}}

    def progress(inc: float | None, bnd: float | None) -> None:
        # The restricted MIP's bound holds for the full problem only once the window covers
        # every pair that could beat the incumbent; until then the LP bound is the bound.
        shown = max(bnd, z_lp) if covering and bnd is not None else z_lp
        shown *= to_normal
        clock.tell("mip", None if inc is None else inc * to_normal, shown)

    # With contiguity (exact), cut rounds until the plan is in one piece per territory.
    mip = run_highs if contig is None or not contig.exact else contig.runner(
        pairs.unit, pairs.rep, complete=int(mask.sum()) == int(p.allowed.sum()))
    sol = mip(model, HighsOptions(time_limit=max(clock.left, 0.5), mip_gap=gap,
                                  threads=threads),
                    on_progress=progress, should_stop=should_stop, start=start,
                    stop_at_objective=stop_at, stop_if_bound_above=give_up_above)
    clock.solve += sol.seconds_solve + sol.seconds_compile
    return sol, pairs


def solve(data: AlignmentData, scenario: Scenario, *, on_progress: ProgressCallback | None = None,
          should_stop: StopCheck | None = None) -> AlignmentResult:
    """Realign `data` under `scenario`; see the module docstring for the model and method.

    Raises InfeasibleScenarioError (with business reasons) when no plan can meet the scenario,
    SolveCancelledError when stopped before any plan exists.
    """
    settings = scenario.solver
    clock = _Clock(settings.time_limit, on_progress)
    clock.tell("prepare", message="checking the scenario")
    p = prepare(data, scenario)
    s = Scaled.of(p)
    contig = contiguity.for_alignment(data, scenario, p, s)  # None unless contiguity: true
    if contig is not None and not contig.exact:
        # Large inputs: the plan's pieces are repaired, and the repair polished, at the end.
        clock.limit *= 1 - REPAIR_SHARE
    to_normal = 1.0 / s.obj_scale
    warnings = unused_eligibility(data.accounts, scenario.eligibility)
    design_only = [k for k, unset in (("territories", None), ("centres", "accounts"))
                   if getattr(scenario, k) != unset]
    if design_only:
        warnings.append(f"{' and '.join(design_only)} {'is a' if len(design_only) == 1 else 'are'}"
                        f" design setting{'s' * (len(design_only) > 1)}, ignored in an "
                        "alignment: each rep keeps one territory")
    for metric in METRICS:
        rule = scenario.balance.rule(metric)
        if rule.active and not rule.hard and scenario.objective.balance == 0:
            warnings.append(f"soft {metric.value} band has no effect: objective.balance is 0")
    limits_moves = scenario.disruption.max_share is not None or scenario.objective.disruption > 0
    if limits_moves and p.moved_total == 0:
        measure = scenario.disruption.measure.value
        why = ("no account has a rep today (current_rep)" if measure == "accounts" else
               f"they count {measure} moved, and the accounts with a rep today have no "
               f"{measure}")
        warnings.append(f"the disruption limit and weight have no effect: {why}")

    # 1. dual warm start, 2. LP with pricing over every allowed pair
    clock.tell("dual", message="estimating prices")
    duals, lagrange_bound = lagrangian_warm_start(s)
    mask = _initial_pairs(p, s, duals)
    initial_pairs = int(mask.sum())
    elastic = elastic_price(p)
    z_lp, red, lp, mask, rounds = _solve_lp(p, s, mask, clock, settings.threads, should_stop,
                                            elastic)
    if _max_art(lp) > 1e-6:
        # Not even the relaxation meets the hard rules at the elastic price: find out why
        # (and make sure it is the data, not the price).
        reasons = _explain_infeasible(p, s, mask, clock, settings.threads, should_stop,
                                      scenario.disruption.measure.value)
        raise InfeasibleScenarioError(reasons)
    lp_bound = z_lp
    clock.tell("lp", bound=lp_bound * to_normal,
               message=f"LP bound over all {int(p.allowed.sum()):,} pairs")

    # 3. MIP over the pairs that can matter: start from the LP's support and its cheapest
    # alternatives, and widen until the plan is proven within the target gap.
    target = settings.mip_gap
    finite_red = np.sort(red[p.allowed & (red > 1e-9)])
    window = _window_for(finite_red, p.n_units // 2)
    best_unit: np.ndarray | None = None
    z_inc = math.inf
    if contig is None:  # a contiguous plan needs its own start (contiguity.py)
        # The narrowed LPs first (the best starts), then the local search (seconds), then
        # the costlier rounding that keeps large accounts whole.
        first, how = _round_lp(p, s, mask, lp["x"], clock, settings.threads, should_stop,
                               large_whole=False), "the LP rounded"
        if first is None:
            seconds = min(SEARCH_SECONDS, SEARCH_SHARE * clock.left)
            first, how = _searched_plan(p, s, mask, lp["x"], seconds), \
                "local search from the LP"
        if first is None and not clock.left <= 0.5:
            first, how = _round_lp(p, s, mask, lp["x"], clock, settings.threads, should_stop,
                                   large_whole=True), "the LP rounded, large accounts whole"
        if first is not None:
            z_inc, best_unit = first
            clock.tell("mip", z_inc * to_normal, lp_bound * to_normal,
                       message=f"first plan: {how}")
    bound = lp_bound
    termination = Termination.optimal
    last_pairs = 0
    # Time kept back from the MIP below for the neighbourhood search after it.
    reserve = NEIGHBOURHOOD_SHARE * clock.left if best_unit is not None and contig is None \
        else 0.0
    clock.limit -= reserve
    while True:
        mipmask = (red <= window) & p.allowed
        if best_unit is not None:  # the MIP starts from the incumbent, so it holds its pairs
            mipmask[np.arange(p.n_units), best_unit] = True
        last_pairs = int(mipmask.sum())
        clock.tell("mip", None if best_unit is None else z_inc * to_normal, bound * to_normal,
                   message=f"MIP over {last_pairs:,} pairs")
        # HiGHS only knows the restricted bound: it stops once the LP bound proves the target,
        # and, while the window does not yet cover every better plan, as soon as its own bound
        # shows this window cannot reach the target (widening is then the way forward).
        stop_at = z_lp / (1 - target) if target > 0 else z_lp
        covering = best_unit is not None and window >= z_inc - z_lp - 1e-9
        sol, pairs = _solve_restricted_mip(
            p, s, mipmask, clock, target / 2, settings.threads, should_stop, best_unit,
            to_normal, z_lp, stop_at=stop_at,
            give_up_above=None if covering or last_pairs == int(p.allowed.sum()) else stop_at,
            covering=covering, contig=contig)
        complete = last_pairs == int(p.allowed.sum())
        if sol.has_solution and sol.objective is not None and sol.objective < z_inc - 1e-12:
            chosen = sol.values["x"] > 0.5
            unit_rep = np.full(p.n_units, -1)
            unit_rep[pairs.unit[chosen]] = pairs.rep[chosen]
            best_unit, z_inc = unit_rep, sol.objective
        if sol.termination is Termination.infeasible and best_unit is None and complete:
            raise InfeasibleScenarioError([
                "the bands are too narrow for the account sizes: a fractional split of "
                "accounts would meet them, but no whole assignment does"])
        # Every plan better than the incumbent uses only pairs with reduced cost below
        # z_inc - z_lp, so once the window covers that, the MIP's bound is global.
        if best_unit is not None and window >= z_inc - z_lp - 1e-9 and \
                sol.termination is not Termination.bound_exceeded:
            restricted = sol.bound if sol.bound is not None else z_inc
            if sol.termination is Termination.infeasible:
                restricted = z_inc
            bound = max(lp_bound, min(restricted, z_inc))
        gap = relative_gap(z_inc if best_unit is not None else None, bound)
        if sol.termination is Termination.cancelled:
            termination = Termination.cancelled
            break
        if gap is not None and gap <= target + 1e-12:
            termination = Termination.optimal
            break
        if complete and sol.termination is Termination.optimal:
            termination = Termination.optimal
            break
        if clock.left <= 0.5 or sol.termination is Termination.time_limit:
            termination = Termination.time_limit
            break
        # Widen: twice the pairs, or straight to the proving window when that is smaller.
        by_size = _window_for(finite_red, max(2 * (last_pairs - p.n_units), p.n_units))
        if best_unit is not None:
            by_size = min(by_size, max(z_inc - z_lp, 0.0) * 1.0001 + 1e-9)
        window = max(window * 1.5, by_size) if by_size > window else window * 4
    clock.limit += reserve
    if termination is Termination.time_limit and best_unit is not None and contig is None \
            and clock.left > 0.5:
        def better(z: float, message: str) -> None:
            clock.tell("mip", z * to_normal, bound * to_normal, message=message)

        z_inc, best_unit, cancelled = _improve_by_neighbourhoods(
            p, s, mask, lp["x"], best_unit, clock, settings.threads, should_stop,
            good_enough=bound / (1 - target) if target > 0 else bound, on_better=better)
        gap = relative_gap(z_inc, bound)
        if cancelled:
            termination = Termination.cancelled
        elif gap is not None and gap <= target + 1e-12:
            termination = Termination.optimal
    if best_unit is None:
        if termination is Termination.cancelled:
            raise SolveCancelledError("cancelled before a plan was found")
        raise SolverError(_no_plan_message(p, s, settings.time_limit))

    repaired = False
    if contig is not None and not contig.exact:  # large inputs: repair the plan's pieces
        clock.tell("repair", z_inc * to_normal, bound * to_normal,
                   message="reattaching cut-off pieces")
        best_unit, repaired = contig.repair_final(best_unit,
                                                  clock.start + settings.time_limit)
        z_inc = contig.plan_cost(best_unit) if repaired else z_inc
    status = RunStatus.optimal if termination is Termination.optimal and not repaired else \
        RunStatus.feasible
    objective = z_inc * to_normal
    report = RunReport(
        status=status, termination=termination, objective=objective, bound=bound * to_normal,
        gap=relative_gap(z_inc, bound), seconds=clock.elapsed, seconds_build=clock.build,
        seconds_solve=clock.solve,
        pricing={"pairs_allowed": int(p.allowed.sum()), "pairs_in_lp": int(mask.sum()),
                 "pairs_priced_in": int(mask.sum()) - initial_pairs,
                 "pairs_in_mip": last_pairs, "units": p.n_units, "lp_rounds": rounds,
                 "lagrangian_bound": lagrange_bound * to_normal})
    clock.tell("done", objective, bound * to_normal)
    return contiguity.annotate(contig, _result(data, scenario, p, best_unit, report, warnings),
                               best_unit)



def _result(data: AlignmentData, scenario: Scenario, p: Problem, unit_rep: np.ndarray,
            report: RunReport, warnings: list[str]) -> AlignmentResult:
    acc, reps = data.accounts, data.reps
    assign = p.unit_assignment_to_accounts(unit_rep)
    rep_ids = np.array(p.rep_ids, dtype=object)
    previous = acc["current_rep"].astype(object).where(acc["current_rep"].notna(), None)
    new = rep_ids[assign]
    moved = [prev is not None and prev != n for prev, n in zip(previous, new, strict=True)]
    assignments = pd.DataFrame({"account_id": acc["account_id"], "territory_id": new,
                                "rep_id": new, "previous_rep": previous, "moved": moved})
    for column in ("name", "segment"):
        if column in acc.columns and acc[column].notna().any():
            assignments[column] = acc[column]
    table = territory_table(p.book, assign)
    territories = pd.DataFrame({"territory_id": p.rep_ids, "rep_id": p.rep_ids, "centre": None,
                                **dict(table.items())})
    territories["capacity"] = reps["capacity"].to_numpy()
    bands = bands_of(scenario.balance)
    kpis = {"after": alignment_kpis(p.book, assign, bands)}
    if (p.book.current >= 0).any():
        kpis["before"] = alignment_kpis(p.book, p.book.current, bands)
    after = kpis["after"]
    terms = {
        "travel": after["travel"]["total"],  # type: ignore[index]
        "travel_over_ideal": after["travel"]["total"] / p.travel_ref,  # type: ignore[index]
        "disruption_moved_share":
            after["disruption"][f"{scenario.disruption.measure.value}_moved_share"],  # type: ignore[index]
        "balance_deviation": _soft_deviation(p, assign),
    }
    return AlignmentResult(report, assignments, territories, terms, kpis, warnings)


def _soft_deviation(p: Problem, assign: np.ndarray) -> float:
    """The soft-balance term as it enters the objective (0 without soft bands)."""
    loads = np.zeros((p.n_reps, 3))
    np.add.at(loads, assign, np.column_stack([p.book.workload, p.book.potential,
                                              np.ones(len(assign))]))
    outside = np.maximum(0, p.soft_lo - loads) + np.maximum(0, loads - p.soft_hi)
    return float((p.soft_cost * outside).sum())


def align(data: AlignmentData, scenario: Scenario, **kwargs: Any) -> AlignmentResult:
    """Alias of `solve` for the package's public API."""
    return solve(data, scenario, **kwargs)
