"""`territory` command line. The only place that turns optimizer errors into exit codes:
0 done, 1 solver error, 2 bad input, 3 infeasible scenario (explained), 4 cancelled."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from optimizer import datasets as bundled
from optimizer import levels
from optimizer.alignment import AlignmentResult
from optimizer.alignment import solve as solve_alignment
from optimizer.capacity import (
    SizingSettings,
    capacity_from_reps,
    hiring_input,
    sizing_settings,
    split_plan,
    sweep,
    write_capacity_curve_png,
)
from optimizer.compare import compare_runs, kpi_is_share
from optimizer.contiguity import unit_graph
from optimizer.design import DesignResult
from optimizer.design import solve as solve_design
from optimizer.domain import DistanceMetric, Mode, Scenario
from optimizer.errors import (
    InfeasibleScenarioError,
    InputError,
    Issue,
    OptimizerError,
    SolveCancelledError,
    SolverError,
    listed,
)
from optimizer.geo import load_units, local_crs
from optimizer.hiring import solve as solve_hiring
from optimizer.hiring import write_hiring_plan_png
from optimizer.io import (
    check_finished_run,
    check_output_folder,
    model_from_mapping,
    read_alignment,
    read_design,
    read_mapping,
    read_plan,
    read_scenario,
    read_table,
    write_json,
    write_tables,
)
from optimizer.outputs import MAP_FILES, OutputWarning, write_geo_outputs
from optimizer.quota_deploy import QuotaSettings
from optimizer.quota_deploy import deploy as deploy_quotas
from optimizer.solve import Progress
from optimizer.validate import TableChecker, id_text, validate_accounts, validate_reps

app = typer.Typer(help="Sales territory realignment and design with provable optimality gaps.",
                  no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="Bundled data sets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
console = Console()
err_console = Console(stderr=True)

EXIT_SOLVER, EXIT_INPUT, EXIT_INFEASIBLE, EXIT_CANCELLED = 1, 2, 3, 4


def _progress_line(p: Progress) -> str:
    parts = [f"[bold]{p.phase:<10}[/]", f"{p.elapsed:6.1f} s"]
    if p.incumbent is not None:
        parts.append(f"incumbent {p.incumbent:.6g}")
    if p.bound is not None:
        parts.append(f"bound {p.bound:.6g}")
    if p.gap is not None:
        parts.append(f"gap {p.gap:.3%}")
    if p.message:
        parts.append(f"[dim]{p.message}[/]")
    return "  ".join(parts)


# In a log (output not a terminal), a progress line at each new phase and at most this often
# within one.
LOG_SECONDS = 10.0


class _ProgressLog:
    """Progress as plain lines on stderr, for runs whose output goes to a file or a pipe
    (batch jobs, CI): a live display would show nothing there."""

    def __init__(self) -> None:
        self.phase: str | None = None
        self.last = -math.inf

    def __call__(self, p: Progress) -> None:
        if p.phase != self.phase or p.elapsed - self.last >= LOG_SECONDS:
            self.phase, self.last = p.phase, p.elapsed
            err_console.print(_progress_line(p), soft_wrap=True)


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[Progress], None] | None]:
    """The progress callback of a long run: none with --quiet, a live line on a terminal,
    otherwise `_ProgressLog`."""
    if quiet:
        yield None
    elif console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            yield lambda p: live.update(_progress_line(p))
    else:
        yield _ProgressLog()


def _kpi_rows(kpis: dict[str, Any]) -> list[tuple[str, str]]:
    b, t = kpis["balance"], kpis["travel"]
    rows = [
        ("Workload: max / fair share", f"{b['workload']['max_over_fair']:.3f}"),
        ("Workload: min / fair share", f"{b['workload']['min_over_fair']:.3f}"),
        ("Workload: coefficient of variation", f"{b['workload']['cv']:.3f}"),
        ("Workload: territories within tolerance",
         f"{b['workload']['share_within_tolerance']:.0%}"),
        ("Potential: coefficient of variation", f"{b['potential']['cv']:.3f}"),
        ("Accounts: coefficient of variation", f"{b['accounts']['cv']:.3f}"),
    ]
    if "utilisation" in kpis:
        u = kpis["utilisation"]
        rows += [("Reps over capacity", f"{u['over_capacity_reps']}"),
                 ("Max utilisation", f"{u['max']:.0%}")]
    rows += [
        ("Travel (visits × distance)", f"{t['total']:,.0f}"),
        ("Workload-weighted mean distance", f"{t['workload_weighted_mean_distance']:,.1f}"),
    ]
    if "disruption" in kpis:
        d = kpis["disruption"]
        rows += [
            ("Accounts moved", f"{d['accounts_moved']:,.0f} ({d['accounts_moved_share']:.1%})"),
            ("Workload moved", f"{d['workload_moved']:,.0f} ({d['workload_moved_share']:.1%})"),
        ]
    if "geography" in kpis:
        g = kpis["geography"]
        if math.isfinite(g["compactness_mean"]):
            rows.append(("Compactness: mean (Polsby–Popper)", f"{g['compactness_mean']:.2f}"))
        if "disconnected_territories" in g:
            rows.append(("Territories in more than one piece",
                         f"{g['disconnected_territories']}"))
    return rows


def _print_result(result: AlignmentResult | DesignResult, summary: dict[str, Any], out: Path,
                  title: str) -> None:
    """The KPI table and status line of a finished run, from the summary.json just written
    (so the geography KPIs and the output warnings show too)."""
    r, kpis = result.report, summary["kpis"]
    table = Table(title=title)
    table.add_column("KPI")
    after = _kpi_rows(kpis["after"])
    before = dict(_kpi_rows(kpis["before"])) if "before" in kpis else None
    if before is not None:
        table.add_column("Before", justify="right")
    table.add_column("After" if before is not None else "Plan", justify="right")
    for name, value in after:
        table.add_row(name, *([before.get(name, "")] if before is not None else []), value)
    console.print(table)
    gap = "n/a" if r.gap is None else f"{r.gap:.3%}"
    bound = "none" if r.bound is None else f"{r.bound:.6g}"
    # In a file or a pipe, one line per message (greppable; no break inside "0.3 s").
    whole = not console.is_terminal
    console.print(
        f"[bold]{r.status.value}[/]: objective {r.objective:.6g}, bound {bound}, "
        f"gap {gap} in {r.seconds:.1f} s (model build {r.seconds_build:.1f} s, "
        f"HiGHS {r.seconds_solve:.1f} s); {r.pricing['pairs_allowed']:,} pairs in scope, "
        f"{r.pricing['pairs_in_mip']:,} in the final MIP", soft_wrap=whole)
    for w in summary["warnings"]:
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=whole)
    console.print(f"Outputs written to {out}/")


# The files each command may write beside summary.json. A run removes its command's files
# from --out before it writes its own, and a failed run (infeasible, solver error,
# cancelled) removes them too, so a folder never pairs one run's summary with another's
# tables: a failure's summary with an earlier plan, a run without maps (distances only)
# with an earlier run's maps, a hiring plan with an earlier sizing curve.
PLAN_FILES = ("assignments.csv", "territories.csv", *MAP_FILES, "workbook.xlsx")
CAPACITY_FILES = ("hiring_plan.csv", "hiring_months.csv", "hiring_periods.csv",
                  "hiring_plan.png", "capacity_curve.csv", "capacity_territories.csv",
                  "capacity_curve.png")
QUOTA_FILES = ("quotas.csv", "manager_quotas.csv", "overlay_quotas.csv")
REGION_FILES = ("assignments.csv", "territories.csv", "regions.csv", "areas.csv")
OVERLAY_FILES = ("overlay.csv", "overlay_reps.csv", "territories.csv")


def _clear(out: Path, files: Sequence[str], inputs: Sequence[Path | None]) -> None:
    """Remove an earlier run's `files` from `out`, sparing those this run reads (quota
    --method derived --assignments q/quotas.csv --out q)."""
    read = [path for path in inputs if path is not None and path.exists()]
    for name in files:
        target = out / name
        if target.exists() and not any(os.path.samefile(path, target) for path in read):
            target.unlink()


def _fail(out: Path, status: str, message: str, reasons: list[str] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", {"status": status, "objective": None, "bound": None,
                                      "gap": None, "seconds": None, "message": message,
                                      "reasons": reasons or []})


def _overridden(sc: Scenario, time_limit: float | None, **update: Any) -> Scenario:
    """The scenario with the command line's overrides, validated like the file (a time
    limit of 0 or a territory count of -3 is bad input, named as from the command line)."""
    values = sc.model_dump()
    if time_limit is not None:
        values["solver"] = {**values["solver"], "time_limit": time_limit}
    return model_from_mapping(Scenario, {**values, **update}, "command line")


# The capacity command's options for the sizing settings they set (messages name the option
# the planner typed, not the setting behind it).
SIZING_OPTIONS = {"capacity_hours": "--capacity-hours", "travel_speed": "--travel-speed",
                  "visits_per_trip": "--visits-per-trip",
                  "target_utilisation": "--target-utilisation", "min_territories": "--min-n",
                  "max_territories": "--max-n", "step": "--step", "time_limit": "--time-limit"}


def _sizing_settings(body: dict[str, Any], source: str, from_options: set[str]
                     ) -> SizingSettings:
    try:
        return sizing_settings(body, source)
    except InputError as exc:
        raise InputError([
            Issue("command line", None, SIZING_OPTIONS[i.field], i.message)
            if i.field in from_options else
            Issue(i.source, i.row, i.field, i.message + (
                f" (or give {SIZING_OPTIONS[i.field]})" if i.field in SIZING_OPTIONS
                and i.message == "Field required" else ""))
            for i in exc.issues]) from exc


def _number_list(text: str | None, option: str) -> list[float]:
    """'0.25, 0.5,0.75' as numbers (a bad item is bad input naming the option)."""
    if not text:
        return []
    try:
        return [float(item) for item in text.split(",")]
    except ValueError as exc:
        raise InputError([Issue("command line", None, option,
                                f"not a list of numbers such as 0.25,0.5,0.75: {text!r}")]
                         ) from exc


def _date_option(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError([Issue("command line", None, option,
                                f"not a date (YYYY-MM-DD): {text!r} ({exc})")]) from exc


@dataclass
class _Run:
    """A finished model run and the inputs its maps are drawn from."""

    result: AlignmentResult | DesignResult
    accounts: pd.DataFrame
    reps: pd.DataFrame | None
    units: gpd.GeoDataFrame | None


def _write_outputs(out: Path, run: _Run, inputs: Sequence[Path | None]) -> dict[str, Any]:
    """CSV tables, summary.json, and the geography: territories.geojson, map.png, map.html,
    workbook.xlsx (their KPIs — compactness, contiguity — go into summary.json too), in
    place of an earlier run's. Returns the summary written."""
    _clear(out, PLAN_FILES, inputs)
    result = run.result
    summary = result.summary()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OutputWarning)
        geo = write_geo_outputs(out, run.accounts, run.reps, result.assignments,
                                result.territories, result.kpis, summary, run.units)
    summary["kpis"] = geo.kpis
    summary["warnings"] = [*summary["warnings"],
                           *(str(w.message) for w in caught if w.category is OutputWarning)]
    write_tables(out, summary, {"assignments": result.assignments,
                                "territories": geo.territories})
    return summary


