r"""Quota deployment: top-down split, bottom-up roll-up, derived and overlay quotas, and a
fairness LP. Every function returns a DataFrame whose columns explain each number.

Top-down (territories i, company goal G, over-assignment o, potential weight w)
-------------------------------------------------------------------------------
    potential_share[i] = potential[i] / Σ potential
    history_share[i]   = history[i] / Σ history
    blended_share[i]   = w potential_share[i] + (1 - w) history_share[i]
    target[i]          = o G blended_share[i]                 full-year quota if fully ramped
    prorate_factor[i]  = n[i] / 12                            n[i] months in seat this year
    ramp_factor[i]     = (Σ_{k<n[i]} ρ[k]) / n[i]             mean productivity while in seat
    ramped[i]          = target[i] prorate_factor[i] ramp_factor[i]
    shortfall          = Σ (target[i] - ramped[i])            what ramping reps cannot carry

A hire starting in month 4 of 12 with ramp [0.25, 0.5, 0.75] sits 9 months (prorate 0.75)
at a mean productivity (0.25 + 0.5 + 0.75 + 6) / 9 = 0.8333, so carries 7.5 / 12 = 62.5%
of its target. The shortfall is either absorbed by the company (quotas then sum to less than
o G) or spread over the fully ramped territories in proportion to their blended share:
adjustment[j] = shortfall blended_share[j] / Σ_{ramped} blended_share. Amounts are rounded to
the currency unit by largest remainder, so the rounded quotas sum exactly to the rounded total.

Fairness (LP)
-------------
Parameters: p[i] potential, h[i] = o G history_share[i] (the history-based quota),
[lo, hi] the band of quota-to-potential ratios (relative: multiples of the company ratio
r = o G / Σ p). Variables: q[i] ≥ 0, d⁺[i], d⁻[i] ≥ 0.

    (1) min Σ (d⁺[i] + d⁻[i])                  stay as close as possible to history
    (2) Σ q[i] = o G                           meet the goal
    (3) lo r p[i] ≤ q[i] ≤ hi r p[i]           ratios within the band
    (4) q[i] - h[i] = d⁺[i] - d⁻[i]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from optimizer.blocks import linear
from optimizer.errors import InfeasibleScenarioError, InputError, Issue, SolverError, cell
from optimizer.solve import HighsOptions, Termination, run_highs
from optimizer.validate import id_text

MONTHS = 12
# Relative tolerance of float noise before rounding: 0.1 + 0.2 must floor as 0.3.
_NOISE = 1e-9


def round_exact(amounts: Sequence[float] | np.ndarray, unit: float = 1.0) -> np.ndarray:
    """Round each amount to a multiple of `unit` so the rounded sum equals the sum rounded.

    Largest remainder (Hamilton): every amount is floored, then the units still missing to
    reach round(Σ amounts / unit) (halves up) go one each to the largest remainders; ties go
    to the earlier amount, so the result is deterministic.
    """
    if unit <= 0:
        raise ValueError(f"the rounding unit must be positive, got {unit}")
    a = np.asarray(amounts, dtype=float)
    if a.size == 0:
        return a.copy()
    scaled = a / unit
    # Float noise (2.9999999999 for 3) must not cost a whole unit.
    scaled = np.where(np.abs(scaled - np.round(scaled)) < _NOISE * np.maximum(1, np.abs(scaled)),
                      np.round(scaled), scaled)
    floors = np.floor(scaled)
    total = math.floor(float(scaled.sum()) + 0.5 + _NOISE)
    missing = int(total - floors.sum())
    order = np.argsort(-(scaled - floors), kind="stable")
    out = floors.copy()
    out[order[:missing]] += 1
    return out * unit


# ---------------------------------------------------------------------------------------------
# Input checks


def _check(df: pd.DataFrame, source: str, required: Sequence[str],
           non_negative: Sequence[str], key: str | None) -> None:
    """Every missing column, negative or missing amount and duplicate key, all at once."""
    issues = [Issue(source, None, c, "column is missing") for c in required if c not in df]
    if issues:
        raise InputError(issues)
    for col in non_negative:
        if col not in df:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        for row in np.flatnonzero(values.isna() | (values < 0)):
            issues.append(Issue(source, int(row) + 1, col,
                                f"must be a number ≥ 0, got {cell(df[col].iloc[row])}"))
    if key is not None:
        for row in np.flatnonzero(df[key].duplicated().to_numpy()):
            issues.append(Issue(source, int(row) + 1, key,
                                f"duplicate {key} {cell(df[key].iloc[row])}"))
    if issues:
        raise InputError(issues)


def _shares(values: np.ndarray, source: str, column: str) -> np.ndarray:
    total = float(values.sum())
    if total <= 0:
        raise InputError([Issue(source, None, column, "adds up to 0: no shares to split by")])
    return values / total


# ---------------------------------------------------------------------------------------------
# Top-down


@dataclass(frozen=True)
class TopDownSettings:
    """How a company goal is split (see the module formulation).

    potential_weight: w, the weight of the potential share (history gets 1 - w).
    over_assignment: o, e.g. 1.1 to deploy 110% of the goal.
    ramp: fraction productive in months 1..k of a new hire (then 1.0).
    shortfall: "company" (absorbed, quotas sum to less) or "spread" (over ramped reps).
    unit: the currency unit quotas are rounded to.
    """

    potential_weight: float = 0.5
    over_assignment: float = 1.0
    ramp: tuple[float, ...] = ()
    shortfall: Literal["company", "spread"] = "company"
    unit: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.potential_weight <= 1:
            raise ValueError("potential_weight must be between 0 and 1")
        if self.over_assignment <= 0:
            raise ValueError("over_assignment must be positive")
        if any(not 0 <= f <= 1 for f in self.ramp):
            raise ValueError("ramp fractions must be between 0 and 1")


def ramp_factors(start_month: float | None, ramp: Sequence[float],
                 months: int = MONTHS) -> tuple[float, float]:
    """(prorate_factor, ramp_factor) of a rep starting in `start_month` (1-based; None or
    NaN: an established rep, in seat and ramped all year). Their product is the share of a
    full-year quota carried."""
    if start_month is None or (isinstance(start_month, float) and math.isnan(start_month)):
        return 1.0, 1.0  # an established rep: no ramp (a January hire still ramps)
    start = int(start_month)
    seated = max(0, months - start + 1)
    if seated == 0:
        return 0.0, 0.0
    productive = sum(ramp[k] if k < len(ramp) else 1.0 for k in range(seated))
    return seated / months, productive / seated


def top_down(territories: pd.DataFrame, goal: float,
             settings: TopDownSettings | None = None) -> pd.DataFrame:
    """Split `goal` over territories by blended potential/history share, pro-rated and ramped
    for new hires, with the ramp shortfall absorbed or spread, rounded exactly.

    Parameters
    ----------
    territories
        territory_id, potential, history; optional rep_id and start_month (1-12, the month a
        new rep starts; empty for a rep in seat all year).
    goal
        The company goal G (before over-assignment).
    settings
        Weights, over-assignment, ramp curve, shortfall handling and rounding unit.

    Returns
    -------
    One row per territory: potential_share, history_share, blended_share, over_assignment,
    target, start_month, prorate_factor, ramp_factor, ramped, adjustment, quota_unrounded,
    rounding and quota.
    """
    s = settings or TopDownSettings()
    _check(territories, "territories", ["territory_id", "potential", "history"],
           ["potential", "history"], "territory_id")
    df = territories.reset_index(drop=True)
    starts = (pd.to_numeric(df["start_month"], errors="coerce") if "start_month" in df
              else pd.Series(np.nan, index=df.index))
    bad = [Issue("territories", int(r) + 1, "start_month", "must be a month from 1 to 12")
           for r in np.flatnonzero(starts.notna() & ~starts.between(1, MONTHS))]
    if bad:
        raise InputError(bad)

    def shares(column: str, weight: float) -> np.ndarray:
        values = df[column].to_numpy(float)
        if weight == 0 and values.sum() <= 0:  # it splits nothing: no history yet is fine
            return np.zeros(len(values))
        return _shares(values, "territories", column)

    pot = shares("potential", s.potential_weight)
    hist = shares("history", 1 - s.potential_weight)
    blended = s.potential_weight * pot + (1 - s.potential_weight) * hist
    target = s.over_assignment * goal * blended
    factors = np.array([ramp_factors(float(v), s.ramp) for v in starts.to_numpy(float)])
    prorate, ramp = factors[:, 0], factors[:, 1]
    ramped = target * prorate * ramp
    shortfall = float((target - ramped).sum())
    adjustment = np.zeros(len(df))
    full = np.isclose(prorate * ramp, 1.0)
    if s.shortfall == "spread" and shortfall > 0:
        if not full.any() or blended[full].sum() <= 0:
            raise InfeasibleScenarioError([
                f"the ramp shortfall of {shortfall:,.0f} cannot be spread: no territory has a "
                "rep in seat and fully ramped all year"])
        adjustment[full] = shortfall * blended[full] / blended[full].sum()
    raw = ramped + adjustment
    quota = round_exact(raw, s.unit)
    out = pd.DataFrame({
        "territory_id": df["territory_id"],
        **({"rep_id": df["rep_id"]} if "rep_id" in df else {}),
        "potential": df["potential"].astype(float), "history": df["history"].astype(float),
        "potential_share": pot, "history_share": hist, "blended_share": blended,
        "over_assignment": s.over_assignment, "target": target, "start_month": starts,
        "prorate_factor": prorate, "ramp_factor": ramp, "ramped": ramped,
        "adjustment": adjustment, "quota_unrounded": raw, "rounding": quota - raw,
        "quota": quota,
    })
    return out


# ---------------------------------------------------------------------------------------------
# Bottom-up


def bottom_up(submissions: pd.DataFrame, goal: float | None = None, *, close_gap: bool = False,
              unit: float = 1.0) -> pd.DataFrame:
    """Roll territory (or rep) submissions up to managers, regions and the company.

    Parameters
    ----------
    submissions
        id, submitted; optional manager and region (each territory's line of roll-up).
    goal
        The company goal; gives each row its proportional share of the goal and the gap.
    close_gap
        Scale every submission by goal / Σ submitted (rounded exactly) so quotas meet the goal.

    Returns
    -------
    Rows with level (territory, manager, region, company), id, parent, submitted,
    share (of all submissions), goal_share (share × goal), gap (goal_share - submitted),
    adjustment (quota - submitted) and quota; roll-up rows are sums of the rows below.
    """
    _check(submissions, "submissions", ["id", "submitted"], ["submitted"], "id")
    if close_gap and goal is None:
        raise ValueError("close_gap needs a goal")
    df = submissions.reset_index(drop=True)
    submitted = df["submitted"].to_numpy(float)
    share = _shares(submitted, "submissions", "submitted")
    if close_gap and goal is not None:
        quota = round_exact(submitted * goal / submitted.sum(), unit)
    else:
        quota = submitted.copy()
    none = pd.Series(pd.NA, index=df.index, dtype="string")
    manager = id_text(df["manager"]) if "manager" in df else none
    region = id_text(df["region"]) if "region" in df else none
    base = pd.DataFrame({"level": "territory", "id": df["id"].astype(str), "manager": manager,
                         "region": region, "submitted": submitted, "share": share,
                         "quota": quota})
    # Each row's nearest level above: a territory without a manager rolls up to its region.
    base["parent"] = manager.fillna(region).fillna("company")
    frames = [base]
    if "manager" in df:
        grouped = base.groupby("manager", sort=False)  # territories without one: none
        managers = grouped[["submitted", "share", "quota"]].sum().reset_index()
        managers["parent"] = grouped["region"].first().fillna("company").to_numpy()
        frames.append(managers.rename(columns={"manager": "id"}).assign(level="manager"))
    if "region" in df:
        regions = base.groupby("region", sort=False)[["submitted", "share", "quota"]].sum()
        frames.append(regions.reset_index().rename(columns={"region": "id"})
                      .assign(level="region", parent="company"))
    frames.append(pd.DataFrame({"level": ["company"], "id": ["company"], "parent": [None],
                                "submitted": [submitted.sum()], "share": [1.0],
                                "quota": [quota.sum()]}))
    out = pd.concat(frames, ignore_index=True)[["level", "id", "parent", "submitted", "share",
                                                 "quota"]]
    out["goal_share"] = out["share"] * goal if goal is not None else np.nan
    out["gap"] = out["goal_share"] - out["submitted"]
    out["adjustment"] = out["quota"] - out["submitted"]
    return out[["level", "id", "parent", "submitted", "share", "goal_share", "gap",
                "adjustment", "quota"]]


# ---------------------------------------------------------------------------------------------
# Derived quotas


def derived_manager(quotas: pd.DataFrame, factor: float = 1.0, *,
                    unit: float = 1.0) -> pd.DataFrame:
    """Manager quota = factor × the sum of the team's quotas (e.g. 0.9: managers carry 90%).

    `quotas` has manager_id and quota per team member. Returns manager_id, team_size,
    team_quota, factor, quota_unrounded and quota (rounded exactly over all managers).
    """
    _check(quotas, "quotas", ["manager_id", "quota"], ["quota"], None)
    if factor <= 0:
        raise ValueError("factor must be positive")
    teams = quotas.groupby("manager_id", sort=True)["quota"].agg(["size", "sum"]).reset_index()
    raw = factor * teams["sum"].to_numpy(float)
    return pd.DataFrame({"manager_id": teams["manager_id"], "team_size": teams["size"],
                         "team_quota": teams["sum"].astype(float), "factor": factor,
                         "quota_unrounded": raw, "quota": round_exact(raw, unit)})


def overlay(quotas: pd.DataFrame, coverage: pd.DataFrame, factor: float = 1.0, *,
            unit: float = 1.0) -> pd.DataFrame:
    """Overlay (specialist) quota = factor × Σ share × quota of the territories covered.

    `quotas`: territory_id, quota. `coverage`: overlay_id, territory_id and optional share
    (the part of the territory's quota the overlay is measured on, default 1). Returns
    overlay_id, territories, covered_quota, factor, quota_unrounded and quota.
    """
    _check(quotas, "quotas", ["territory_id", "quota"], ["quota"], "territory_id")
    _check(coverage, "coverage", ["overlay_id", "territory_id"], ["share"], None)
    known = set(quotas["territory_id"])
    issues = [Issue("coverage", int(r) + 1, "territory_id",
                    f"unknown territory {cell(coverage['territory_id'].iloc[r])}")
              for r in range(len(coverage)) if coverage["territory_id"].iloc[r] not in known]
    if issues:
        raise InputError(issues)
    cov = coverage.merge(quotas[["territory_id", "quota"]], on="territory_id", how="left")
    share = cov["share"].astype(float) if "share" in cov else pd.Series(1.0, index=cov.index)
    cov = cov.assign(covered=share * cov["quota"].astype(float))
    per = cov.groupby("overlay_id", sort=True).agg(territories=("territory_id", "size"),
                                                   covered_quota=("covered", "sum"))
    raw = factor * per["covered_quota"].to_numpy(float)
    return pd.DataFrame({"overlay_id": per.index, "territories": per["territories"].to_numpy(),
                         "covered_quota": per["covered_quota"].to_numpy(), "factor": factor,
                         "quota_unrounded": raw, "quota": round_exact(raw, unit)})


# ---------------------------------------------------------------------------------------------
# Fairness LP


def fair_quotas(territories: pd.DataFrame, goal: float, *, band: tuple[float, float],
                relative: bool = True, over_assignment: float = 1.0, unit: float = 1.0,
                options: HighsOptions | None = None) -> pd.DataFrame:
    """Quotas whose quota-to-potential ratios stay within `band`, meeting the goal and as
    close as possible (L1) to the history-based split; the LP (1)–(4) of the module.

    Parameters
    ----------
    territories
        territory_id, potential (> 0), history.
    band
        (lo, hi) quota-to-potential ratios; with `relative`, multiples of the company ratio
        o G / Σ potential (so (0.9, 1.1) is ±10% around it).

    Returns
    -------
    territory_id, potential, history, history_share, history_quota, ratio_min, ratio_max,
    quota_unrounded, adjustment (quota - history_quota), quota, quota_to_potential and
    relative_ratio. Rounding to `unit` can move a ratio by at most unit / potential.

    Raises
    ------
    InfeasibleScenarioError
        When the band cannot carry the goal, with the amounts.
    """
    _check(territories, "territories", ["territory_id", "potential", "history"],
           ["potential", "history"], "territory_id")
    lo, hi = band
    if lo > hi or lo < 0:
        raise ValueError(f"band must be 0 ≤ lo ≤ hi, got {band}")
    df = territories.reset_index(drop=True)
    pot = df["potential"].to_numpy(float)
    zero = [Issue("territories", int(r) + 1, "potential",
                  "must be > 0 for a quota-to-potential ratio") for r in np.flatnonzero(pot <= 0)]
    if zero:
        raise InputError(zero)
    total = over_assignment * goal
    company = total / pot.sum()
    scale = company if relative else 1.0
    low, high = lo * scale * pot, hi * scale * pot
    hist_share = _shares(df["history"].to_numpy(float), "territories", "history")
    h = total * hist_share
    _explain_band(low, high, total, lo, hi, relative)

    # The LP works in shares of the total (q = total × s): with amounts in the millions, an
    # objective of 1/total per unit would sit below HiGHS' dual tolerance and stop it early.
    n = len(df)
    norm = max(total, 1.0)
    m = pyo.ConcreteModel(name="fair_quotas")
    m.q = pyo.Var(range(n), bounds=lambda _m, i: (float(low[i] / norm), float(high[i] / norm)))
    m.up = pyo.Var(range(n), domain=pyo.NonNegativeReals)
    m.down = pyo.Var(range(n), domain=pyo.NonNegativeReals)
    # (2) meet the goal
    m.goal = pyo.Constraint(expr=linear(np.ones(n), list(m.q.values())) == total / norm)
    # (4) deviation from the history-based quota
    m.dev = pyo.Constraint(range(n), rule=lambda _m, i: linear(
        [1.0, -1.0, 1.0], [m.q[i], m.up[i], m.down[i]]) == float(h[i] / norm))
    # (1) objective: total deviation, as a share of the goal
    m.objective = pyo.Objective(expr=linear(np.ones(2 * n), [*m.up.values(), *m.down.values()]),
                                sense=pyo.minimize)
    sol = run_highs(m, options or HighsOptions(time_limit=30))
    if sol.termination is Termination.infeasible:
        raise InfeasibleScenarioError(["no quotas meet the goal within the ratio band"])
    if not sol.has_solution:
        raise SolverError(f"HiGHS stopped ({sol.termination}) without quotas")
    raw = np.clip(np.asarray(sol.values["q"]) * norm, low, high)
    quota = round_exact(raw, unit)
    return pd.DataFrame({
        "territory_id": df["territory_id"], "potential": pot,
        "history": df["history"].astype(float), "history_share": hist_share,
        "history_quota": h, "ratio_min": lo * scale, "ratio_max": hi * scale,
        "quota_unrounded": raw, "adjustment": quota - h, "quota": quota,
        "quota_to_potential": quota / pot, "relative_ratio": quota / pot / company,
    })


def _explain_band(low: np.ndarray, high: np.ndarray, total: float, lo: float, hi: float,
                  relative: bool) -> None:
    """The band carries between Σ low and Σ high; outside that the goal cannot be met."""
    what = "× the company ratio" if relative else ""
    if high.sum() < total * (1 - _NOISE):
        raise InfeasibleScenarioError([
            f"with quota-to-potential ratios of at most {hi:g}{' ' + what if what else ''} the "
            f"territories can carry at most {high.sum():,.0f} against a goal of {total:,.0f} "
            f"({total - high.sum():,.0f} short); raise the top of the band to at least "
            f"{hi * total / high.sum():.3g}"])
    if low.sum() > total * (1 + _NOISE):
        raise InfeasibleScenarioError([
            f"with quota-to-potential ratios of at least {lo:g}{' ' + what if what else ''} "
            f"the territories must carry at least {low.sum():,.0f}, more than the goal of "
            f"{total:,.0f}; lower the bottom of the band to at most "
            f"{lo * total / low.sum():.3g}"])
