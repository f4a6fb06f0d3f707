r"""Greenfield design: choose N territory centres among candidates and assign every account
to one, minimising travel subject to balance — the capacitated p-median family.

Formulation (units u = accounts or whole hierarchies; candidate centres j; metrics k)
-------------------------------------------------------------------------------------
Parameters: c[u,j] = visits × distance from u to candidate j; a[u,k] amount of metric k;
lo[k], hi[k] the band of every territory (tolerance around the mean total / N and/or
absolute min/max); N territories.

Variables: y[j] ∈ {0,1} centre j is open; x[u,j] ∈ {0,1}; total[j,k] ≥ 0.

    (1) min  Σ c[u,j] x[u,j]
    (2) Σ_j x[u,j] = 1                     every unit to one territory
    (3) x[u,j] ≤ y[j]                      only open centres take units
    (4) Σ_j y[j] = N                       exactly N territories
    (5) total[j,k] = Σ_u a[u,k] x[u,j]     territory totals
    (6) lo[k] y[j] ≤ total[j,k] ≤ hi[k] y[j]

With travel only and an absolute maximum workload this is the capacitated p-median problem
(OR-Library `pmedcap1` optima are reproduced in the tests). The objective is travel in the
data's own units (visits × distance).

Method
------
1. Locate–allocate heuristic: greedy centres, then alternately assign units to the open
   centres and move each centre to its territory's 1-median, until nothing changes. The
   assignment is a greedy balance (nearest centre, then cheapest moves until the bands hold)
   improved by a short HiGHS MIP over each unit's 8 nearest open centres (at scale: the
   allocation's LP, then a MIP over the units it splits). Then neighbourhood
   re-optimisation: each pair of bordering territories is designed again on its own (a
   short MIP over their units and a few candidate centres each, both centres free) while
   that lowers travel. This is the incumbent z. With contiguity the plan is first made
   contiguous (`contiguity.design_start`), and the re-optimisation, of pairs and then
   triples, keeps a group's new plan only when each of its territories is one piece
   around its centre.
2. A Lagrangian bound in numpy. Relaxing the assignment rows (2) with multipliers λ leaves
   one knapsack per candidate (units at reduced cost c − λ, load within the first metric's
   band; the bands of further metrics relaxed too, with multipliers ν per candidate);
   L(λ, ν) = Σλ + the N least knapsack values is a lower bound for every λ and ν ≥ 0. The
   knapsacks are solved exactly over integer loads by dynamic programming when the loads
   are integers and the table is small (OR-Library: the bound can then exceed
   the LP's), otherwise fractionally by sorting, sparsely at scale: λ_u is capped at u's
   travel to a nearby candidate (any λ gives a bound), so only pairs in that neighbourhood
   can have negative reduced cost and a step scans those alone. Subgradient ascent with
   Polyak steps towards z. Then z is improved: where an allocation is a
   quick MIP, by plan merging (the centre sets the relaxation chose on the way seed
   locate–allocate runs, and a MIP over the union of their plans' centres recombines
   them), then by a core MIP (the candidates and pairs the relaxation prices cheapest). With
   several band metrics and more pairs than dense knapsacks allow: the LP relaxation of
   (1)–(6) with pricing instead, and its reduced costs below.
3. Fixing: forcing a candidate open, or a pair (u, j), gives a lower bound on every plan
   that uses it (the relaxation with j swapped in for its costliest chosen candidate, plus
   u's knapsack reduced cost). What exceeds the prune level t is dropped, where every plan
   above t costs at least `floor` (floor = z, or z(1 − gap/2) with a gap target; integral
   travel: a better plan costs ≤ z − 1). HiGHS then solves (1)–(6) over what is left from
   the incumbent. Why its bound holds for the full problem: a plan cheaper than floor uses
   only kept pairs and open centres, so optimum ≥ min(floor, the restricted optimum) ≥
   min(floor, the MIP's bound); the reported bound is the larger of that and the
   Lagrangian bound (rounded up when travel is integral). Pruning is valid only against a
   plan actually found (the incumbent), never against a guess. The MIP also carries one
   Lagrangian cut per candidate, Σ_u (c[u,j] − λ_u) x[u,j] ≥ v_j(λ) y[j] at the best λ, so
   its LP starts from the Lagrangian bound instead of the weaker LP bound. When too many
   pairs are left for that search (national scale), its time resumes step 1 from the
   incumbent's relocated centres instead (locate–allocate, then pair re-optimisation).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, partial
from typing import Any

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from optimizer import blocks, contiguity
from optimizer.distance import distance_matrix, spread_rows
from optimizer.domain import DesignData, DistanceMetric, Scenario
from optimizer.errors import InfeasibleScenarioError, InputError, Issue, SolverError
from optimizer.kpi import Book, alignment_kpis, bands_of, territory_table
from optimizer.problem import METRICS, amount_of, assignment_units, fmt
from optimizer.result import PlanResult, RunReport
from optimizer.solve import (
    HighsOptions,
    Progress,
    ProgressCallback,
    ReusableModel,
    RunStatus,
    StopCheck,
    Termination,
    relative_gap,
    run_highs,
)

# Up to this many unit–centre pairs the LP holds them all; above, a working set of each
# unit's nearest candidates, priced with the duals (slow to converge for this LP: the
# x ≤ y rows make it very degenerate, which is also why the interior-point method is used).
FULL_LP_PAIRS = 200_000
# How the time limit is shared, at most (a phase that converges hands its time on): the
# locate–allocate incumbent until this share, the Lagrangian bound until this one, then the
# core heuristic's MIP for this share, and the exact search with the rest.
HEURISTIC_SHARE = 0.25
BOUND_SHARE = 0.6
CORE_SHARE = 0.15
# With contiguity: the contiguous start (after locate–allocate) until the first share when
# it has one by then (else it may take until the second), its neighbourhood re-optimisation
# until the second, the bound until the third (to the end when fixing leaves too many pairs
# for the exact search), and no core heuristic (its plans need not be contiguous).
CONTIGUOUS_START_SHARE = 0.3
CONTIGUOUS_IMPROVE_SHARE = 0.6
CONTIGUOUS_BOUND_SHARE = 0.75
# The exact search after fixing is skipped above this many pairs (a Pyomo build and a MIP
# that size do not close a gap within a planner's time limit).
MIP_PAIRS_MAX = 400_000
OVERTIME_CHECK_SECONDS = 5.0  # how often an ascent in overtime checks whether fixing caught up
# A run that ends this long before its deadline, gap open, reports `stalled`, not the limit.
STALL_SECONDS = 1.0
# The exact search is not started, with a plan in hand, when less time is left than its
# model's build and compile take (about 25 µs a pair: 110,000 pairs of 372 accounts, 1.4 s
# and 1.2 s) and this much search: they ran past the time limit (a 5-s design took 6.9 s).
MIN_EXACT_SECONDS = 0.5
EXACT_SECONDS_PER_PAIR = 25e-6
LP_METHOD = "ipm"


@dataclass(frozen=True)
class DesignProblem:
    """Arrays of one design: U units × J candidate centres × 3 metrics."""

    members: list[np.ndarray]
    unit_of: np.ndarray
    unit_label: list[str]
    amount: np.ndarray  # (U, 3)
    travel: np.ndarray  # (U, J); inf where the pair is unknown
    candidate_ids: list[str]
    n_territories: int
    lo: np.ndarray  # (3,)
    hi: np.ndarray  # (3,)
    account_distance: np.ndarray  # (accounts, J) for KPIs
    visits: np.ndarray
    candidate_is_unit: np.ndarray  # (J,) the centre is a unit's point, not an account
    candidate_latlon: np.ndarray  # (J, 2) WGS84 degrees; NaN without them (planar, matrix)
    notes: tuple[str, ...] = ()  # for the planner: how the candidates were chosen

    @property
    def n_units(self) -> int:
        return len(self.members)

    @property
    def n_candidates(self) -> int:
        return len(self.candidate_ids)

    @cached_property  # used throughout the solve; computed once
    def allowed(self) -> np.ndarray:
        return np.isfinite(self.travel)

    def metrics(self) -> list[int]:
        return [k for k in range(3) if self.lo[k] > 0 or np.isfinite(self.hi[k])]


# A design holds dense unit × candidate arrays (travel, pair masks, reduced costs): the
# national 3,409 places with every place a candidate (11.6 M pairs) peak at about 1 GB, and
# 16,943 × 16,943 (287 M) would need over 24 GB. Above this many account–candidate pairs,
# "every account a candidate" becomes accounts spread over the map, at least
# MIN_CANDIDATES_PER_TERRITORY per territory.
DENSE_PAIRS_MAX = 12_000_000
MIN_CANDIDATES_PER_TERRITORY = 5


def _candidates(data: DesignData, scenario: Scenario, n_terr: int
                ) -> tuple[pd.DataFrame, list[str]]:
    """The candidate centres, as reps are in a realignment (`rep_id` and coordinates, and
    `unit`: whether the centre is a unit's point), and a note for the planner when they were
    thinned."""
    acc, centres, n = data.accounts, scenario.centres, len(data.accounts)
    accounts = acc.rename(columns={"account_id": "rep_id"}).assign(unit=False)
    if isinstance(centres, list):
        issues = centre_list_issues(centres, acc["account_id"], data.unit_points,
                                    scenario.metric)
        if not issues and n * len(centres) > DENSE_PAIRS_MAX:
            issues.append(Issue("scenario", None, "centres", (
                f"{n:,} accounts × {len(centres):,} candidate centres are "
                f"{n * len(centres):,} pairs, more than a design can hold "
                f"({DENSE_PAIRS_MAX:,}): give at most {DENSE_PAIRS_MAX // n:,} centres")))
        if issues:
            raise InputError(issues)
        units = (data.unit_points if data.unit_points is not None
                 else pd.DataFrame(columns=["unit_id"]))
        pool = pd.concat([accounts, units.rename(columns={"unit_id": "rep_id"})
                          .assign(unit=True)], ignore_index=True)
        # An id naming both an account and a unit is the account (the first match).
        return pool.drop_duplicates("rep_id").set_index("rep_id", drop=False) \
            .loc[centres].reset_index(drop=True), []
    if centres == "units":
        pool, noun = _unit_pool(data, scenario).assign(unit=True), "unit"
    else:
        pool, noun = accounts, "account"
    m = len(pool)
    if n * m <= DENSE_PAIRS_MAX:
        return pool.reset_index(drop=True), []
    k = DENSE_PAIRS_MAX // n
    too_many = f"with every one of the {m:,} {noun}s a candidate centre the design would " \
        f"need {n * m:,} account–centre pairs, more than it holds ({DENSE_PAIRS_MAX:,})"
    if k < MIN_CANDIDATES_PER_TERRITORY * n_terr:
        raise InputError([Issue("scenario", None, "centres", (
            f"{too_many}, and {k:,} candidates spread over the map would be fewer than "
            f"{MIN_CANDIDATES_PER_TERRITORY} per territory: list at most {k:,} candidate "
            "centres in `centres`, or design fewer territories or from fewer accounts"))])
    spread = spread_rows(pool, scenario.metric, k)
    if spread is None:
        raise InputError([Issue("scenario", None, "centres", (
            f"{too_many}, and without coordinates they cannot be thinned: list at most "
            f"{k:,} candidate centres in `centres`"))])
    return pool.iloc[spread].reset_index(drop=True), [
        f"candidate centres: {len(spread):,} {noun}s spread over the map (a k-means of the "
        f"{m:,} {noun}s' locations), not all of them, which would need {n * m:,} "
        f"account–centre pairs (this design holds {DENSE_PAIRS_MAX:,}); the bound is over "
        "these candidates. List candidates in `centres` to choose them yourself"]


def centre_list_issues(centres: list[str], account_ids: pd.Series,
                       unit_points: pd.DataFrame | None,
                       metric: DistanceMetric) -> list[Issue]:
    """What is wrong with a list of candidate centres: ids listed twice, ids that name
    neither an account nor a unit (`unit_points`: the units the list may name, see
    `geo.centre_unit_points`), and units measured with planar coordinates."""
    listed = pd.Series(centres, dtype=object)
    issues = []
    twice = listed[listed.duplicated()].unique()
    if len(twice):
        issues.append(Issue("scenario", None, "centres",
                            f"listed more than once: {', '.join(twice[:10])}"))
    is_account = listed.isin(account_ids.astype(str))
    is_unit = ~is_account & (listed.isin(unit_points["unit_id"]) if unit_points is not None
                             else False)
    unknown = listed[~is_account & ~is_unit].unique()
    if len(unknown):
        what = "neither an account nor a unit" if unit_points is not None else (
            "not an account (a centre may also be a unit of the units file, when one is "
            "given)")
        numbers = any(c.isdigit() for c in unknown)
        issues.append(Issue("scenario", None, "centres",
                            f"{len(unknown):,} listed centre(s) {what}: "
                            f"{', '.join(unknown[:10])}" + (
                                " (in YAML, quote ids written with digits: an unquoted 02134 "
                                "is read as a number and loses its leading zero)"
                                if numbers else "")))
    if is_unit.any() and metric is DistanceMetric.euclidean:
        issues.append(Issue("scenario", None, "centres", _PLANAR_UNITS))
    return issues


_PLANAR_UNITS = ("centres at units are placed at the units' polygons, which are in degrees, "
                 "but metric euclidean measures planar x, y: use metric haversine (or matrix "
                 "with a distances file)")


def unit_centre_issues(scenario: Scenario, has_units: bool) -> list[Issue]:
    """What stops `centres: units` from running (nothing for other centres)."""
    if scenario.centres != "units":
        return []
    if not has_units:
        return [Issue("scenario", None, "centres", (
            "centres: units needs the units' polygons (a units file with a unit_id per "
            "polygon: --units, or a data set that has one)"))]
    if scenario.metric is DistanceMetric.euclidean:
        return [Issue("scenario", None, "centres", _PLANAR_UNITS)]
    return []


def _unit_pool(data: DesignData, scenario: Scenario) -> pd.DataFrame:
    """`centres: units`: every unit of the polygons, at its point (`geo.unit_points`)."""
    issues = unit_centre_issues(scenario, data.unit_points is not None
                                and len(data.unit_points) > 0)
    if issues:
        raise InputError(issues)
    assert data.unit_points is not None
    return data.unit_points.rename(columns={"unit_id": "rep_id"})


def scenario_issues(scenario: Scenario, source: str = "scenario",
                    prefix: str = "") -> list[Issue]:
    """What a valid scenario lacks for a design: the number of territories, hard bands.
    `prefix` places the fields in a larger document (a capacity plan's `sizing.scenario.`)."""
    issues = []
    if scenario.territories is None:
        issues.append(Issue(source, None, f"{prefix}territories",
                            "design needs the number of territories"))
    for metric in METRICS:
        rule = scenario.balance.rule(metric)
        if rule.active and not rule.hard:
            issues.append(Issue(source, None, f"{prefix}balance.{metric.value}.hard",
                                "soft bands are not supported in design yet; use hard bands"))
    return issues


def prepare(data: DesignData, scenario: Scenario) -> DesignProblem:
    """Arrays of the design model; raises InputError/InfeasibleScenarioError for scenarios
    that cannot be designed."""
    acc = data.accounts
    if issues := scenario_issues(scenario):
        raise InputError(issues)
    n_terr = int(scenario.territories or 0)
    centres, notes = _candidates(data, scenario, n_terr)
    if "locked_rep" in acc.columns and (locked := int(acc["locked_rep"].notna().sum())):
        # A lock names a rep, and a design has none: say so rather than drop it unseen.
        notes.append(f"locked_rep is ignored in a design ({locked:,} accounts carry one): "
                     "territories are carved without reps")
    if scenario.eligibility:
        notes.append("eligibility is ignored in a design: territories are carved without "
                     "reps or roles; it applies when reps are aligned to them")
    if n_terr > len(centres):
        raise InfeasibleScenarioError([f"{n_terr} territories need at least as many candidate "
                                       f"centres, but there are {len(centres)}"])
    d = distance_matrix(acc, centres, scenario.metric, scenario.circuity, data.distances)

    # Units: hierarchies move whole (same rule as realignment).
    units = assignment_units(acc, scenario.keep_hierarchies)
    members, unit_of, label, amount = units.members, units.unit_of, units.label, units.amount
    visits = acc["visits"].to_numpy(float)
    travel_acc = visits[:, None] * d
    # Account rows summed per unit: rows sorted by unit, then one reduceat (np.add.at is an
    # order of magnitude slower on a national matrix). An unknown distance (NaN) stays NaN.
    order = np.argsort(unit_of, kind="stable")
    starts = np.searchsorted(unit_of[order], np.arange(len(members)))
    travel = np.add.reduceat(travel_acc[order], starts, axis=0)
    travel[np.isnan(travel)] = np.inf

    totals = amount.sum(axis=0)
    mean = totals / n_terr
    lo = np.zeros(3)
    hi = np.full(3, np.inf)
    for k, metric in enumerate(METRICS):
        rule = scenario.balance.rule(metric)
        if rule.tolerance is not None:
            lo[k] = max(lo[k], mean[k] * (1 - rule.tolerance))
            hi[k] = min(hi[k], mean[k] * (1 + rule.tolerance))
        if rule.min is not None:
            lo[k] = max(lo[k], rule.min)
        if rule.max is not None:
            hi[k] = min(hi[k], rule.max)
    reasons = []
    for k, metric in enumerate(METRICS):
        if hi[k] * n_terr < totals[k] - 1e-9:
            reasons.append(f"{n_terr} territories of at most {amount_of(metric, hi[k])} hold "
                           f"{fmt(metric, hi[k] * n_terr)}, but the accounts have "
                           f"{fmt(metric, totals[k])}")
        if lo[k] * n_terr > totals[k] + 1e-9:
            reasons.append(f"{n_terr} territories of at least {amount_of(metric, lo[k])} need "
                           f"{fmt(metric, lo[k] * n_terr)}, but the accounts have only "
                           f"{fmt(metric, totals[k])}")
        for u in np.flatnonzero(amount[:, k] > hi[k] + 1e-9):
            reasons.append(f"account {label[u]} alone has {amount_of(metric, amount[u, k])}, "
                           f"more than a territory may hold ({fmt(metric, hi[k])})")
    for u in np.flatnonzero(~np.isfinite(travel).any(axis=1)):
        reasons.append(f"account {label[u]} has no known distance to any candidate centre")
    if reasons:
        raise InfeasibleScenarioError(reasons)
    return DesignProblem(members, unit_of, label, amount, travel,
                         [str(x) for x in centres["rep_id"]], n_terr, lo, hi, d, visits,
                         centres["unit"].to_numpy(bool), _latlon(centres), tuple(notes))


def _latlon(frame: pd.DataFrame) -> np.ndarray:
    if {"lat", "lon"} <= set(frame.columns):
        return frame[["lat", "lon"]].to_numpy(float)
    return np.full((len(frame), 2), np.nan)


# ---------------------------------------------------------------------------------------------
# Model


def build(p: DesignProblem, pair_unit: np.ndarray, pair_centre: np.ndarray, *,
          relaxed: bool = False, closed: np.ndarray | None = None,
          cuts: Sequence[tuple[np.ndarray, np.ndarray]] = ()) -> pyo.ConcreteModel:
    """(1)–(6) over the given pairs; `closed` candidates are fixed shut. Each (λ, v) in
    `cuts` adds the Lagrangian cut of every candidate j (see `_add_lagrangian_cuts`)."""
    m = pyo.ConcreteModel(name="design")
    xs = blocks.add_assignment_vars(m, len(pair_unit), relaxed=relaxed)
    # (2) every unit to one territory
    blocks.add_assignment(m, xs, pair_unit, p.n_units)
    # (4) exactly N centres, (3) only open centres take units
    blocks.add_centre_choice(m, p.n_candidates, p.n_territories, relaxed=relaxed,
                             fixed_closed=closed)
    blocks.add_open_centre_link(m, xs, pair_centre)
    # (5)–(6) territory totals within bands
    metrics = p.metrics()
    scale = _metric_scale(p)
    blocks.add_loads(m, xs, pair_centre, (p.amount * scale)[pair_unit], p.n_candidates, metrics)
    blocks.add_centre_bands(m, p.lo * scale, p.hi * scale, p.n_candidates, metrics)
    if cuts:
        m.lagrangian_cut = pyo.ConstraintList()
        for lam, value in cuts:
            _add_lagrangian_cuts(m.lagrangian_cut, m, xs, p, pair_unit, pair_centre, lam, value)
    # (1) travel
    m.objective = pyo.Objective(expr=blocks.linear(p.travel[pair_unit, pair_centre], xs))
    return m


def build_allocation(p: DesignProblem, pair_unit: np.ndarray, pair_centre: np.ndarray,
                     centres: np.ndarray, *, relaxed: bool = False) -> pyo.ConcreteModel:
    """(1), (2), (5), (6) with the open centres given (`centres`, sorted): the allocation step
    of the heuristic. No y and no x ≤ y rows, which at national scale are most of the
    model's building time."""
    m = pyo.ConcreteModel(name="allocation")
    xs = blocks.add_assignment_vars(m, len(pair_unit), relaxed=relaxed)
    blocks.add_assignment(m, xs, pair_unit, p.n_units)
    metrics = p.metrics()
    scale = _metric_scale(p)
    position = np.searchsorted(centres, pair_centre)
    blocks.add_loads(m, xs, position, (p.amount * scale)[pair_unit], len(centres), metrics)
    lo, hi = (np.tile(b * scale, (len(centres), 1)) for b in (p.lo, p.hi))
    none = np.zeros_like(lo)
    blocks.add_bands(m, lo, hi, none, none, none, metrics, elastic=None)
    m.objective = pyo.Objective(expr=blocks.linear(p.travel[pair_unit, pair_centre], xs))
    return m


def _add_lagrangian_cuts(rows: pyo.ConstraintList, m: pyo.ConcreteModel, xs: list[Any],
                         p: DesignProblem, pair_unit: np.ndarray, pair_centre: np.ndarray,
                         lam: np.ndarray, value: np.ndarray) -> None:
    r"""Σ_u (c[u,j] − λ_u) x[u,j] ≥ v_j(λ) y[j] for every candidate j: the units of an open
    centre form a feasible knapsack, which costs at least its least value v_j; a shut centre
    has no units. Summed over j they give the MIP's LP at least the Lagrangian bound L(λ),
    and they stay valid at every node of the search, where fixing centres moves the bound
    as a Lagrangian branch-and-bound would."""
    travel = p.travel[pair_unit, pair_centre]
    reduced = travel - lam[pair_unit]
    scale = max(1.0, float(np.abs(travel).max(initial=0.0)))
    for j, members in enumerate(blocks.group_positions(pair_centre, p.n_candidates)):
        if not len(members) or not np.isfinite(value[j]):
            continue
        expr = blocks.linear(reduced[members], [xs[q] for q in members])
        # A little slack for rounding in v_j: the cut must never cut off a plan.
        rows.add(expr - (float(value[j]) - 1e-7 * scale) * m.y[j] >= 0)


def _metric_scale(p: DesignProblem) -> np.ndarray:
    mean = p.amount.sum(axis=0) / p.n_territories
    return np.where(mean > 0, 1.0 / np.where(mean > 0, mean, 1.0), 1.0)


# ---------------------------------------------------------------------------------------------
# Heuristic


def _greedy_centres(p: DesignProblem, rng: np.random.Generator) -> np.ndarray:
    """Greedy-add p-median centres (uncapacitated), or k-means++-style sampling when large."""
    t = np.where(p.allowed, p.travel, 1e18)
    if p.n_units * p.n_candidates <= 2_000_000:
        best = np.full(p.n_units, 1e18)
        chosen: list[int] = []
        for _ in range(p.n_territories):
            gain = np.minimum(best[:, None], t).sum(axis=0)
            gain[chosen] = np.inf
            j = int(np.argmin(gain))
            chosen.append(j)
            best = np.minimum(best, t[:, j])
        return np.array(chosen)
    chosen = [int(rng.integers(p.n_candidates))]
    best = t[:, chosen[0]].copy()
    for _ in range(p.n_territories - 1):
        weight = np.minimum(best, 1e12) @ (t < 1e17)
        weight[chosen] = 0
        j = int(rng.choice(p.n_candidates, p=weight / weight.sum()))
        chosen.append(j)
        best = np.minimum(best, t[:, j])
    return np.array(chosen)


# The heuristic's allocation offers each unit its ALLOCATE_NEAREST nearest open centres only
# (all of them when that leaves no balanced assignment): a far smaller MIP at national scale.
ALLOCATE_NEAREST = 8
ALLOCATE_SECONDS = 10.0
# Each allocation is one step of a heuristic: closing its last tenths of a percent is HiGHS'
# slowest part (us-regional into 6: 13.6 s at 0.1 %, 7.9 s at 0.5 %, the same plan).
ALLOCATE_GAP = 5e-3
# Above this many unit–centre pairs the allocation rounds its LP over all of them first
# (`_allocate_from_lp`); the nearest-centre restriction can leave a remote centre unable to
# gather its band, and the LP is cheap where the MIP is not.
ALLOCATE_LP_PAIRS = 20_000


def _balance_greedy(p: DesignProblem, centres: np.ndarray) -> np.ndarray | None:
    """Each unit to its nearest open centre, then the cheapest single moves out of the worst
    over-full or into the worst under-full territory until every band holds (one band metric;
    None when stuck). Position of each unit's centre in `centres`."""
    metrics = p.metrics()
    if len(metrics) > 1:
        return None
    t = np.where(p.allowed[:, centres], p.travel[:, centres], np.inf)
    rows = np.arange(p.n_units)
    own = np.argmin(t, axis=1)
    if not np.isfinite(t[rows, own]).all() or not metrics:
        return own if np.isfinite(t[rows, own]).all() else None
    k = metrics[0]
    a, lo, hi = p.amount[:, k], p.lo[k], p.hi[k]
    load = np.bincount(own, weights=a, minlength=len(centres))
    tol = 1e-9 * max(1.0, float(a.sum()))
    extra = t - t[rows, own][:, None]  # cost of moving each unit to each centre; kept current
    for _ in range(4 * p.n_units):
        over, under = load - hi, lo - load
        worst = int(np.argmax(np.maximum(over, under)))
        if max(over[worst], under[worst]) <= tol:
            return own
        # Only the rows that can move are scanned (a whole units × centres scan per move
        # took 35 s for 17,000 accounts × 50 centres).
        if over[worst] > tol:  # move one of its units to a territory with room
            movers = np.flatnonzero(own == worst)
            fits = load[None, :] + a[movers, None] <= hi + tol
            fits[:, worst] = False
            cost, targets = np.where(fits, extra[movers], np.inf), np.arange(len(centres))
        else:  # bring in a unit whose territory can spare it
            movers = np.flatnonzero((load[own] - a >= lo - tol) & (own != worst))
            cost, targets = extra[movers, worst][:, None], np.array([worst])
        if not len(movers):
            return None
        r, c = np.unravel_index(int(np.argmin(cost)), cost.shape)
        if not np.isfinite(cost[r, c]):
            return None
        u, j = int(movers[r]), int(targets[c])
        load[own[u]] -= a[u]
        load[j] += a[u]
        own[u] = j
        extra[u] = t[u] - t[u, j]
    return None


class _AllocationLP:
    """The allocation LP over every unit and N territory slots, slot i holding centres[i],
    compiled once and solved again for each centre set with that set's travel as costs.
    Between locate–allocate rounds only the costs change, so HiGHS starts from the last
    basis, and the Pyomo build and compile (national scale: about 2.7 s, more than the
    solve) happen once per run instead of once per round."""

    def __init__(self, p: DesignProblem, threads: int | None) -> None:
        self.p, self.threads = p, threads
        self.model: ReusableModel | None = None
        self.unit = self.slot = np.zeros(0, dtype=int)

    def shares(self, centres: np.ndarray, time_limit: float) -> np.ndarray | None:
        """Each unit's share per slot (units × slots), or None when the LP has no optimum
        in time."""
        p = self.p
        started = time.perf_counter()
        if self.model is None or len(centres) != len(self.slot) // max(p.n_units, 1):
            self.unit = np.repeat(np.arange(p.n_units), len(centres))
            self.slot = np.tile(np.arange(len(centres)), p.n_units)
            first = np.sort(centres)
            self.model = ReusableModel(
                build_allocation(p, self.unit, first[self.slot], first, relaxed=True),
                HighsOptions(threads=self.threads))
        allowed = p.allowed[self.unit, centres[self.slot]]
        self.model.set_costs("x", np.where(allowed, p.travel[self.unit, centres[self.slot]], 0))
        self.model.set_upper("x", np.where(allowed, np.inf, 0.0))
        # The first call builds the model (17,000 accounts × 50 centres: 8 s): that counts too.
        sol = self.model.solve(max(time_limit - (time.perf_counter() - started), 0.2))
        if sol.termination is not Termination.optimal or "x" not in sol.values:
            return None
        return sol.values["x"].reshape(p.n_units, len(centres))


def _allocate(p: DesignProblem, centres: np.ndarray, time_limit: float,
              threads: int | None, nearest: int | None = ALLOCATE_NEAREST,
              lp: _AllocationLP | None = None) -> tuple[float, np.ndarray] | None:
    """Balanced assignment of units to the given open centres: at scale by rounding the
    allocation LP (`lp`), otherwise by a HiGHS MIP from the greedy balance, which is also
    the answer when the MIP finds nothing."""
    started = time.perf_counter()
    centres = np.asarray(centres)
    ok = p.allowed[:, centres]
    if not ok.any(axis=1).all():
        return None
    if ok.sum() > ALLOCATE_LP_PAIRS:
        rounded = _allocate_from_lp(p, lp or _AllocationLP(p, threads), centres, time_limit,
                                    threads)
        if rounded is not None:
            return rounded
    greedy = _balance_greedy(p, centres)
    if nearest is not None and nearest < len(centres):
        t = np.where(ok, p.travel[:, centres], np.inf)
        far = np.argpartition(t, nearest - 1, axis=1)[:, nearest:]
        np.put_along_axis(ok, far, False, axis=1)
        if greedy is not None:
            ok[np.arange(p.n_units), greedy] = True
    u, jj = np.nonzero(ok)
    j = centres[jj]
    model = build_allocation(p, u, j, np.sort(centres))
    start: dict[str, dict[object, float]] | None = None if greedy is None else {
        "x": {int(i): 1.0 for i in np.flatnonzero(greedy[u] == jj)}}
    # A heuristic step: a short, loosely converged MIP (the exact search comes later), in
    # what is left of the time after the LP that may have been tried first.
    left = time_limit - (time.perf_counter() - started)
    sol = run_highs(model, HighsOptions(time_limit=max(min(left, ALLOCATE_SECONDS), 0.2),
                                        mip_gap=ALLOCATE_GAP, threads=threads), start=start)
    if not sol.has_solution or sol.objective is None:
        if greedy is not None:
            plan = centres[greedy]
            return _plan_cost(p, plan), plan
        left = time_limit - (time.perf_counter() - started)
        if nearest is not None and nearest < len(centres) and left > 0.5:
            return _allocate(p, centres, left, threads, nearest=None, lp=lp)
        return None
    chosen = sol.values["x"] > 0.5
    unit_centre = np.full(p.n_units, -1)
    unit_centre[u[chosen]] = j[chosen]
    return float(sol.objective), unit_centre


def _allocate_from_lp(p: DesignProblem, lp: _AllocationLP, centres: np.ndarray,
                      time_limit: float, threads: int | None) -> tuple[float, np.ndarray] | None:
    """The allocation at scale: its LP, then a MIP over the units the LP splits (a basic
    solution splits at most about one unit per binding band), the others kept where the LP
    put them. A MIP over every pair spends its time on root cuts instead (national data:
    10 s without a plan). None when the LP fails or the rounding cannot meet the bands."""
    started = time.perf_counter()
    share = lp.shares(centres, time_limit)
    if share is None:
        return None
    whole = np.greater(share, 1 - 1e-6)
    sub = whole | (~whole.any(axis=1)[:, None] & p.allowed[:, centres])
    u, jj = np.nonzero(sub)
    j = centres[jj]
    left = time_limit - (time.perf_counter() - started)
    sol = run_highs(build_allocation(p, u, j, np.sort(centres)),
                    HighsOptions(time_limit=max(min(left, ALLOCATE_SECONDS), 0.2),
                                 mip_gap=ALLOCATE_GAP, threads=threads))
    if not sol.has_solution or sol.objective is None:
        return None
    chosen = sol.values["x"] > 0.5
    unit_centre = np.full(p.n_units, -1)
    unit_centre[u[chosen]] = j[chosen]
    return float(sol.objective), unit_centre


def _relocate(p: DesignProblem, unit_centre: np.ndarray) -> np.ndarray:
    """Each territory's 1-median: the candidate with least travel to its units."""
    t = np.where(p.allowed, p.travel, 1e18)
    new: list[int] = []
    for j in np.unique(unit_centre):
        members = unit_centre == j
        cost = t[members].sum(axis=0)
        cost[new] = np.inf  # two territories cannot share a centre
        new.append(int(np.argmin(cost)))
    return np.array(new)


# An allocation step: the travel and plan of the given open centres, or None.
Allocator = Callable[[np.ndarray], "tuple[float, np.ndarray] | None"]


def locate_allocate(p: DesignProblem, deadline: float, threads: int | None,
                    rounds: int = 20, centres: np.ndarray | None = None, patience: int = 3,
                    allocate: Allocator | None = None) -> tuple[float, np.ndarray] | None:
    """The incumbent of step 1: alternate allocation and relocation until stable (or
    `patience` rounds without a better plan: at scale it ends in a cycle of near-equal
    plans), from greedy centres or the given ones. `allocate` replaces the MIP allocation
    (plan merging screens with the greedy balance)."""
    if centres is None:
        centres = _greedy_centres(p, np.random.default_rng(0))
    lp: _AllocationLP | None = None
    if allocate is None:
        lp = _AllocationLP(p, threads)  # built at the first allocation that needs it

        def allocate(c: np.ndarray) -> tuple[float, np.ndarray] | None:
            return _allocate(p, c, min(30.0, deadline - time.perf_counter()), threads, lp=lp)
    best: tuple[float, np.ndarray] | None = None
    seen: set[tuple[int, ...]] = set()
    idle = 0
    for _ in range(rounds):
        key = tuple(sorted(int(c) for c in centres))
        if key in seen or idle >= patience or time.perf_counter() > deadline:
            break
        seen.add(key)
        alloc = allocate(centres)
        if alloc is None:
            break
        if best is None or alloc[0] < best[0] - 1e-9:
            best, idle = alloc, 0
        else:
            idle += 1
        moved, held = _relocate(p, alloc[1]), np.unique(alloc[1])
        if lp is not None and lp.model is not None and len(held) == len(centres):
            # Slot i keeps its territory: the allocation LP restarts from a near basis.
            moved = moved[np.searchsorted(held, centres)]
        centres = moved
    return best


# Neighbourhood re-optimisation: a few neighbouring territories (two, or three) solved again
# together as a design of their own (their units; each territory's GROUP_CANDIDATES cheapest
# centres for its current units; all their centres free), by a short MIP. Locate–allocate
# moves one centre at a time against fixed neighbours; this moves several centres and the
# borders between them at once.
GROUP_CANDIDATES = 5
GROUP_SECONDS = 1.0
GROUP_GAP = 1e-3


def _neighbour_groups(p: DesignProblem, unit_centre: np.ndarray, size: int
                      ) -> list[tuple[int, ...]]:
    """Groups of `size` territories (by centre) that border each other, most shared border
    first: a unit whose `size` nearest open centres are the group lies on their borders."""
    centres = np.unique(unit_centre)
    if len(centres) < size:
        return []
    t = np.where(p.allowed[:, centres], p.travel[:, centres], np.inf)
    near = np.sort(centres[np.argpartition(t, size - 1, axis=1)[:, :size]], axis=1)
    groups, votes = np.unique(near, axis=0, return_counts=True)
    return [tuple(int(c) for c in g) for g in groups[np.argsort(-votes, kind="stable")]]


def _resolve_group(p: DesignProblem, unit_centre: np.ndarray, group: tuple[int, ...],
                   time_limit: float, threads: int | None) -> np.ndarray | None:
    """A better plan for the group's territories, or None when the MIP finds none."""
    units = np.flatnonzero(np.isin(unit_centre, group))
    travel = np.where(p.allowed[units], p.travel[units], np.inf)
    taken = np.zeros(p.n_candidates, dtype=bool)  # other territories' centres stay theirs
    taken[np.unique(unit_centre)] = True
    taken[list(group)] = False
    cands = set(group)
    k = min(GROUP_CANDIDATES, p.n_candidates - 1)
    for c in group:
        one_median = np.where(taken, np.inf, travel[unit_centre[units] == c].sum(axis=0))
        cands.update(int(j) for j in np.argpartition(one_median, k)[:k + 1]
                     if np.isfinite(one_median[j]))
    cand = np.array(sorted(cands))
    sub = replace(p, members=[p.members[u] for u in units],
                  unit_label=[p.unit_label[u] for u in units], amount=p.amount[units],
                  travel=travel[:, cand], candidate_ids=[p.candidate_ids[j] for j in cand],
                  candidate_is_unit=p.candidate_is_unit[cand],
                  candidate_latlon=p.candidate_latlon[cand], n_territories=len(group))
    u, j = np.nonzero(np.isfinite(sub.travel))
    now = np.searchsorted(cand, unit_centre[units])
    before = float(sub.travel[np.arange(len(units)), now].sum())
    start: dict[str, dict[object, float]] = {
        "x": {int(i): 1.0 for i in np.flatnonzero(now[u] == j)},
        "y": {int(np.searchsorted(cand, c)): 1.0 for c in group}}
    sol = run_highs(build(sub, u, j), HighsOptions(time_limit=time_limit, mip_gap=GROUP_GAP,
                                                   threads=threads), start=start)
    if not sol.has_solution or sol.objective is None or \
            sol.objective >= before - 1e-9 * max(1.0, abs(before)):
        return None
    chosen = sol.values["x"] > 0.5
    better = unit_centre.copy()
    better[units[u[chosen]]] = cand[j[chosen]]
    return better


def improve_by_neighbours(p: DesignProblem, incumbent: tuple[float, np.ndarray],
                          deadline: float, threads: int | None,
                          should_stop: StopCheck | None = None, sizes: Sequence[int] = (2,),
                          accept: Callable[[np.ndarray, np.ndarray], bool] | None = None
                          ) -> tuple[float, np.ndarray]:
    """Re-optimise neighbouring groups of territories, pairs first (then larger groups from
    `sizes` once no pair improves), until none improves (a local optimum for those moves)
    or the deadline. `accept(plan, territories)`, when given, vets each better plan by the
    territories the group became (contiguity: each one piece)."""
    unit_centre = incumbent[1].copy()
    version: dict[int, int] = {}  # bumped whenever a territory's units change
    tried: set[tuple[tuple[int, int], ...]] = set()  # groups that did not improve, as they were
    for size in sizes:
        improved = True
        while improved:
            improved = False
            for group in _neighbour_groups(p, unit_centre, size):
                left = deadline - time.perf_counter()
                if left < 0.2 or (should_stop is not None and should_stop()):
                    return _plan_cost(p, unit_centre), unit_centre
                key = tuple((c, version.get(c, 0)) for c in group)
                if key in tried or not np.isin(group, unit_centre).all():
                    continue
                better = _resolve_group(p, unit_centre, group, min(GROUP_SECONDS, left),
                                        threads)
                if better is not None and accept is not None and not accept(
                        better, np.unique(better[np.isin(unit_centre, group)])):
                    better = None
                if better is None:
                    tried.add(key)
                    continue
                for c in set(group) | set(np.unique(better[np.isin(unit_centre, group)])):
                    version[int(c)] = version.get(int(c), 0) + 1
                unit_centre, improved = better, True
    return _plan_cost(p, unit_centre), unit_centre


def _plan_cost(p: DesignProblem, unit_centre: np.ndarray) -> float:
    return float(p.travel[np.arange(p.n_units), unit_centre].sum())


# ---------------------------------------------------------------------------------------------
# Lagrangian relaxation of the assignment rows (2)

# Knapsacks are solved exactly over integer loads (dynamic programming) when the band metric is
# integral and candidates × units × (largest load + 1) stays below this; otherwise fractionally.
DP_CELLS = 20_000_000
# Above this many candidate–unit pairs, fractional knapsacks are solved sparsely: only the
# pairs of negative reduced cost are gathered (from each unit's neighbourhood: the multipliers
# are capped so that no other pair can be negative), which is exact for every candidate whose
# negative pairs reach the lower band and a valid lower bound for the others (those are redone
# in full when the relaxation picks them).
SPARSE_PAIRS = 2_000_000
# The neighbourhood of a unit at scale, in territories' worth of candidates (see `cap`).
NEIGHBOURHOOD = 4


def _fractional_knapsacks(r: np.ndarray, amount: np.ndarray, lo: float, hi: float
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: min Σ r_i x_i subject to lo ≤ Σ amount_i x_i ≤ hi, 0 ≤ x ≤ 1 (amount > 0;
    r = inf marks an item the row may not take).

    Greedy by cost per unit of load: items cheaper per unit than the critical one are taken
    whole, the critical one in part. Returns the value (inf where lo is out of reach), the
    critical ratio μ (the knapsack's dual: forcing item i in costs at least r_i − μ·amount_i
    more), and the primal x as sorted item positions, how many are whole, the last's fraction.
    """
    rows = np.arange(r.shape[0])
    amt = np.broadcast_to(amount, r.shape)
    q = r / amt
    order = np.argsort(q, axis=1, kind="stable")
    qs = np.take_along_axis(q, order, axis=1)
    rs = np.take_along_axis(r, order, axis=1)
    ok = np.isfinite(rs)
    as_ = np.where(ok, np.take_along_axis(amt, order, axis=1), 0.0)
    rs = np.where(ok, rs, 0.0)
    cum_a = np.cumsum(as_, axis=1)
    cum_r = np.cumsum(rs, axis=1)
    m = r.shape[1]
    n_neg = (qs < 0).sum(axis=1)  # the items worth taking for free form a prefix
    a_neg = np.where(n_neg > 0, cum_a[rows, np.maximum(n_neg - 1, 0)], 0.0)
    inside = (a_neg >= lo) & (a_neg <= hi)
    target = np.clip(a_neg, lo, hi)
    s = np.where(inside, n_neg, (cum_a < target[:, None]).sum(axis=1))
    found = inside | (s < m)
    sc = np.minimum(s, m - 1)
    prev_a = np.where(s > 0, cum_a[rows, np.maximum(s - 1, 0)], 0.0)
    prev_r = np.where(s > 0, cum_r[rows, np.maximum(s - 1, 0)], 0.0)
    crit_a = as_[rows, sc]
    frac = np.where(inside | ~found, 0.0,
                    (target - prev_a) / np.where(crit_a > 0, crit_a, 1.0))
    value = np.where(found, prev_r + frac * rs[rows, sc], np.inf)
    mu = np.where(inside, 0.0, np.where(found, qs[rows, sc], np.inf))
    return value, mu, order, s, frac


def _cheapest_knapsacks(r: np.ndarray, amount: np.ndarray, lo: float, hi: float, prefix: int
                        ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray,
                                   np.ndarray]:
    """`_fractional_knapsacks` from each row's `prefix` cheapest items per unit of load (a
    partition instead of a full sort), redone in full for the rows whose greedy reaches the
    end of their prefix: where it stops inside, every other item costs more per unit of load,
    so the prefix's solution is the row's. The sorted item positions come as one array a row.
    """
    m = r.shape[1]
    if prefix >= m:
        v, mu, order, s, frac = _fractional_knapsacks(r, amount, lo, hi)
        return v, mu, list(order), s, frac
    amt = np.broadcast_to(amount, r.shape)
    part = np.argpartition(r / amt, prefix - 1, axis=1)[:, :prefix]
    v, mu, order, s, frac = _fractional_knapsacks(np.take_along_axis(r, part, axis=1),
                                                  np.take_along_axis(amt, part, axis=1), lo, hi)
    orders = list(np.take_along_axis(part, order, axis=1))
    redo = np.flatnonzero(s >= prefix)
    if len(redo):
        rv, rmu, rorder, rs, rfrac = _fractional_knapsacks(r[redo], amt[redo], lo, hi)
        v[redo], mu[redo], s[redo], frac[redo] = rv, rmu, rs, rfrac
        for t, row in enumerate(redo):
            orders[row] = rorder[t]
    return v, mu, orders, s, frac


def _integer_knapsacks(r: np.ndarray, amount: np.ndarray, lo: int, hi: int, *,
                       keep: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per row: min Σ r_i x_i over x ∈ {0,1} with lo ≤ Σ amount_i x_i ≤ hi (integer amounts
    ≥ 1), by dynamic programming over loads. Returns the value (inf: infeasible), the profile
    f[row, c] and (with `keep`) the decisions for recovering x. With lo = 0 only items of
    negative cost enter: f[row, c] is then the least cost of a load of exactly c from those,
    and its minimum over any range starting at 0 is still exact (a costly item never helps
    under an upper bound alone)."""
    n_rows, n_items = r.shape
    f = np.full((n_rows, hi + 1), np.inf)
    f[:, 0] = 0.0
    took = np.zeros((n_items, n_rows, hi + 1), dtype=bool) if keep else None
    for i in range(n_items):
        a = int(amount[i])
        if a > hi:
            continue
        if lo == 0:
            rows = np.flatnonzero(r[:, i] < 0)
            if not len(rows):
                continue
            cand = f[rows, : hi + 1 - a] + r[rows, i:i + 1]
            old = f[rows, a:]
            better = cand < old
            f[rows, a:] = np.where(better, cand, old)
            if took is not None:
                took[i, rows, a:] = better
            continue
        cand = f[:, : hi + 1 - a] + r[:, i:i + 1]
        if took is not None:
            took[i, :, a:] = cand < f[:, a:]
        np.minimum(f[:, a:], cand, out=f[:, a:])
    return f[:, lo:].min(axis=1), f, took


def _knapsack_items(f: np.ndarray, took: np.ndarray, amount: np.ndarray, row: int,
                    lo: int) -> np.ndarray:
    """The items of row `row`'s best knapsack (load ≥ lo), read back from the profile `f`
    and the decisions `took` of `_integer_knapsacks(..., keep=True)`, last item first."""
    load = lo + int(np.argmin(f[row, lo:]))
    items = []
    for item in range(len(amount) - 1, -1, -1):
        if took[item, row, load]:
            items.append(item)
            load -= int(amount[item])
    return np.array(items, dtype=int)


def _taken(order: np.ndarray, whole: int, frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Item positions and weights of a fractional knapsack's solution."""
    last = whole + (1 if frac > 0 and whole < len(order) else 0)
    weights = np.ones(last)
    if last > whole:
        weights[-1] = frac
    return order[:last], weights


@dataclass
class _Relaxed:
    """The relaxed problem solved at one λ."""

    bound: float  # Σ λ + the N least knapsack values: a lower bound (on the open candidates)
    lam: np.ndarray  # (U,)
    value: np.ndarray  # (J,) knapsack value v_j (inf: closed, or cannot reach the band)
    free_value: np.ndarray  # (J,) the part of v_j from units with no load
    ratio: np.ndarray  # (J,) critical ratio μ_j of the fractional knapsack
    profile: np.ndarray | None  # (J, H+1) integer knapsacks' profile
    chosen: np.ndarray  # (N,) candidates the relaxation opens
    served: np.ndarray  # (U,) Σ_{j chosen} x[u, j]
    owner: np.ndarray  # (U,) a chosen candidate taking u whole, or -1
    integral: bool  # the knapsacks' x are 0/1
    nu: np.ndarray | None = None  # (2, J, M) other metrics' band multipliers (upper, lower)
    load2: np.ndarray | None = None  # (N, M) the chosen candidates' loads of those metrics

    def centre_bounds(self) -> np.ndarray:
        """A lower bound on every plan that opens candidate j: the relaxation forced to open
        j instead of its most costly chosen candidate."""
        extra = np.maximum(self.value - self.value[self.chosen].max(), 0.0)
        extra[self.chosen] = 0.0
        return self.bound + extra


class Lagrangian:
    r"""The relaxation of (1)–(6) without the assignment rows (2), at multipliers λ:

        L(λ) = Σ_u λ_u + (sum of the N least v_j(λ)),
        v_j(λ) = min Σ_u (c[u,j] − λ_u) x[u,j]  s.t.  lo ≤ Σ_u a[u] x[u,j] ≤ hi,

    one knapsack per candidate j over the band of the first active metric (units without load
    are taken when their reduced cost is negative). Every λ gives a lower bound on (1)–(6).
    With fractional knapsacks, max_λ L(λ) is the LP bound of (1)–(6); integral ones (exact, by
    dynamic programming over integer loads) can make it stronger. Candidates in `closed` are
    left out: the bound then holds for the plans that use none of them.

    Bands on further metrics m (scaled to shares of the mean territory) are relaxed too, with
    multipliers ν⁺[j, m], ν⁻[j, m] ≥ 0 on the rows total[j, m] ≤ hi y[j] and lo y[j] ≤
    total[j, m]: pair (u, j) costs (ν⁺ − ν⁻)[j, m] a[u, m] more, and v_j includes the constant
    Σ_m ν⁻ lo − ν⁺ hi. For a plan's open centre, Σ_u (c − λ) x ≥ v_j still holds (its loads are
    within the bands), so the bound, the pair and centre bounds and the MIP's cuts stay valid.
    Only with dense knapsacks (see `fits`).
    """

    @staticmethod
    def fits(p: DesignProblem) -> bool:
        """Whether the relaxation handles `p`'s bands: one metric, or several with dense
        knapsacks (at most SPARSE_PAIRS pairs)."""
        return len(p.metrics()) <= 1 or p.n_candidates * p.n_units <= SPARSE_PAIRS

    def __init__(self, p: DesignProblem) -> None:
        if not Lagrangian.fits(p):
            raise ValueError("bands on several metrics need dense knapsacks")
        metrics = p.metrics()
        self.p = p
        others = metrics[1:]
        scale = _metric_scale(p)[others]
        self.a2 = p.amount[:, others] * scale  # (U, M)
        self.lo2, self.hi2 = p.lo[others] * scale, p.hi[others] * scale
        self.upper, self.lower = np.isfinite(self.hi2), self.lo2 > 0
        self.hi2 = np.where(self.upper, self.hi2, 0.0)
        self.ct = np.ascontiguousarray(p.travel.T)  # (J, U): rows are the knapsacks
        k = metrics[0] if metrics else None
        a = p.amount[:, k] if k is not None else np.zeros(p.n_units)
        self.lo = float(p.lo[k]) if k is not None else 0.0
        self.hi = float(p.hi[k]) if k is not None else math.inf
        self.load = np.flatnonzero(a > 0)
        self.free = np.flatnonzero(a <= 0)
        self.a = a[self.load]
        self.ct_load = self.ct if not len(self.free) else np.ascontiguousarray(
            self.ct[:, self.load])
        self.ct_free = self.ct[:, self.free]
        self.closed = np.zeros(p.n_candidates, dtype=bool)
        self.dp_lo = 0
        self.dp_hi: int | None = None
        if len(self.load) and np.all(self.a == np.round(self.a)):
            top = math.floor(min(self.hi, float(self.a.sum())) + 1e-9)
            if p.n_candidates * len(self.load) * (top + 1) <= DP_CELLS:
                self.dp_hi = int(top)
                self.dp_lo = max(0, math.ceil(self.lo - 1e-9))
        self.sparse = self.dp_hi is None and p.n_candidates * len(self.load) > SPARSE_PAIRS
        # Multipliers are capped (any λ gives a valid bound): λ_u ≤ cap_u, u's travel to its
        # NEIGHBOURHOOD-th nearest candidate. A pair can then have negative reduced cost only
        # within that neighbourhood, so at scale each step scans those pairs, not all U × J.
        self.cap = np.full(p.n_units, np.inf)
        if self.sparse:
            k = min(p.n_candidates - 1,
                    NEIGHBOURHOOD * max(1, p.n_units // max(p.n_territories, 1)))
            self.prefix = k  # items a full knapsack row sorts first (`_cheapest_knapsacks`)
            travel = np.where(p.allowed, p.travel, np.inf)
            self.cap[self.load] = np.partition(travel[self.load], k, axis=1)[:, k]
            cap = self.cap[self.load]
            inside = (self.ct_load <= cap) & np.isfinite(self.ct_load)
            row, item = np.nonzero(inside)
            self.near_row, self.near_item = row, item  # sorted by candidate row
            self.near_cost = self.ct_load[row, item]
        self.rows_redone = 0

    @property
    def integral(self) -> bool:
        return self.dp_hi is not None or not len(self.load)

    @property
    def n_other(self) -> int:
        """How many further band metrics are relaxed with ν."""
        return self.a2.shape[1]

    def start_nu(self) -> np.ndarray:
        return np.zeros((2, self.p.n_candidates, self.n_other))

    def _surcharge(self, nu: np.ndarray | None, rows: np.ndarray
                   ) -> tuple[np.ndarray | None, np.ndarray]:
        """The pairs' extra cost (rows × U) and the candidates' constants under ν."""
        if nu is None or not self.n_other:
            return None, np.zeros(len(rows))
        extra = (nu[0, rows] - nu[1, rows]) @ self.a2.T
        constant = (nu[1, rows] * self.lo2).sum(axis=1) - (nu[0, rows] * self.hi2).sum(axis=1)
        return extra, constant

    def reduced(self, lam: np.ndarray, nu: np.ndarray | None) -> np.ndarray:
        """(J, U): c − λ plus the other metrics' surcharge under ν."""
        extra, _ = self._surcharge(nu, np.arange(self.p.n_candidates))
        return self.ct - lam if extra is None else self.ct - lam + extra

    def evaluate(self, lam: np.ndarray, nu: np.ndarray | None = None) -> _Relaxed:
        p, n_cand = self.p, self.p.n_candidates
        open_ = np.flatnonzero(~self.closed)
        value = np.full(n_cand, np.inf)
        free_value = np.zeros(n_cand)
        ratio = np.zeros(n_cand)
        profile = None
        lam_load = lam[self.load]
        extra, constant = self._surcharge(nu, open_)
        rf = self.ct_free[open_] - lam[self.free]
        if extra is not None:
            rf = rf + extra[:, self.free]
        base = np.minimum(rf, 0.0).sum(axis=1)

        def load_costs() -> np.ndarray:
            r = self.ct_load[open_] - lam_load
            return r if extra is None else r + extra[:, self.load]
        x_of: Any  # row position in open_ -> (load item positions, weights)
        refine: Any = None  # sparse knapsacks: row positions -> those it had to solve anew
        if not len(self.load):
            v = base

            def x_of(_i: int) -> tuple[np.ndarray, np.ndarray]:
                return np.zeros(0, dtype=int), np.zeros(0)
        elif self.dp_hi is not None:
            r = load_costs()
            v_load, f, _ = _integer_knapsacks(r, self.a, self.dp_lo, self.dp_hi)
            v = base + v_load
            profile = np.full((n_cand, self.dp_hi + 1), np.inf)
            profile[open_] = f
            solved: dict[int, np.ndarray] = {}

            def x_of(i: int) -> tuple[np.ndarray, np.ndarray]:
                # The decisions are kept for the chosen rows only: one more DP over them.
                if not solved:
                    chosen_rows = np.sort(position[chosen])
                    assert self.dp_hi is not None
                    _, fc, took = _integer_knapsacks(r[chosen_rows], self.a, self.dp_lo,
                                                     self.dp_hi, keep=True)
                    assert took is not None
                    for t, row in enumerate(chosen_rows):
                        solved[int(row)] = _knapsack_items(fc, took, self.a, t, self.dp_lo)
                return solved[i], np.ones(len(solved[i]))
        elif not self.sparse:
            r = load_costs()
            v_load, mu, order, s, frac = _fractional_knapsacks(r, self.a, self.lo, self.hi)
            v = base + v_load
            ratio[open_] = mu

            def x_of(i: int) -> tuple[np.ndarray, np.ndarray]:
                return _taken(order[i], int(s[i]), float(frac[i]))
        else:
            v_load, mu, x_of, refine = self._sparse_knapsacks(open_, lam_load)
            v = base + v_load
            ratio[open_] = mu
        value[open_] = v + constant
        free_value[open_] = base + constant
        empty = np.zeros(0, dtype=int)
        if np.isfinite(value).sum() < p.n_territories:
            return _Relaxed(math.inf, lam, value, free_value, ratio, profile, empty,
                            np.zeros(p.n_units), np.full(p.n_units, -1), self.integral)
        position = np.full(n_cand, -1)
        position[open_] = np.arange(len(open_))
        while True:
            chosen = np.argpartition(value, p.n_territories - 1)[:p.n_territories]
            if refine is None:
                break
            # Values that are lower bounds only and could be chosen are solved exactly; then
            # choose again (exact values only grow, so this ends).
            could = np.flatnonzero(value[open_] <= value[chosen].max())
            rows = refine(could)
            if not len(rows):
                break
            value[open_[rows]] = base[rows] + v_load[rows]  # (sparse: one metric only)
            ratio[open_[rows]] = mu[rows]
        bound = float(lam.sum() + value[chosen].sum())
        served = np.zeros(p.n_units)
        owner = np.full(p.n_units, -1)
        load2 = np.zeros((len(chosen), self.n_other))
        for t, j in enumerate(chosen):
            i = int(position[j])
            items, weights = x_of(i)
            served[self.load[items]] += weights
            owner[self.load[items[weights >= 1.0]]] = j
            served[self.free[rf[i] < 0]] += 1.0
            owner[self.free[rf[i] < 0]] = j
            if self.n_other:
                load2[t] = weights @ self.a2[self.load[items]] + \
                    self.a2[self.free[rf[i] < 0]].sum(axis=0)
        return _Relaxed(bound, lam, value, free_value, ratio, profile, chosen, served, owner,
                        self.integral, nu, load2)

    def nu_subgradient(self, rel: _Relaxed) -> np.ndarray:
        """(2, J, M): how far the chosen candidates' loads pass the other metrics' bands
        (upper rows: load − hi; lower rows: lo − load; zero where a band is absent or the
        candidate is not chosen)."""
        g = np.zeros((2, self.p.n_candidates, self.n_other))
        if self.n_other and rel.load2 is not None:
            g[0, rel.chosen] = np.where(self.upper, rel.load2 - self.hi2, 0.0)
            g[1, rel.chosen] = np.where(self.lower, self.lo2 - rel.load2, 0.0)
        return g

    def _sparse_knapsacks(self, open_: np.ndarray, lam_load: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, Any, Any]:
        """Fractional knapsacks of the open rows from their pairs of negative reduced cost.

        Greedy over those up to hi is exact when they reach lo; otherwise their sum is a lower
        bound (the relaxation without lo, whose dual ratio is 0) and `refine` solves such rows
        in full when asked. Returns values, ratios, x_of, refine; refine updates the values and
        ratios in place and returns the rows it solved.
        """
        n_open = len(open_)
        # λ ≤ cap: every pair of negative reduced cost is in the neighbourhood.
        position = np.full(len(self.closed), -1)
        position[open_] = np.arange(n_open)
        pick = self.near_cost < lam_load[self.near_item]
        row, item = position[self.near_row[pick]], self.near_item[pick]
        inside = row >= 0
        row, item = row[inside], item[inside]
        r = self.near_cost[pick][inside] - lam_load[item]
        q = r / self.a[item]
        order = np.lexsort((q, row))  # by row, then cost per unit of load
        row, item, r, q = row[order], item[order], r[order], q[order]
        amt = np.where(q < 0, self.a[item], 0.0)  # margin pairs with r ≥ 0 are not taken
        start = np.searchsorted(row, np.arange(n_open + 1))
        cum_a = np.cumsum(amt)
        cum_r = np.cumsum(np.where(q < 0, r, 0.0))
        before_a = np.concatenate(([0.0], cum_a))[start[:-1]]
        before_r = np.concatenate(([0.0], cum_r))[start[:-1]]
        seg_a = cum_a - before_a[row]  # load taken up to and including each pair of its row
        a_neg = np.concatenate(([0.0], cum_a))[start[1:]] - before_a
        r_neg = np.concatenate(([0.0], cum_r))[start[1:]] - before_r
        value = r_neg.copy()
        mu = np.zeros(n_open)
        whole = np.bincount(row[q < 0], minlength=n_open)  # pairs taken whole
        frac = np.zeros(n_open)
        over = a_neg > self.hi
        if over.any():
            # Up to hi: the first pair whose running load reaches hi is taken in part.
            whole = np.where(over, np.bincount(row[(q < 0) & (seg_a < self.hi)],
                                               minlength=n_open), whole)
            crit = start[:-1] + whole
            ro = np.flatnonzero(over)
            cr = crit[ro]
            prev_a = np.where(whole[ro] > 0, seg_a[np.maximum(cr - 1, 0)], 0.0)
            prev_r = np.where(whole[ro] > 0, cum_r[np.maximum(cr - 1, 0)] - before_r[ro], 0.0)
            frac[ro] = (self.hi - prev_a) / self.a[item[cr]]
            value[ro] = prev_r + frac[ro] * r[cr]
            mu[ro] = q[cr]
        short = a_neg < self.lo  # value is a lower bound only
        full: dict[int, tuple[np.ndarray, int, float]] = {}

        def refine(rows: np.ndarray) -> np.ndarray:
            rows = np.array([i for i in rows if short[i] and i not in full], dtype=int)
            self.rows_redone += len(rows)
            for chunk in np.array_split(rows, -(-len(rows) // 256)) if len(rows) else []:
                vv, mm, oo, ss, ff = _cheapest_knapsacks(self.ct_load[open_[chunk]] - lam_load,
                                                         self.a, self.lo, self.hi, self.prefix)
                value[chunk], mu[chunk] = vv, mm
                for t, i in enumerate(chunk):
                    full[int(i)] = (oo[t], int(ss[t]), float(ff[t]))
            return rows

        def x_of(i: int) -> tuple[np.ndarray, np.ndarray]:
            if i in full:
                return _taken(*full[i])
            seg = item[start[i]:start[i + 1]]
            return _taken(seg, int(whole[i]), float(frac[i]))

        return value, mu, x_of, refine

    def pair_bounds(self, rel: _Relaxed) -> np.ndarray:
        """(J, U): a lower bound on every plan that assigns unit u to candidate j."""
        out = np.empty_like(self.ct)
        r = self.reduced(rel.lam, rel.nu)
        if len(self.free):
            out[:, self.free] = np.maximum(r[:, self.free], 0.0)
        if len(self.load) and rel.profile is not None:
            # forcing u in: c − λ of u plus the best load of the rest that leaves room for u
            rl = r[:, self.load]
            extra = np.empty_like(rl)
            assert self.dp_hi is not None
            for a in np.unique(self.a):
                cols = np.flatnonzero(self.a == a)
                lo_a, hi_a = max(0, self.dp_lo - int(a)), self.dp_hi - int(a)
                rest = rel.profile[:, lo_a:hi_a + 1].min(axis=1) if hi_a >= lo_a else \
                    np.full(len(rel.value), np.inf)
                extra[:, cols] = rl[:, cols] + (rest + rel.free_value)[:, None]
            out[:, self.load] = np.maximum(extra - rel.value[:, None], 0.0)
        elif len(self.load):
            ratio = np.where(np.isfinite(rel.ratio), rel.ratio, 0.0)
            out[:, self.load] = np.maximum(r[:, self.load] - ratio[:, None] * self.a, 0.0)
        out += rel.centre_bounds()[:, None]
        return out


def _integral_objective(p: DesignProblem) -> bool:
    """Every plan's travel is a whole number (OR-Library style integer distances): a bound
    may then be rounded up, and a better plan must be at least 1 cheaper."""
    finite = p.travel[p.allowed]
    return bool(np.all(finite == np.round(finite)) and np.abs(finite).max(initial=0) < 1e12)


def _round_up(bound: float, integral: bool) -> float:
    return float(math.ceil(bound - 1e-6)) if integral and math.isfinite(bound) else bound


def _prune_level(z_inc: float, target: float, integral: bool) -> tuple[float, float]:
    """(t, floor): a plan whose lower bound exceeds t costs at least `floor`, so it may be
    dropped: the optimum is then ≥ min(floor, the optimum of what is left). With a gap target
    the floor sits half the target below the incumbent; with an integral objective a better
    plan must cost at most z − 1."""
    t = z_inc * (1 - target / 2) if target > 0 else z_inc
    if integral:
        t = min(t, z_inc - 1 + 1e-6)
    t += 1e-9 * max(1.0, abs(z_inc))  # a margin for rounding in the bounds
    floor = min(z_inc, math.floor(t) + 1.0) if integral else min(t, z_inc)
    return t, floor


@dataclass
class _Pruned:
    """What the Lagrangian phase hands to the MIP step."""

    incumbent: tuple[float, np.ndarray] | None
    bound: float  # a lower bound on (1)–(6)
    floor: float  # every dropped pair or closed candidate is only in plans costing ≥ this
    keep: np.ndarray | None  # (U, J) pairs left for the MIP (None: no MIP needed)
    closed: np.ndarray  # (J,) candidates shut
    cuts: list[tuple[np.ndarray, np.ndarray]]  # (λ, v) of the best relaxation, for the MIP
    stats: dict[str, float]


def _start_multipliers(p: DesignProblem) -> np.ndarray:
    """λ_u = u's travel to its k-th nearest candidate, k = candidates per territory: what u
    would pay in a territory of fair size around it. From there the ascent is far shorter
    than from an incumbent's travel, which overprices the units a balanced plan sends far.
    (k = units per territory, the same when every account is a candidate, overpriced every
    unit with a short list: 40 candidates for 372 accounts into 6 territories, k = 39, and
    the ascent stalled at 55,410 against the LP bound of 63,442; it now reaches 63,403.)"""
    k = min(p.n_candidates - 1, max(1, p.n_candidates // max(p.n_territories, 1)))
    travel = np.where(p.allowed, p.travel, np.inf)
    lam = np.partition(travel, k, axis=1)[:, k]
    known = np.where(np.isfinite(travel), travel, -np.inf).max(axis=1)
    return np.where(np.isfinite(lam), lam, np.maximum(known, 0.0))


# The ascent's step factor halves after ASCENT_PATIENCE steps without a better bound. At
# scale (sparse knapsacks) it halves on a fixed schedule instead, every
# max(ASCENT_PATIENCE, units / ASCENT_UNITS_PER_STEP) steps, and the step direction keeps
# ASCENT_DEFLECTION of the previous one (a deflected subgradient: it damps the zig-zag of units
# traded between neighbouring centres). At 3,409 × 50 the bound keeps creeping up, which likely
# keeps the old rule's factor large for hundreds of steps: in 42 s (its share of a 120 s run)
# it reached 2.87–2.96 M, this rule 2.985 M (the LP bound is 3.00 M). Halving every 30 steps ends
# too soon (2.82 M). On OR-Library instances deflection converged no faster and its final
# multipliers left up to 7 % more pairs to the MIP: the old rule stays there.
ASCENT_DEFLECTION = 0.3
ASCENT_PATIENCE = 30
ASCENT_UNITS_PER_STEP = 50


def _fixing(p: DesignProblem, lag: Lagrangian, rel: _Relaxed, plan: np.ndarray,
            level: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (U, J) and the closed centres after fixing: what no plan cheaper than
    `level` can use goes, except the pairs and centres of `plan`."""
    with np.errstate(invalid="ignore"):
        keep = (lag.pair_bounds(rel) <= level).T & p.allowed
        closed = lag.closed | (rel.centre_bounds() > level)
    closed[plan] = False
    keep[:, closed] = False
    keep[np.arange(p.n_units), plan] = True
    return keep, closed


def _lagrangian_phase(p: DesignProblem, incumbent: tuple[float, np.ndarray] | None,
                      deadline: float, target: float, threads: int | None,
                      improve: bool, tell: Any, should_stop: StopCheck | None,
                      core_seconds: float = 0.0, overtime: float | None = None) -> _Pruned:
    """Subgradient ascent on the Lagrangian dual (Polyak steps towards the incumbent), with
    centres closed on the way, then the core heuristic (`improve`; its MIP at most
    `core_seconds`), and the pairs that cannot be in a better plan dropped at the end.

    With `overtime` (no heuristic follows), the ascent goes on past `deadline` until then
    while fixing leaves too many pairs for the exact search: the bound is all it can still
    gain."""
    started = time.perf_counter()
    integral = _integral_objective(p)
    lag = Lagrangian(p)
    z = incumbent[0] if incumbent else math.inf
    lam = np.minimum(_start_multipliers(p), lag.cap)
    nu = lag.start_nu() if lag.n_other else None
    best_bound, best_rel = -math.inf, None
    floor = math.inf
    theta, stall = 1.0, 0
    patience, deflection = ASCENT_PATIENCE, 0.0
    if lag.sparse:
        patience = max(ASCENT_PATIENCE, p.n_units // ASCENT_UNITS_PER_STEP)
        deflection = ASCENT_DEFLECTION
    direction = None
    best_iterate = -math.inf
    iterations = 0
    # The relaxation's centre sets (with the best bound each reached), for plan merging
    # where an allocation is a quick MIP.
    merging = improve and p.n_units * p.n_territories <= ALLOCATE_LP_PAIRS
    centre_sets: dict[tuple[int, ...], float] = {}
    until = deadline

    def go_on() -> bool:
        nonlocal until
        if should_stop is not None and should_stop():
            return False
        now = time.perf_counter()
        if now < until:
            return True
        if overtime is None or now >= overtime or incumbent is None or best_rel is None:
            return False
        level = _prune_level(z, target, integral)[0]
        if _fixing(p, lag, best_rel, incumbent[1], level)[0].sum() <= MIP_PAIRS_MAX:
            return False
        until = min(overtime, now + OVERTIME_CHECK_SECONDS)
        return True

    # At least one step, even past the deadline: any λ gives a bound, and a step is cheap
    # next to the heuristic that may have used the time (a run always reports a bound).
    while iterations == 0 or go_on():
        rel = lag.evaluate(lam, nu)
        iterations += 1
        if merging and math.isfinite(rel.bound):
            key = tuple(sorted(int(c) for c in rel.chosen))
            centre_sets[key] = max(rel.bound, centre_sets.get(key, -math.inf))
        if not math.isfinite(rel.bound):
            if not math.isfinite(floor):
                raise InfeasibleScenarioError([
                    f"fewer than {p.n_territories} candidate centres can gather a territory "
                    "within the bands from the accounts they may serve"])
            best_bound = max(best_bound, floor)  # nothing left can beat the floor
            break
        valid = min(rel.bound, floor)
        if valid > best_bound:
            best_bound, best_rel = valid, rel
        improved = best_iterate == -math.inf or \
            rel.bound > best_iterate + 1e-9 * max(1.0, abs(best_iterate))
        if improved:
            best_iterate = rel.bound
        stall = 0 if improved and not lag.sparse else stall + 1
        if stall >= patience:
            theta, stall = theta / 2, 0
        gap = relative_gap(z if incumbent else None, _round_up(best_bound, integral))
        if gap is not None and gap <= target:
            break
        if theta < 2e-3:
            break
        if incumbent is not None and iterations % 5 == 0:
            t, fl = _prune_level(z, target, integral)
            shut = ~lag.closed & (rel.centre_bounds() > t)
            shut[incumbent[1]] = False
            if shut.any():
                lag.closed |= shut
                floor = min(floor, fl)
        if iterations % 10 == 0:
            tell("lagrangian", z if incumbent else None, _round_up(best_bound, integral),
                 f"{iterations} iterations, {int(lag.closed.sum())} centres closed")
        g = 1.0 - rel.served
        if nu is not None:
            g_nu = lag.nu_subgradient(rel)
            g_nu[(nu <= 0) & (g_nu < 0)] = 0.0  # a slack band row at ν = 0 stays there
            g = np.concatenate([g, g_nu.ravel()])
        if float(g @ g) < 1e-12:
            # Every unit served once (and every other band met): with 0/1 knapsacks the
            # relaxation's solution is a plan.
            if improve and rel.integral and (rel.owner >= 0).all():
                cost = _plan_cost(p, rel.owner)
                if cost < z:
                    incumbent, z = (cost, rel.owner.copy()), cost
            break
        aim = z if incumbent is not None else abs(rel.bound) * 1.1 + 1.0
        direction = g if direction is None else (1 - deflection) * g + deflection * direction
        norm = max(float(direction @ direction), 1e-12)
        step = theta * max(aim - rel.bound, 1e-6 * max(1.0, abs(rel.bound))) / norm
        lam = np.minimum(lam + step * direction[:p.n_units], lag.cap)
        if nu is not None:
            nu = np.maximum(nu + step * direction[p.n_units:].reshape(nu.shape), 0.0)
    core_found = False
    core_time = 0.0
    # The core MIP is skipped at national scale (sparse knapsacks), where it found no better
    # plan in any run: its time goes to the heuristics after fixing instead.
    if improve and incumbent is not None and best_rel is not None and core_seconds > 0 and \
            not lag.sparse and \
            (relative_gap(z, _round_up(best_bound, integral)) or 0.0) > target:
        tell("core", z, _round_up(best_bound, integral), "MIP over the relaxation's cheapest pairs")
        t_core = time.perf_counter()
        # Plans merged from the relaxation's centre sets first, where an allocation is a
        # quick MIP (at scale it is an LP of seconds, from centres that are poor until the
        # bound has converged: the core MIP gets all).
        if merging:
            merged = merge_plans(p, lag, best_rel, centre_sets, incumbent,
                                 t_core + MERGE_SHARE * core_seconds, threads, target)
            if merged[0] < z - 1e-9 * max(1.0, abs(z)):
                incumbent, z, core_found = merged, merged[0], True
        left = core_seconds - (time.perf_counter() - t_core)
        found = _core_heuristic(p, lag, best_rel, incumbent, left, threads) \
            if left > 0.2 else None
        core_time = time.perf_counter() - t_core
        if found is not None and found[0] < z - 1e-9 * max(1.0, abs(z)):
            incumbent, z, core_found = found, found[0], True
    stats: dict[str, float] = {"lagrangian_iterations": iterations,
                               "lagrangian_seconds": round(time.perf_counter() - started, 3),
                               "core_improved": int(core_found),
                               "core_seconds": round(core_time, 3),
                               "knapsacks": "integer" if lag.dp_hi is not None else
                               "fractional"}  # type: ignore[dict-item]
    bound = _round_up(best_bound, integral)
    stats["lagrangian_bound"] = bound
    closed = lag.closed.copy()
    if incumbent is None or best_rel is None or \
            (relative_gap(z, bound) or 0.0) <= target:
        stats["centres_fixed_closed"] = int(closed.sum())
        return _Pruned(incumbent, bound, floor, None, closed, [], stats)
    # Pairs and centres that cannot be in a plan cheaper than the prune level are dropped.
    t, fl = _prune_level(z, target, integral)
    keep, closed = _fixing(p, lag, best_rel, incumbent[1], t)
    floor = min(floor, fl)
    stats["centres_fixed_closed"] = int(closed.sum())
    cuts = [(best_rel.lam, best_rel.value)]
    return _Pruned(incumbent, bound, floor, keep, closed, cuts, stats)


# Plan merging: the relaxation's centre sets are screened by a locate–allocate with the greedy
# balance (numpy, milliseconds); the MERGE_SEEDS best seed full locate–allocate runs, each
# followed by pair re-optimisation; a MIP over the union of those plans' centres recombines
# them. Local search from one start stalls where the bound is weak (OR-Library 20: the
# seeds end at 1,008–1,019; the MIP over the union of their 26 centres finds the optimum,
# 1,005, in about 15 s, where the exact search from 1,041 ended at 1,006–1,009 in 300 s).
# Its share of the core time: the screening until MERGE_SCREEN_SHARE of it, the seeds until
# MERGE_SEEDS_SHARE, the MIP the rest.
MERGE_SHARE = 0.8
MERGE_SCREEN_SHARE = 0.25
MERGE_SEEDS_SHARE = 0.5
MERGE_SEEDS = 6
MERGE_SCREENED = 300
GREEDY_ROUNDS = 10


def _greedy_allocation(p: DesignProblem, centres: np.ndarray) -> tuple[float, np.ndarray] | None:
    """The greedy balance as an allocation: its travel and plan (None when it gets stuck)."""
    own = _balance_greedy(p, centres)
    if own is None:
        return None
    plan = centres[own]
    return _plan_cost(p, plan), plan


def merge_plans(p: DesignProblem, lag: Lagrangian, rel: _Relaxed,
                centre_sets: dict[tuple[int, ...], float], incumbent: tuple[float, np.ndarray],
                deadline: float, threads: int | None, gap: float) -> tuple[float, np.ndarray]:
    """The best of the incumbent, the plans grown from the best-screened centre sets (the
    relaxation's, highest bound first) and the MIP over the union of their centres (only
    the pairs that can be in a better plan by the relaxation `rel`, and its cuts)."""
    started = time.perf_counter()
    screen_until = started + MERGE_SCREEN_SHARE * (deadline - started)
    screened: dict[tuple[int, ...], float] = {}
    greedy = partial(_greedy_allocation, p)
    for key in sorted(centre_sets, key=centre_sets.__getitem__, reverse=True)[:MERGE_SCREENED]:
        if time.perf_counter() > screen_until:
            break  # at scale a screening takes a tenth of a second (1,000 × 10: 0.17 s)
        found = locate_allocate(p, math.inf, None, rounds=GREEDY_ROUNDS, centres=np.array(key),
                                patience=GREEDY_ROUNDS, allocate=greedy)
        if found is not None and len(centres := np.unique(found[1])) == p.n_territories:
            seed = tuple(int(c) for c in centres)
            screened[seed] = min(found[0], screened.get(seed, math.inf))
    seeds_until = started + MERGE_SEEDS_SHARE * (deadline - started)
    plans = [incumbent]
    for key in sorted(screened, key=screened.__getitem__)[:MERGE_SEEDS]:
        if time.perf_counter() > seeds_until:
            break
        found = locate_allocate(p, seeds_until, threads, rounds=3, centres=np.array(key))
        if found is not None:
            plans.append(improve_by_neighbours(p, found, seeds_until, threads))
    return recombine(p, lag, rel, plans, deadline, threads, gap)


def recombine(p: DesignProblem, lag: Lagrangian, rel: _Relaxed,
              plans: Sequence[tuple[float, np.ndarray]], deadline: float, threads: int | None,
              gap: float) -> tuple[float, np.ndarray]:
    """The best of `plans` and of the MIP over the union of their centres, from the best
    plan, over the pairs that can be in a better plan by the relaxation `rel`."""
    best = min(plans, key=lambda plan: plan[0])
    union = np.unique(np.concatenate([np.unique(plan[1]) for plan in plans]))
    left = deadline - time.perf_counter()
    if len(union) <= p.n_territories or left < 0.5:
        return best
    closed = np.ones(p.n_candidates, dtype=bool)
    closed[union] = False
    t, _ = _prune_level(best[0], gap, _integral_objective(p))
    with np.errstate(invalid="ignore"):
        keep = (lag.pair_bounds(rel) <= t).T & p.allowed & ~closed
    keep[np.arange(p.n_units), best[1]] = True
    u, j = np.nonzero(keep)
    merged = _design_from(p, u, j, best[1], closed, [(rel.lam, rel.value)],
                          HighsOptions(time_limit=left, mip_gap=gap, threads=threads,
                                       strong_branching=False))
    return merged if merged is not None and merged[0] < best[0] else best


def _design_from(p: DesignProblem, u: np.ndarray, j: np.ndarray, plan: np.ndarray,
                 closed: np.ndarray, cuts: Sequence[tuple[np.ndarray, np.ndarray]],
                 options: HighsOptions) -> tuple[float, np.ndarray] | None:
    """(1)–(6) over the pairs (u, j) by a MIP started from `plan` (whose pairs must be
    among them): its plan and travel, or None when it finds none."""
    start: dict[str, dict[object, float]] = {
        "x": {int(i): 1.0 for i in np.flatnonzero(plan[u] == j)},
        "y": {int(c): 1.0 for c in np.unique(plan)}}
    sol = run_highs(build(p, u, j, closed=closed, cuts=cuts), options, start=start)
    if not sol.has_solution or sol.objective is None:
        return None
    chosen = sol.values["x"] > 0.5
    found = np.full(p.n_units, -1)
    found[u[chosen]] = j[chosen]
    return _plan_cost(p, found), found


# The core heuristic's MIP: the CORE_CENTRES × N candidates the relaxation prices cheapest,
# each unit's CORE_PAIRS cheapest pairs among them and its CORE_PAIRS nearest.
CORE_CENTRES = 3
CORE_PAIRS = 5


def _core_heuristic(p: DesignProblem, lag: Lagrangian, rel: _Relaxed,
                    incumbent: tuple[float, np.ndarray], time_limit: float,
                    threads: int | None) -> tuple[float, np.ndarray] | None:
    """A plan from a small MIP over what the relaxation says is cheap (a Lagrangian core
    problem): near-optimal plans mostly use those pairs, and the better incumbent is what
    lets the fixing step drop the rest."""
    with np.errstate(invalid="ignore"):
        pair = lag.pair_bounds(rel)  # (J, U)
    centre = rel.centre_bounds()
    centre[lag.closed] = np.inf
    n_core = min(p.n_candidates, CORE_CENTRES * p.n_territories)
    core = np.argpartition(centre, n_core - 1)[:n_core]
    core = np.union1d(core[np.isfinite(centre[core])], incumbent[1])
    cost = np.where(p.allowed[:, core], pair[core].T, np.inf)  # (U, core)
    k = min(CORE_PAIRS, len(core))
    near = np.argpartition(cost, k - 1, axis=1)[:, :k]
    keep = np.zeros((p.n_units, p.n_candidates), dtype=bool)
    np.put_along_axis(keep, core[near], True, axis=1)
    # and the nearest: where the bound is weak (OR-Library 20: 3 % below the optimum) the
    # reduced costs alone miss pairs of the better plans (1,033 against 1,014 there).
    travel = np.where(p.allowed[:, core], p.travel[:, core], np.inf)
    nearest = np.argpartition(travel, k - 1, axis=1)[:, :k]
    np.put_along_axis(keep, core[nearest], True, axis=1)
    keep &= p.allowed
    keep[np.arange(p.n_units), incumbent[1]] = True
    closed = np.ones(p.n_candidates, dtype=bool)
    closed[core] = False
    u, j = np.nonzero(keep)
    return _design_from(p, u, j, incumbent[1], closed, [(rel.lam, rel.value)],
                        HighsOptions(time_limit=time_limit, mip_gap=1e-3, threads=threads,
                                     strong_branching=False))


# ---------------------------------------------------------------------------------------------
# Solve


# A design's result is the common plan result (optimizer.result).
DesignResult = PlanResult


def solve(data: DesignData, scenario: Scenario, *, on_progress: ProgressCallback | None = None,
          should_stop: StopCheck | None = None) -> DesignResult:
    """Design `scenario.territories` territories from scratch (see the module docstring)."""
    started = time.perf_counter()
    settings = scenario.solver
    deadline = started + settings.time_limit

    def tell(phase: str, inc: float | None = None, bnd: float | None = None,
             msg: str = "") -> None:
        if on_progress is not None:
            on_progress(Progress(phase, time.perf_counter() - started, inc, bnd,
                                 relative_gap(inc, bnd), msg))

    tell("prepare", msg="checking the scenario")
    p = prepare(data, scenario)
    contig = contiguity.for_design(data, scenario, p)  # None unless contiguity: true
    warnings = list(p.notes)
    if scenario.objective.balance > 0 or scenario.objective.disruption > 0:
        warnings.append("design minimises travel subject to hard bands; balance and "
                        "disruption weights are ignored")
    if scenario.disruption.max_share is not None:
        warnings.append("the disruption limit is ignored in a design: territories are carved "
                        "anew, with no reps to move accounts between")
    t_build = t_solve = 0.0

    # 1. incumbent
    tell("heuristic", msg="locate–allocate")
    t0 = time.perf_counter()
    heuristic_deadline = started + HEURISTIC_SHARE * settings.time_limit
    incumbent = locate_allocate(p, heuristic_deadline, settings.threads)
    if incumbent is not None and contig is None:
        incumbent = improve_by_neighbours(p, incumbent, heuristic_deadline, settings.threads,
                                     should_stop)
    improved_by = started + CONTIGUOUS_IMPROVE_SHARE * settings.time_limit
    incumbent = contiguity.design_start(
        contig, p, incumbent, improved_by, settings.threads,
        settle=started + CONTIGUOUS_START_SHARE * settings.time_limit
    )  # contiguous, or None: a cold MIP
    if contig is not None and incumbent is not None:
        # Pairs and triples of territories designed again, kept when each stays one piece.
        incumbent = improve_by_neighbours(p, incumbent, improved_by, settings.threads,
                                          should_stop, sizes=(2, 3), accept=contig.keeps_whole)

    t_solve += time.perf_counter() - t0
    z_inc = incumbent[0] if incumbent else math.inf
    tell("heuristic", z_inc if incumbent else None, msg="incumbent found" if incumbent else
         "no incumbent yet")

    # 2. a lower bound, and the pairs and centres that cannot be in a better plan
    target = settings.mip_gap
    integral = _integral_objective(p)
    allowed = p.allowed
    pricing: dict[str, Any] = {"pairs_allowed": int(allowed.sum()),
                               "centres_considered": p.n_candidates}
    keep: np.ndarray | None = None
    closed = np.zeros(p.n_candidates, dtype=bool)
    cuts: list[tuple[np.ndarray, np.ndarray]] = []
    if Lagrangian.fits(p):
        # The Lagrangian bound in numpy (far cheaper than the LP at scale; with bands on
        # several metrics, 372 × 372 pairs: the LP did not finish in 120 s).
        # The core heuristic runs unless contiguity is required (its plans need not be).
        tell("lagrangian", z_inc if incumbent else None, msg="Lagrangian bound")
        share = BOUND_SHARE if contig is None else CONTIGUOUS_BOUND_SHARE
        # With contiguity no heuristic follows: when the exact search cannot start either,
        # the bound may take the rest of the time.
        pruned = _lagrangian_phase(p, incumbent, started + share * settings.time_limit,
                                   target, settings.threads, contig is None, tell, should_stop,
                                   core_seconds=CORE_SHARE * settings.time_limit,
                                   overtime=None if contig is None else deadline)
        incumbent = pruned.incumbent
        z_inc = incumbent[0] if incumbent else math.inf
        bound0, floor, keep, closed = pruned.bound, pruned.floor, pruned.keep, pruned.closed
        cuts = pruned.cuts
        pricing |= pruned.stats
    else:
        if allowed.sum() <= FULL_LP_PAIRS:
            mask = allowed.copy()
        else:
            k = min(10, p.n_candidates)
            near = np.argpartition(np.where(allowed, p.travel, np.inf), k - 1, axis=1)[:, :k]
            mask = np.zeros_like(allowed)
            np.put_along_axis(mask, near, True, axis=1)
            if incumbent is not None:
                mask[np.arange(p.n_units), incumbent[1]] = True
            mask &= allowed
        scale = _metric_scale(p)
        rounds = 0
        while rounds < 50:
            rounds += 1
            u, j = np.nonzero(mask)
            t0 = time.perf_counter()
            model = build(p, u, j, relaxed=True)
            t_build += time.perf_counter() - t0
            sol = run_highs(model, HighsOptions(time_limit=max(deadline - time.perf_counter(), 1.0),
                                                threads=settings.threads, lp_method=LP_METHOD),
                            duals=True,
                            should_stop=should_stop)
            t_solve += sol.seconds_solve + sol.seconds_compile
            if sol.termination is Termination.infeasible:
                raise InfeasibleScenarioError([
                    "no design meets the bands even with accounts split between territories "
                    "(the bands are too narrow for the number of territories and the data)"])
            if sol.termination is not Termination.optimal or sol.objective is None:
                if incumbent is None and sol.termination is Termination.time_limit:
                    raise SolverError(
                        f"no design found within the time limit ({settings.time_limit:g} s): "
                        "the heuristic found no plan in its share of the time, and the LP "
                        f"relaxation over {int(mask.sum()):,} account–centre pairs was still "
                        "being solved; raise solver.time_limit")
                if incumbent is None:
                    raise SolverError(f"the LP relaxation ended with {sol.termination.value} "
                                      "before any design was found")
                # This LP is slow: 372 accounts × 372 candidates with two band metrics, where
                # the Lagrangian now bounds them, did not finish in 120 s (simplex or IPM).
                warnings.append(
                    f"the LP relaxation over {int(mask.sum()):,} account–centre pairs did not "
                    "finish within the time limit, so the design is the heuristic's, without "
                    "a proven bound. With bands on more than one metric and over "
                    f"{SPARSE_PAIRS:,} account–candidate pairs the bound comes from that LP: a "
                    "shorter `centres` list, or bands on one metric only, gives a bound sooner")
                return contiguity.annotate(contig, _result(data, p, incumbent[1], RunReport(
                    RunStatus.feasible, Termination.time_limit, z_inc, None, None,
                    time.perf_counter() - started, t_build, t_solve,
                    pricing | {"pairs_in_lp": int(mask.sum()), "pairs_in_mip": 0}),
                    warnings, scenario), incumbent[1])
            alpha = np.zeros(p.n_units)
            alpha[np.array(list(model.assign.keys()), dtype=int)] = sol.duals["assign"]
            theta = np.zeros((p.n_candidates, 3))
            for (jj, kk), yv in zip(model.load_def.keys(), sol.duals.get("load_def", []),
                                    strict=True):
                theta[jj, kk] = yv
            red = p.travel - alpha[:, None] + (p.amount * scale) @ theta.T
            red[~allowed] = np.inf
            red[u, j] = np.maximum(sol.duals["rc:x"], 0.0)  # in-LP pairs: HiGHS' own values
            negative = (red < -1e-7 * max(1.0, abs(sol.objective) / p.n_units)) & ~mask
            if not negative.any():
                break
            # Each unit's three most negative pairs join (all of them would bloat the LP).
            cand = np.where(negative, red, np.inf)
            k = min(3, p.n_candidates)
            best = np.argpartition(cand, k - 1, axis=1)[:, :k]
            add = np.zeros_like(mask)
            np.put_along_axis(add, best, True, axis=1)
            mask |= add & negative
        z_lp = float(sol.objective or 0.0)  # optimal LP: the objective is set
        red_y = np.asarray(sol.duals["rc:y"])
        tell("lp", z_inc if incumbent else None, z_lp, msg=f"LP bound, {rounds} pricing round(s)")

        bound0, floor = z_lp, z_inc
        pricing["pairs_in_lp"] = int(mask.sum())
        if incumbent is None or relative_gap(z_inc, z_lp) > target:  # type: ignore[operator]
            # Reduced-cost fixing: a pair or a centre whose reduced cost exceeds incumbent −
            # LP bound cannot be in a better plan.
            window = (z_inc - z_lp) * (1 + 1e-9) + 1e-9 if incumbent else math.inf
            keep = allowed & (red <= window)
            closed = red_y > window

    # Travel is never negative, while a Lagrangian bound stopped early can be (17,000 accounts
    # given 60 s: far below zero after a few steps).
    bound0 = max(bound0, 0.0)

    # 3. the MIP over what is left, from the incumbent. Every plan cheaper than `floor` uses
    # kept pairs and open centres only, so min(floor, the MIP's bound) bounds the full problem.
    bound = bound0
    termination = Termination.optimal
    best_centre = incumbent[1] if incumbent else None
    pairs_in_mip = 0
    if keep is None and incumbent is None:
        keep = allowed.copy()  # no plan yet, so nothing could be fixed: search every pair
    if keep is not None and incumbent is None and keep.sum() > MIP_PAIRS_MAX:
        # A MIP this size would not find a first plan in the time left, and building it
        # could exhaust the memory (17,000 accounts × 700 centres: over 10 GB in Pyomo).
        raise SolverError(
            f"no design found within the time limit ({settings.time_limit:g} s): the "
            f"heuristic found no plan in its share of the time, and the exact search over "
            f"{int(keep.sum()):,} account–centre pairs is too large to start without one; "
            "raise solver.time_limit")
    if keep is not None and incumbent is not None and keep.sum() > MIP_PAIRS_MAX:
        # Fixing left too much for a MIP to close in the time left: report the bound as is.
        warnings.append(f"{int(keep.sum()):,} pairs remain after fixing, too many for the "
                        "exact search: the design is the heuristic's, with the bound proven "
                        "so far")
        termination, keep = Termination.time_limit, None
        if contig is None:
            # The time the exact search would have had goes on improving the incumbent:
            # locate–allocate resumed from its relocated centres (step 1 may have been cut
            # short), then pair re-optimisation from the better plan, then triples once no
            # pair improves (national: 3.225 M → 3.218 M).
            tell("heuristic", z_inc, bound0, "locate–allocate resumed")
            t0 = time.perf_counter()
            found = locate_allocate(p, deadline, settings.threads,
                                    centres=_relocate(p, incumbent[1]), patience=1)
            if found is None or found[0] >= z_inc:
                found = incumbent
            tell("heuristic", z_inc, bound0, "neighbourhood re-optimisation")
            found = improve_by_neighbours(p, found, deadline, settings.threads, should_stop,
                                          sizes=(2, 3))
            t_solve += time.perf_counter() - t0
            if found[0] < z_inc - 1e-9 * max(1.0, abs(z_inc)):
                incumbent, z_inc, best_centre = found, found[0], found[1]
                pricing["resumed_heuristic_improved"] = 1
        if should_stop is not None and should_stop():
            termination = Termination.cancelled
        elif deadline - time.perf_counter() > STALL_SECONDS:
            termination = Termination.stalled  # say so rather than claim the time ran out
            warnings.append(
                f"stopped after {time.perf_counter() - started:.0f} s of the "
                f"{settings.time_limit:g} s limit with nothing left to run: too many pairs "
                "remain for the exact search" + (
                    ", and the heuristics had reached a local optimum" if contig is None
                    else ""))
    if keep is not None and incumbent is not None and \
            (relative_gap(z_inc, bound0) or 0.0) > target and \
            deadline - time.perf_counter() < MIN_EXACT_SECONDS + EXACT_SECONDS_PER_PAIR * \
            int(keep.sum()):
        termination, keep = Termination.time_limit, None
    if keep is not None and (incumbent is None or
                             relative_gap(z_inc, bound0) > target):  # type: ignore[operator]
        if incumbent is not None:
            keep[np.arange(p.n_units), incumbent[1]] = True
            closed[np.unique(incumbent[1])] = False
        u, j = np.nonzero(keep)
        pairs_in_mip = len(u)
        t0 = time.perf_counter()
        model = build(p, u, j, closed=closed, cuts=cuts)
        t_build += time.perf_counter() - t0
        start: dict[str, dict[object, float]] | None = None
        if incumbent is not None:
            on = incumbent[1][u] == j
            start = {"x": {int(i): 1.0 for i in np.flatnonzero(on)},
                     "y": {int(c): 1.0 for c in np.unique(incumbent[1])}}
        mip = run_highs if contig is None else contig.runner(u, j, complete=incumbent is None)
        sol = mip(
            model,
            HighsOptions(time_limit=max(deadline - time.perf_counter(), 0.5), mip_gap=target,
                         threads=settings.threads, strong_branching=False),
            start=start, should_stop=should_stop,
            on_progress=lambda inc, bnd: tell("mip", inc, None if bnd is None else
                                              max(bound0, min(bnd, floor))))
        t_solve += sol.seconds_solve + sol.seconds_compile
        if sol.has_solution and sol.objective is not None and sol.objective < z_inc - 1e-9:
            chosen = sol.values["x"] > 0.5
            best_centre = np.full(p.n_units, -1)
            best_centre[u[chosen]] = j[chosen]
            z_inc = float(sol.objective)
        if sol.termination is Termination.infeasible and incumbent is None:
            raise InfeasibleScenarioError([
                "no whole assignment of accounts meets the bands, although a fractional one "
                "does: the bands are too narrow for the account sizes"])
        if sol.bound is not None and best_centre is not None:
            bound = _round_up(max(bound0, min(sol.bound, floor, z_inc)), integral)
        elif sol.termination is Termination.infeasible and best_centre is not None:
            bound = max(bound0, min(floor, z_inc))  # nothing better among what is left
        if sol.termination is Termination.time_limit:
            termination = Termination.time_limit
        elif sol.termination is Termination.cancelled:
            termination = Termination.cancelled
    if best_centre is None:
        raise SolverError(
            f"no design found within the time limit ({settings.time_limit:g} s): " + (
                "the exact search had no plan with every territory in one piece yet"
                if contig is not None else "the exact search had no plan yet")
            + "; raise solver.time_limit")
    gap = relative_gap(z_inc, bound)
    status = RunStatus.optimal if gap is not None and gap <= target + 1e-12 else \
        RunStatus.feasible
    report = RunReport(status, termination if status is RunStatus.feasible else
                          Termination.optimal, z_inc, bound, gap,
                          time.perf_counter() - started, t_build, t_solve,
                          pricing | {"pairs_in_mip": pairs_in_mip})
    tell("done", z_inc, bound)
    return contiguity.annotate(contig, _result(data, p, best_centre, report, warnings,
                                               scenario), best_centre)



def _result(data: DesignData, p: DesignProblem, unit_centre: np.ndarray, report: RunReport,
            warnings: list[str], scenario: Scenario) -> DesignResult:
    acc = data.accounts
    centres = np.unique(unit_centre)
    # Territories numbered in the candidates' order (the input's), so a run that picks the
    # same centres gives the same ids.
    centre_of_account = unit_centre[p.unit_of]
    terr_index = {int(c): i for i, c in enumerate(centres)}
    assign = np.array([terr_index[int(c)] for c in centre_of_account])
    width = max(2, len(str(len(centres))))
    terr_ids = [f"T{i + 1:0{width}d}" for i in range(len(centres))]
    book = Book(workload=acc["workload"].to_numpy(float),
                potential=acc["potential"].to_numpy(float), visits=p.visits,
                distance=np.nan_to_num(p.account_distance[:, centres], nan=np.inf),
                capacity=np.ones(len(centres)), current=np.full(len(acc), -1))
    table = territory_table(book, assign)
    centre_ids = [p.candidate_ids[c] for c in centres]
    assignments = pd.DataFrame({"account_id": acc["account_id"],
                                "territory_id": np.array(terr_ids, dtype=object)[assign],
                                "rep_id": None, "previous_rep": None, "moved": False})
    for column in ("name", "segment"):
        if column in acc.columns and acc[column].notna().any():
            assignments[column] = acc[column]
    # Where each centre is (an account's location or a unit's point): for maps, which could
    # not tell a unit from an account of the same id.
    at = p.candidate_latlon[centres]
    where = {"centre_lat": at[:, 0], "centre_lon": at[:, 1]} if np.isfinite(at).all() else {}
    territories = pd.DataFrame({"territory_id": terr_ids, "rep_id": None, "centre": centre_ids,
                                **where,
                                **{k: v for k, v in table.items() if k != "utilisation"}})
    max_workload = p.hi[0]
    territories["utilisation"] = table["workload"] / max_workload \
        if np.isfinite(max_workload) else None
    kpis = {"after": alignment_kpis(book, assign, bands_of(scenario.balance))}
    for not_applicable in ("disruption", "utilisation"):  # no reps, no history in a design
        kpis["after"].pop(not_applicable, None)
    terms = {"travel": float(np.nansum(table["travel"]))}
    return DesignResult(report, assignments, territories, terms, kpis, warnings)

