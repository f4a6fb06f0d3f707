"""`territory` command line. The only place that turns optimizer errors into exit codes:
0 done, 1 solver error, 2 bad input, 3 infeasible scenario (explained), 4 cancelled."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import geopandas as gpd
import pandas as pd
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from optimizer import datasets as bundled
from optimizer.alignment import AlignmentResult
from optimizer.alignment import solve as solve_alignment
from optimizer.compare import compare_runs
from optimizer.design import DesignResult
from optimizer.design import solve as solve_design
from optimizer.domain import DistanceMetric, Scenario
from optimizer.errors import (
    InfeasibleScenarioError,
    InputError,
    Issue,
    OptimizerError,
    SolveCancelledError,
    SolverError,
)
from optimizer.geo import load_units
from optimizer.hiring import HiringPlanInput, roster_from_reps, write_hiring_plan_png
from optimizer.hiring import solve as solve_hiring
from optimizer.io import (
    model_from_mapping,
    read_alignment,
    read_design,
    read_mapping,
    read_scenario,
    read_table,
    write_json,
    write_tables,
)
from optimizer.outputs import OutputWarning, write_geo_outputs
from optimizer.quota import TopDownSettings, fair_quotas
from optimizer.quota import top_down as deploy_top_down
from optimizer.solve import Progress
from optimizer.validate import validate_reps

app = typer.Typer(help="Sales territory realignment and design with provable optimality gaps.",
                  no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="Bundled data sets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
console = Console()
err_console = Console(stderr=True)

EXIT_SOLVER, EXIT_INPUT, EXIT_INFEASIBLE, EXIT_CANCELLED = 1, 2, 3, 4


def _progress_line(p: Progress) -> str:
    parts = [f"[bold]{p.phase:<7}[/]", f"{p.elapsed:6.1f} s"]
    if p.incumbent is not None:
        parts.append(f"incumbent {p.incumbent:.6g}")
    if p.bound is not None:
        parts.append(f"bound {p.bound:.6g}")
    if p.gap is not None:
        parts.append(f"gap {p.gap:.3%}")
    if p.message:
        parts.append(f"[dim]{p.message}[/]")
    return "  ".join(parts)


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
    return rows


def _print_result(result: AlignmentResult | DesignResult, out: Path, title: str) -> None:
    r = result.report
    table = Table(title=title)
    table.add_column("KPI")
    after = _kpi_rows(result.kpis["after"])
    before = _kpi_rows(result.kpis["before"]) if "before" in result.kpis else None
    if before:
        table.add_column("Before", justify="right")
    table.add_column("After" if before else "Plan", justify="right")
    for i, (name, value) in enumerate(after):
        table.add_row(name, *([before[i][1]] if before else []), value)
    console.print(table)
    gap = "n/a" if r.gap is None else f"{r.gap:.3%}"
    bound = "none" if r.bound is None else f"{r.bound:.6g}"
    console.print(
        f"[bold]{r.status.value}[/]: objective {r.objective:.6g}, bound {bound}, "
        f"gap {gap} in {r.seconds:.1f} s (model build {r.seconds_build:.1f} s, "
        f"HiGHS {r.seconds_solve:.1f} s); {r.pricing['pairs_allowed']:,} pairs in scope, "
        f"{r.pricing['pairs_in_mip']:,} in the final MIP")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    console.print(f"Outputs written to {out}/")


def _fail(out: Path, status: str, message: str, reasons: list[str] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", {"status": status, "objective": None, "bound": None,
                                      "gap": None, "seconds": None, "message": message,
                                      "reasons": reasons or []})


def _with_time_limit(sc: Scenario, time_limit: float | None) -> Scenario:
    if time_limit is None:
        return sc
    return sc.model_copy(update={"solver": sc.solver.model_copy(
        update={"time_limit": time_limit})})


@dataclass
class _Run:
    """A finished model run and the inputs its maps are drawn from."""

    result: AlignmentResult | DesignResult
    accounts: pd.DataFrame
    reps: pd.DataFrame | None
    units: gpd.GeoDataFrame | None


def _write_outputs(out: Path, run: _Run) -> None:
    """CSV tables, summary.json, and the geography: territories.geojson, map.png, map.html,
    workbook.xlsx (their KPIs — compactness, contiguity — go into summary.json too)."""
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


@contextmanager
def _exit_codes(out: Path, infeasible: str = "the scenario is infeasible") -> Iterator[None]:
    """Map every optimizer error to its exit code and a summary.json that says why (the only
    place that does): bad input 2, infeasible 3, cancelled 4, solver error 1."""
    try:
        yield
    except InputError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_INPUT) from exc
    except InfeasibleScenarioError as exc:
        _fail(out, "infeasible", infeasible, exc.reasons)
        err_console.print(f"[red]infeasible:[/] {exc}")
        raise typer.Exit(EXIT_INFEASIBLE) from exc
    except SolveCancelledError as exc:
        _fail(out, "error", str(exc))
        raise typer.Exit(EXIT_CANCELLED) from exc
    except (SolverError, OptimizerError) as exc:
        _fail(out, "error", str(exc))
        err_console.print(f"[red]solver error:[/] {exc}")
        raise typer.Exit(EXIT_SOLVER) from exc


def _execute(out: Path, quiet: bool, title: str,
             run: Callable[[Callable[[Progress], None] | None], _Run]) -> None:
    """Run a model with progress on the terminal and write its outputs."""
    with _exit_codes(out):
        if quiet:
            done = run(None)
        else:
            with Live(console=console, refresh_per_second=4, transient=True) as live:
                done = run(lambda p: live.update(_progress_line(p)))
        _write_outputs(out, done)
        _print_result(done.result, out, title)


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
        sc = _with_time_limit(read_scenario(sc_path), time_limit)
        data = read_alignment(acc, rep, sc, dist)
        polygons = load_units(units) if units is not None else None
        return _Run(solve_alignment(data, sc, on_progress=progress), data.accounts, data.reps,
                    polygons)

    _execute(out, quiet, "Realignment: before and after", run)


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
        sc = _with_time_limit(read_scenario(scenario), time_limit)
        update: dict[str, Any] = {"mode": "design"}
        if territories is not None:
            update["territories"] = territories
        sc = Scenario.model_validate({**sc.model_dump(), **update})
        data = read_design(acc, sc, dist)
        if units is None and dataset is not None:
            bundled_units = bundled.get_dataset_or_raise(dataset).file("units.geojson")
            polygons = load_units(bundled_units) if bundled_units is not None else None
        else:
            polygons = load_units(units) if units is not None else None
        return _Run(solve_design(data, sc, on_progress=progress), data.accounts, None, polygons)

    _execute(out, quiet, "Territory design", run)


@app.command()
def capacity(
    plan: Annotated[Path, typer.Option(help="Hiring plan YAML/JSON: months, roles, ratios, "
                                            "goal, budget, objective (see optimizer/hiring.py).")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    reps: Annotated[Path | None, typer.Option(
        help="reps.csv: the starting roster by role; start_date gives each rep's ramp.")] = None,
    start: Annotated[str | None, typer.Option(
        help="First month of the plan (YYYY-MM-DD), for reps' start dates.")] = None,
) -> None:
    """Plan hiring month by month: headcount, ramp, attrition, cost and revenue vs. goal."""
    with _exit_codes(out, "the hiring goal cannot be met"):
        body = read_mapping(plan)
        first = date.fromisoformat(start) if start else date.today().replace(day=1)
        if reps is not None:
            roster_frame, issues = validate_reps(read_table(reps), DistanceMetric.matrix,
                                                 source=reps.name, needs_location=False)
            if issues:
                raise InputError(issues)
            roster = roster_from_reps(roster_frame, first)
            body["roles"] = [{**role, "initial": roster.get(str(role.get("name")), [])}
                             if isinstance(role, dict) else role
                             for role in body.get("roles", [])]
        inp = model_from_mapping(HiringPlanInput, body, plan.name)
        result = solve_hiring(inp)
    summary = {"status": result.status.value, "objective": result.objective,
               "bound": result.bound, "gap": result.gap, "seconds": round(result.seconds, 3),
               "termination": result.termination.value, "total_cost": result.total_cost,
               "total_revenue": result.total_revenue,
               "hires": {role: int(h.sum()) for role, h in result.hires.items()}}
    write_tables(out, summary, {"hiring_plan": result.table, "hiring_months": result.months,
                                "hiring_periods": result.periods})
    write_hiring_plan_png(out / "hiring_plan.png", result)
    console.print(result.periods.round(0).to_string(index=False))
    console.print(f"[bold]{result.status.value}[/]: cost {result.total_cost:,.0f}, revenue "
                  f"{result.total_revenue:,.0f}, hires "
                  + ", ".join(f"{r} {int(h.sum())}" for r, h in result.hires.items()))
    console.print(f"Outputs written to {out}/")


@app.command()
def quota(
    assignments: Annotated[Path, typer.Option(
        help="A run's output folder (its territories.csv) or a territories CSV with "
             "territory_id, potential and optionally history, rep_id, start_month.")],
    goal: Annotated[float, typer.Option(help="The company goal to deploy.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    method: Annotated[str, typer.Option(help="top-down | fair")] = "top-down",
    potential_weight: Annotated[float, typer.Option(
        help="Weight of the potential share (history gets the rest).")] = 0.5,
    over_assignment: Annotated[float, typer.Option(help="e.g. 1.1 deploys 110 % of the goal.")]
    = 1.0,
    unit: Annotated[float, typer.Option(help="Round quotas to this currency unit.")] = 1.0,
    band: Annotated[float, typer.Option(
        help="fair: quota/potential within ± this share of the company ratio.")] = 0.1,
) -> None:
    """Deploy a company goal to territories; quotas.csv explains every number."""
    with _exit_codes(out, "the quotas cannot meet the goal within the band"):
        source = assignments / "territories.csv" if assignments.is_dir() else assignments
        table = read_table(source)
        missing = [c for c in ("territory_id", "potential") if c not in table.columns]
        if missing:
            raise InputError([Issue(source.name, None, c, "required column is missing")
                              for c in missing])
        for column in ("potential", "history", "start_month"):
            if column in table.columns:
                table[column] = pd.to_numeric(table[column], errors="coerce")
        notes = []
        if "history" not in table.columns:
            table["history"] = table["potential"]
            notes.append("no history column: shares come from potential alone")
        if method == "top-down":
            try:
                settings = TopDownSettings(potential_weight=potential_weight,
                                           over_assignment=over_assignment, unit=unit)
            except ValueError as exc:
                raise InputError([Issue("command line", None, None, str(exc))]) from exc
            quotas = deploy_top_down(table, goal, settings)
        elif method == "fair":
            quotas = fair_quotas(table, goal, band=(1 - band, 1 + band),
                                 over_assignment=over_assignment, unit=unit)
        else:
            raise InputError([Issue("command line", None, "--method",
                                    f"unknown method {method!r} (top-down or fair; bottom-up "
                                    "and derived quotas are in optimizer.quota)")])
    summary = {"status": "optimal", "method": method, "goal": goal,
               "deployed": float(quotas["quota"].sum()), "territories": len(quotas),
               "warnings": notes}
    write_tables(out, summary, {"quotas": quotas})
    console.print(quotas.to_string(index=False, max_rows=30))
    for note in notes:
        console.print(f"[yellow]warning:[/] {note}")
    console.print(f"Deployed {quotas['quota'].sum():,.0f} over {len(quotas)} territories; "
                  f"outputs written to {out}/")


@app.command()
def compare(run_a: Path, run_b: Path) -> None:
    """Compare two runs' output folders: KPIs side by side and the accounts that move."""
    try:
        table, moves = compare_runs(run_a, run_b)
    except InputError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_INPUT) from exc
    table = table.drop(columns=[c for c in ("kpi",) if c in table.columns])
    shown = Table(title=f"{run_a} vs. {run_b}")
    for column in table.columns:
        shown.add_column(str(column), justify="left" if column == table.columns[0] else "right")
    for row in table.itertuples(index=False):
        shown.add_row(*[_cell(v) for v in row])
    console.print(shown)
    console.print(f"{len(moves):,} account(s) have a different territory or rep in the two runs.")
    if len(moves):
        console.print(moves.head(20).to_string(index=False))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:,.4g}"
    return str(value)


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
