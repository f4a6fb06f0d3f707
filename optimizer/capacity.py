r"""Workload-based sizing: how many territories (reps) the accounts need.

Model
-----
For every N of the sweep a greenfield design is solved (`optimizer.design.solve`: N centres,
every territory's workload within the hard balance band, minimum travel). Its territories t
are then costed in hours:

    travel_hours[t] = 2 Σ_{a ∈ t} visits[a] d(a, centre[t]) / (speed × visits_per_trip)
    hours[t]        = workload[t] + travel_hours[t]
    utilisation[t]  = hours[t] / capacity

An out-and-back trip serves `visits_per_trip` visits (1: every visit is its own round trip;
reps who chain several calls per trip travel less per visit). N *fits* when
max_t utilisation[t] ≤ target. The recommended N is the smallest swept N whose design fits: its
design is the witness that N reps suffice.

Because travel hours are proportional to the design objective (Σ visits × distance), the
design's proven bound B_N on travel gives a proof for the other direction:

    mean utilisation ≥ (W + 2 B_N / (speed × visits_per_trip)) / (N × capacity)

and max ≥ mean, so when that exceeds the target no balanced design of N territories fits
(`proven_unfit`). With B_N ≥ 0 this includes the workload-only bound N ≥ W / (target × capacity).

Fitting is judged on the minimum-travel balanced design: travel is not balanced across
territories, so a design with more total travel but a flatter spread could fit where the
minimum-travel one does not (the curve then recommends a slightly larger N than necessary).

Each design starts cold: `design.solve` has no warm-start parameter yet.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from optimizer.design import scenario_issues as design_scenario_issues
from optimizer.design import solve as solve_design
from optimizer.domain import DesignData, Mode, Scenario
from optimizer.errors import (
    InfeasibleScenarioError,
    InputError,
    Issue,
    SolveCancelledError,
    SolverError,
    cell,
)
from optimizer.hiring import DEFAULT_ROLE, HiringPlanInput, roster_from_reps
from optimizer.io import model_from_mapping
from optimizer.kpi import balance_stats
from optimizer.solve import Progress, ProgressCallback, StopCheck, Termination

# A sweep is many designs; more than this many is a mistake, not a plan.
MAX_DESIGNS = 100


class SizingSettings(BaseModel):
    """The `sizing` section of a capacity plan (also the API's capacity job).

    capacity_hours: selling hours per rep per year (default: the reps' mean capacity).
    travel_speed: distance units per hour (km/h with haversine distances).
    visits_per_trip: visits served by one out-and-back trip.
    target_utilisation: the largest share of capacity a territory may need.
    min_territories, max_territories, step: the N swept.
    time_limit, mip_gap: per design (they replace the scenario's solver limits).
    scenario: the design scenario (metric, circuity, balance bands, centres, hierarchies);
        its mode, territories and solver limits are set by the sweep.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    capacity_hours: Annotated[float, Field(gt=0)] | None = None
    travel_speed: Annotated[float, Field(gt=0)] = 60.0
    visits_per_trip: Annotated[float, Field(gt=0)] = 1.0
    target_utilisation: Annotated[float, Field(gt=0, le=2)] = 0.9
    min_territories: Annotated[int, Field(ge=1)]
    max_territories: Annotated[int, Field(ge=1)]
    step: Annotated[int, Field(ge=1)] = 1
    time_limit: Annotated[float, Field(gt=0)] = 20.0
    mip_gap: Annotated[float, Field(ge=0, lt=1)] = 0.01
    scenario: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _range(self) -> SizingSettings:
        if self.max_territories < self.min_territories:
            raise ValueError(f"max_territories ({self.max_territories}) is below "
                             f"min_territories ({self.min_territories})")
        if len(self.counts) > MAX_DESIGNS:
            raise ValueError(f"the sweep has {len(self.counts)} designs; at most {MAX_DESIGNS} "
                             "(raise step or narrow the range)")
        return self

    @property
    def counts(self) -> list[int]:
        """The N swept; the upper end is always included."""
        ns = list(range(self.min_territories, self.max_territories + 1, self.step))
        if ns[-1] != self.max_territories:
            ns.append(self.max_territories)
        return ns

    def design_scenario(self, n: int) -> Scenario:
        """The scenario of the design with `n` territories; bad keys are InputErrors."""
        base = Scenario.model_validate({**self.scenario, "mode": Mode.design.value,
                                        "territories": n})
        solver = base.solver.model_copy(update={"time_limit": self.time_limit,
                                                "mip_gap": self.mip_gap})
        return base.model_copy(update={"solver": solver})


def capacity_from_reps(reps: pd.DataFrame, source: str = "reps") -> float:
    """The mean capacity of a roster: total capacity spread evenly over its reps."""
    if "capacity" not in reps.columns or len(reps) == 0:
        raise InputError([Issue(source, None, "capacity",
                                "needed for the rep capacity (or give capacity_hours)")])
    values = pd.to_numeric(reps["capacity"], errors="coerce")
    bad = [Issue(source, int(r) + 1, "capacity", f"must be a number > 0, got "
                                                 f"{cell(reps['capacity'].iloc[r])}")
           for r in np.flatnonzero(values.isna() | (values <= 0))]
    if bad:
        raise InputError(bad)
    return float(values.mean())


@dataclass(frozen=True)
class SizingResult:
    """The curve (one row per N), every design's territories, and the recommendation."""

    curve: pd.DataFrame
    territories: pd.DataFrame
    recommended: int | None
    capacity_hours: float
    target_utilisation: float
    workload_lower_bound: int
    seconds: float
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """optimal: a recommendation whose every design is proven optimal; feasible: a
        recommendation; infeasible: no swept N fits."""
        if self.recommended is None:
            return "infeasible"
        return "optimal" if (self.curve["status"] == "optimal").all() else "feasible"

    def summary(self) -> dict[str, Any]:
        rec = self.curve[self.curve["recommended"]]
        rows = self.curve
        return {
            "status": self.status,
            "objective": self.recommended,
            "bound": None,
            "gap": None,
            "seconds": round(self.seconds, 3),
            "recommended_territories": self.recommended,
            "workload_lower_bound": self.workload_lower_bound,
            "capacity_hours": self.capacity_hours,
            "target_utilisation": self.target_utilisation,
            "recommended_design": rec.iloc[0].to_dict() if len(rec) else None,
            "designs": len(rows),
            "seconds_per_design": {"mean": float(rows["seconds"].mean()),
                                   "max": float(rows["seconds"].max())} if len(rows) else None,
            "cancelled": self.cancelled,
            "notes": self.notes,
        }


def travel_hours(travel: np.ndarray | pd.Series, settings: SizingSettings) -> np.ndarray:
    """Hours on the road for a travel of Σ visits × distance (one way)."""
    return 2.0 * np.asarray(travel, float) / (settings.travel_speed * settings.visits_per_trip)


def sweep(data: DesignData, settings: SizingSettings, *, capacity_hours: float | None = None,
          on_progress: ProgressCallback | None = None,
          should_stop: StopCheck | None = None) -> SizingResult:
    """Design every N of the sweep and cost its territories in hours (module docstring).

    `capacity_hours` is used when the settings give none. A design that cannot be made (bands
    too narrow for N, no design within the time limit) is a row with its reason; the sweep
    goes on. A stop request ends the sweep after the design under way.
    """
    capacity = settings.capacity_hours or capacity_hours
    if capacity is None:
        raise InputError([Issue("sizing", None, "capacity_hours",
                                "give capacity_hours or a roster with capacity")])
    counts = settings.counts
    scenarios = {n: _scenario(settings, n) for n in counts}
    started = time.perf_counter()
    workload = float(data.accounts["workload"].astype(float).sum())
    target = settings.target_utilisation
    rows: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    cancelled = False
    for i, n in enumerate(counts):
        if should_stop is not None and should_stop():
            cancelled = True
            break
        step = f"N = {n} ({i + 1} of {len(counts)})"

        def relay(p: Progress, step: str = step) -> None:
            if on_progress is not None:
                on_progress(Progress(p.phase, time.perf_counter() - started, p.incumbent,
                                     p.bound, p.gap, f"{step}: {p.message}".rstrip(": ")))

        row, terr, stop = _design_row(data, scenarios[n], n, settings, capacity, workload,
                                      relay, should_stop)
        rows.append(row)
        if terr is not None:
            frames.append(terr)
        if stop:
            cancelled = True
            break
    curve = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    fits = curve["fits"].astype(bool)
    recommended = int(curve.loc[fits, "territories"].min()) if fits.any() else None
    curve["recommended"] = curve["territories"] == recommended
    lower = math.ceil(workload / (target * capacity) - 1e-9)
    result = SizingResult(
        curve=curve,
        territories=pd.concat(frames, ignore_index=True) if frames else
        pd.DataFrame(columns=TERRITORY_COLUMNS),
        recommended=recommended, capacity_hours=capacity, target_utilisation=target,
        workload_lower_bound=lower, seconds=time.perf_counter() - started,
        cancelled=cancelled, notes=_notes(curve, recommended, lower, settings, cancelled))
    if on_progress is not None:
        on_progress(Progress("done", result.seconds, message=f"recommended N = {recommended}"))
    return result


CURVE_COLUMNS = [
    "territories", "status", "termination", "seconds", "gap", "travel", "travel_bound",
    "travel_hours", "workload_hours", "utilisation_max", "utilisation_mean", "utilisation_min",
    "utilisation_cv", "workload_cv", "workload_max_over_mean", "over_target",
    "mean_utilisation_bound", "fits", "proven_unfit", "reason"]
TERRITORY_COLUMNS = ["territories", "territory_id", "centre", "accounts", "workload", "travel",
                     "travel_hours", "hours", "utilisation"]


def _scenario(settings: SizingSettings, n: int, source: str = "sizing") -> Scenario:
    try:
        scenario = settings.design_scenario(n)
    except ValidationError as exc:
        raise InputError([Issue(source, None, "scenario." + ".".join(
            str(x) for x in e["loc"]), e["msg"]) for e in exc.errors()]) from exc
    if issues := design_scenario_issues(scenario, source, "scenario."):
        raise InputError(issues)  # a soft band: found now, not in the first design
    return scenario


def _design_row(data: DesignData, scenario: Scenario, n: int, settings: SizingSettings,
                capacity: float, workload: float, relay: ProgressCallback,
                should_stop: StopCheck | None
                ) -> tuple[dict[str, Any], pd.DataFrame | None, bool]:
    """One row of the curve, the design's territories, and whether the sweep must stop."""
    target = settings.target_utilisation
    t0 = time.perf_counter()
    row: dict[str, Any] = dict.fromkeys(CURVE_COLUMNS)
    row.update(territories=n, workload_hours=workload, fits=False, proven_unfit=False)
    # Workload alone (travel ≥ 0) already bounds the mean from below.
    row["mean_utilisation_bound"] = workload / (n * capacity)
    try:
        result = solve_design(data, scenario, on_progress=relay, should_stop=should_stop)
    except InfeasibleScenarioError as exc:
        row.update(status="infeasible", seconds=time.perf_counter() - t0,
                   reason="; ".join(exc.reasons))
        row["proven_unfit"] = True  # no balanced design of N territories exists at all
        return row, None, False
    except SolveCancelledError:
        row.update(status="cancelled", seconds=time.perf_counter() - t0,
                   reason="stopped on request before a design was found")
        return row, None, True
    except SolverError as exc:
        row.update(status="error", seconds=time.perf_counter() - t0, reason=str(exc))
        return row, None, False
    report = result.report
    terr = result.territories
    hours_travel = travel_hours(terr["travel"], settings)
    hours = terr["workload"].to_numpy(float) + hours_travel
    util = hours / capacity
    stats = balance_stats(util, np.full(len(util), util.mean()), 0.0)
    kpi = result.kpis["after"]["balance"]["workload"]
    bound = report.bound
    if bound is not None:
        bound_hours = float(travel_hours(np.array([bound]), settings)[0])
        row["mean_utilisation_bound"] = (workload + bound_hours) / (n * capacity)
    row.update(
        status=report.status.value, termination=report.termination.value,
        seconds=time.perf_counter() - t0, gap=report.gap, travel=float(terr["travel"].sum()),
        travel_bound=bound, travel_hours=float(hours_travel.sum()),
        utilisation_max=float(util.max()), utilisation_mean=float(util.mean()),
        utilisation_min=float(util.min()), utilisation_cv=stats["cv"],
        workload_cv=kpi["cv"], workload_max_over_mean=kpi["max_over_mean"],
        over_target=int((util > target + 1e-9).sum()),
        fits=bool(util.max() <= target + 1e-9))
    row["proven_unfit"] = bool(row["mean_utilisation_bound"] > target + 1e-9)
    if not row["fits"]:
        worst = int(np.argmax(util))
        row["reason"] = (f"territory {terr['territory_id'].iloc[worst]} needs "
                         f"{hours[worst]:,.0f} h ({terr['workload'].iloc[worst]:,.0f} h of "
                         f"workload + {hours_travel[worst]:,.0f} h of travel) against "
                         f"{target * capacity:,.0f} h ({target:.0%} of {capacity:,.0f} h)")
    table = pd.DataFrame({
        "territories": n, "territory_id": terr["territory_id"], "centre": terr["centre"],
        "accounts": terr["accounts"], "workload": terr["workload"].astype(float),
        "travel": terr["travel"].astype(float), "travel_hours": hours_travel, "hours": hours,
        "utilisation": util})
    return row, table, report.termination is Termination.cancelled


def _notes(curve: pd.DataFrame, recommended: int | None, lower: int, settings: SizingSettings,
           cancelled: bool) -> list[str]:
    """Plain statements of what the sweep shows and does not show."""
    notes = []
    target = f"{settings.target_utilisation * 100:g}%"
    if cancelled:
        notes.append("the sweep was stopped on request; the curve covers the designs finished")
    if recommended is None and len(curve):
        last = curve.iloc[-1]
        detail = (f"; at N = {last['territories']} the busiest territory is at "
                  f"{last['utilisation_max']:.1%}" if last["utilisation_max"] is not None
                  and not pd.isna(last["utilisation_max"]) else "")
        if curve["territories"].max() < lower:
            advice = f"the workload alone needs at least {lower} territories: try larger N"
        elif (curve["status"] == "infeasible").all():
            # Larger N only narrow the band further: more room lies the other way.
            reasons = str(last["reason"]).split("; ")
            first = reasons[0] + (f" and {len(reasons) - 1} more" if len(reasons) > 1 else "")
            advice = ("no N swept has a design within the balance band (at N = "
                      f"{last['territories']}: {first}); try fewer territories or a wider "
                      "tolerance")
        else:
            advice = "widen the range"
        notes.append(f"no N from {curve['territories'].min()} to "
                     f"{curve['territories'].max()} fits within {target} of capacity{detail}; "
                     + advice)
        return notes
    if recommended is None:
        return notes
    smaller = curve[curve["territories"] < recommended]
    if smaller.empty and recommended > lower:
        notes.append(f"the smallest N swept fits; a smaller N may fit too (the workload alone "
                     f"needs at least {lower} territories)")
    below = curve[curve["territories"] == recommended - 1]
    if len(below) and bool(below["proven_unfit"].iloc[0]) and \
            below["status"].iloc[0] == "infeasible":
        notes.append(f"{recommended - 1} territories cannot fit: no design of "
                     f"{recommended - 1} territories keeps every territory's workload within "
                     f"the balance band ({below['reason'].iloc[0]})")
    elif len(below) and bool(below["proven_unfit"].iloc[0]):
        notes.append(f"{recommended - 1} territories cannot fit: the least travel any balanced "
                     f"design of {recommended - 1} needs (the design's bound) already puts mean "
                     f"utilisation at {below['mean_utilisation_bound'].iloc[0]:.1%}, above the "
                     f"{target} target")
    if settings.step > 1 and len(smaller):
        notes.append(f"N between {int(smaller['territories'].max())} and {recommended} were "
                     "not tried (step > 1)")
    unproven = curve[(curve["territories"] < recommended) & ~curve["proven_unfit"]]
    if len(unproven):
        notes.append("smaller N whose minimum-travel design does not fit but are not proven "
                     "unfit: " + ", ".join(str(int(x)) for x in unproven["territories"]))
    return notes


# ---------------------------------------------------------------------------------------------
# Chart


def write_capacity_curve_png(path: str | Path, result: SizingResult) -> Path:
    """capacity_curve.png: max and mean utilisation against N with the target and the
    recommended N marked; below, travel hours and workload balance (CV)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    curve = result.curve[result.curve["utilisation_max"].notna()]
    ns = curve["territories"].to_numpy(int)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), dpi=110, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    top.plot(ns, curve["utilisation_max"], marker="o", color="crimson",
             label="busiest territory")
    top.plot(ns, curve["utilisation_mean"], marker="s", color="steelblue", label="mean")
    top.fill_between(ns, curve["utilisation_min"].astype(float),
                     curve["utilisation_max"].astype(float), color="crimson", alpha=0.08,
                     label="range over territories")
    top.axhline(result.target_utilisation, color="black", linestyle="--",
                label=f"target {result.target_utilisation:.0%}")
    if result.recommended is not None:
        top.axvline(result.recommended, color="green", linewidth=2,
                    label=f"recommended N = {result.recommended}")
    top.set_ylabel("utilisation (workload + travel) / capacity")
    top.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    top.legend(fontsize=8, loc="upper right")
    top.set_title(f"Capacity curve: {result.capacity_hours:,.0f} h per rep")
    bottom.plot(ns, curve["travel_hours"], marker="o", color="gray", label="travel hours")
    bottom.set_ylabel("travel hours per year")
    bottom.set_xlabel("territories (reps)")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylim(bottom=0)
    cv = bottom.twinx()
    cv.plot(ns, curve["workload_cv"], marker="^", color="darkorange", label="workload CV")
    cv.set_ylabel("workload CV")
    cv.set_ylim(bottom=0)
    handles, labels = bottom.get_legend_handles_labels()
    more = cv.get_legend_handles_labels()
    bottom.legend(handles + more[0], labels + more[1], fontsize=8, loc="upper right")
    if result.recommended is not None:
        bottom.axvline(result.recommended, color="green", linewidth=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# A capacity plan: a `sizing` section and/or a hiring plan (optimizer.hiring) in one mapping


@dataclass(frozen=True)
class CapacityPlan:
    """The parts of a capacity plan mapping (a plan file, or an API capacity job's scenario):
    `sizing` (SizingSettings keys), `start` (the hiring plan's first month) and the hiring
    plan's own keys (months, roles, ...), each part absent when not given."""

    sizing: dict[str, Any] | None
    start: date | None
    hiring: dict[str, Any] | None


def split_plan(body: dict[str, Any], source: str = "plan") -> CapacityPlan:
    body = dict(body)
    sizing = body.pop("sizing", None)
    start = body.pop("start", None)
    issues = []
    if sizing is not None and not isinstance(sizing, dict):
        issues.append(Issue(source, None, "sizing", "expected a mapping of sizing settings"))
    first = None
    if start is not None:
        try:
            first = start if isinstance(start, date) else date.fromisoformat(str(start))
        except ValueError:
            issues.append(Issue(source, None, "start", f"not a date (YYYY-MM-DD): {start!r}"))
    if issues:
        raise InputError(issues)
    return CapacityPlan(sizing, first, body or None)


def sizing_settings(mapping: dict[str, Any], source: str = "sizing") -> SizingSettings:
    """Validated sizing settings; every problem is an Issue under `source`."""
    settings = model_from_mapping(SizingSettings, mapping, source)
    _scenario(settings, settings.min_territories, source)  # the design scenario, checked now
    return settings


def hiring_input(body: dict[str, Any], roster: pd.DataFrame | None, first: date,
                 source: str = "plan", roster_source: str = "reps") -> HiringPlanInput:
    """The hiring plan, with each role's starting roster from validated reps (role,
    start_date) when given; a role no rep holds keeps the plan's own `initial` roster. A rep
    whose role the plan does not have, and a role whose starting roster both the plan and
    the reps give, are bad input: either would change the plan without a word (the rep
    counted nowhere, one of the two rosters dropped)."""
    if roster is not None:
        roles = [role for role in body.get("roles", []) if isinstance(role, dict)]
        _check_roster_roles(roster, roles, source, roster_source)
        heads = roster_from_reps(roster, first)
        body = {**body, "roles": [
            {**role, "initial": heads.get(str(role.get("name")), role.get("initial", []))}
            if isinstance(role, dict) else role for role in body.get("roles", [])]}
    return model_from_mapping(HiringPlanInput, body, source)


def _check_roster_roles(roster: pd.DataFrame, roles: list[dict[str, Any]], source: str,
                        roster_source: str) -> None:
    names = [str(role.get("name")) for role in roles]
    known = ", ".join(map(repr, names)) or "none"
    rep_roles = roster["role"] if "role" in roster else pd.Series(pd.NA, index=roster.index)
    held = {DEFAULT_ROLE if pd.isna(r) else str(r) for r in rep_roles}
    issues = [Issue(source, None, f"roles.{i}.initial", (
        f"role {names[i]!r} gives its starting roster here and the reps ({roster_source}) "
        "give it too; give it in one place")) for i, role in enumerate(roles)
        if role.get("initial") and names[i] in held]
    for row, role in enumerate(rep_roles, start=1):
        name = DEFAULT_ROLE if pd.isna(role) else str(role)
        if name in names:
            continue
        alike = [n for n in names if n.casefold() == name.casefold()]
        what = f"{name!r} is not" if not pd.isna(role) else f"is empty, and {name!r} (the " \
            "default) is not"
        issues.append(Issue(roster_source, row, "role", (
            f"{what} a role of the plan ({known}), so the rep would count for none"
            + (f"; did you mean {alike[0]!r}?" if alike else ""))))
    if issues:
        raise InputError(issues)
