"""The one definition of every KPI, used by the CLI, the API, the workbook and the benchmarks.

All functions take an assignment as an array of rep positions per account (-1 = unassigned)
and return plain floats, so before/after tables and scenario comparisons agree everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer.domain import Balance

METRICS = ("workload", "potential", "accounts")
REPORTING_TOLERANCE = 0.10  # a metric the scenario sets no band for is reported against ±10 %


@dataclass(frozen=True)
class Band:
    """What `share_within_tolerance` counts as balanced for one metric: within `tolerance`
    of the fair share (when set) and within the absolute [lo, hi] (when set)."""

    tolerance: float | None = REPORTING_TOLERANCE
    lo: float | None = None
    hi: float | None = None


def bands_of(balance: Balance) -> dict[str, Band]:
    """The scenario's band per metric, as the KPIs judge it."""
    bands = {}
    for m in METRICS:
        rule = balance.rule(m)
        unset = rule.tolerance is None and rule.min is None and rule.max is None
        bands[m] = Band() if unset else Band(rule.tolerance, rule.min, rule.max)
    return bands


@dataclass(frozen=True)
class Book:
    """The per-account facts that KPIs are computed from."""

    workload: np.ndarray
    potential: np.ndarray
    visits: np.ndarray
    distance: np.ndarray  # accounts × reps, NaN where unknown
    capacity: np.ndarray  # per rep
    current: np.ndarray  # rep position today per account, -1 if none

    def metric(self, name: str) -> np.ndarray:
        if name == "accounts":
            return np.ones_like(self.workload)
        values: np.ndarray = getattr(self, name)
        return values


def per_rep(book: Book, assign: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of `values` per rep under `assign`."""
    ok = assign >= 0
    return np.bincount(assign[ok], weights=values[ok], minlength=len(book.capacity))


def account_distance(book: Book, assign: np.ndarray) -> np.ndarray:
    """Distance from each account to its rep's home base (NaN when unassigned)."""
    out = np.full(len(assign), np.nan)
    ok = assign >= 0
    out[ok] = book.distance[np.flatnonzero(ok), assign[ok]]
    return out


def account_travel(book: Book, assign: np.ndarray) -> np.ndarray:
    """Travel of each account: visits × distance to its rep's home base."""
    return book.visits * account_distance(book, assign)


def fair_shares(total: float, capacity: np.ndarray) -> np.ndarray:
    """A rep's fair share of a total: in proportion to its capacity."""
    return total * capacity / capacity.sum()


def balance_stats(values: np.ndarray, fair: np.ndarray, tolerance: float | None,
                  lo: float | None = None, hi: float | None = None) -> dict[str, float]:
    """Balance of one metric over territories, relative to each territory's fair share;
    a territory is within tolerance when it is within each part of the band that is set."""
    ratio = np.divide(values, fair, out=np.ones_like(values), where=fair > 0)
    mean = float(values.mean()) if len(values) else 0.0
    within = np.ones(len(values), dtype=bool)
    if tolerance is not None:
        within &= np.abs(ratio - 1) <= tolerance + 1e-9
    if lo is not None:
        within &= values >= lo - 1e-9 * max(1.0, lo)
    if hi is not None:
        within &= values <= hi + 1e-9 * max(1.0, hi)
    # Nothing to share (every territory at 0, e.g. no potential given) is even: ratios of 1,
    # as the fair-share ratios already are.
    return {
        "max_over_mean": float(values.max() / mean) if mean > 0 else 1.0,
        "min_over_mean": float(values.min() / mean) if mean > 0 else 1.0,
        "cv": float(values.std() / mean) if mean > 0 else 0.0,
        "max_over_fair": float(ratio.max()),
        "min_over_fair": float(ratio.min()),
        "share_within_tolerance": float(within.mean()) if len(values) else 1.0,
    }


def territory_table(book: Book, assign: np.ndarray) -> dict[str, np.ndarray]:
    """Per-rep workload, potential, account count, travel and utilisation."""
    travel = np.nan_to_num(account_travel(book, assign))
    workload = per_rep(book, assign, book.workload)
    return {
        "workload": workload,
        "potential": per_rep(book, assign, book.potential),
        "accounts": per_rep(book, assign, np.ones_like(book.workload)),
        "travel": per_rep(book, assign, travel),
        "utilisation": workload / book.capacity,
    }


def alignment_kpis(book: Book, assign: np.ndarray, bands: dict[str, Band]) -> dict[str, object]:
    """Every alignment KPI: balance per metric (judged against `bands`, see `bands_of`),
    travel, disruption, utilisation, coverage."""
    assigned = assign >= 0
    table = territory_table(book, assign)
    balance = {}
    for m in METRICS:
        total = float(book.metric(m)[assigned].sum())
        fair = fair_shares(total, book.capacity)
        band = bands.get(m, Band())
        balance[m] = balance_stats(table[m], fair, band.tolerance, band.lo, band.hi)
    travel = np.nan_to_num(account_travel(book, assign))
    dist = np.nan_to_num(account_distance(book, assign))
    w = book.workload[assigned]
    kpis: dict[str, object] = {
        "accounts_assigned": int(assigned.sum()),
        "accounts_unassigned": int((~assigned).sum()),
        "balance": balance,
        "travel": {
            "total": float(travel.sum()),
            "workload_weighted_mean_distance": float((dist[assigned] * w).sum() / w.sum())
            if w.sum() > 0 else 0.0,
            "max_distance": float(dist[assigned].max()) if assigned.any() else 0.0,
        },
        "utilisation": {
            "max": float(table["utilisation"].max()),
            "mean": float(table["utilisation"].mean()),
            "over_capacity_reps": int((table["utilisation"] > 1 + 1e-9).sum()),
        },
        "disruption": disruption(book, assign),
    }
    return kpis


def disruption(book: Book, assign: np.ndarray) -> dict[str, float]:
    """Accounts, workload and potential moved away from today's rep, as amounts and shares
    of the accounts that have a rep today."""
    has_current = book.current >= 0
    moved = has_current & (assign != book.current)
    out: dict[str, float] = {}
    for m in METRICS:
        v = book.metric(m)
        base = float(v[has_current].sum())
        amount = float(v[moved].sum())
        out[f"{m}_moved"] = amount
        out[f"{m}_moved_share"] = amount / base if base > 0 else 0.0
    return out


def book_from_frames(accounts: pd.DataFrame, reps: pd.DataFrame, distance: np.ndarray) -> Book:
    current = pd.Index(reps["rep_id"]).get_indexer(accounts["current_rep"].fillna("\0"))
    return Book(
        workload=accounts["workload"].to_numpy(float),
        potential=accounts["potential"].to_numpy(float),
        visits=accounts["visits"].to_numpy(float),
        distance=distance,
        capacity=reps["capacity"].to_numpy(float),
        current=current.astype(np.int64),
    )
