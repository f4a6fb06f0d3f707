r"""Levels and roles: regions and areas for managers, overlay reps over core territories.

The same engines one level up. A finished plan's territories become the "accounts" of a new
model, each standing at its location (the workload-weighted centroid of its accounts, or its
rep's home base):

- **Regions** (`regions`): `design.solve` carves K regions whose centres are territories,
  minimising the distance from each territory to its region's centre, with every region's
  span (territories per first-line manager), summed workload or summed potential inside a
  band around the mean. **Areas** (`areas`) are the same again on the regions.
- **Overlay roles** (`overlay`): for each role, `alignment.solve` assigns every core
  territory to exactly one overlay rep of that role (territories as accounts, overlay reps
  as reps), minimising travel with each overlay rep's load of the overlay measure within a
  band around its capacity-scaled fair share.

As the engines see it, a territory is one account (visits 1, so travel is plain distance),
the design metric "accounts" counts territories (the span) and the alignment metric
"workload" is the overlay measure. Results carry `region_id` (`area_id`) on the plan's
territories and assignments and a table per level with the KPIs rolled up; every balance
figure is `kpi.balance_stats`. Pure functions: no file I/O.

Contiguity: with a territory adjacency (`territory_adjacency`: territories touch when any of
their units do), each territory is one node of the design's unit graph and regions (areas)
are kept in one piece by the design engine's contiguity constraint; the KPIs count
disconnected regions either way.

Span band on counts. A tolerance around the mean span m/K rarely contains a whole number
(6 territories in 4 regions: 1.5 ± 20 % is [1.2, 1.8]), so the band on territory counts is
widened to the nearest whole numbers that keep the most even split possible:
[min(⌈m/K·(1-t)⌉, ⌊m/K⌋), max(⌊m/K·(1+t)⌋, ⌈m/K⌉)], then clipped by `min_span`/`max_span`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import sparse

from optimizer import alignment, design
from optimizer.contiguity import UnitGraph
from optimizer.distance import distance_matrix, unit_vectors
from optimizer.domain import (
    Balance,
    BalanceRule,
    DesignData,
    DistanceMetric,
    Mode,
    ObjectiveWeights,
    Scenario,
    SolverSettings,
)
from optimizer.errors import InfeasibleScenarioError, InputError, Issue, listed
from optimizer.geo import adjacency, assign_units, territory_components
from optimizer.kpi import balance_stats, fair_shares
from optimizer.result import RunReport
from optimizer.solve import ProgressCallback, RunStatus, StopCheck, relative_gap
from optimizer.validate import (
    TableChecker,
    validate_alignment,
    validate_design,
    validate_reps,
)

BalanceOn = Literal["territories", "workload", "potential"]
DEFAULT_ROLE = "overlay"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegionSettings(_Frozen):
    """How territories are grouped into regions (and regions into areas).

    balance_on: what the manager's span is balanced on: `territories` (direct reports:
        territories per region, regions per area), summed `workload` or summed `potential`.
    tolerance: band around the mean per region (see the module docstring for counts).
    min_span, max_span: hard limits on direct reports per manager, whatever is balanced.
    metric, circuity: distance between locations (None: haversine with lat/lon, euclidean
        with x/y).
    contiguity: regions must be connected in the territory adjacency graph (`Plan.adjacency`,
        from the units); None: whenever the plan has an adjacency.
    """

    balance_on: BalanceOn = "territories"
    tolerance: Annotated[float, Field(ge=0)] = 0.2
    min_span: Annotated[int, Field(ge=1)] | None = None
    max_span: Annotated[int, Field(ge=1)] | None = None
    metric: DistanceMetric | None = None
    circuity: Annotated[float, Field(gt=0)] = 1.0
    contiguity: bool | None = None
    solver: SolverSettings = SolverSettings(time_limit=30.0)

    @model_validator(mode="after")
    def _span_order(self) -> RegionSettings:
        if self.min_span is not None and self.max_span is not None \
                and self.min_span > self.max_span:
            raise ValueError(f"min_span ({self.min_span}) is greater than max_span "
                             f"({self.max_span})")
        return self


class OverlaySettings(_Frozen):
    """How overlay reps are aligned over core territories.

    tolerance: band around each overlay rep's fair share of the measure (fair share =
        total × its share of its role's capacity; None: no band, capacity only).
    """

    tolerance: Annotated[float, Field(ge=0)] | None = 0.2
    metric: DistanceMetric | None = None
    circuity: Annotated[float, Field(gt=0)] = 1.0
    solver: SolverSettings = SolverSettings(time_limit=30.0)


@dataclass(frozen=True)
class Plan:
    """A finished plan seen from one level up.

    territories: one row per territory: territory_id, a location (lat/lon or x/y; see
        `locate_territories`), workload, potential, accounts; optional capacity and any
        other columns (carried through, usable as an overlay measure).
    assignments: optional account_id, territory_id, ... (gains region_id/area_id).
    adjacency: optional territory × territory 0/1 matrix in the row order of
        `territories` (see `territory_adjacency`): contiguity KPIs, and constraints once
        the engine has them.
    """

    territories: pd.DataFrame
    assignments: pd.DataFrame | None = None
    adjacency: sparse.sparray | sparse.spmatrix | None = None


@dataclass(frozen=True)
class LevelResult:
    """The result of one or more levels over a plan.

    tables: regions (and areas), or overlay (territory → overlay rep per role) and
        overlay_reps; each a CSV of the same name.
    territories, assignments: the plan's tables with region_id (area_id) or, for overlays,
        one `overlay_<role>` column per role on the territories.
    kpis: per level (region, area) or per role ("overlay:<role>").
    reports: the engine run behind each level or role.
    adjacency: group × group adjacency of the last level (areas are built from it).
    """

    tables: dict[str, pd.DataFrame]
    territories: pd.DataFrame
    assignments: pd.DataFrame | None
    kpis: dict[str, Any]
    reports: dict[str, RunReport]
    warnings: list[str] = field(default_factory=list)
    adjacency: sparse.sparray | sparse.spmatrix | None = None

    def summary(self) -> dict[str, Any]:
        """summary.json: status, objective, bound, gap, seconds first (objective and bound
        add up over the levels or roles, each an independent model), then each run and
        the rolled-up KPIs."""
        runs = list(self.reports.values())
        status = RunStatus.optimal if all(r.status is RunStatus.optimal for r in runs) \
            else RunStatus.feasible
        objective = sum(r.objective or 0.0 for r in runs)
        bound = None if any(r.bound is None for r in runs) else \
            sum(r.bound or 0.0 for r in runs)
        return {
            "status": status.value,
            "objective": objective,
            "bound": bound,
            "gap": relative_gap(objective, bound),
            "seconds": round(sum(r.seconds for r in runs), 3),
            "runs": {name: {"status": r.status.value, "termination": r.termination.value,
                            "objective": r.objective, "bound": r.bound, "gap": r.gap,
                            "seconds": round(r.seconds, 3)}
                     for name, r in self.reports.items()},
            "kpis": self.kpis,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class _Level:
    """Words and ids of one level of the hierarchy."""

    name: str  # region
    plural: str  # regions
    prefix: str  # RG
    member: str  # territory
    members: str  # territories

    @property
    def id_column(self) -> str:
        return f"{self.name}_id"

    @property
    def member_column(self) -> str:
        return f"{self.member}_id"


REGION = _Level("region", "regions", "RG", "territory", "territories")
AREA = _Level("area", "areas", "AR", "region", "regions")


# ---------------------------------------------------------------------------------------------
# Locations and adjacency of territories


def weighted_centroids(labels: np.ndarray, weights: np.ndarray, coords: pd.DataFrame,
                       ids: Sequence[str]) -> pd.DataFrame:
    """Weighted centroid per label in `ids` (all-zero weights: the plain mean; no member:
    NaN). lat/lon are averaged as unit vectors on the sphere (no trouble at the
    antimeridian); x/y as planar coordinates."""
    index = pd.Index([str(i) for i in ids])
    pos = index.get_indexer(pd.Index([str(x) for x in labels]))
    w = np.where(np.isfinite(weights), weights, 0.0)
    geographic = {"lat", "lon"} <= set(coords.columns)
    cols = ["lat", "lon"] if geographic else ["x", "y"]
    xy = coords[cols].to_numpy(float)
    ok = (pos >= 0) & np.isfinite(xy).all(axis=1)
    vec = unit_vectors(xy[:, 0], xy[:, 1]) if geographic else xy
    out = np.full((len(index), vec.shape[1]), np.nan)
    for g in range(len(index)):
        rows = ok & (pos == g)
        if not rows.any():
            continue
        wg = w[rows] if w[rows].sum() > 0 else np.ones(int(rows.sum()))
        out[g] = (vec[rows] * wg[:, None]).sum(axis=0) / wg.sum()
    if geographic:
        lat = np.degrees(np.arctan2(out[:, 2], np.hypot(out[:, 0], out[:, 1])))
        lon = np.degrees(np.arctan2(out[:, 1], out[:, 0]))
        return pd.DataFrame({"lat": lat, "lon": lon})
    return pd.DataFrame({"x": out[:, 0], "y": out[:, 1]})


def locate_territories(territories: pd.DataFrame, assignments: pd.DataFrame | None = None,
                       accounts: pd.DataFrame | None = None, reps: pd.DataFrame | None = None,
                       *, source: str = "territories") -> tuple[pd.DataFrame, str]:
    """Give every territory a location and say where the locations came from.

    Locations already in the table (lat/lon or x/y) are kept. Otherwise: the
    workload-weighted centroid of the territory's accounts (needs `accounts` with
    account_id, lat/lon or x/y, workload, and `assignments`), then the home base of the
    territory's rep (`reps` with rep_id and lat/lon or x/y) for territories without
    accounts. Raises InputError naming every territory left without a location.
    """
    table = territories.copy()
    table["territory_id"] = table["territory_id"].astype(str)
    for cols in (("lat", "lon"), ("x", "y")):
        if set(cols) <= set(table.columns):
            values = table[list(cols)].apply(pd.to_numeric, errors="coerce")
            if values.notna().all(axis=None):
                table[list(cols)] = values
                return table, "the territories table"
    found = ""
    coords: pd.DataFrame | None = None
    if accounts is not None and assignments is not None:
        cols_acc = ["lat", "lon"] if {"lat", "lon"} <= set(accounts.columns) else ["x", "y"]
        by_id = accounts.set_index(accounts["account_id"].astype(str))
        a_ids = assignments["account_id"].astype(str)
        known = a_ids.isin(by_id.index).to_numpy()
        rows = by_id.reindex(a_ids[known])
        weight = pd.to_numeric(rows["workload"], errors="coerce").to_numpy(float) \
            if "workload" in rows.columns else np.ones(len(rows))
        coords = weighted_centroids(assignments["territory_id"].to_numpy(object)[known], weight,
                                    rows[cols_acc].apply(pd.to_numeric, errors="coerce"),
                                    table["territory_id"].tolist())
        found = "workload-weighted account centroids"
    if reps is not None and "rep_id" in table.columns:
        cols_rep = ["lat", "lon"] if {"lat", "lon"} <= set(reps.columns) else ["x", "y"]
        home = reps.set_index(reps["rep_id"].astype(str))[cols_rep].apply(
            pd.to_numeric, errors="coerce")
        at_home = home.reindex(table["rep_id"].astype(str)).reset_index(drop=True)
        if coords is None:
            coords, found = at_home, "rep home bases"
        else:
            missing = coords.isna().any(axis=1).to_numpy()
            if missing.any() and list(at_home.columns) == list(coords.columns):
                coords.loc[missing] = at_home.loc[missing].to_numpy()
                found += " (rep home bases for territories without accounts)"
    if coords is None:
        raise InputError([Issue(source, None, "lat", "territories have no location: give the "
                                "accounts (workload-weighted centroids) or the reps (home "
                                "bases)")])
    missing = coords.isna().any(axis=1).to_numpy()
    if missing.any():
        raise InputError([Issue(source, int(i) + 1, "territory_id",
                                f"territory {table['territory_id'].iloc[i]} has no location "
                                "(no located accounts and no rep home base)")
                          for i in np.flatnonzero(missing)])
    for c in coords.columns:
        table[c] = coords[c].to_numpy()
    return table, found


def _group_adjacency(matrix: sparse.sparray | sparse.spmatrix, labels: np.ndarray,
                     n_groups: int) -> sparse.csr_array:
    """Groups are adjacent when any of their members are (labels: group position per
    member, -1 for none)."""
    coo = sparse.coo_array(matrix)
    a, b = labels[coo.row], labels[coo.col]
    keep = (a >= 0) & (b >= 0) & (a != b)
    out = sparse.csr_array((np.ones(int(keep.sum()), dtype=np.int8), (a[keep], b[keep])),
                           shape=(n_groups, n_groups))
    out.data[:] = 1  # duplicates summed; keep it 0/1
    return out


def territory_adjacency(accounts: pd.DataFrame, assignments: pd.DataFrame,
                        territory_ids: Sequence[str], units: gpd.GeoDataFrame
                        ) -> sparse.csr_array:
    """Territories are adjacent when any of their units are (rook adjacency of `units`;
    a unit belongs to the territory holding most of its accounts' workload, as on maps).

    Rows and columns in the order of `territory_ids`.
    """
    ua = assign_units(accounts, assignments, units)
    per_unit = units["unit_id"].astype(str).map(ua.territory)
    labels = pd.Index([str(t) for t in territory_ids]).get_indexer(
        per_unit.astype(object).where(per_unit.notna(), "\0"))
    # Territories none of whose accounts lies in a unit of the file (the accounts of another
    # data set) could be placed nowhere: every group joining them would be in pieces. (One
    # that holds only minorities of its units is placed by them, as before.)
    known = set(units["unit_id"].astype(str))
    unit_of = accounts.set_index(accounts["account_id"].astype(str))["unit_id"]
    in_file = assignments["account_id"].astype(str).map(unit_of).astype("string").isin(known)
    placed = set(assignments.loc[in_file.to_numpy(bool), "territory_id"].astype(str))
    held = set(assignments["territory_id"].astype(str))
    unplaced = [str(t) for t in territory_ids if str(t) in held and str(t) not in placed]
    if unplaced:
        raise InputError([Issue("units", None, "unit_id", (
            f"none of the accounts of {len(unplaced)} of the plan's {len(territory_ids)} "
            f"territories has a unit_id of the units file (it lacks them, or they are "
            f"empty): {listed(unplaced)}"))])
    return _group_adjacency(adjacency(units), labels, len(territory_ids))


# ---------------------------------------------------------------------------------------------
# Regions and areas


def _metric_of(table: pd.DataFrame, metric: DistanceMetric | None) -> DistanceMetric:
    if metric is not None:
        return metric
    return DistanceMetric.haversine if {"lat", "lon"} <= set(table.columns) \
        else DistanceMetric.euclidean


def _count_band(m: int, k: int, tol: float) -> tuple[int, int]:
    mean = m / k
    lo = min(math.ceil(mean * (1 - tol) - 1e-9), math.floor(mean))
    hi = max(math.floor(mean * (1 + tol) + 1e-9), math.ceil(mean))
    return lo, hi


def _fmt(value: float, what: str) -> str:
    if what in ("territories", "regions"):
        return f"{value:,.0f} {what}"
    return f"{value:,.0f}" + (" h" if what == "workload" else "")


def _region_scenario(members: pd.DataFrame, n: int, settings: RegionSettings,
                     level: _Level) -> tuple[Scenario, dict[str, float]]:
    """The design scenario of one level, after checking in the planner's terms that the
    span and balance bands can hold at all."""
    m = len(members)
    what = settings.balance_on
    reasons: list[str] = []
    if n > m:
        raise InfeasibleScenarioError([f"{n} {level.plural} need at least {n} "
                                       f"{level.members}, but there are {m}"])
    hard_lo, hard_hi = settings.min_span or 1, settings.max_span or m
    if hard_hi * n < m:
        raise InfeasibleScenarioError([
            f"{n} {level.plural} of at most {hard_hi} {level.members} each hold at most "
            f"{hard_hi * n} {level.members}, but there are {m}"])
    if hard_lo * n > m:
        raise InfeasibleScenarioError([
            f"{n} {level.plural} of at least {hard_lo} {level.members} each need "
            f"{hard_lo * n} {level.members}, but there are only {m}"])
    lo, hi = _count_band(m, n, settings.tolerance) if what == "territories" else (1, m)
    # Both bands hold floor(m/n) or ceil(m/n), so the limits never empty the band.
    lo, hi = max(lo, hard_lo), min(hi, hard_hi)
    band: dict[str, float] = {"span_min": lo, "span_max": hi}
    rules = {"workload": BalanceRule(), "potential": BalanceRule(),
             "accounts": BalanceRule(min=lo, max=hi)}
    if what in ("workload", "potential"):
        values = members[what].to_numpy(float)
        mean = float(values.sum()) / n
        low, high = mean * (1 - settings.tolerance), mean * (1 + settings.tolerance)
        band.update({f"{what}_min": low, f"{what}_max": high})
        rules[what] = BalanceRule(tolerance=settings.tolerance)
        for i in np.flatnonzero(values > high + 1e-9):
            reasons.append(f"{level.member} {members[level.member_column].iloc[i]} alone has "
                           f"{_fmt(values[i], what)} of {what}, more than a {level.name} may "
                           f"hold ({_fmt(high, what)}: mean {_fmt(mean, what)} "
                           f"+{settings.tolerance:.0%})")
    if reasons:
        raise InfeasibleScenarioError(reasons)
    scenario = Scenario(mode=Mode.design, territories=n,
                        metric=_metric_of(members, settings.metric),
                        circuity=settings.circuity, objective=ObjectiveWeights(travel=1.0),
                        balance=Balance(**rules), centres="accounts", keep_hierarchies=False,
                        contiguity=False, solver=settings.solver)
    return scenario, band


def _as_accounts(members: pd.DataFrame, level: _Level) -> pd.DataFrame:
    """Members as the engine's accounts: one visit each, so travel is plain distance; each
    is its own geographic unit (the nodes of the member adjacency graph)."""
    cols = [c for c in ("lat", "lon", "x", "y") if c in members.columns]
    frame = members[cols].copy()
    frame.insert(0, "account_id", members[level.member_column].astype(str))
    frame["workload"] = members["workload"]
    frame["potential"] = members["potential"]
    frame["visits"] = 1.0
    frame["unit_id"] = frame["account_id"]
    return frame


def _with_graph(data: DesignData, scenario: Scenario, ids: list[str],
                matrix: sparse.sparray | sparse.spmatrix) -> tuple[DesignData, Scenario]:
    """The design's data and scenario with the member graph and `contiguity: true`."""
    upper = sparse.triu(sparse.coo_array(matrix), k=1).tocoo()
    pairs = np.column_stack([upper.row, upper.col]).astype(np.int64)
    graph = UnitGraph(tuple(ids), pairs)
    return replace(data, units=graph), scenario.model_copy(update={"contiguity": True})


def _numeric(table: pd.DataFrame, columns: Sequence[str], source: str,
             required: Sequence[str]) -> pd.DataFrame:
    """Parse numeric columns of a plan table (≥ 0), naming row and column of every problem."""
    out = table.copy()
    check = TableChecker(source)
    for c in columns:
        if c in out.columns:
            out[c] = check.number(out, c, low=0)
        elif c in required:
            check.require(out, c)
    if check.issues:
        raise InputError(check.issues)
    return out


def _order_groups(centroids: pd.DataFrame) -> np.ndarray:
    """Group order for ids: north to south (then west to east), so ids read like a map."""
    if "lat" in centroids.columns:
        return np.lexsort((centroids["lon"].to_numpy(), -centroids["lat"].to_numpy()))
    return np.lexsort((centroids["x"].to_numpy(), -centroids["y"].to_numpy()))


def _stats(values: np.ndarray, tolerance: float) -> dict[str, float]:
    fair = np.full(len(values), values.mean() if len(values) else 0.0)
    return balance_stats(values.astype(float), fair, tolerance)


def _group(members: pd.DataFrame, n: int, settings: RegionSettings, level: _Level,
           adjacency_matrix: sparse.sparray | sparse.spmatrix | None,
           on_progress: ProgressCallback | None, should_stop: StopCheck | None,
           source: str) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any], RunReport,
                                 list[str], sparse.csr_array | None]:
    """One level: group position per member, the group table, KPIs, the run, warnings and
    the group adjacency."""
    if settings.contiguity and adjacency_matrix is None:
        raise InputError([Issue("scenario", None, "contiguity",
                                f"contiguous {level.plural} need the units (unit polygons "
                                "and the accounts' unit_id)")])
    scenario, band = _region_scenario(members, n, settings, level)
    data = validate_design(_as_accounts(members, level), None, scenario.metric,
                           sources=(source, "distances"))
    warnings: list[str] = []
    enforced = False
    if adjacency_matrix is not None and settings.contiguity is not False:
        data, scenario = _with_graph(data, scenario, members[level.member_column].astype(str)
                                     .tolist(), adjacency_matrix)
        enforced = True
    try:
        result = design.solve(data, scenario, on_progress=on_progress, should_stop=should_stop)
    except InfeasibleScenarioError as exc:
        raise InfeasibleScenarioError([
            f"no {n} {level.plural} meet the bands ({level.members} as the design's accounts, "
            f"{level.plural} as its territories): {r}" for r in exc.reasons]) from exc
    warnings += result.warnings

    ids = members[level.member_column].astype(str)
    design_of = result.assignments.set_index("account_id")["territory_id"].reindex(ids)
    design_ids = result.territories["territory_id"].astype(str).tolist()
    pos = pd.Index(design_ids).get_indexer(pd.Index(design_of.astype(str)))
    cols = ["lat", "lon"] if "lat" in members.columns else ["x", "y"]
    centroid = weighted_centroids(pos, members["workload"].to_numpy(float), members[cols],
                                  [str(i) for i in range(len(design_ids))])
    order = _order_groups(centroid)
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(len(order))
    width = max(2, len(str(len(order))))
    group_ids = [f"{level.prefix}{rank[g] + 1:0{width}d}" for g in range(len(order))]
    group_pos = rank[pos]  # final position (in id order) per member

    dt = result.territories.set_index("territory_id")
    table = pd.DataFrame({level.id_column: [group_ids[g] for g in order],
                          "centre": dt["centre"].to_numpy(object)[order]})
    counts = np.bincount(group_pos, minlength=len(order)).astype(float)
    table[level.members] = counts.astype(int)
    sums: dict[str, np.ndarray] = {"span": counts}
    extra = ["territories"] if level is AREA else []
    for c in [*extra, "workload", "potential", "accounts", "capacity"]:
        if c in members.columns:
            v = np.bincount(group_pos, weights=members[c].to_numpy(float), minlength=len(order))
            table[c] = v.round().astype(int) if c == "territories" else v
            sums[c] = v
    if "capacity" in table.columns:
        table["utilisation"] = np.divide(table["workload"], table["capacity"])
    table["travel"] = dt["travel"].to_numpy(float)[order]
    for c in cols:
        table[c] = centroid[c].to_numpy()[order]

    tol = settings.tolerance
    balance = {"span": _stats(sums["span"], tol)}
    for c in ("workload", "potential", "accounts", "territories"):
        if c in sums:
            balance[c] = _stats(sums[c], tol)
    after = result.kpis.get("after", {})
    kpis: dict[str, Any] = {
        level.plural: len(order), level.members: len(members),
        "balanced_on": settings.balance_on,
        "band": band,
        "span": {"min": int(counts.min()), "max": int(counts.max()),
                 "mean": float(counts.mean())},
        "balance": balance,
        "travel": dict(after.get("travel", {})),
    }
    group_adj = None
    if adjacency_matrix is not None:
        parts = territory_components(adjacency_matrix, np.array(group_ids, dtype=object)[
            group_pos])
        disconnected = sorted(g for g, k in parts.items() if k > 1)
        kpis["contiguity"] = {"enforced": enforced,
                              f"disconnected_{level.plural}": len(disconnected),
                              f"disconnected_{level.plural}_ids": disconnected}
        if "contiguity" in result.kpis:
            kpis["contiguity"]["engine"] = result.kpis["contiguity"]
        table["parts"] = table[level.id_column].map(parts).fillna(0).astype(int)
        group_adj = _group_adjacency(adjacency_matrix, group_pos, len(order))  # id order
    return group_pos, table, kpis, result.report, warnings, group_adj


