"""The `design` job kind: greenfield territory design (optimizer.design)."""

from __future__ import annotations

from typing import Any

from api.jobs.align import PlanRunner
from api.jobs.inputs import JobInputs
from api.jobs.kinds import SolveControls
from optimizer.design import solve as solve_design
from optimizer.design import unit_centre_issues
from optimizer.domain import DesignData, DistanceMetric, Mode, Scenario
from optimizer.errors import Issue
from optimizer.geo import unit_points
from optimizer.result import PlanResult
from optimizer.validate import validate_design


class DesignRunner(PlanRunner):
    """Greenfield design: N territories carved from the accounts; reps are not used."""

    mode = Mode.design

    def scenario_issues(self, scenario: Scenario, inputs: JobInputs) -> list[Issue]:
        issues = unit_centre_issues(scenario, inputs.units is not None)
        if scenario.territories is None:
            issues.append(Issue("scenario", None, "territories",
                                "design needs the number of territories"))
        return issues

    def validate(self, inputs: JobInputs, metric: DistanceMetric) -> DesignData:
        # Unit points only for `centres: units` (the scenario as sent: it may not parse).
        wanted = inputs.units is not None and inputs.scenario.get("centres") == "units"
        points = unit_points(inputs.units) if wanted else None
        return validate_design(inputs.accounts, inputs.distances, metric, unit_points=points)

    def solve(self, data: Any, scenario: Scenario, controls: SolveControls) -> PlanResult:
        return solve_design(data, scenario, on_progress=controls.on_progress,
                            should_stop=controls.should_stop)
