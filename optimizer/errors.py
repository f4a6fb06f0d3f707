"""The optimizer's error types. The CLI and the API map them to exit codes and HTTP answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def listed(items: Sequence[object], limit: int = 10, what: str = "") -> str:
    """'a, b, c and 5 more': the first `limit` of `items` for a message (a file can hold
    thousands); `what` names the rest ('and 5 more hierarchies')."""
    shown = ", ".join(map(str, items[:limit]))
    rest = len(items) - limit
    return shown + (f" and {rest:,} more{' ' + what if what else ''}" if rest > 0 else "")


def cell(value: Any) -> str:
    """A cell's value as a message shows it: text quoted ('abc'), numbers plain (-1.0),
    never numpy's repr (np.float64(-1.0)), which a planner need not read."""
    if isinstance(value, str):
        shown = repr(str(value))
    else:
        item = getattr(value, "item", None)  # numpy scalars: the Python value
        if callable(item) and getattr(value, "ndim", 0) == 0:  # not a list cell
            value = item()
        shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "…"  # 1 and 400 zeros


class OptimizerError(Exception):
    """Base class of every error the optimizer raises on purpose."""


@dataclass(frozen=True)
class Issue:
    """One problem in the input: file, data row (1-based, header not counted) and column."""

    source: str
    row: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.source
        if self.row is not None:
            where += f" row {self.row}"
        if self.field is not None:
            where += f", column {self.field}" if self.row is not None else f" column {self.field}"
        return f"{where}: {self.message}"


class InputError(OptimizerError):
    """Bad input, reported all at once before anything is solved."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        shown = "\n".join(f"  - {i}" for i in issues[:50])
        more = f"\n  ... and {len(issues) - 50} more" if len(issues) > 50 else ""
        super().__init__(f"{len(issues)} problem(s) in the input:\n{shown}{more}")


class InfeasibleScenarioError(OptimizerError):
    """The scenario cannot be met; `reasons` say why in business terms."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("The scenario is infeasible:\n" + "\n".join(f"  - {r}" for r in reasons))


class SolverError(OptimizerError):
    """HiGHS failed or returned something we cannot use."""


class SolveCancelledError(OptimizerError):
    """The caller asked the solve to stop and no usable plan existed yet."""
