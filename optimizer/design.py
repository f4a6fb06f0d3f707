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
   centres (a small balanced-assignment MIP in HiGHS) and move each centre to its
   territory's 1-median, until nothing changes. This is the incumbent.
2. LP relaxation of (1)–(6) over every pair, or with pricing at scale (pairs outside the LP
   price out with the duals of (2) and (5); their rows (3) are slack).
3. Reduced-cost fixing: a pair or a centre whose reduced cost exceeds incumbent − LP bound
   cannot be in a better plan; HiGHS solves the MIP over the rest from the incumbent, and
   its bound then holds for the full problem.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from optimizer import blocks
from optimizer.distance import distance_matrix
from optimizer.domain import DesignData, Scenario
from optimizer.errors import InfeasibleScenarioError, InputError, Issue, SolverError
from optimizer.kpi import Book, alignment_kpis, territory_table
from optimizer.problem import METRICS, assignment_units, fmt
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

# Up to this many unit–centre pairs the LP holds them all; above, a working set of each
# unit's nearest candidates, priced with the duals (slow to converge for this LP: the
# x ≤ y rows make it very degenerate, which is also why the interior-point method is used).
FULL_LP_PAIRS = 200_000
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


def _candidate_rows(acc: pd.DataFrame, centres: Any) -> np.ndarray:
    ids = acc["account_id"]
    if centres == "accounts":
        return np.arange(len(acc))
    if centres == "units":
        raise InputError([Issue("scenario", None, "centres",
                                "centres: units needs a units file (not supported yet)")])
    pos = pd.Index(ids).get_indexer(pd.Index(centres))
    unknown = [c for c, p in zip(centres, pos, strict=True) if p < 0]
    if unknown:
        raise InputError([Issue("scenario", None, "centres",
                                f"unknown account(s) as centres: {', '.join(unknown[:10])}")])
    return np.asarray(pos)


def prepare(data: DesignData, scenario: Scenario) -> DesignProblem:
    """Arrays of the design model; raises InputError/InfeasibleScenarioError for scenarios
    that cannot be designed."""
    acc = data.accounts
    n_terr = scenario.territories
    issues = []
    if n_terr is None:
        issues.append(Issue("scenario", None, "territories", "design needs the number of "
                                                              "territories"))
    for metric in METRICS:
        rule = scenario.balance.rule(metric)
        if rule.active and not rule.hard:
            issues.append(Issue("scenario", None, f"balance.{metric.value}.hard",
                                "soft bands are not supported in design yet; use hard bands"))
    if issues:
        raise InputError(issues)
    n_terr = int(n_terr or 0)
    cand = _candidate_rows(acc, scenario.centres)
    if n_terr > len(cand):
        raise InfeasibleScenarioError([f"{n_terr} territories need at least as many candidate "
                                       f"centres, but there are {len(cand)}"])
    # Candidate centres are accounts in the role the reps play in a realignment.
    centres = acc.iloc[cand].rename(columns={"account_id": "rep_id"}).reset_index(drop=True)
    d = distance_matrix(acc, centres, scenario.metric, scenario.circuity, data.distances)

    # Units: hierarchies move whole (same rule as realignment).
    units = assignment_units(acc, scenario.keep_hierarchies)
    members, unit_of, label, amount = units.members, units.unit_of, units.label, units.amount
    ids = acc["account_id"].to_numpy()
    visits = acc["visits"].to_numpy(float)
    travel_acc = visits[:, None] * d
    travel = np.zeros((len(members), len(cand)))
    np.add.at(travel, unit_of, np.nan_to_num(travel_acc, nan=np.inf))
    travel[~np.isfinite(travel)] = np.inf

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
            reasons.append(f"{n_terr} territories of at most {fmt(metric, hi[k])} of "
                           f"{metric.value} hold {fmt(metric, hi[k] * n_terr)}, but the accounts "
                           f"have {fmt(metric, totals[k])}")
        if lo[k] * n_terr > totals[k] + 1e-9:
            reasons.append(f"{n_terr} territories of at least {fmt(metric, lo[k])} of "
                           f"{metric.value} need {fmt(metric, lo[k] * n_terr)}, but the accounts "
                           f"have only {fmt(metric, totals[k])}")
        for u in np.flatnonzero(amount[:, k] > hi[k] + 1e-9):
            reasons.append(f"account {label[u]} alone has {fmt(metric, amount[u, k])} of "
                           f"{metric.value}, more than a territory may hold "
                           f"({fmt(metric, hi[k])})")
    for u in np.flatnonzero(~np.isfinite(travel).any(axis=1)):
        reasons.append(f"account {label[u]} has no known distance to any candidate centre")
    if reasons:
        raise InfeasibleScenarioError(reasons)
    return DesignProblem(members, unit_of, label, amount, travel,
                         [str(x) for x in ids[cand]], n_terr, lo, hi, d, visits)


