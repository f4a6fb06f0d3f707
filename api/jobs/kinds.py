"""What every job kind provides: a cheap check at submission and the run itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from api.jobs.inputs import JobInputs
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


class KindRunner(Protocol):
    default_time_limit: float

    def check(self, inputs: JobInputs) -> None:
        """Raise optimizer.errors.InputError listing every problem; called at submission."""

    def run(self, inputs: JobInputs, controls: SolveControls) -> JobOutcome:
        """Solve; raises the optimizer's errors (InputError, InfeasibleScenarioError, ...)."""
