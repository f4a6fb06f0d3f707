"""From validated data and a scenario to the arrays the alignment model is built from.

Accounts of one hierarchy become one assignment unit (the family moves together); locks and
eligibility become a mask of allowed unit–rep pairs; bands, capacity and max_accounts become
lower/upper bounds per rep and metric. Everything here is plain numpy: no solver, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from optimizer.distance import distance_matrix
from optimizer.domain import AlignmentData, Metric, Scenario
from optimizer.errors import InfeasibleScenarioError, InputError, Issue, listed
from optimizer.kpi import Book, book_from_frames

METRICS: tuple[Metric, ...] = (Metric.workload, Metric.potential, Metric.accounts)
UNITS = {Metric.workload: "h", Metric.potential: "", Metric.accounts: " accounts"}


def fmt(metric: Metric, value: float) -> str:
    """A metric amount as a planner reads it: '2,310 h', '25.8 h', '1,200,000', '37
    accounts'. An amount under 1,000 keeps its tenth unless it is within 0.05 of a whole
    number, so a limit of 25.8 h does not read as the 26 h of the account it turns away."""
    if metric is Metric.accounts:
        return f"{value:,.0f} account{'' if round(value) == 1 else 's'}"
    digits = 1 if abs(value) < 1000 and abs(value - round(value)) >= 0.05 else 0
    return f"{value:,.{digits}f}{' ' + UNITS[metric] if UNITS[metric] else ''}"


def amount_of(metric: Metric, value: float) -> str:
    """'100 h of workload', '2 accounts': an amount that names its metric."""
    return fmt(metric, value) + ("" if metric is Metric.accounts else f" of {metric.value}")


@dataclass(frozen=True)
class Problem:
    """Arrays of one realignment; U units (accounts or families) × R reps × 3 metrics.

    amount (U, 3): workload, potential, account count per unit.
    travel (U, R): visits × distance to the rep's home base; inf where the pair is not allowed.
    moved (U, R): disruption measure moved if the unit goes to that rep.
    cost (U, R): the pair's share of the normalised objective (travel and disruption terms).
    lo, hi (R, 3): hard bounds (bands, capacity, max_accounts); 0 and inf when absent.
    soft_lo, soft_hi (R, 3): soft bands; soft_cost (R, 3) objective cost per unit outside them.
    weight_scale: the largest objective weight that acts, so the solver's costs can be kept
    near 1 whatever the weights (only their ratios matter).
    """

    unit_label: list[str]
    members: list[np.ndarray]
    unit_of: np.ndarray
    amount: np.ndarray
    travel: np.ndarray
    moved: np.ndarray
    cost: np.ndarray
    locked: np.ndarray
    rep_ids: list[str]
    fair: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    hi_reason: np.ndarray
    soft_lo: np.ndarray
    soft_hi: np.ndarray
    soft_cost: np.ndarray
    travel_ref: float
    moved_total: float
    disruption_budget: float | None
    book: Book
    weight_scale: float = 1.0

    @property
    def n_units(self) -> int:
        return len(self.members)

    @property
    def n_reps(self) -> int:
        return len(self.rep_ids)

    @cached_property  # used throughout the solve; computed once
    def allowed(self) -> np.ndarray:
        return np.isfinite(self.cost)

    def constrained_metrics(self) -> list[int]:
        """Metrics with any hard bound or soft band: only these get load rows."""
        out = []
        for k in range(len(METRICS)):
            if (self.lo[:, k] > 0).any() or np.isfinite(self.hi[:, k]).any() or (
                    self.soft_cost[:, k] > 0).any():
                out.append(k)
        return out

    def unit_assignment_to_accounts(self, unit_rep: np.ndarray) -> np.ndarray:
        return unit_rep[self.unit_of]


def families(accounts: pd.DataFrame, keep: bool) -> np.ndarray:
    """Root account position of each account's hierarchy (itself when none)."""
    n = len(accounts)
    if not keep or accounts["parent_id"].isna().all():
        return np.arange(n)
    pos = pd.Index(accounts["account_id"]).get_indexer(accounts["parent_id"].fillna("\0"))
    root = np.where(pos >= 0, pos, np.arange(n))
    for _ in range(n):  # pointer jumping; validated acyclic, so this converges
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return root


@dataclass(frozen=True)
class Units:
    """Accounts grouped into assignment units: a hierarchy moves as one."""

    members: list[np.ndarray]  # account positions per unit
    unit_of: np.ndarray  # unit position per account
    label: list[str]  # for messages
    amount: np.ndarray  # (units, 3): workload, potential, account count
    per_account: np.ndarray  # (accounts, 3)


