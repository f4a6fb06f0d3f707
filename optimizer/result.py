"""What every territory model returns: the plan, its territories, KPIs and a run report.

One shape for realignment and design, so the CLI, the API and the maps treat them alike and
summary.json always starts with status, objective, bound, gap and seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from optimizer.solve import RunStatus, Termination


@dataclass(frozen=True)
class RunReport:
    """Timing and quality of one run. `pricing` counts the pairs the models held
    (allowed, in the LP, in the final MIP, ...)."""

    status: RunStatus
    termination: Termination
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float
    seconds_build: float
    seconds_solve: float
    pricing: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanResult:
    """A finished plan: assignments and territories tables (the CSV columns of the design
    contract), objective terms in the data's units, KPIs ("after", and "before" for a
    realignment), the report and warnings."""

    report: RunReport
    assignments: pd.DataFrame
    territories: pd.DataFrame
    terms: dict[str, float]
    kpis: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """summary.json: status, objective, bound, gap, seconds first, then the rest."""
        r = self.report
        return {
            "status": r.status.value,
            "objective": r.objective,
            "bound": r.bound,
            "gap": r.gap,
            "seconds": round(r.seconds, 3),
            "termination": r.termination.value,
            "objective_terms": self.terms,
            "kpis": self.kpis,
            "timing": {"seconds_build": round(r.seconds_build, 3),
                       "seconds_solve": round(r.seconds_solve, 3)},
            "pricing": r.pricing,
            "warnings": self.warnings,
        }
