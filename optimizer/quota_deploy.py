"""One entry point for quota deployment by method, shared by `territory quota` and the API's
`quota` job: typed settings, the input tables by name, the output tables by name.

Methods (the formulas are in optimizer.quota):
- top-down: the goal split over `territories` (territory_id, potential, optional history,
  rep_id, start_month) by blended potential/history share, ramped and rounded exactly;
- fair: the fairness LP over the same table;
- bottom-up: `submissions` (territory_id, rep_id or id; submitted; optional manager(_id),
  region) rolled up to managers, regions and the company, with the gap to the goal and, with
  close_gap, every submission scaled so the quotas meet the goal;
- derived: manager quotas (factor × the team's quotas, by `manager_id` of `territories`) and
  overlay quotas (factor × the quotas of the territories in `coverage`). The territory quotas
  are the table's `quota` column when it has one, else deployed top-down from the goal first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from optimizer.errors import InputError, Issue, listed
from optimizer.quota import (
    TopDownSettings,
    bottom_up,
    derived_manager,
    fair_quotas,
    overlay,
    top_down,
)
from optimizer.validate import TableChecker, id_text

Method = Literal["top-down", "fair", "bottom-up", "derived"]
METHODS: tuple[str, ...] = ("top-down", "fair", "bottom-up", "derived")


class QuotaSettings(BaseModel):
    """How to deploy quotas (the API's quota job scenario; the CLI's options)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method = "top-down"
    goal: Annotated[float, Field(ge=0)] | None = None
    potential_weight: Annotated[float, Field(ge=0, le=1)] = 0.5
    over_assignment: Annotated[float, Field(gt=0)] = 1.0
    ramp: list[Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=list)
    shortfall: Literal["company", "spread"] = "company"
    unit: Annotated[float, Field(gt=0)] = 1.0
    band: Annotated[float, Field(ge=0, le=1)] = 0.1
    close_gap: bool = False
    manager_factor: Annotated[float, Field(gt=0)] = 1.0
    overlay_factor: Annotated[float, Field(gt=0)] = 1.0

    @model_validator(mode="after")
    def _goal_when_needed(self) -> QuotaSettings:
        if self.method in ("top-down", "fair") and not self.goal:
            raise ValueError(f"method {self.method} needs a goal above 0")
        if self.close_gap and self.goal is None:
            raise ValueError("close_gap needs a goal")
        return self

    def top_down_settings(self) -> TopDownSettings:
        return TopDownSettings(potential_weight=self.potential_weight,
                               over_assignment=self.over_assignment, ramp=tuple(self.ramp),
                               shortfall=self.shortfall, unit=self.unit)


@dataclass(frozen=True)
class QuotaOutcome:
    """Output tables by name (`main` is the one a single CSV download gives) and summary."""

    tables: dict[str, pd.DataFrame]
    main: str
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


# The number columns of the quota tables: their range and the value of a blank cell (none:
# a blank is bad input). A start month blank means a rep in seat all year.
NUMBER_RULES: dict[str, tuple[float, float | None, float | None]] = {  # low, high, blank
    "potential": (0, None, None), "history": (0, None, None), "submitted": (0, None, None),
    "quota": (0, None, None), "start_month": (1, 12, math.nan), "share": (0, 1, 1.0)}


def _numeric(table: pd.DataFrame, source: str, columns: tuple[str, ...],
             key: str | None = None) -> pd.DataFrame:
    """The table with its number `columns` parsed, and its `key` unique. Every problem names
    the file, the row and the cell as written, all at once (a start month 'Oct' was read as
    a rep in seat all year)."""
    check = TableChecker(source)
    table = table.copy()
    for column in columns:
        if column in table.columns:
            raw = table[column]
            low, high, blank = NUMBER_RULES[column]
            table[column] = value = check.number(table, column, default=blank, low=low,
                                                 high=high)
            if column == "start_month":
                check.rows(np.isfinite(value) & (value != np.round(value)), column,
                           "must be a whole month from 1 to 12", raw)
    if key is not None and key in table.columns:
        check.unique_ids(id_text(table[key]), key)
    if check.issues:
        raise InputError(check.issues)
    return table


def _twice_covered(coverage: pd.DataFrame, source: str) -> list[Issue]:
    """An overlay covers a territory once: a second row would count its quota twice."""
    if not {"overlay_id", "territory_id"} <= set(coverage.columns):
        return []  # the missing column is named by `quota.overlay`
    pairs = id_text(coverage["overlay_id"]) + "\0" + id_text(coverage["territory_id"])
    first: dict[str, int] = {}
    issues = []
    for row, pair in enumerate(pairs, start=1):
        if pd.isna(pair):
            continue
        if pair in first:
            overlay_id, territory = pair.split("\0")
            issues.append(Issue(source, row, "territory_id", (
                f"overlay {overlay_id} covers territory {territory} twice (first on row "
                f"{first[pair]}): give one row with its share")))
        first.setdefault(pair, row)
    return issues