def regions(plan: Plan, n_regions: int, settings: RegionSettings | None = None, *,
            on_progress: ProgressCallback | None = None,
            should_stop: StopCheck | None = None) -> LevelResult:
    """Group the plan's territories into `n_regions` regions (see the module docstring).

    Raises InputError for an unusable territories table, InfeasibleScenarioError with the
    reasons when the span or balance band cannot hold.
    """
    settings = settings or RegionSettings()
    terr = _numeric(plan.territories, ["workload", "potential", "accounts", "capacity"],
                    "territories", ["workload"])
    for c in ("potential", "accounts"):
        if c not in terr.columns:
            terr[c] = 0.0
    terr["territory_id"] = terr["territory_id"].astype(str)
    pos, table, kpis, report, warnings, group_adj = _group(
        terr, n_regions, settings, REGION, plan.adjacency, on_progress, should_stop,
        "territories")
    region_of = table[REGION.id_column].to_numpy(object)[pos]
    territories = plan.territories.copy()
    territories[REGION.id_column] = region_of
    assignments = None
    if plan.assignments is not None:
        lookup = pd.Series(region_of, index=terr["territory_id"].to_numpy())
        assignments = plan.assignments.copy()
        assignments[REGION.id_column] = assignments["territory_id"].astype(str).map(
            lookup).to_numpy(object)
    return LevelResult({"regions": table}, territories, assignments, {"region": kpis},
                       {"region": report}, warnings, group_adj)