def assignment_units(acc: pd.DataFrame, keep_hierarchies: bool) -> Units:
    root = families(acc, keep_hierarchies)
    roots, unit_of = np.unique(root, return_inverse=True)
    order = np.argsort(unit_of, kind="stable")
    cuts = np.searchsorted(unit_of[order], np.arange(len(roots) + 1))
    members = [order[cuts[u]:cuts[u + 1]] for u in range(len(roots))]
    ids = acc["account_id"].to_numpy()
    label = [str(ids[m[0]]) if len(m) == 1 else f"hierarchy of {ids[roots[u]]} ({len(m)} accounts)"
             for u, m in enumerate(members)]
    per_account = np.column_stack([acc["workload"].to_numpy(float),
                                   acc["potential"].to_numpy(float), np.ones(len(acc))])
    amount = np.zeros((len(members), 3))
    np.add.at(amount, unit_of, per_account)
    return Units(members, unit_of, label, amount, per_account)


STUCK_SHOWN = 10  # accounts no rep may take, named in the explanation


def in_segment(accounts: pd.DataFrame, segment: str) -> np.ndarray:
    """Which accounts are of `segment` (those without one are of none)."""
    return accounts["segment"].eq(segment).fillna(False).to_numpy(bool)


def holds_role(reps: pd.DataFrame, roles: list[str]) -> np.ndarray:
    """Which reps hold one of `roles` (a rep without a role holds none)."""
    return reps["role"].isin(roles).to_numpy(bool)


def eligibility_issues(accounts: pd.DataFrame, reps: pd.DataFrame,
                       eligibility: dict[str, list[str]]) -> list[Issue]:
    """Segments whose accounts the eligibility rule gives to roles no rep has (a typo such
    as "Commercial" for "commercial", or reps without roles): bad input, one issue each."""
    held = sorted({str(r) for r in reps["role"] if not pd.isna(r)})
    issues = []
    for segment, permitted in eligibility.items():
        n = int(in_segment(accounts, segment).sum())
        if n and not holds_role(reps, permitted).any():
            issues.append(Issue("scenario", None, f"eligibility.{segment}", (
                f"no rep has role {', '.join(map(repr, permitted))}, so the {n:,} accounts "
                f"of segment {segment!r} could go to no one (the reps' roles: "
                f"{', '.join(map(repr, held)) or 'none given'})")))
    return issues


def unused_eligibility(accounts: pd.DataFrame, eligibility: dict[str, list[str]]) -> list[str]:
    """Warnings for eligibility keys that name a segment no account has: the rule does
    nothing, and a typo ("Enterprise" for "enterprise") is the likely cause."""
    present = sorted(accounts["segment"].dropna().astype(str).unique())
    shown = listed([repr(s) for s in present], STUCK_SHOWN) or "none given"
    return [f"eligibility for segment {segment!r} has no effect: no account has that segment "
            f"(the accounts' segments: {shown})"
            for segment in eligibility if segment not in present]


