"""The `design` job kind: greenfield territory design (optimizer.design)."""

from __future__ import annotations

from typing import Any

from api.jobs.align import PlanRunner
from api.jobs.inputs import JobInputs
from api.jobs.kinds import SolveControls
from optimizer.design import solve as solve_design
from optimizer.domain import DesignData, DistanceMetric, Mode, Scenario
from optimizer.errors import Issue
from optimizer.result import PlanResult
from optimizer.validate import validate_design


class DesignRunner(PlanRunner):
    """Greenfield design: N territories carved from the accounts; reps are not used."""

    mode = Mode.design

    def scenario_issues(self, scenario: Scenario) -> list[Issue]:
        if scenario.territories is None:
            return [Issue("scenario", None, "territories",
                          "design needs the number of territories")]
        return []

    def validate(self, inputs: JobInputs, metric: DistanceMetric) -> DesignData:
        return validate_design(inputs.accounts, inputs.distances, metric)

    def solve(self, data: Any, scenario: Scenario, controls: SolveControls) -> PlanResult:
        return solve_design(data, scenario, on_progress=controls.on_progress,
                            should_stop=controls.should_stop)