def areas(regions_result: LevelResult, n_areas: int, settings: RegionSettings | None = None,
          *, on_progress: ProgressCallback | None = None,
          should_stop: StopCheck | None = None) -> LevelResult:
    """Group the regions of `regions_result` into `n_areas` areas, the same way; the
    result holds both levels (area_id on territories, assignments and regions)."""
    settings = settings or RegionSettings()
    reg = regions_result.tables["regions"]
    pos, table, kpis, report, warnings, group_adj = _group(
        reg, n_areas, settings, AREA, regions_result.adjacency, on_progress, should_stop,
        "regions")
    area_of = pd.Series(table[AREA.id_column].to_numpy(object)[pos],
                        index=reg["region_id"].to_numpy())
    tables = dict(regions_result.tables)
    tables["regions"] = reg.assign(area_id=area_of.to_numpy(object))
    tables["areas"] = table
    territories = regions_result.territories.copy()
    territories[AREA.id_column] = territories["region_id"].map(area_of).to_numpy(object)
    assignments = regions_result.assignments
    if assignments is not None:
        assignments = assignments.copy()
        assignments[AREA.id_column] = assignments["region_id"].map(area_of).to_numpy(object)
    return LevelResult(tables, territories, assignments, {**regions_result.kpis, "area": kpis},
                       {**regions_result.reports, "area": report},
                       [*regions_result.warnings, *warnings], group_adj)