@contextmanager
def _exit_codes(out: Path, infeasible: str, files: Sequence[str],
                inputs: Sequence[Path | None]) -> Iterator[None]:
    """Map every optimizer error to its exit code and a summary.json that says why (the only
    place that does): bad input 2, infeasible 3, cancelled 4, solver error 1. Bad input
    leaves the folder as it was (no run started); the other failures remove the command's
    `files` of an earlier run there (`_clear`)."""
    try:
        check_output_folder(out)
        yield
    except InputError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_INPUT) from exc
    except (InfeasibleScenarioError, SolveCancelledError, SolverError, OptimizerError) as exc:
        _clear(out, files, inputs)
        if isinstance(exc, InfeasibleScenarioError):
            _fail(out, "infeasible", infeasible, exc.reasons)
            err_console.print(f"[red]infeasible:[/] {exc}")
            raise typer.Exit(EXIT_INFEASIBLE) from exc
        _fail(out, "error", str(exc))
        if isinstance(exc, SolveCancelledError):
            raise typer.Exit(EXIT_CANCELLED) from exc
        err_console.print(f"[red]solver error:[/] {exc}")
        raise typer.Exit(EXIT_SOLVER) from exc


def _execute(out: Path, quiet: bool, title: str,
             run: Callable[[Callable[[Progress], None] | None], _Run],
             inputs: Sequence[Path | None]) -> None:
    """Run a model with progress on the terminal and write its outputs."""
    with _exit_codes(out, "the scenario is infeasible", PLAN_FILES, inputs):
        with _progress(quiet) as progress:
            done = run(progress)
        _print_result(done.result, _write_outputs(out, done, inputs), out, title)


