"""What every job kind provides: a cheap check at submission and the run itself."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from api.jobs.inputs import JobInputs
from optimizer.io import json_safe
from optimizer.solve import Progress


@dataclass(frozen=True)
class SolveControls:
    """Hooks into a running solve: progress out, a stop request in."""

    on_progress: Callable[[Progress], None]
    should_stop: Callable[[], bool]


@dataclass(frozen=True)
class JobOutcome:
    """A run that produced a plan. `cancelled`: stopped on request, the plan is the incumbent."""

    result: dict[str, Any]
    status: str
    cancelled: bool = False


def table_result(summary: dict[str, Any], tables: dict[str, pd.DataFrame],
                 main: str) -> dict[str, Any]:
    """The stored result of a kind whose output is tables (capacity, quota): the summary,
    each table as records (to_json: NaN → null, numpy → JSON numbers) and which table
    /result.csv serves. No files: no GeoJSON (no geography) and no workbook yet."""
    records = {name: json.loads(frame.to_json(orient="records", date_format="iso"))
               for name, frame in tables.items()}
    return {"summary": json_safe(summary), "tables": records, "main_table": main, "files": {}}


class KindRunner(Protocol):
    default_time_limit: float

    def check(self, inputs: JobInputs) -> None:
        """Raise optimizer.errors.InputError listing every problem; called at submission."""

    def run(self, inputs: JobInputs, controls: SolveControls) -> JobOutcome:
        """Solve; raises the optimizer's errors (InputError, InfeasibleScenarioError, ...)."""