def _require(table: pd.DataFrame | None, name: str, source: str,
             columns: tuple[str, ...], method: str) -> pd.DataFrame:
    if table is None:
        raise InputError([Issue(source, None, None, f"method {method} needs the {name} table")])
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError([Issue(source, None, c, "required column is missing") for c in missing])
    return table


NO_HISTORY = "no history column: shares come from potential alone"


def _territories(table: pd.DataFrame | None, source: str, method: str
                 ) -> tuple[pd.DataFrame, list[str]]:
    table = _require(table, "territories", source, ("territory_id", "potential"), method)
    table = _numeric(table, source, ("potential", "history", "start_month"), "territory_id")
    notes = []
    if "history" not in table.columns:
        table["history"] = table["potential"]
        notes.append(NO_HISTORY)
    return table, notes


def _short_of_goal(quotas: pd.DataFrame, target: float, unit: float) -> list[str]:
    """A note when the quotas do not add up to the goal (times over-assignment), with why:
    the ramp shortfall the company absorbs, and rounding to the unit."""
    deployed = float(quotas["quota"].sum())
    if abs(deployed - target) <= 1e-6 * max(1.0, target):
        return []
    why = []
    if {"target", "ramped", "adjustment"} <= set(quotas.columns):
        absorbed = float((quotas["target"] - quotas["ramped"] - quotas["adjustment"]).sum())
        if absorbed > 1e-6 * max(1.0, target):
            why.append(f"{absorbed:,.0f} of ramp shortfall absorbed by the company")
    rounded = float((quotas["quota"] - quotas["quota_unrounded"]).sum())
    if abs(rounded) > 1e-6 * max(1.0, target):
        why.append(f"{-rounded:,.0f} lost to rounding to units of {unit:,g}" if rounded < 0
                   else f"{rounded:,.0f} added by rounding to units of {unit:,g}")
    gap = target - deployed
    return [f"the quotas add up to {deployed:,.0f}, {abs(gap):,.0f} "
            f"{'short of' if gap > 0 else 'over'} the {target:,.0f} to deploy"
            + (f": {'; '.join(why)}" if why else "")]