# ---------------------------------------------------------------------------------------------
# Model


def build(p: DesignProblem, pair_unit: np.ndarray, pair_centre: np.ndarray, *,
          relaxed: bool = False, closed: np.ndarray | None = None) -> pyo.ConcreteModel:
    """(1)–(6) over the given pairs; `closed` candidates are fixed shut."""
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
    # (1) travel
    m.objective = pyo.Objective(expr=blocks.linear(p.travel[pair_unit, pair_centre], xs))
    return m


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


def _allocate(p: DesignProblem, centres: np.ndarray, time_limit: float,
              threads: int | None) -> tuple[float, np.ndarray] | None:
    """Balanced assignment of units to the given open centres (HiGHS MIP)."""
    sub = np.zeros_like(p.allowed)
    sub[:, centres] = p.allowed[:, centres]
    if not sub.any(axis=1).all():
        return None
    u, j = np.nonzero(sub)
    closed = np.ones(p.n_candidates, dtype=bool)
    closed[centres] = False
    model = build(p, u, j, closed=closed)
    sol = run_highs(model, HighsOptions(time_limit=max(time_limit, 0.2), mip_gap=1e-4,
                                        threads=threads))
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


def locate_allocate(p: DesignProblem, deadline: float, threads: int | None,
                    rounds: int = 20) -> tuple[float, np.ndarray] | None:
    """The incumbent of step 1: alternate allocation and relocation until stable."""
    rng = np.random.default_rng(0)
    centres = _greedy_centres(p, rng)
    best: tuple[float, np.ndarray] | None = None
    seen: set[tuple[int, ...]] = set()
    for _ in range(rounds):
        key = tuple(sorted(int(c) for c in centres))
        if key in seen or time.perf_counter() > deadline:
            break
        seen.add(key)
        alloc = _allocate(p, centres, min(30.0, deadline - time.perf_counter()), threads)
        if alloc is None:
            break
        if best is None or alloc[0] < best[0] - 1e-9:
            best = alloc
        centres = _relocate(p, alloc[1])
    return best


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
    warnings = []
    if scenario.objective.balance > 0 or scenario.objective.disruption > 0:
        warnings.append("design minimises travel subject to hard bands; balance and "
                        "disruption weights are ignored")
    t_build = t_solve = 0.0

    # 1. incumbent
    tell("heuristic", msg="locate–allocate")
    t0 = time.perf_counter()
    heuristic_deadline = started + 0.4 * settings.time_limit
    incumbent = locate_allocate(p, heuristic_deadline, settings.threads)
    t_solve += time.perf_counter() - t0
    z_inc = incumbent[0] if incumbent else math.inf
    tell("heuristic", z_inc if incumbent else None, msg="incumbent found" if incumbent else
         "no incumbent yet")

    # 2. LP relaxation with pricing
    allowed = p.allowed
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
            if incumbent is None:
                raise SolverError(f"the LP relaxation ended with {sol.termination.value} "
                                  "before any design was found")
            warnings.append("the LP relaxation did not finish within the time limit: the "
                            "design is the heuristic's, without a proven bound")
            return _result(data, p, incumbent[1], RunReport(
                RunStatus.feasible, Termination.time_limit, z_inc, None, None,
                time.perf_counter() - started, t_build, t_solve,
                {"pairs_allowed": int(allowed.sum()), "pairs_in_lp": int(mask.sum()),
                 "pairs_in_mip": 0, "centres_considered": p.n_candidates}),
                warnings, scenario)
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

    # 3. reduced-cost fixing and the MIP
    target = settings.mip_gap
    bound = z_lp
    termination = Termination.optimal
    best_centre = incumbent[1] if incumbent else None
    pairs_in_mip = 0
    if incumbent is None or relative_gap(z_inc, z_lp) > target:  # type: ignore[operator]
        window = (z_inc - z_lp) * (1 + 1e-9) + 1e-9 if incumbent else math.inf
        keep = allowed & (red <= window)
        closed = red_y > window
        if incumbent is not None:
            keep[np.arange(p.n_units), incumbent[1]] = True
            closed[np.unique(incumbent[1])] = False
        u, j = np.nonzero(keep)
        pairs_in_mip = len(u)
        t0 = time.perf_counter()
        model = build(p, u, j, closed=closed)
        t_build += time.perf_counter() - t0
        start: dict[str, dict[object, float]] | None = None
        if incumbent is not None:
            on = incumbent[1][u] == j
            start = {"x": {int(i): 1.0 for i in np.flatnonzero(on)},
                     "y": {int(c): 1.0 for c in np.unique(incumbent[1])}}
        sol = run_highs(
            model,
            HighsOptions(time_limit=max(deadline - time.perf_counter(), 0.5), mip_gap=target,
                         threads=settings.threads),
            start=start, should_stop=should_stop,
            on_progress=lambda inc, bnd: tell("mip", inc, None if bnd is None else max(bnd, z_lp)))
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
            bound = max(z_lp, min(sol.bound, z_inc))
        elif sol.termination is Termination.infeasible and best_centre is not None:
            bound = z_inc  # nothing better exists among the pairs that could be better
        if sol.termination is Termination.time_limit:
            termination = Termination.time_limit
        elif sol.termination is Termination.cancelled:
            termination = Termination.cancelled
    if best_centre is None:
        raise SolverError(f"no design found within the time limit ({settings.time_limit:g} s)")
    gap = relative_gap(z_inc, bound)
    status = RunStatus.optimal if gap is not None and gap <= target + 1e-12 else \
        RunStatus.feasible
    report = RunReport(status, termination if status is RunStatus.feasible else
                          Termination.optimal, z_inc, bound, gap,
                          time.perf_counter() - started, t_build, t_solve,
                          {"pairs_allowed": int(allowed.sum()), "pairs_in_lp": int(mask.sum()),
                           "pairs_in_mip": pairs_in_mip,
                           "centres_considered": p.n_candidates})
    tell("done", z_inc, bound)
    return _result(data, p, best_centre, report, warnings, scenario)


def _result(data: DesignData, p: DesignProblem, unit_centre: np.ndarray, report: RunReport,
            warnings: list[str], scenario: Scenario) -> DesignResult:
    acc = data.accounts
    centres = np.unique(unit_centre)
    # Territories numbered from north-west to south-east so ids are stable and readable.
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
    territories = pd.DataFrame({"territory_id": terr_ids, "rep_id": None, "centre": centre_ids,
                                **{k: v for k, v in table.items() if k != "utilisation"}})
    max_workload = p.hi[0]
    territories["utilisation"] = table["workload"] / max_workload \
        if np.isfinite(max_workload) else None
    tolerances = {m.value: (scenario.balance.rule(m).tolerance or 0.10) for m in METRICS}
    kpis = {"after": alignment_kpis(book, assign, tolerances)}
    for not_applicable in ("disruption", "utilisation"):  # no reps, no history in a design
        kpis["after"].pop(not_applicable, None)
    terms = {"travel": float(np.nansum(table["travel"]))}
    return DesignResult(report, assignments, territories, terms, kpis, warnings)