@app.command()
def align(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    accounts: Annotated[Path | None, typer.Option(help="accounts.csv/.parquet/.geojson")] = None,
    reps: Annotated[Path | None, typer.Option(help="reps.csv")] = None,
    scenario: Annotated[Path | None, typer.Option(help="Scenario YAML or JSON.")] = None,
    distances: Annotated[Path | None, typer.Option(help="distances.csv: from_id,to_id,distance")]
    = None,
    dataset: Annotated[str | None, typer.Option(
        help="A bundled data set instead of --accounts/--reps (its scenario.yaml applies "
             "unless --scenario is given).")] = None,
    units: Annotated[Path | None, typer.Option(
        help="Unit polygons (GeoJSON/GeoPackage/shapefile with unit_id): territory "
             "boundaries are dissolved units.")] = None,
    time_limit: Annotated[float | None, typer.Option(help="Override solver.time_limit (s).")]
    = None,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
) -> None:
    """Realign accounts among existing reps."""

    def run(progress: Callable[[Progress], None] | None) -> _Run:
        acc, rep, sc_path, dist = accounts, reps, scenario, distances
        if dataset is not None:
            d = bundled.get_dataset_or_raise(dataset)
            acc, rep = d.file("accounts.csv"), d.file("reps.csv")
            sc_path = sc_path or d.file("scenario.yaml")
            dist = dist or d.file("distances.csv")
        if acc is None or rep is None:
            raise InputError([Issue("command line", None, None,
                                    "missing --accounts and --reps (or --dataset)")])
        sc = _overridden(read_scenario(sc_path), time_limit)
        if sc.mode is not Mode.align:
            raise InputError([Issue(sc_path.name if sc_path else "scenario", None, "mode", (
                f"territory align realigns (mode align), and this scenario says mode "
                f"{sc.mode.value}: run it with territory {sc.mode.value}"))])
        data = read_alignment(acc, rep, sc, dist)
        unit_file = units or (bundled.get_dataset_or_raise(dataset).file("units.geojson")
                              if dataset is not None else None)
        polygons = load_units(unit_file) if unit_file is not None else None
        data = replace(data, units=unit_graph(sc.contiguity, polygons))
        return _Run(solve_alignment(data, sc, on_progress=progress), data.accounts, data.reps,
                    polygons)

    _execute(out, quiet, "Realignment: before and after", run,
             (accounts, reps, scenario, distances, units))