def _without_stand_in(quotas: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The quota table without the history columns when potential stood in for history: a
    planner would read them as history."""
    if NO_HISTORY not in notes:
        return quotas
    return quotas.drop(columns=["history", "history_share"], errors="ignore")


def _submissions(table: pd.DataFrame | None, source: str) -> tuple[pd.DataFrame, str]:
    """Submissions with their key renamed to `id`, and the key's name in the file."""
    table = _require(table, "submissions", source, ("submitted",), "bottom-up")
    key = next((c for c in ("id", "territory_id", "rep_id") if c in table.columns), None)
    if key is None:
        raise InputError([Issue(source, None, "territory_id",
                                "required column is missing (or rep_id, or id)")])
    table = _numeric(table, source, ("submitted",), key)  # named as in the file
    table = table.rename(columns={key: "id"})
    if "manager" not in table.columns and "manager_id" in table.columns:
        table = table.rename(columns={"manager_id": "manager"})
    return table, key


def _against_plan(subs: pd.DataFrame, key: str, plan: pd.DataFrame | None, source: str,
                  plan_source: str) -> list[str]:
    """Submissions checked against the plan's territories, when both are given: one for a
    territory the plan lacks is bad input; the plan's territories without one get no quota,
    said in a note (a bottom-up roll-up spread the goal over those that submitted)."""
    column = key if key in ("territory_id", "rep_id") else "territory_id"
    if plan is None or column not in plan.columns:
        return []
    known = id_text(plan[column]).dropna()
    given = id_text(subs["id"])
    check = TableChecker(source)
    check.rows(given.notna() & ~given.isin(known), key, f"not a {column} of {plan_source}",
               given)
    if check.issues:
        raise InputError(check.issues)
    missing = known[~known.isin(given)].tolist()
    if not missing:
        return []
    return [f"{len(missing):,} of the {len(known):,} territories of {plan_source} have no "
            f"submission, so no quota: {listed(missing)}"]


def deploy(settings: QuotaSettings, tables: dict[str, pd.DataFrame],
           sources: dict[str, str] | None = None) -> QuotaOutcome:
    """Deploy quotas by `settings.method` from the named input tables (module docstring).

    `sources` names each table in error messages (file names; default: the table name).
    """
    src = {name: (sources or {}).get(name, name)
           for name in ("territories", "submissions", "coverage")}
    s = settings
    summary: dict[str, Any] = {"status": "optimal", "method": s.method, "goal": s.goal}
    if s.method == "bottom-up":
        subs, key = _submissions(tables.get("submissions"), src["submissions"])
        notes = _against_plan(subs, key, tables.get("territories"), src["submissions"],
                              src["territories"])
        out = bottom_up(subs, s.goal, close_gap=s.close_gap, unit=s.unit)
        company = out[out["level"] == "company"].iloc[0]
        summary |= {"submitted": float(company["submitted"]),
                    "gap": None if s.goal is None else float(s.goal - company["submitted"]),
                    "deployed": float(company["quota"]), "close_gap": s.close_gap,
                    "territories": int((out["level"] == "territory").sum()),
                    "warnings": notes}
        return QuotaOutcome({"quotas": out}, "quotas", summary, notes)
    if s.method in ("top-down", "fair"):
        terr, notes = _territories(tables.get("territories"), src["territories"], s.method)
        assert s.goal is not None  # the settings' validator requires it
        if s.method == "top-down":
            quotas = top_down(terr, s.goal, s.top_down_settings())
        else:
            quotas = fair_quotas(terr, s.goal, band=(1 - s.band, 1 + s.band),
                                 over_assignment=s.over_assignment, unit=s.unit)
        notes += _short_of_goal(quotas, s.goal * s.over_assignment, s.unit)
        summary |= {"deployed": float(quotas["quota"].sum()), "territories": len(quotas),
                    "warnings": notes}
        return QuotaOutcome({"quotas": _without_stand_in(quotas, notes)}, "quotas", summary,
                            notes)
    return _derived(s, tables, src, summary)


def _derived(s: QuotaSettings, tables: dict[str, pd.DataFrame], src: dict[str, str],
             summary: dict[str, Any]) -> QuotaOutcome:
    raw = tables.get("territories")
    coverage = tables.get("coverage")
    notes: list[str] = []
    if raw is not None and "quota" in raw.columns:
        quotas = _require(raw, "territories", src["territories"], ("territory_id",), "derived")
        quotas = _numeric(quotas, src["territories"], ("quota",), "territory_id")
        notes.append("territory quotas taken from the table's quota column" + (
            f" (the goal of {s.goal:,.0f} is not used)" if s.goal is not None else ""))
    elif raw is not None and s.goal is not None:
        terr, notes = _territories(raw, src["territories"], "derived")
        quotas = top_down(terr, s.goal, s.top_down_settings())
        if "manager_id" in terr.columns:
            quotas["manager_id"] = terr["manager_id"].to_numpy()
        notes.append("territory quotas deployed top-down from the goal first")
    else:
        raise InputError([Issue(src["territories"], None, "quota",
                                "derived quotas need territory quotas: a quota column, or "
                                "potential (and history) with a goal")])
    out: dict[str, pd.DataFrame] = {"quotas": _without_stand_in(quotas, notes)}
    if "manager_id" in quotas.columns:
        out["manager_quotas"] = derived_manager(quotas, s.manager_factor, unit=s.unit)
        if len(alone := quotas[id_text(quotas["manager_id"]).isna().to_numpy()]):
            notes.append(f"{len(alone):,} territories have no manager_id, so their quotas "
                         f"({alone['quota'].sum():,.0f}) roll up to no manager: "
                         + listed(alone["territory_id"].tolist()))
    if coverage is not None:
        twice = _twice_covered(coverage, src["coverage"])
        try:
            cov = _numeric(coverage, src["coverage"], ("share",))
        except InputError as exc:
            raise InputError(exc.issues + twice) from exc
        if twice:
            raise InputError(twice)
        out["overlay_quotas"] = overlay(quotas, cov, s.overlay_factor, unit=s.unit)
    if len(out) == 1:
        raise InputError([Issue(src["territories"], None, "manager_id",
                                "derived quotas need a manager_id column (manager quotas) "
                                "and/or a coverage table (overlay quotas)")])
    main = "manager_quotas" if "manager_quotas" in out else "overlay_quotas"
    summary |= {"deployed": float(quotas["quota"].sum()), "territories": len(quotas),
                "manager_factor": s.manager_factor, "overlay_factor": s.overlay_factor,
                "warnings": notes}
    for name in ("manager_quotas", "overlay_quotas"):
        if name in out:
            summary[name.replace("_quotas", "s")] = len(out[name])
            summary[f"{name}_total"] = float(out[name]["quota"].sum())
    return QuotaOutcome(out, main, summary, notes)
