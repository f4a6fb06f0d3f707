"""The `align` job kind: realignment of accounts among existing reps (optimizer.alignment)."""

from __future__ import annotations

import base64
import json
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from api.jobs.inputs import JobInputs
from api.jobs.kinds import JobOutcome, SolveControls
from optimizer.alignment import solve as solve_alignment
from optimizer.contiguity import unit_graph
from optimizer.domain import AlignmentData, DistanceMetric, Mode, Scenario
from optimizer.errors import InputError, Issue
from optimizer.io import json_safe, scenario_from_dict
from optimizer.outputs import OutputWarning, write_geo_outputs
from optimizer.problem import eligibility_issues
from optimizer.result import PlanResult
from optimizer.solve import Termination
from optimizer.validate import validate_alignment


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    # to_json maps NaN/NA to null and numpy types to JSON numbers in one pass.
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", date_format="iso"))
    return rows


def plan_result(result: PlanResult, accounts: pd.DataFrame, reps: pd.DataFrame | None,
                units: gpd.GeoDataFrame | None = None) -> dict[str, Any]:
    """A job's stored result: summary, assignments, territories, and the files the engine
    produces (territories.geojson as JSON, workbook.xlsx as base64), as the CLI writes them;
    with unit polygons the territories are dissolved units."""
    summary = result.summary()
    files: dict[str, Any] = {}
    territories = result.territories
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OutputWarning)
        geo = write_geo_outputs(folder, accounts, reps, result.assignments, territories,
                                result.kpis, summary, units)
        out = Path(folder)
        if (out / "territories.geojson").exists():
            files["territories.geojson"] = json.loads((out / "territories.geojson").read_text())
        files["workbook.xlsx"] = base64.b64encode((out / "workbook.xlsx").read_bytes()).decode()
    summary["kpis"] = geo.kpis
    summary["warnings"] = [*summary["warnings"],
                           *(str(w.message) for w in caught if w.category is OutputWarning)]
    return {"summary": json_safe(summary), "assignments": records(result.assignments),
            "territories": records(geo.territories), "files": files}


def _metric_asked(scenario: dict[str, Any]) -> DistanceMetric | None:
    try:
        return DistanceMetric(scenario.get("metric", DistanceMetric.haversine))
    except ValueError:
        return None


class PlanRunner:
    """A job kind that solves a territory plan: validates scenario and data together at
    submission (every problem in one InputError) and solves in the worker. Subclasses say
    which mode, which data and which model."""

    mode: Mode
    default_time_limit = Scenario().solver.time_limit

    def scenario_issues(self, scenario: Scenario, inputs: JobInputs  # noqa: ARG002 - a hook
                        ) -> list[Issue]:
        """Problems of the scenario that only this kind of job has."""
        return []

    def validate(self, inputs: JobInputs, metric: DistanceMetric) -> Any:
        raise NotImplementedError

    def solve(self, data: Any, scenario: Scenario, controls: SolveControls) -> PlanResult:
        raise NotImplementedError

    def reps(self, data: Any) -> pd.DataFrame | None:  # noqa: ARG002 - a hook
        return None

    def prepare(self, inputs: JobInputs) -> tuple[Any, Scenario]:
        issues: list[Issue] = []
        try:
            scenario = scenario_from_dict(inputs.scenario)
        except InputError as exc:
            issues += exc.issues
            scenario = None
        if scenario is not None and scenario.mode is not self.mode:
            issues.append(Issue("scenario", None, "mode",
                                f"kind {self.mode.value!r} needs mode {self.mode.value!r} "
                                f"(got {scenario.mode.value!r})"))
        if scenario is not None:  # a default in its place would draw false issues
            issues += self.scenario_issues(scenario, inputs)
        scenario = scenario or Scenario(mode=self.mode)
        # Contiguity's graph, the CLI's way (None unless asked; asked without polygons: an issue).
        try:
            graph = unit_graph(scenario.contiguity, inputs.units)
        except InputError as exc:
            issues += exc.issues
        # With a broken scenario the data are still checked, for the metric it asks for.
        metric = _metric_asked(inputs.scenario) or scenario.metric
        try:
            data = self.validate(inputs, metric)
        except InputError as exc:
            issues += exc.issues
        else:
            issues += self.data_issues(data, scenario)
        if issues:
            raise InputError(issues)
        return replace(data, units=graph), scenario

    def data_issues(self, data: Any, scenario: Scenario  # noqa: ARG002 - a hook
                    ) -> list[Issue]:
        """Contradictions between valid data and a valid scenario, found at submission."""
        return []

    def check(self, inputs: JobInputs) -> None:
        self.prepare(inputs)

    def run(self, inputs: JobInputs, controls: SolveControls) -> JobOutcome:
        data, scenario = self.prepare(inputs)
        result = self.solve(data, scenario, controls)
        plan = plan_result(result, data.accounts, self.reps(data), inputs.units)
        cancelled = result.report.termination is Termination.cancelled
        return JobOutcome(result=plan, status=str(plan["summary"]["status"]),
                          cancelled=cancelled)


class AlignRunner(PlanRunner):
    """Realignment among the given reps."""

    mode = Mode.align

    def validate(self, inputs: JobInputs, metric: DistanceMetric) -> AlignmentData:
        return validate_alignment(inputs.accounts, inputs.reps, inputs.distances, metric)

    def solve(self, data: Any, scenario: Scenario, controls: SolveControls) -> PlanResult:
        return solve_alignment(data, scenario, on_progress=controls.on_progress,
                               should_stop=controls.should_stop)

    def data_issues(self, data: Any, scenario: Scenario) -> list[Issue]:
        return eligibility_issues(data.accounts, data.reps, scenario.eligibility)

    def reps(self, data: Any) -> pd.DataFrame | None:
        reps: pd.DataFrame = data.reps
        return reps
