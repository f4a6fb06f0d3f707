"""The `design` job kind: greenfield territory design (optimizer.design)."""

from __future__ import annotations

from api.jobs.align import _metric_asked, plan_result
from api.jobs.inputs import JobInputs
from api.jobs.kinds import JobOutcome, SolveControls
from optimizer.design import solve as solve_design
from optimizer.domain import DesignData, Mode, Scenario
from optimizer.errors import InputError, Issue
from optimizer.io import scenario_from_dict
from optimizer.solve import Termination
from optimizer.validate import validate_design


class DesignRunner:
    """Validates at submission and solves in the worker; reps are not used."""

    default_time_limit = Scenario().solver.time_limit

    def prepare(self, inputs: JobInputs) -> tuple[DesignData, Scenario]:
        """Typed scenario and validated data; every problem of both in one InputError."""
        issues: list[Issue] = []
        try:
            scenario = scenario_from_dict(inputs.scenario)
        except InputError as exc:
            issues += exc.issues
            scenario = Scenario(mode=Mode.design)
        if scenario.mode is not Mode.design:
            issues.append(Issue("scenario", None, "mode",
                                f"kind 'design' needs mode 'design' (got {scenario.mode.value!r})"))
        if scenario.territories is None:
            issues.append(Issue("scenario", None, "territories",
                                "design needs the number of territories"))
        metric = _metric_asked(inputs.scenario) or scenario.metric
        try:
            data = validate_design(inputs.accounts, inputs.distances, metric)
        except InputError as exc:
            issues += exc.issues
        if issues:
            raise InputError(issues)
        return data, scenario

    def check(self, inputs: JobInputs) -> None:
        self.prepare(inputs)

    def run(self, inputs: JobInputs, controls: SolveControls) -> JobOutcome:
        data, scenario = self.prepare(inputs)
        result = solve_design(data, scenario, on_progress=controls.on_progress,
                              should_stop=controls.should_stop)
        plan = plan_result(result, data.accounts, None)
        summary = plan["summary"]
        cancelled = result.report.termination is Termination.cancelled
        return JobOutcome(result=plan, status=str(summary["status"]), cancelled=cancelled)