def prepare(data: AlignmentData, scenario: Scenario) -> Problem:
    """Turn validated data and a scenario into model arrays; raise InfeasibleScenarioError for
    contradictions visible without solving (locks, eligibility), and InputError for an
    eligibility rule that sends a segment to roles no rep has."""
    acc, reps = data.accounts, data.reps
    n_rep = len(reps)
    rep_ids = reps["rep_id"].tolist()
    rep_pos = pd.Index(rep_ids)
    dist = distance_matrix(acc, reps, scenario.metric, scenario.circuity, data.distances)
    book = book_from_frames(acc, reps, dist)
    reasons: list[str] = []

    # Units: one per hierarchy.
    units = assignment_units(acc, scenario.keep_hierarchies)
    members, unit_of, label, amount = units.members, units.unit_of, units.label, units.amount
    per_account = units.per_account

    # Allowed pairs: known distance, eligibility by segment → roles, locks.
    allowed_acc = ~np.isnan(dist)
    if unheld := eligibility_issues(acc, reps, scenario.eligibility):
        raise InputError(unheld)
    for segment, permitted in scenario.eligibility.items():
        allowed_acc[in_segment(acc, segment)] &= holds_role(reps, permitted)[None, :]
    locked_acc = rep_pos.get_indexer(acc["locked_rep"].fillna("\0"))
    for i in np.flatnonzero(locked_acc >= 0):
        allowed_acc[i] = False
        allowed_acc[i, locked_acc[i]] = not np.isnan(dist[i, locked_acc[i]])

    travel_acc = book.visits[:, None] * np.nan_to_num(dist, nan=0.0)
    travel = np.zeros((len(members), n_rep))
    np.add.at(travel, unit_of, travel_acc)
    allowed = np.ones((len(members), n_rep), dtype=bool)
    np.logical_and.at(allowed, unit_of, allowed_acc)
    locked = np.full(len(members), -1)
    for u, m in enumerate(members):
        locks = {int(x) for x in locked_acc[m] if x >= 0}
        if len(locks) > 1:
            names = ", ".join(sorted(rep_ids[x] for x in locks))
            reasons.append(f"{label[u]} is locked to several reps ({names}); a hierarchy "
                           "stays with one rep")
        elif locks:
            locked[u] = locks.pop()
    stuck = np.flatnonzero(~allowed.any(axis=1))
    for u in stuck[locked[stuck] >= 0]:
        reasons.append(f"account {label[u]} cannot be assigned: it is locked to "
                       f"{rep_ids[locked[u]]}, whose distance is unknown")
    if len(free := stuck[locked[stuck] < 0]):
        # One line for them all: a real file can have thousands.
        shown = listed([label[u] for u in free], STUCK_SHOWN, "accounts or hierarchies")
        n_accounts = sum(len(members[u]) for u in free)
        reasons.append(f"{fmt(Metric.accounts, n_accounts)} cannot be assigned, because no rep is "
                       "eligible for them (segment eligibility, hierarchy or missing "
                       f"distances): {shown}")

    # Disruption: measure moved if the unit goes to each rep.
    dm = scenario.disruption.measure
    w_acc = per_account[:, METRICS.index(dm)]
    has_cur = book.current >= 0
    moved_if_any = np.zeros(len(members))
    np.add.at(moved_if_any, unit_of, np.where(has_cur, w_acc, 0.0))
    stays = np.zeros((len(members), n_rep))
    np.add.at(stays, (unit_of[has_cur], book.current[has_cur]), w_acc[has_cur])
    moved = moved_if_any[:, None] - stays
    moved_total = float(w_acc[has_cur].sum())
    budget = None
    if scenario.disruption.max_share is not None:
        budget = scenario.disruption.max_share * moved_total

    # Bands, capacity and account limits per rep.
    capacity = reps["capacity"].to_numpy(float)
    totals = amount.sum(axis=0)
    fair = totals[None, :] * (capacity / capacity.sum())[:, None]
    lo = np.zeros((n_rep, 3))
    hi = np.full((n_rep, 3), np.inf)
    hi_reason = np.full((n_rep, 3), "", dtype=object)
    soft_lo = np.zeros((n_rep, 3))
    soft_hi = np.full((n_rep, 3), np.inf)
    soft_cost = np.zeros((n_rep, 3))
    w = scenario.objective
    for k, metric in enumerate(METRICS):
        rule = scenario.balance.rule(metric)
        if not rule.active:
            continue
        band_lo = np.zeros(n_rep)
        band_hi = np.full(n_rep, np.inf)
        if rule.tolerance is not None:
            band_lo = np.maximum(band_lo, fair[:, k] * (1 - rule.tolerance))
            band_hi = np.minimum(band_hi, fair[:, k] * (1 + rule.tolerance))
        if rule.min is not None:
            band_lo = np.maximum(band_lo, rule.min)
        if rule.max is not None:
            band_hi = np.minimum(band_hi, rule.max)
        if rule.hard:
            lo[:, k], hi[:, k] = band_lo, band_hi
            hi_reason[:, k] = "its upper band"
        elif w.balance > 0 and rule.weight > 0:
            soft_lo[:, k], soft_hi[:, k] = band_lo, band_hi
            # Mean relative deviation outside the band over reps, times the weights.
            soft_cost[:, k] = w.balance * rule.weight / (n_rep * np.maximum(fair[:, k], 1e-12))
    cap_binds = capacity < hi[:, 0]
    hi[:, 0] = np.where(cap_binds, capacity, hi[:, 0])
    hi_reason[cap_binds, 0] = "its capacity"
    max_acc = reps["max_accounts"].to_numpy(float)
    limit = ~np.isnan(max_acc) & (max_acc < hi[:, 2])
    hi[limit, 2] = max_acc[limit]
    hi_reason[limit, 2] = "its max_accounts"

    # Objective per pair: travel relative to the ideal (nearest allowed rep for every
    # account), disruption as a share of what could move.
    masked = np.where(allowed, travel, np.inf)
    ideal = np.where(np.isfinite(masked.min(axis=1)), masked.min(axis=1), 0.0)
    travel_ref = float(ideal.sum()) if ideal.sum() > 0 else 1.0
    cost = np.zeros((len(members), n_rep))
    if w.travel > 0:
        cost += w.travel * travel / travel_ref
    if w.disruption > 0 and moved_total > 0:
        cost += w.disruption * moved / moved_total
    cost[~allowed] = np.inf
    acting = [w.travel, w.disruption if moved_total > 0 else 0.0,
              *(w.balance * scenario.balance.rule(m).weight for k, m in enumerate(METRICS)
                if (soft_cost[:, k] > 0).any())]

    problem = Problem(label, members, unit_of, amount, np.where(allowed, travel, np.inf), moved,
                      cost, locked, rep_ids, fair, lo, hi, hi_reason, soft_lo, soft_hi, soft_cost,
                      travel_ref, moved_total, budget, book, max(acting) or 1.0)
    reasons += presolve_reasons(problem)
    if reasons:
        raise InfeasibleScenarioError(reasons)
    return problem


