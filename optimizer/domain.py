"""Typed inputs of every model: the scenario (one schema for files and the API) and the data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from optimizer.contiguity import UnitGraph


class Metric(StrEnum):
    """A quantity summed per territory and balanced across territories."""

    workload = "workload"
    potential = "potential"
    accounts = "accounts"


class DistanceMetric(StrEnum):
    haversine = "haversine"
    euclidean = "euclidean"
    matrix = "matrix"


class Mode(StrEnum):
    align = "align"
    design = "design"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


NonNegative = Annotated[float, Field(ge=0)]
# Objective weights are relative: only their ratios change a plan. The cap keeps the
# weighted terms far from float limits.
MAX_WEIGHT = 1e6
Weight = Annotated[float, Field(ge=0, le=MAX_WEIGHT)]


class BalanceRule(_Frozen):
    """Band for one metric: `tolerance` around each territory's fair share and/or absolute
    `min`/`max`. Hard bands are constraints; soft bands cost `weight` × relative deviation."""

    tolerance: NonNegative | None = None
    min: NonNegative | None = None
    max: NonNegative | None = None
    hard: bool = True
    weight: Weight = 1.0

    @model_validator(mode="after")
    def _min_below_max(self) -> BalanceRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    @property
    def active(self) -> bool:
        return self.tolerance is not None or self.min is not None or self.max is not None


class Balance(_Frozen):
    workload: BalanceRule = BalanceRule(tolerance=0.10, hard=True)
    potential: BalanceRule = BalanceRule(hard=False)
    accounts: BalanceRule = BalanceRule(hard=True)

    def rule(self, metric: Metric | str) -> BalanceRule:
        rule: BalanceRule = getattr(self, Metric(metric).value)
        return rule


class ObjectiveWeights(_Frozen):
    """Weights of the normalised objective terms; 0 removes a term."""

    travel: Weight = 1.0
    balance: Weight = 0.0
    disruption: Weight = 0.0


class DisruptionRule(_Frozen):
    measure: Metric = Metric.accounts
    max_share: Annotated[float, Field(ge=0, le=1)] | None = None


class SolverSettings(_Frozen):
    time_limit: Annotated[float, Field(gt=0)] = 60.0
    mip_gap: Annotated[float, Field(ge=0, lt=1)] = 0.005
    threads: Annotated[int, Field(ge=1)] | None = None


def _centres_value(value: object) -> object:
    """`centres` as written: 'accounts', 'units' or a list of ids. Ids written as numbers
    (county FIPS codes, ZIPs, numeric account ids) are taken as text, as accounts.csv reads
    them; anything else gets one message rather than one per branch of the type."""
    if value in ("accounts", "units"):
        return value
    if isinstance(value, list | tuple):
        ids = []
        for i, item in enumerate(value):
            if isinstance(item, int) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str):
                raise PydanticCustomError(
                    "centre_id", "item {i} is not an account or unit id (got {got})",
                    {"i": i + 1, "got": repr(item)})
            ids.append(item)
        return ids
    raise PydanticCustomError("centres", "must be 'accounts', 'units' or a list of account "
                                         "or unit ids (got {got})", {"got": repr(value)})


class Scenario(_Frozen):
    """What to optimise. The same schema is read from YAML/JSON files and API job bodies."""

    mode: Mode = Mode.align
    territories: Annotated[int, Field(ge=1)] | None = None
    metric: DistanceMetric = DistanceMetric.haversine
    circuity: Annotated[float, Field(gt=0)] = 1.0
    objective: ObjectiveWeights = ObjectiveWeights()
    balance: Balance = Balance()
    disruption: DisruptionRule = DisruptionRule()
    centres: Annotated[Literal["accounts", "units"] | list[str],
                       BeforeValidator(_centres_value)] = "accounts"
    keep_hierarchies: bool = True
    eligibility: dict[str, list[str]] = Field(default_factory=dict)
    contiguity: bool = False
    solver: SolverSettings = SolverSettings()

    @model_validator(mode="after")
    def _something_to_minimise(self) -> Scenario:
        w = self.objective
        if w.travel == 0 and w.balance == 0 and w.disruption == 0:
            raise ValueError("objective: at least one of travel, balance, disruption must be > 0")
        return self


@dataclass(frozen=True)
class AlignmentData:
    """Validated inputs of a realignment.

    accounts: one row per account with the columns of the design contract (validated,
        typed; optional columns present and filled: visits=1, potential=0, ids as strings
        or pandas NA).
    reps: one row per rep: rep_id, lat/lon or x/y, capacity, role, max_accounts.
    distances: optional user matrix (from_id, to_id, distance) overriding the metric.
    units: optional adjacency graph of the accounts' units (from unit polygons), which
        `contiguity: true` needs.
    """

    accounts: pd.DataFrame
    reps: pd.DataFrame
    distances: pd.DataFrame | None = None
    units: UnitGraph | None = None


@dataclass(frozen=True)
class DesignData:
    """Validated inputs of a greenfield design: accounts (as for a realignment, without
    reps), an optional user distance matrix from accounts to candidate centres, an optional
    adjacency graph of the accounts' units (for `contiguity: true`) and the units' points
    (unit_id, lat, lon; from their polygons, `geo.unit_points`) of the units `centres` names
    as candidates (every unit for `centres: units`)."""

    accounts: pd.DataFrame
    distances: pd.DataFrame | None = None
    units: UnitGraph | None = None
    unit_points: pd.DataFrame | None = None