# ---------------------------------------------------------------------------------------------
# Overlay roles


def _in_distance_units(report: RunReport, terms: dict[str, float]) -> RunReport:
    """The alignment's objective is travel over ideal travel (travel weight 1 alone); in
    distance units, as the design's, so that levels and roles add up."""
    ratio = terms.get("travel_over_ideal")
    if not ratio or report.objective is None:
        return report
    ideal = terms["travel"] / ratio
    return replace(report, objective=terms["travel"],
                   bound=None if report.bound is None else report.bound * ideal)


def _overlay_reps(reps: pd.DataFrame, source: str) -> pd.DataFrame:
    """Overlay reps with a role (blank: "overlay"); the rest is checked per role by
    `validate_alignment`."""
    if "rep_id" not in reps.columns:
        raise InputError([Issue(source, None, "rep_id", "required column is missing")])
    out = reps.reset_index(drop=True)
    if "capacity" in out.columns and (
            out["capacity"].isna() | (out["capacity"].astype(str).str.strip() == "")).all():
        out = out.drop(columns=["capacity"])  # a blank column: equal shares
    role = out["role"].astype("string").str.strip() if "role" in out.columns else \
        pd.Series(pd.NA, index=out.index, dtype="string")
    out["role"] = role.mask(role.isna() | (role == ""), DEFAULT_ROLE).astype(object)
    return out


