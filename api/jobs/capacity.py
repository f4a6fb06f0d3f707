"""The `capacity` job kind: workload-based sizing (a capacity curve over the number of
territories, optimizer.capacity) and/or a hiring plan (optimizer.hiring)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from api.jobs.inputs import JobInputs
from api.jobs.kinds import JobOutcome, SolveControls, table_result
from optimizer.capacity import (
    SizingSettings,
    capacity_from_reps,
    hiring_input,
    sizing_settings,
    split_plan,
    sweep,
)
from optimizer.domain import DesignData, DistanceMetric
from optimizer.errors import InfeasibleScenarioError, InputError, Issue, SolveCancelledError
from optimizer.hiring import HiringPlanInput
from optimizer.hiring import solve as solve_hiring
from optimizer.validate import validate_design, validate_reps


@dataclass(frozen=True)
class CapacityWork:
    """A validated capacity job: what to size and/or plan."""

    sizing: SizingSettings | None
    accounts: DesignData | None
    capacity_hours: float | None
    hiring: HiringPlanInput | None


def _under(prefix: str, issues: list[Issue]) -> list[Issue]:
    """Issues of a part of the scenario, named from the scenario's root."""
    return [Issue("scenario", i.row, f"{prefix}.{i.field}" if i.field else prefix, i.message)
            for i in issues]


def _metric_asked(sizing: dict[str, Any]) -> DistanceMetric:
    """The metric a broken sizing section asks for, so the accounts are still checked for
    the right columns."""
    scenario = sizing.get("scenario")
    asked = scenario.get("metric") if isinstance(scenario, dict) else None
    try:
        return DistanceMetric(asked or DistanceMetric.haversine)
    except ValueError:
        return DistanceMetric.haversine


class CapacityRunner:
    """`scenario` is the capacity plan (a `sizing` section and/or a hiring plan, as in a
    `territory capacity --plan` file); `data` has the accounts (sizing) and reps (roster)."""

    default_time_limit = 60.0

    def time_budget(self, scenario: dict[str, Any]) -> float:
        """Seconds the sweep may take: the per-design limit times the designs."""
        try:
            sizing = split_plan(scenario, "scenario").sizing
            settings = SizingSettings.model_validate(sizing) if sizing is not None else None
        except (InputError, ValueError):
            return 0.0  # the checks name the problem
        return settings.time_limit * len(settings.counts) if settings else 0.0

    def prepare(self, inputs: JobInputs) -> CapacityWork:
        issues: list[Issue] = []
        parts = split_plan(inputs.scenario, "scenario")
        if parts.sizing is None and not parts.hiring:
            raise InputError([Issue("scenario", None, None,
                                    "nothing to plan: give `sizing` and/or a hiring plan "
                                    "(months, roles, ...)")])
        roster = None
        if len(inputs.reps):
            roster, rep_issues = validate_reps(inputs.reps, DistanceMetric.matrix,
                                               needs_location=False)
            issues += rep_issues
        sizing = data = capacity = hiring = None
        if parts.sizing is not None:
            try:
                sizing = sizing_settings(parts.sizing, "scenario")
            except InputError as exc:
                issues += _under("sizing", exc.issues)
            metric = sizing.design_scenario(sizing.min_territories).metric if sizing \
                else _metric_asked(parts.sizing)
            try:
                data = validate_design(inputs.accounts, inputs.distances, metric)
            except InputError as exc:
                issues += exc.issues
            if sizing is not None and sizing.capacity_hours is None:
                if roster is None or rep_issues:
                    issues.append(Issue("scenario", None, "sizing.capacity_hours",
                                        "give capacity_hours or reps with a capacity"))
                else:
                    capacity = capacity_from_reps(roster)
        if parts.hiring:
            try:
                hiring = hiring_input(parts.hiring, roster if not issues else None,
                                      parts.start or date.today().replace(day=1), "scenario")
            except InputError as exc:
                issues += exc.issues
        if issues:
            raise InputError(issues)
        return CapacityWork(sizing, data, capacity, hiring)

    def check(self, inputs: JobInputs) -> None:
        self.prepare(inputs)

    def run(self, inputs: JobInputs, controls: SolveControls) -> JobOutcome:
        work = self.prepare(inputs)
        summary: dict[str, Any] = {}
        tables: dict[str, pd.DataFrame] = {}
        main = "capacity_curve"
        if work.hiring is not None:
            hired = solve_hiring(work.hiring)
            summary = {"status": hired.status.value, "objective": hired.objective,
                       "bound": hired.bound, "gap": hired.gap,
                       "seconds": round(hired.seconds, 3),
                       "termination": hired.termination.value,
                       "total_cost": hired.total_cost, "total_revenue": hired.total_revenue,
                       "hires": {role: int(h.sum()) for role, h in hired.hires.items()}}
            tables |= {"hiring_plan": hired.table, "hiring_months": hired.months,
                       "hiring_periods": hired.periods}
            main = "hiring_plan"
        cancelled = False
        if work.sizing is not None and work.accounts is not None:
            sized = sweep(work.accounts, work.sizing, capacity_hours=work.capacity_hours,
                          on_progress=controls.on_progress, should_stop=controls.should_stop)
            if sized.cancelled and sized.curve["utilisation_max"].isna().all():
                raise SolveCancelledError("stopped on request before any design was finished")
            if sized.recommended is None and not sized.cancelled:
                reasons = [*sized.notes, *(f"N = {r['territories']}: {r['reason']}"
                                           for r in sized.curve.to_dict("records")
                                           if isinstance(r["reason"], str))]
                raise InfeasibleScenarioError(reasons)
            cancelled = sized.cancelled
            summary = {**summary, "sizing": sized.summary()} if summary else sized.summary()
            tables |= {"capacity_curve": sized.curve,
                       "capacity_territories": sized.territories}
            main = "capacity_curve"
        result = table_result(summary, tables, main)
        return JobOutcome(result=result, status=str(summary["status"]), cancelled=cancelled)