@app.command()
def design(
    territories: Annotated[int | None, typer.Option(
        help="How many territories to carve (overrides the scenario's `territories`).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    accounts: Annotated[Path | None, typer.Option(help="accounts.csv/.parquet/.geojson")] = None,
    scenario: Annotated[Path | None, typer.Option(help="Scenario YAML or JSON.")] = None,
    distances: Annotated[Path | None, typer.Option(
        help="distances.csv: from_id (account), to_id (candidate centre), distance")] = None,
    dataset: Annotated[str | None, typer.Option(help="A bundled data set's accounts.")] = None,
    units: Annotated[Path | None, typer.Option(
        help="Unit polygons (GeoJSON/GeoPackage/shapefile with unit_id).")] = None,
    time_limit: Annotated[float | None, typer.Option(help="Override solver.time_limit (s).")]
    = None,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
) -> None:
    """Design territories from scratch: choose centres and assign every account."""

    def run(progress: Callable[[Progress], None] | None) -> _Run:
        acc, dist = accounts, distances
        if dataset is not None:
            d = bundled.get_dataset_or_raise(dataset)
            acc, dist = d.file("accounts.csv"), dist or d.file("distances.csv")
        if acc is None:
            raise InputError([Issue("command line", None, None,
                                    "missing --accounts (or --dataset)")])
        update: dict[str, Any] = {"mode": "design"}
        if territories is not None:
            update["territories"] = territories
        sc = _overridden(read_scenario(scenario), time_limit, **update)
        if units is None and dataset is not None:
            bundled_units = bundled.get_dataset_or_raise(dataset).file("units.geojson")
            polygons = load_units(bundled_units) if bundled_units is not None else None
        else:
            polygons = load_units(units) if units is not None else None
        data = read_design(acc, sc, dist, polygons)
        data = replace(data, units=unit_graph(sc.contiguity, polygons))
        return _Run(solve_design(data, sc, on_progress=progress), data.accounts, None, polygons)


    _execute(out, quiet, "Territory design", run, (accounts, scenario, distances, units))


@app.command()
def capacity(
    plan: Annotated[Path | None, typer.Option(
        help="Capacity plan YAML/JSON: a hiring plan (months, roles, ratios, goal, budget, "
             "objective; see optimizer/hiring.py) and/or a `sizing:` section (see "
             "optimizer/capacity.py).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    reps: Annotated[Path | None, typer.Option(
        help="reps.csv: the starting roster by role; start_date gives each rep's ramp; "
             "sizing: the mean capacity is the rep capacity unless given.")] = None,
    start: Annotated[str | None, typer.Option(
        help="First month of the plan (YYYY-MM-DD), for reps' start dates.")] = None,
    accounts: Annotated[Path | None, typer.Option(
        help="Sizing: accounts.csv/.parquet/.geojson (workload, visits, location).")] = None,
    capacity_hours: Annotated[float | None, typer.Option(
        help="Sizing: selling hours per rep per year.")] = None,
    travel_speed: Annotated[float | None, typer.Option(
        help="Sizing: distance units (km) per hour on the road.")] = None,
    visits_per_trip: Annotated[float | None, typer.Option(
        help="Sizing: visits served by one out-and-back trip (default 1).")] = None,
    target_utilisation: Annotated[float | None, typer.Option(
        help="Sizing: the largest share of capacity a territory may need, e.g. 0.9.")] = None,
    min_n: Annotated[int | None, typer.Option(help="Sizing: fewest territories tried.")] = None,
    max_n: Annotated[int | None, typer.Option(help="Sizing: most territories tried.")] = None,
    step: Annotated[int | None, typer.Option(help="Sizing: step between N tried.")] = None,
    time_limit: Annotated[float | None, typer.Option(
        help="Sizing: time limit per design (s).")] = None,
    scenario: Annotated[Path | None, typer.Option(
        help="Sizing: the design scenario (metric, circuity, balance, centres).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
) -> None:
    """Size the sales force (a capacity curve over N) and/or plan hiring month by month.

    Sizing designs territories for each N and costs them in hours (workload and travel);
    the hiring plan gives headcount, ramp, cost and revenue per month."""
    inputs = (plan, reps, accounts, scenario)
    with _exit_codes(out, "the hiring plan cannot meet its goal or budget", CAPACITY_FILES,
                     inputs):
        parts = split_plan(read_mapping(plan) if plan else {}, plan.name if plan else "plan")
        flags = {"capacity_hours": capacity_hours, "travel_speed": travel_speed,
                 "visits_per_trip": visits_per_trip, "target_utilisation": target_utilisation,
                 "min_territories": min_n, "max_territories": max_n, "step": step,
                 "time_limit": time_limit}
        sizing_body = {**(parts.sizing or {}), **{k: v for k, v in flags.items()
                                                  if v is not None}}
        if scenario is not None:
            sizing_body["scenario"] = read_mapping(scenario)
        wants_sizing = bool(sizing_body) or accounts is not None
        if not wants_sizing and not parts.hiring:
            raise InputError([Issue("command line", None, None,
                                    "nothing to plan: give --plan with a hiring plan and/or a "
                                    "sizing section, or --accounts with --min-n and --max-n")])
        if wants_sizing and accounts is None:
            raise InputError([Issue("command line", None, "--accounts",
                                    "sizing needs the accounts")])
        roster = None
        if reps is not None:
            roster, issues = validate_reps(read_table(reps), DistanceMetric.matrix,
                                           source=reps.name, needs_location=False)
            if issues:
                raise InputError(issues)
        first = _date_option(start, "--start") if start else parts.start or \
            date.today().replace(day=1)
        sized = hired = None
        if wants_sizing:
            settings = _sizing_settings(sizing_body, plan.name if plan else "command line",
                                        {k for k, v in flags.items() if v is not None})
            rep_capacity = capacity_from_reps(roster, reps.name) \
                if roster is not None and reps is not None else None
            if settings.capacity_hours is None and rep_capacity is None:
                raise InputError([Issue("command line", None, "--capacity-hours", (
                    "sizing needs a rep's selling hours per year: give --capacity-hours, "
                    "--reps with a capacity column, or capacity_hours in the plan's sizing "
                    "section"))])
        if parts.hiring:
            hired = solve_hiring(hiring_input(parts.hiring, roster, first,
                                              plan.name if plan else "plan",
                                              reps.name if reps else "reps"))
        if wants_sizing and accounts is not None:
            data = read_design(accounts, settings.design_scenario(settings.min_territories))
            with _progress(quiet) as progress:
                sized = sweep(data, settings, capacity_hours=rep_capacity,
                              on_progress=progress)
    summary: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    if hired is not None:
        summary = {"status": hired.status.value, "objective": hired.objective,
                   "bound": hired.bound, "gap": hired.gap, "seconds": round(hired.seconds, 3),
                   "termination": hired.termination.value, "total_cost": hired.total_cost,
                   "total_revenue": hired.total_revenue,
                   "hires": {role: int(h.sum()) for role, h in hired.hires.items()}}
        tables |= {"hiring_plan": hired.table, "hiring_months": hired.months,
                   "hiring_periods": hired.periods}
    if sized is not None:
        summary = {**summary, "sizing": sized.summary()} if hired else sized.summary()
        if hired and sized.recommended is None:  # the exit code says so: the status too
            summary["status"] = summary["sizing"]["status"]
        tables |= {"capacity_curve": sized.curve, "capacity_territories": sized.territories}
    _clear(out, CAPACITY_FILES, inputs)
    write_tables(out, summary, tables)
    if hired is not None:
        write_hiring_plan_png(out / "hiring_plan.png", hired)
        _print_frame(hired.periods.round(0))
        console.print(f"[bold]{hired.status.value}[/]: cost {hired.total_cost:,.0f}, revenue "
                      f"{hired.total_revenue:,.0f}, hires "
                      + ", ".join(f"{r} {int(h.sum())}" for r, h in hired.hires.items()))
    if sized is not None:
        write_capacity_curve_png(out / "capacity_curve.png", sized)
        shown = ["territories", "status", "seconds", "utilisation_max", "utilisation_mean",
                 "travel_hours", "workload_cv", "fits"]
        _print_frame(sized.curve[shown])
        for note in sized.notes:
            console.print(f"[yellow]note:[/] {note}")
        target = f"target {sized.target_utilisation * 100:g}% of {sized.capacity_hours:,.0f} h"
        if sized.recommended is None:
            console.print(f"[bold]no recommendation[/]: no N tried fits ({target})")
        else:
            console.print(f"[bold]recommended territories: {sized.recommended}[/] ({target})")
    console.print(f"Outputs written to {out}/")
    if sized is not None and sized.recommended is None:
        raise typer.Exit(EXIT_CANCELLED if sized.cancelled else EXIT_INFEASIBLE)


@app.command()
def quota(
    assignments: Annotated[Path | None, typer.Option(
        help="A run's output folder (its territories.csv) or a territories CSV with "
             "territory_id, potential and optionally history, rep_id, start_month, "
             "manager_id, quota.")] = None,
    goal: Annotated[float | None, typer.Option(
        help="The company goal to deploy (bottom-up: the goal the roll-up is compared "
             "with; derived: needed unless the table has a quota column).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    method: Annotated[str, typer.Option(help="top-down | fair | bottom-up | derived")]
    = "top-down",
    potential_weight: Annotated[float, typer.Option(
        help="Weight of the potential share (history gets the rest).")] = 0.5,
    over_assignment: Annotated[float, typer.Option(help="e.g. 1.1 deploys 110 % of the goal.")]
    = 1.0,
    ramp: Annotated[str | None, typer.Option(
        help="top-down: a new rep's productivity in its first months, e.g. 0.25,0.5,0.75 "
             "(full after).")] = None,
    shortfall: Annotated[str, typer.Option(
        help="top-down: the ramp shortfall is absorbed by the company, or spread over the "
             "reps in seat all year: company | spread")] = "company",
    unit: Annotated[float, typer.Option(help="Round quotas to this currency unit.")] = 1.0,
    band: Annotated[float, typer.Option(
        help="fair: quota/potential within ± this share of the company ratio.")] = 0.1,
    submissions: Annotated[Path | None, typer.Option(
        help="bottom-up: submissions CSV (territory_id, rep_id or id; submitted; optional "
             "manager, region); default: --assignments.")] = None,
    close_gap: Annotated[bool, typer.Option(
        help="bottom-up: scale submissions so the quotas meet the goal.")] = False,
    manager_factor: Annotated[float, typer.Option(
        help="derived: manager quota = factor × the team's quotas.")] = 1.0,
    coverage: Annotated[Path | None, typer.Option(
        help="derived: overlay coverage CSV (overlay_id, territory_id, optional share).")]
    = None,
    overlay_factor: Annotated[float, typer.Option(
        help="derived: overlay quota = factor × the covered quotas.")] = 1.0,
) -> None:
    """Deploy quotas: top-down, fair (LP), bottom-up roll-up or derived.

    Derived quotas are for managers and overlays; every output CSV's columns explain each
    number."""
    run_folder = assignments if assignments is not None and assignments.is_dir() else None
    plan_table = run_folder / "territories.csv" if run_folder is not None else assignments
    paths = {"territories": plan_table, "submissions": submissions, "coverage": coverage}
    if method == "bottom-up" and submissions is None:  # the plan's own table holds them
        paths |= {"territories": None, "submissions": plan_table}
    inputs = tuple(paths.values())
    infeasible = {"fair": "the quotas cannot meet the goal within the band",
                  "top-down": "the ramp shortfall cannot be spread"}.get(
        method, "the quotas cannot be deployed as asked")
    with _exit_codes(out, infeasible, QUOTA_FILES, inputs):
        settings = model_from_mapping(QuotaSettings, {
            "method": method, "goal": goal, "potential_weight": potential_weight,
            "over_assignment": over_assignment, "unit": unit, "band": band,
            "close_gap": close_gap, "manager_factor": manager_factor,
            "overlay_factor": overlay_factor, "shortfall": shortfall,
            "ramp": _number_list(ramp, "--ramp")}, "command line")
        if run_folder is not None:
            check_finished_run(run_folder)
        tables = {name: read_table(path) for name, path in paths.items() if path is not None}
        done = deploy_quotas(settings, tables,
                             {name: path.name for name, path in paths.items() if path})
    _clear(out, QUOTA_FILES, inputs)
    write_tables(out, done.summary, done.tables)
    main = done.tables[done.main]
    _print_frame(main, max_rows=30)
    for note in done.warnings:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"{method}: {', '.join(f'{n}.csv' for n in done.tables)} written to {out}/")


def _located_plan(plan: Path, accounts: Path | None, reps: Path | None, dataset: str | None,
                  units: Path | None, extra: Path | None = None, *, with_units: bool = False
                  ) -> tuple[levels.Plan, str]:
    """A finished run as a `levels.Plan`: territories located at their accounts'
    workload-weighted centroid (--accounts/--dataset), else their rep's home base (--reps),
    else the centroid of their polygon in the run's territories.geojson; with --units (or
    a bundled data set's units when `with_units`), the territory adjacency."""
    terr, assign = read_plan(plan)
    if extra is not None:  # more per-territory columns (e.g. an overlay workload)
        more = read_table(extra)
        if "territory_id" not in more.columns:
            raise InputError([Issue(extra.name, None, "territory_id",
                                    "required column is missing")])
        more["territory_id"] = id_text(more["territory_id"])  # matched as the check reads them
        _check_extra_ids(more, terr, extra.name)
        terr = terr.drop(columns=[c for c in more.columns if c != "territory_id"
                                  and c in terr.columns]).merge(more, on="territory_id",
                                                                how="left")
    if dataset is not None:
        d = bundled.get_dataset_or_raise(dataset)
        accounts, reps = accounts or d.file("accounts.csv"), reps or d.file("reps.csv")
        units = units or (d.file("units.geojson") if with_units else None)
    acc = rep = None
    issues: list[Issue] = []
    for path, validate in ((accounts, validate_accounts), (reps, validate_reps)):
        if path is None:
            continue
        raw = read_table(path)
        metric = DistanceMetric.haversine if {"lat", "lon"} <= set(raw.columns) else \
            DistanceMetric.euclidean if {"x", "y"} <= set(raw.columns) else DistanceMetric.matrix
        frame, found = validate(raw, metric, source=path.name)
        issues += found
        acc, rep = (frame, rep) if validate is validate_accounts else (acc, frame)
    if issues:
        raise InputError(issues)
    geojson = plan / "territories.geojson" if plan.is_dir() else None
    if acc is None and rep is None and geojson is not None and geojson.exists() and not (
            {"lat", "lon"} <= set(terr.columns) or {"x", "y"} <= set(terr.columns)):
        shapes = gpd.read_file(geojson).dropna(subset=["geometry"])
        bounds = shapes.total_bounds
        crs = local_crs(np.array([bounds[0], bounds[2]]), np.array([bounds[1], bounds[3]]))
        points = shapes.to_crs(crs).centroid.to_crs("EPSG:4326")
        where = pd.DataFrame({"territory_id": shapes["territory_id"].astype(str),
                              "lat": points.y.to_numpy(), "lon": points.x.to_numpy()})
        terr = terr.merge(where, on="territory_id", how="left")
        located, found_from = levels.locate_territories(terr, source="territories.csv")
        found_from = "territory polygon centroids (territories.geojson)"
    else:
        located, found_from = levels.locate_territories(terr, assign, acc, rep,
                                                        source="territories.csv")
    adjacency = None
    if units is not None:
        if acc is None or assign is None:
            raise InputError([Issue("command line", None, "--units",
                                    "units need the accounts (--accounts or --dataset) for "
                                    "their unit_id, and the run's assignments.csv")])
        adjacency = levels.territory_adjacency(acc, assign, located["territory_id"].tolist(),
                                               load_units(units))
    return levels.Plan(located, assign, adjacency), found_from


def _check_extra_ids(more: pd.DataFrame, terr: pd.DataFrame, source: str) -> None:
    """Rows of --territory-data for territories the plan lacks, and the plan's territories
    it has no row for (their cells would be blamed on territories.csv as empty)."""
    plan_ids = id_text(terr["territory_id"]).dropna()
    ids = id_text(more["territory_id"])
    check = TableChecker(source)
    check.unique_ids(ids, "territory_id")  # a second row would double its territory
    check.rows(ids.notna() & ~ids.isin(plan_ids), "territory_id",
               "not a territory of the plan", ids)
    if lacking := plan_ids[~plan_ids.isin(ids)].tolist():
        check.add(None, "territory_id",
                  f"no row for {len(lacking)} of the plan's territories: {listed(lacking)}")
    if check.issues:
        raise InputError(check.issues)


def _print_levels(done: levels.LevelResult, tables: list[str], out: Path) -> None:
    for name in tables:
        shown = done.tables[name].drop(columns=["lat", "lon", "x", "y"], errors="ignore")
        _print_frame(shown, title=name)
    s = done.summary()
    gap = "n/a" if s["gap"] is None else f"{s['gap']:.3%}"
    console.print(f"[bold]{s['status']}[/]: travel {s['objective']:,.1f}, gap {gap} in "
                  f"{s['seconds']:.1f} s")
    for w in done.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    console.print(f"Outputs written to {out}/")


LocationOptions = {
    "accounts": "accounts.csv of the run: territories sit at their accounts' "
                "workload-weighted centroid.",
    "reps": "reps.csv of the run: territories without accounts sit at their rep's home base.",
    "dataset": "A bundled data set the run used (its accounts and reps).",
}


@app.command("regions")
def regions_command(
    plan: Annotated[Path, typer.Option(help="A run's output folder (align or design): "
                                            "territories.csv, assignments.csv.")],
    regions: Annotated[int, typer.Option(min=1, help="How many regions (first-line "
                                                     "managers).")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    areas: Annotated[int | None, typer.Option(min=1, help="Also group the regions into this "
                                                          "many areas.")] = None,
    balance_on: Annotated[str, typer.Option(help="territories | workload | potential")]
    = "territories",
    tolerance: Annotated[float, typer.Option(help="Band around the mean per region.")] = 0.2,
    min_span: Annotated[int | None, typer.Option(help="At least this many territories per "
                                                      "region.")] = None,
    max_span: Annotated[int | None, typer.Option(help="At most this many territories per "
                                                      "region.")] = None,
    accounts: Annotated[Path | None, typer.Option(help=LocationOptions["accounts"])] = None,
    reps: Annotated[Path | None, typer.Option(help=LocationOptions["reps"])] = None,
    dataset: Annotated[str | None, typer.Option(help=LocationOptions["dataset"])] = None,
    units: Annotated[Path | None, typer.Option(
        help="Unit polygons (with the accounts' unit_id; a bundled data set brings its "
             "own): regions and areas are made contiguous.")] = None,
    time_limit: Annotated[float, typer.Option(help="Solver time limit per level (s).")] = 30.0,
) -> None:
    """Group a plan's territories into balanced, compact regions (and areas) for managers."""
    inputs = (plan, plan / "territories.csv", plan / "assignments.csv", accounts, reps, units)
    with _exit_codes(out, "the regions cannot meet the span or balance band", REGION_FILES,
                     inputs):
        settings = model_from_mapping(levels.RegionSettings, {
            "balance_on": balance_on, "tolerance": tolerance, "min_span": min_span,
            "max_span": max_span, "solver": {"time_limit": time_limit}}, "command line")
        located, found_from = _located_plan(plan, accounts, reps, dataset, units,
                                            with_units=True)
        done = levels.regions(located, regions, settings)
        if areas is not None:
            done = levels.areas(done, areas, settings.model_copy(
                update={"min_span": None, "max_span": None}))
        summary = {**done.summary(), "locations": found_from}
        tables = {"assignments": done.assignments, "territories": done.territories,
                  **done.tables}
        _clear(out, REGION_FILES, inputs)
        write_tables(out, summary, {k: v for k, v in tables.items() if v is not None})
    _print_levels(done, list(done.tables), out)


@app.command("overlay")
def overlay_command(
    plan: Annotated[Path, typer.Option(help="A run's output folder (align or design).")],
    overlay_reps: Annotated[Path, typer.Option(
        help="Overlay reps: rep_id, lat/lon, role, capacity (in the measure's units; omit "
             "for equal shares), max_accounts (most territories).")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    measure: Annotated[str, typer.Option(help="Column of territories.csv (or of "
                                              "--territory-data) that overlays balance.")]
    = "workload",
    territory_data: Annotated[Path | None, typer.Option(
        help="More columns per territory_id (e.g. an overlay workload).")] = None,
    tolerance: Annotated[float, typer.Option(help="Band around each overlay rep's fair "
                                                  "share.")] = 0.2,
    accounts: Annotated[Path | None, typer.Option(help=LocationOptions["accounts"])] = None,
    reps: Annotated[Path | None, typer.Option(help=LocationOptions["reps"])] = None,
    dataset: Annotated[str | None, typer.Option(help=LocationOptions["dataset"])] = None,
    time_limit: Annotated[float, typer.Option(help="Solver time limit per role (s).")] = 30.0,
) -> None:
    """Align overlay (specialist) reps over core territories.

    Every territory is covered by exactly one overlay rep of each role, balanced on the
    overlay measure."""
    inputs = (plan, plan / "territories.csv", plan / "assignments.csv", overlay_reps,
              territory_data, accounts, reps)
    with _exit_codes(out, "the overlay reps cannot cover the territories within the band",
                     OVERLAY_FILES, inputs):
        settings = model_from_mapping(levels.OverlaySettings, {
            "tolerance": tolerance, "solver": {"time_limit": time_limit}}, "command line")
        located, found_from = _located_plan(plan, accounts, reps, dataset, None,
                                            territory_data)
        done = levels.overlay(located, read_table(overlay_reps), measure, settings,
                              sources=("territories.csv", overlay_reps.name))
        _clear(out, OVERLAY_FILES, inputs)
        write_tables(out, {**done.summary(), "locations": found_from},
                     {"overlay": done.tables["overlay"],
                      "overlay_reps": done.tables["overlay_reps"],
                      "territories": done.territories})
    _print_levels(done, ["overlay_reps"], out)


@app.command()
def compare(run_a: Path, run_b: Path) -> None:
    """Compare two runs' output folders: KPIs side by side and the accounts that move."""
    try:
        table, moves = compare_runs(run_a, run_b)
    except InputError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_INPUT) from exc
    if "kpi" in table.columns:
        # Shares as percentages (as in the workbook), their changes in percentage points;
        # every change signed.
        share = table["kpi"].astype(str).map(kpi_is_share).to_numpy(bool)
        table = table.drop(columns=["kpi"]).astype(dict.fromkeys(("A", "B", "Change"), object))
        for column, unit in (("A", " %"), ("B", " %"), ("Change", " pp")):
            sign = "+" if unit == " pp" else ""
            table.loc[share, column] = [None if pd.isna(v) else f"{100 * v:{sign}.1f}{unit}"
                                        for v in pd.to_numeric(table.loc[share, column])]
        table.loc[~share, "Change"] = [None if pd.isna(v) else _signed(float(v))
                                       for v in pd.to_numeric(table.loc[~share, "Change"])]
    _print_frame(table, title=f"{run_a} vs. {run_b}", max_rows=len(table),
                 right=("A", "B", "Change"))
    console.print(f"{len(moves):,} account(s) have a different territory or rep in the two runs.")
    if len(moves):
        _print_frame(moves, max_rows=20)


# The narrowest a header folds to on a narrow terminal, in characters.
HEADER_FLOORS = (6, 5, 4)


def _print_frame(frame: pd.DataFrame, title: str | None = None, max_rows: int = 40,
                 right: tuple[str, ...] = ()) -> None:
    """A table in the CLI's style (numbers right-aligned, thousands separated), its first
    `max_rows` rows, without the columns that are blank throughout (named below it). Too wide
    for the terminal, its headers fold before its values do; still too wide, it shows the
    first column (the id), the last (the result) and as many others as fit, and says so."""
    blank = [c for c in frame.columns if all(_cell(v) == "" for v in frame[c])]
    frame = frame.drop(columns=blank)
    cells = [[_cell(v) for v in row] for row in frame.head(max_rows).itertuples(index=False)]
    value = [min(max((len(r[i]) for r in cells), default=1), 12)
             for i in range(len(frame.columns))]
    header = [len(str(c)) for c in frame.columns]

    def width(columns: list[int], floor: int | None) -> int:
        return 1 + sum((max(value[i], header[i]) if floor is None else max(value[i], floor))
                       + 3 for i in columns)

    every = list(range(len(frame.columns)))
    shown_columns, floor = every, None
    if width(every, None) > console.width:
        floor = next((f for f in HEADER_FLOORS if width(every, f) <= console.width), None)
        if floor is None:  # keep the id and the result, then the others in order
            floor = HEADER_FLOORS[-1]
            kept = sorted({0, len(every) - 1})
            for i in every[1:-1]:
                if width([*kept, i], floor) <= console.width:
                    kept.append(i)
            shown_columns = sorted(kept)
    table = Table(title=title)
    for i in shown_columns:
        column = frame.columns[i]
        numeric = column in right or (pd.api.types.is_numeric_dtype(frame[column])
                                      and not pd.api.types.is_bool_dtype(frame[column]))
        low, high = (None, None) if floor is None else (value[i], max(value[i], floor))
        table.add_column(str(column), justify="right" if numeric else "left", overflow="fold",
                         min_width=low, max_width=high)
    for row in cells:
        table.add_row(*[row[i] for i in shown_columns])
    console.print(table)
    if len(shown_columns) < len(every):
        console.print(f"({len(shown_columns)} of {len(every)} columns shown; a wider terminal "
                      "shows more)")
    if len(frame) > max_rows:
        console.print(f"… and {len(frame) - max_rows:,} more row(s)")
    if blank:
        console.print(f"(blank, not shown: {', '.join(map(str, blank))})")


def _cell(value: Any) -> str:
    """Large numbers whole and separated (a quota of 1,234,568, not 1.235e+06), small ones
    to four significant digits without an exponent (a change of -0.00002451, not
    -2.451e-05; below 1e-9, 0), missing ones blank."""
    if isinstance(value, bool | np.bool_) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, float | np.floating):
        number = float(value)
        if number != number:
            return ""
        if abs(number) >= 1000:
            return f"{number:,.0f}"
        if abs(number) < 1e-9:
            return "0"
        return np.format_float_positional(number, precision=4, unique=False,
                                          fractional=False, trim="-")
    return str(value)


def _signed(change: float) -> str:
    """A change as `_cell` writes it, with + before an increase."""
    text = _cell(change)
    return f"+{text}" if change > 0 and text != "0" else text


@datasets_app.command("list")
def datasets_list() -> None:
    """List the bundled data sets."""
    table = Table("name", "description", "files")
    for d in bundled.available():
        table.add_row(d.name, d.description, ", ".join(f.name for f in d.files()
                                                       if not f.name.endswith(".py")))
    console.print(table)


@datasets_app.command("export")
def datasets_export(name: str, target: Path) -> None:
    """Copy a bundled data set into a folder."""
    try:
        written = bundled.export(name, target)
    except InputError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_INPUT) from exc
    for f in written:
        console.print(str(f))


def _register_service_commands() -> None:
    """`serve`, `worker` and `keys` come from the service package; its modules are imported
    only when one of those commands runs, so the library stays free of web imports."""
    try:
        from api.commands import register
    except ImportError:  # the optimizer installed without the service
        return
    register(app)


_register_service_commands()

if __name__ == "__main__":
    app()