def overlay(plan: Plan, overlay_reps: pd.DataFrame, measure: str | pd.Series = "workload",
            settings: OverlaySettings | None = None, *,
            on_progress: ProgressCallback | None = None, should_stop: StopCheck | None = None,
            sources: tuple[str, str] = ("territories", "overlay reps")) -> LevelResult:
    """Align overlay reps over the plan's core territories, one role at a time.

    overlay_reps: rep_id, location (lat/lon or x/y), optional role (blank: "overlay"),
        capacity (in the measure's units; absent: equal shares, no cap), max_accounts
        (most territories per overlay rep), name.
    measure: the overlay's workload per territory: a column of `plan.territories`, or a
        Series indexed by territory_id.

    Every territory goes to exactly one overlay rep of each role, minimising the distance
    from territories to their overlay rep with each rep's load within `tolerance` of its
    fair share. Raises InputError (bad tables) or InfeasibleScenarioError (per role,
    explained).
    """
    settings = settings or OverlaySettings()
    terr = plan.territories.copy()
    terr["territory_id"] = terr["territory_id"].astype(str)
    if isinstance(measure, pd.Series):
        name = str(measure.name or "overlay_workload")
        values = measure.copy()
        values.index = values.index.astype(str)
        missing = [t for t in terr["territory_id"] if t not in values.index]
        if missing:
            raise InputError([Issue("overlay measure", None, "territory_id",
                                    f"no {name} for territory {t}") for t in missing])
        terr[name] = values.reindex(terr["territory_id"]).to_numpy()
    else:
        name = measure
    terr = _numeric(terr, [name, "potential"], sources[0], [name])
    if "potential" not in terr.columns:
        terr["potential"] = 0.0
    reps = _overlay_reps(overlay_reps, sources[1])
    metric = _metric_of(terr, settings.metric)
    cols = [c for c in ("lat", "lon", "x", "y") if c in terr.columns]
    accounts = terr[["territory_id", *cols]].rename(columns={"territory_id": "account_id"})
    accounts["workload"] = terr[name].to_numpy()
    accounts["potential"] = terr["potential"].to_numpy()
    accounts["visits"] = 1.0
    total = float(terr[name].sum())

    covers: list[pd.DataFrame] = []
    rep_tables: list[pd.DataFrame] = []
    kpis: dict[str, Any] = {}
    reports: dict[str, RunReport] = {}
    warnings: list[str] = []
    territories = plan.territories.copy()
    given = "capacity" in reps.columns
    if not given:
        # Equal shares and no cap: a capacity that never binds.
        reps["capacity"] = max(total, 1.0) * 10
    _, issues = validate_reps(reps, metric, source=sources[1])  # rows as in the file
    if issues:
        raise InputError(issues)
    for role in sorted(reps["role"].unique()):
        members = reps[reps["role"] == role]
        data = validate_alignment(accounts, members, None, metric,
                                  sources=(*sources, "distances"))
        capacity = data.reps["capacity"].to_numpy(float)
        if given and capacity.sum() < total - 1e-9:
            raise InfeasibleScenarioError([
                f"overlay role {role}: the territories carry {total:,.0f} of {name} but the "
                f"{len(members)} overlay rep(s)' capacity adds up to only "
                f"{capacity.sum():,.0f}"])
        scenario = Scenario(
            mode=Mode.align, metric=metric, circuity=settings.circuity,
            objective=ObjectiveWeights(travel=1.0),
            balance=Balance(workload=BalanceRule(tolerance=settings.tolerance),
                            potential=BalanceRule(), accounts=BalanceRule()),
            keep_hierarchies=False, solver=settings.solver)
        try:
            result = alignment.solve(data, scenario, on_progress=on_progress,
                                     should_stop=should_stop)
        except InfeasibleScenarioError as exc:
            raise InfeasibleScenarioError([
                f"overlay role {role} ({name} as the workload, territories as accounts): {r}"
                for r in exc.reasons]) from exc
        reports[f"overlay:{role}"] = _in_distance_units(result.report, result.terms)
        warnings += [f"overlay role {role}: {w}" for w in result.warnings]
        rep_of = result.assignments["rep_id"].astype(str).to_numpy()
        rep_index = pd.Index(data.reps["rep_id"].astype(str))
        r_pos = rep_index.get_indexer(pd.Index(rep_of))
        dist = distance_matrix(data.accounts, data.reps, metric, settings.circuity)
        d = dist[np.arange(len(r_pos)), r_pos]
        covers.append(pd.DataFrame({"territory_id": terr["territory_id"], "role": role,
                                    "overlay_id": rep_of, name: terr[name].to_numpy(),
                                    "distance": d}))
        territories[f"overlay_{role}"] = rep_of
        load = np.bincount(r_pos, weights=terr[name].to_numpy(float), minlength=len(rep_index))
        count = np.bincount(r_pos, minlength=len(rep_index)).astype(float)
        fair = fair_shares(total, capacity)
        per = pd.DataFrame({"overlay_id": rep_index, "role": role, "territories":
                            count.astype(int), name: load, "fair_share": fair})
        if given:
            per["capacity"] = capacity
            per["utilisation"] = load / capacity
        per["travel"] = np.bincount(r_pos, weights=d, minlength=len(rep_index))
        rep_tables.append(per)
        tol = settings.tolerance if settings.tolerance is not None else 0.1
        kpis[f"overlay:{role}"] = {
            "measure": name, "overlay_reps": len(rep_index), "territories": len(terr),
            "balance": {name: balance_stats(load, fair, tol),
                        "territories": balance_stats(count, fair_shares(len(terr), capacity),
                                                     tol)},
            "travel": result.kpis["after"]["travel"],
        }
    return LevelResult({"overlay": pd.concat(covers, ignore_index=True),
                        "overlay_reps": pd.concat(rep_tables, ignore_index=True)},
                       territories, plan.assignments, kpis, reports, warnings)
