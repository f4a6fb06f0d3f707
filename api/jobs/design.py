"""The `design` job kind: greenfield territory design (optimizer.design)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from api.jobs.align import PlanRunner
from api.jobs.inputs import JobInputs
from api.jobs.kinds import SolveControls
from optimizer.design import centre_list_issues, unit_centre_issues
from optimizer.design import scenario_issues as design_scenario_issues
from optimizer.design import solve as solve_design
from optimizer.domain import DesignData, DistanceMetric, Mode, Scenario
from optimizer.errors import Issue
from optimizer.geo import centre_unit_points
from optimizer.result import PlanResult
from optimizer.validate import validate_design


class DesignRunner(PlanRunner):
    """Greenfield design: N territories carved from the accounts; reps are not used."""

    mode = Mode.design

    def scenario_issues(self, scenario: Scenario, inputs: JobInputs) -> list[Issue]:
        issues = unit_centre_issues(scenario, inputs.units is not None)
        if isinstance(scenario.centres, list):
            issues += centre_list_issues(scenario.centres,
                                         inputs.accounts.get("account_id", pd.Series()),
                                         inputs.units, scenario.metric)
        return issues + design_scenario_issues(scenario)

    def validate(self, inputs: JobInputs, metric: DistanceMetric) -> DesignData:
        # The scenario as sent: it may not parse.
        points = centre_unit_points(inputs.units, inputs.scenario.get("centres"),
                                    inputs.accounts.get("account_id", pd.Series()))
        return validate_design(inputs.accounts, inputs.distances, metric, unit_points=points)

    def solve(self, data: Any, scenario: Scenario, controls: SolveControls) -> PlanResult:
        return solve_design(data, scenario, on_progress=controls.on_progress,
                            should_stop=controls.should_stop)