def presolve_reasons(p: Problem) -> list[str]:
    """Contradictions visible without solving, in business terms."""
    reasons: list[str] = []
    totals = p.amount.sum(axis=0)
    for k, metric in enumerate(METRICS):
        name = metric.value
        cap_total = p.hi[:, k].sum()
        if np.isfinite(cap_total) and cap_total < totals[k] - 1e-9:
            what = "capacity" if k == 0 and (p.hi_reason[:, 0] == "its capacity").all() else \
                "upper limits"
            reasons.append(f"the accounts need {amount_of(metric, totals[k])} but the reps' {what} "
                           f"add up to only {fmt(metric, cap_total)}")
        if p.lo[:, k].sum() > totals[k] + 1e-9:
            reasons.append(f"the reps' minimum {name} adds up to {fmt(metric, p.lo[:, k].sum())} "
                           f"but the accounts hold only {fmt(metric, totals[k])}")
        locked_load = np.bincount(p.locked[p.locked >= 0], weights=p.amount[p.locked >= 0, k],
                                  minlength=p.n_reps)
        for r in np.flatnonzero(locked_load > p.hi[:, k] + 1e-9):
            reasons.append(f"locked accounts give rep {p.rep_ids[r]} "
                           f"{amount_of(metric, locked_load[r])} against "
                           f"{p.hi_reason[r, k]} of {fmt(metric, p.hi[r, k])}")
        reachable = (p.allowed * p.amount[:, [k]]).sum(axis=0)
        for r in np.flatnonzero(reachable < p.lo[:, k] - 1e-9):
            reasons.append(f"rep {p.rep_ids[r]} can reach at most "
                           f"{amount_of(metric, reachable[r])} from the accounts it may take, "
                           f"below its minimum of {fmt(metric, p.lo[r, k])}")
        too_big = p.allowed & (p.amount[:, [k]] > p.hi[None, :, k] + 1e-9)
        for u in np.flatnonzero(p.allowed.any(axis=1) & ~(p.allowed & ~too_big).any(axis=1)):
            reasons.append(f"account {p.unit_label[u]} alone has "
                           f"{amount_of(metric, p.amount[u, k])}, more than any rep it may go "
                           "to can take")
    return reasons + _cap_against_minimum(p)


def _cap_against_minimum(p: Problem) -> list[str]:
    """Reps whose limit on one metric keeps them below their minimum of another (at most 1
    account against a workload minimum of 360 h). The most of metric j a rep can gather
    within its cap on metric k is a fractional knapsack over the units it may take: the
    LP relaxation's own limit, so a rep found here fails in every plan."""
    reasons: list[str] = []
    for r in range(p.n_reps):
        may = p.allowed[:, r]
        for k, j in ((k, j) for k in range(3) for j in range(3) if k != j):
            cap, need = p.hi[r, k], p.lo[r, j]
            if not np.isfinite(cap) or need <= 0:
                continue
            gain, weight = p.amount[may, j], p.amount[may, k]
            if gain.sum() < need - 1e-9:
                continue  # out of reach even without the cap: said by `presolve_reasons`
            free = weight <= 1e-12
            # Cheap test first: the best ratio over the whole cap cannot fall short.
            best_ratio = (gain[~free] / weight[~free]).max(initial=0.0)
            if gain[free].sum() + cap * best_ratio >= need - 1e-9:
                continue
            most = gain[free].sum() + _fractional_knapsack(gain[~free], weight[~free], cap)
            if most < need - 1e-9:
                mk, mj = METRICS[k], METRICS[j]
                if mj is Metric.accounts:  # a count: whole accounts, so at most the floor
                    most = np.floor(most + 1e-9)
                reasons.append(f"rep {p.rep_ids[r]} can gather at most {amount_of(mj, most)} "
                               f"within {p.hi_reason[r, k]} of {amount_of(mk, cap)}, below its "
                               f"minimum of {fmt(mj, need)}")
    return reasons


def _fractional_knapsack(gain: np.ndarray, weight: np.ndarray, cap: float) -> float:
    """Most total gain from items (weight > 0) taken whole or in part within `cap`."""
    order = np.argsort(-gain / weight, kind="stable")
    gain, weight = gain[order], weight[order]
    filled = np.cumsum(weight)
    whole = int(np.searchsorted(filled, cap + 1e-12, side="right"))
    most = float(gain[:whole].sum())
    if whole < len(gain):
        room = cap - (filled[whole - 1] if whole else 0.0)
        most += gain[whole] * room / weight[whole]
    return most
