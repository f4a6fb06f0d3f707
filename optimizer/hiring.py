r"""Capacity planning: a time-phased hiring plan over months × roles.

Formulation (roles r, plan months t = 0..T-1, start months s, goal periods p)
------------------------------------------------------------------------------
Parameters: c[r] cost per head per month; h[r] one-off cost per hire; π[r] revenue per month
of a fully ramped head; ρ[r,k] the ramp curve (fraction productive in the k-th month since
start, k = 0, 1, ...; 1.0 once the curve ends); a[r] the monthly attrition rate; L[r] the hiring
lead time (a hire decided in month d starts in month d + L[r]); U[r] the recruiting throughput
(starts per month), U the throughput over all roles; the starting roster, one head per current
rep with its months since start; role ratios (role, per, n): at least one `role` per n `per`;
G[p] the revenue goal of period p (a month or a quarter, M[p] its months); B the budget.

Variables: x[r,s] ∈ ℤ≥0, the heads of role r starting in month s, for L[r] ≤ s < T.

Attrition is modelled as an expected, fractional loss: of x heads starting in month s,
x (1 - a)^(t - s) are still there in month t. That keeps the model linear in x with integer
hires (the decision a recruiter acts on) while headcount, ramped FTE and revenue are expected
values, as a planner's spreadsheet has them. Rounding attrition to whole leavers would add
integer variables whose values nobody can plan, and make the optimum depend on when people
happen to leave. With survival S[r,t,s] = (1 - a[r])^(t - s) for t ≥ s (0 before):

    headcount  n[r,t] = n0[r,t] + Σ_s S[r,t,s] x[r,s]
    ramped FTE f[r,t] = f0[r,t] + Σ_s S[r,t,s] ρ[r,t-s] x[r,s]
    revenue    R[t]   = Σ_r π[r] f[r,t]
    cost       C      = Σ_r Σ_t c[r] n[r,t] + Σ_r Σ_s h[r] x[r,s]

where n0, f0 are the starting roster's (each cohort ramps and decays the same way; a rep
signed but not started yet, with negative months since start, joins in its start month).

    (1) min C                      (objective "min_cost"), or
    (1') max Σ_t R[t]              (objective "max_revenue")
    (2) Σ_{t ∈ M[p]} R[t] ≥ G[p]             revenue goal per period (min_cost only)
    (3) C ≤ B                                 budget, when given
    (4) x[r,s] ≤ U[r];  Σ_r x[r,s] ≤ U        recruiting throughput
    (5) n[role,t] ≥ n[per,t] / n              role ratios, every month
    (6) x[r,s] = 0 for s < L[r]               lead time (no such variable is created)

Unreachable goals are explained rather than reported as "infeasible": the model without
goals gives, per period, the most revenue any plan can reach; the limits (throughput, budget,
lead time, ratios) are then lifted one at a time to find which one binds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import pyomo.environ as pyo
from pydantic import BaseModel, ConfigDict, Field, model_validator

from optimizer.blocks import linear
from optimizer.errors import InfeasibleScenarioError, SolverError
from optimizer.solve import (
    HighsOptions,
    RunStatus,
    Solution,
    SolutionStatus,
    Termination,
    relative_gap,
    run_highs,
)

NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
# Goals are met when revenue is within this relative tolerance (the solver's own tolerance is
# far tighter; this only keeps 0.9999999 × goal from reading as "short").
GOAL_TOLERANCE = 1e-7


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RoleSpec(_Frozen):
    """One role (AE, SDR, manager, ...): its economics, ramp, attrition and recruiting."""

    name: str = Field(min_length=1)
    cost_per_month: NonNegative
    productivity: NonNegative = 0.0
    ramp: list[Fraction] = Field(default_factory=list)
    attrition: Annotated[float, Field(ge=0, lt=1)] = 0.0
    lead_time: Annotated[int, Field(ge=0)] = 0
    max_hires_per_month: Annotated[int, Field(ge=0)] | None = None
    hire_cost: NonNegative = 0.0
    initial: list[int] = Field(default_factory=list)

    def ramp_at(self, tenure: np.ndarray) -> np.ndarray:
        """Fraction productive at 0-based tenure (months since start); 0 before the start."""
        curve = np.asarray(self.ramp, dtype=float)
        out = np.ones(tenure.shape)
        out[tenure < 0] = 0.0
        inside = (tenure >= 0) & (tenure < len(curve))
        out[inside] = curve[tenure[inside]]
        return out


class RoleRatio(_Frozen):
    """At least one `role` per `count` heads of `per` (one manager per 8 AEs: manager, ae, 8)."""

    role: str
    per: str
    count: Annotated[float, Field(gt=0)]


class HiringPlanInput(_Frozen):
    """Everything the hiring plan needs; `goal` has one amount per period (`goal_period`)."""

    months: Annotated[int, Field(ge=1, le=240)]
    roles: list[RoleSpec] = Field(min_length=1)
    ratios: list[RoleRatio] = Field(default_factory=list)
    goal: list[NonNegative] = Field(default_factory=list)
    goal_period: Literal["month", "quarter"] = "quarter"
    budget: NonNegative | None = None
    objective: Literal["min_cost", "max_revenue"] = "min_cost"
    max_total_hires_per_month: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HiringPlanInput:
        names = [r.name for r in self.roles]
        if len(set(names)) != len(names):
            raise ValueError(f"role names must be unique, got {names}")
        for ratio in self.ratios:
            for name in (ratio.role, ratio.per):
                if name not in names:
                    raise ValueError(f"ratio refers to unknown role {name!r}")
        if self.goal and len(self.goal) != self.n_periods:
            raise ValueError(f"goal needs {self.n_periods} amounts (one per {self.goal_period} "
                             f"of a {self.months}-month plan), got {len(self.goal)}")
        if self.objective == "min_cost" and not self.goal:
            raise ValueError("objective min_cost needs a revenue goal")
        if self.objective == "max_revenue" and self.budget is None and self._unlimited_hiring:
            raise ValueError("objective max_revenue needs a budget or a hiring limit per role")
        return self

    @property
    def _unlimited_hiring(self) -> bool:
        return self.max_total_hires_per_month is None and any(
            r.max_hires_per_month is None for r in self.roles)

    @property
    def period_length(self) -> int:
        return 1 if self.goal_period == "month" else 3

    @property
    def n_periods(self) -> int:
        return math.ceil(self.months / self.period_length)

    def period_label(self, p: int) -> str:
        return f"M{p + 1}" if self.goal_period == "month" else f"Q{p + 1}"

    def period_months(self, p: int) -> range:
        k = self.period_length
        return range(p * k, min((p + 1) * k, self.months))


DEFAULT_ROLE = "ae"  # the role of a rep whose role is not given


def roster_from_reps(reps: pd.DataFrame, plan_start: date, *,
                     default_role: str = DEFAULT_ROLE) -> dict[str, list[int]]:
    """Months since start per current rep, by role, from reps.csv (`role`, `start_date`).

    A rep without a start date counts as fully ramped (a long tenure); one starting after
    `plan_start` gets a negative value and joins the plan in its start month.
    """
    out: dict[str, list[int]] = {}
    roles = reps["role"] if "role" in reps else pd.Series(default_role, index=reps.index)
    starts = (pd.to_datetime(reps["start_date"]) if "start_date" in reps
              else pd.Series(pd.NaT, index=reps.index))
    for role, start in zip(roles.fillna(default_role), starts, strict=True):
        if pd.isna(start):
            tenure = 10_000
        else:
            tenure = (plan_start.year - start.year) * 12 + plan_start.month - start.month
        out.setdefault(str(role), []).append(int(tenure))
    return out


# ---------------------------------------------------------------------------------------------
# Coefficients


@dataclass(frozen=True)
class _RoleArrays:
    """Linear maps from the start vector x[r, :] (length T) to monthly quantities."""

    starts: np.ndarray  # start months with a variable (s ≥ L)
    surv: np.ndarray  # (T, T) S[t, s]
    fte: np.ndarray  # (T, T) S[t, s] ρ[t - s]
    base_hc: np.ndarray  # (T,) starting roster headcount
    base_fte: np.ndarray  # (T,)
    hire_cost: np.ndarray  # (T,) total cost of one head starting in month s


def _arrays(role: RoleSpec, months: int) -> _RoleArrays:
    t = np.arange(months)
    tenure = t[:, None] - t[None, :]
    keep = 1.0 - role.attrition
    surv = np.where(tenure >= 0, keep ** np.maximum(tenure, 0), 0.0)
    fte = surv * role.ramp_at(tenure)
    base_hc = np.zeros(months)
    base_fte = np.zeros(months)
    for since in role.initial:
        joined = max(0, -since)  # signed reps join in their start month
        present = t >= joined
        decay = np.where(present, keep ** np.maximum(t - joined, 0), 0.0)
        base_hc += decay
        base_fte += decay * role.ramp_at(since + t)
    hire_cost = role.cost_per_month * surv.sum(axis=0) + role.hire_cost
    return _RoleArrays(np.arange(min(role.lead_time, months), months), surv, fte, base_hc,
                       base_fte, hire_cost)


def _all_arrays(inp: HiringPlanInput) -> list[_RoleArrays]:
    return [_arrays(r, inp.months) for r in inp.roles]


# ---------------------------------------------------------------------------------------------
# Model

Goals = Literal["enforce", "elastic", "ignore"]


def _build(inp: HiringPlanInput, *, goals: Goals, maximise_period: int | None = None,
           hire_cap: int | None = None) -> pyo.ConcreteModel:
    """(1)–(6). `goals`: hard (2), elastic (2) with shortfall minimised, or no goals (then
    the objective is `inp.objective`'s, or the revenue of `maximise_period` alone).
    `hire_cap` replaces every missing throughput limit (diagnosis with "unlimited" hiring)."""
    arrays = _all_arrays(inp)
    T = inp.months  # noqa: N806 (the formulation's name)
    m = pyo.ConcreteModel(name="hiring_plan")
    keys = [(i, int(s)) for i, a in enumerate(arrays) for s in a.starts]
    m.x = pyo.Var(keys, domain=pyo.NonNegativeIntegers)
    for i, role in enumerate(inp.roles):
        cap = role.max_hires_per_month if role.max_hires_per_month is not None else hire_cap
        if cap is not None:
            for s in arrays[i].starts:
                m.x[i, int(s)].setub(cap)
    # A variable fixed at one carries the constants, so that every row keeps a variable even
    # where no hire can reach it (e.g. months before the lead time): such rows are checked by
    # the solver instead of being trivially true or false Python booleans.
    m.one = pyo.Var(bounds=(1.0, 1.0))

    def xs(i: int) -> list[object]:
        return [m.x[i, int(s)] for s in arrays[i].starts]

    def monthly(i: int, t: int, coef: np.ndarray, base: np.ndarray, scale: float = 1.0
                ) -> tuple[list[float], list[object], float]:
        starts = arrays[i].starts
        return list(scale * coef[t, starts]), xs(i), scale * float(base[t])

    def revenue(months: Sequence[int]) -> tuple[list[float], list[object]]:
        coefs: list[float] = []
        vars_: list[object] = []
        const = 0.0
        for i, role in enumerate(inp.roles):
            if role.productivity == 0:
                continue
            for t in months:
                c, v, k = monthly(i, t, arrays[i].fte, arrays[i].base_fte, role.productivity)
                coefs += c
                vars_ += v
                const += k
        return [*coefs, const], [*vars_, m.one]

    def total_cost() -> tuple[list[float], list[object]]:
        coefs: list[float] = []
        vars_: list[object] = []
        const = 0.0
        for i, role in enumerate(inp.roles):
            coefs += list(arrays[i].hire_cost[arrays[i].starts])
            vars_ += xs(i)
            const += role.cost_per_month * float(arrays[i].base_hc.sum())
        return [*coefs, const], [*vars_, m.one]

    # (2) revenue goal per period
    periods = range(inp.n_periods) if inp.goal and goals != "ignore" else range(0)
    if goals == "elastic":
        m.short = pyo.Var(periods, domain=pyo.NonNegativeReals)
    m.goal = pyo.ConstraintList()
    for p in periods:
        c, v = revenue(inp.period_months(p))
        if goals == "elastic":
            c, v = [*c, 1.0], [*v, m.short[p]]
        m.goal.add(linear(c, v) >= inp.goal[p])
    # (3) budget
    if inp.budget is not None:
        c, v = total_cost()
        m.budget = pyo.Constraint(expr=linear(c, v) <= inp.budget)
    # (4) recruiting throughput over all roles
    if inp.max_total_hires_per_month is not None:
        m.throughput = pyo.ConstraintList()
        for s in range(T):
            here = [m.x[i, s] for i in range(len(inp.roles)) if (i, s) in m.x]
            if here:
                m.throughput.add(linear(np.ones(len(here)), here)
                                 <= inp.max_total_hires_per_month)
    # (5) role ratios: n[role,t] - n[per,t] / count ≥ 0
    index = {r.name: i for i, r in enumerate(inp.roles)}
    m.ratio = pyo.ConstraintList()
    for ratio in inp.ratios:
        a, b = index[ratio.role], index[ratio.per]
        for t in range(T):
            ca, va, ka = monthly(a, t, arrays[a].surv, arrays[a].base_hc)
            cb, vb, kb = monthly(b, t, arrays[b].surv, arrays[b].base_hc, -1.0 / ratio.count)
            m.ratio.add(linear([*ca, *cb, ka + kb], [*va, *vb, m.one]) >= 0)
    # (1) objective; HiGHS minimises, so revenue is maximised as its negative
    if goals == "elastic":
        expr = linear(np.ones(len(periods)), [m.short[p] for p in periods])
        m.objective = pyo.Objective(expr=expr, sense=pyo.minimize)
    elif maximise_period is not None:
        c, v = revenue(inp.period_months(maximise_period))
        m.objective = pyo.Objective(expr=linear([-k for k in c], v), sense=pyo.minimize)
    elif inp.objective == "max_revenue":
        c, v = revenue(range(T))
        m.objective = pyo.Objective(expr=linear([-k for k in c], v), sense=pyo.minimize)
    else:
        c, v = total_cost()
        m.objective = pyo.Objective(expr=linear(c, v), sense=pyo.minimize)
    return m


def build(inp: HiringPlanInput) -> pyo.ConcreteModel:
    """The hiring-plan MILP (1)–(6) for `inp` (goals hard under min_cost)."""
    return _build(inp, goals="enforce" if inp.objective == "min_cost" else "ignore")


# ---------------------------------------------------------------------------------------------
# Result


@dataclass(frozen=True)
class HiringPlanResult:
    """A solved hiring plan.

    table: one row per month and role: month (1-based), role, decisions (heads to recruit
    this month, starting `lead_time` later), hires (heads starting), headcount, ramped_fte,
    capacity (revenue the role delivers), cost. months: totals per month with the period's
    goal and shortfall. periods: period, revenue, goal, shortfall.
    """

    status: RunStatus
    termination: Termination
    objective: float | None
    bound: float | None
    gap: float | None
    total_cost: float
    total_revenue: float
    hires: dict[str, np.ndarray]
    table: pd.DataFrame
    months: pd.DataFrame
    periods: pd.DataFrame
    seconds: float


def _hire_matrix(inp: HiringPlanInput, model: pyo.ConcreteModel, sol: Solution) -> np.ndarray:
    x = np.zeros((len(inp.roles), inp.months))
    for (i, s), value in zip(model.x.keys(), sol.values.get("x", []), strict=True):
        x[i, s] = round(float(value))
    return x


def evaluate(inp: HiringPlanInput, hires: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                pd.DataFrame]:
    """Monthly tables of a plan given as starts per role and month (R, T); pure arithmetic,
    so any plan (the optimum, a planner's own) reads the same way."""
    arrays = _all_arrays(inp)
    T = inp.months  # noqa: N806
    rows = []
    for i, (role, a) in enumerate(zip(inp.roles, arrays, strict=True)):
        hc = a.base_hc + a.surv @ hires[i]
        fte = a.base_fte + a.fte @ hires[i]
        decisions = np.zeros(T)
        decisions[: T - role.lead_time] = hires[i, role.lead_time:] if role.lead_time < T else 0
        for t in range(T):
            rows.append({
                "month": t + 1, "role": role.name, "decisions": decisions[t],
                "hires": hires[i, t], "headcount": hc[t], "ramped_fte": fte[t],
                "capacity": role.productivity * fte[t],
                "cost": role.cost_per_month * hc[t] + role.hire_cost * hires[i, t]})
    table = pd.DataFrame(rows)
    months = (table.groupby("month", sort=True)[["hires", "headcount", "ramped_fte", "capacity",
                                                 "cost"]].sum()
              .rename(columns={"capacity": "revenue"}).reset_index())
    period_of = np.repeat(np.arange(inp.n_periods), inp.period_length)[:T]
    months.insert(1, "period", [inp.period_label(p) for p in period_of])
    per = [{"period": inp.period_label(p),
            "revenue": float(months["revenue"].iloc[list(inp.period_months(p))].sum())}
           for p in range(inp.n_periods)]
    periods = pd.DataFrame(per)
    goal = np.asarray(inp.goal, dtype=float) if inp.goal else np.full(inp.n_periods, np.nan)
    periods["goal"] = goal
    periods["shortfall"] = np.maximum(0.0, goal - periods["revenue"].to_numpy())
    months["period_revenue"] = periods["revenue"].to_numpy()[period_of]
    months["period_goal"] = goal[period_of]
    months["period_shortfall"] = periods["shortfall"].to_numpy()[period_of]
    return table, months, periods


def solve(inp: HiringPlanInput, options: HighsOptions | None = None) -> HiringPlanResult:
    """Solve the hiring plan; unreachable goals raise InfeasibleScenarioError saying why."""
    options = options or HighsOptions(time_limit=60, mip_gap=1e-6)
    _precheck(inp)
    model = build(inp)
    sol = run_highs(model, options)
    if not sol.has_solution:
        if sol.termination is Termination.infeasible:
            raise InfeasibleScenarioError(diagnose(inp, options))
        raise SolverError(f"HiGHS stopped ({sol.termination}) without a hiring plan")
    sign = -1.0 if inp.objective == "max_revenue" else 1.0
    objective = None if sol.objective is None else sign * sol.objective
    bound = None if sol.bound is None else sign * sol.bound
    gap = relative_gap(sol.objective, sol.bound)
    hires = _hire_matrix(inp, model, sol)
    table, months, periods = evaluate(inp, hires)
    status = {SolutionStatus.optimal: RunStatus.optimal,
              SolutionStatus.feasible: RunStatus.feasible}.get(sol.status, RunStatus.error)
    return HiringPlanResult(
        status=status, termination=sol.termination, objective=objective, bound=bound, gap=gap,
        total_cost=float(months["cost"].sum()), total_revenue=float(months["revenue"].sum()),
        hires={r.name: hires[i] for i, r in enumerate(inp.roles)}, table=table, months=months,
        periods=periods, seconds=sol.seconds_compile + sol.seconds_solve)


# ---------------------------------------------------------------------------------------------
# Explaining infeasible plans


def money(x: float) -> str:
    """An amount as a planner reads it: 1.2M, 350k, 900."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:,.2f}".rstrip("0").rstrip(".") + "M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:,.1f}".rstrip("0").rstrip(".") + "k"
    return f"{x:,.0f}"


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%" if share >= 0.01 else f"{100 * share:.1f}%"


def _heads(x: float) -> str:
    return f"{x:,.2f}".rstrip("0").rstrip(".")


def _precheck(inp: HiringPlanInput) -> None:
    """Limits no hiring plan can change: the roster's own cost, ratios before any hire can
    start. Raised before solving, with the numbers."""
    arrays = _all_arrays(inp)
    reasons = []
    if inp.budget is not None:
        roster = sum(r.cost_per_month * float(a.base_hc.sum())
                     for r, a in zip(inp.roles, arrays, strict=True))
        if roster > inp.budget * (1 + GOAL_TOLERANCE):
            reasons.append(f"the starting roster alone costs {money(roster)} over "
                           f"{inp.months} months against a budget of {money(inp.budget)}")
    index = {r.name: i for i, r in enumerate(inp.roles)}
    for ratio in inp.ratios:
        a, b = index[ratio.role], index[ratio.per]
        first = inp.roles[a].lead_time
        for t in range(min(first, inp.months)):
            need = arrays[b].base_hc[t] / ratio.count
            have = arrays[a].base_hc[t]
            if have < need - 1e-9:
                reasons.append(
                    f"in month {t + 1} the roster has {_heads(arrays[b].base_hc[t])} "
                    f"{ratio.per} needing {_heads(need)} {ratio.role} (one per "
                    f"{_heads(ratio.count)}) but has {_heads(have)}, and the first new "
                    f"{ratio.role} can start in month {first + 1} "
                    f"(lead time {first} months)")
                break
    if reasons:
        raise InfeasibleScenarioError(reasons)


@dataclass(frozen=True)
class _Limit:
    name: str  # reads as f"{name} binds"
    lifted: HiringPlanInput
    what_if: str  # "with unlimited hiring"
    plural: bool = False

    @property
    def binds(self) -> str:
        return f"{self.name} {'bind' if self.plural else 'binds'}"


def _limits(inp: HiringPlanInput) -> list[_Limit]:
    out = []
    capped = [r for r in inp.roles if r.max_hires_per_month is not None]
    if capped or inp.max_total_hires_per_month is not None:
        parts = [f"max {r.max_hires_per_month} {r.name} hires/month" for r in capped]
        if inp.max_total_hires_per_month is not None:
            parts.append(f"max {inp.max_total_hires_per_month} hires/month in all")
        roles = [r.model_copy(update={"max_hires_per_month": None}) for r in inp.roles]
        out.append(_Limit(f"recruiting throughput ({', '.join(parts)})",
                          inp.model_copy(update={"roles": roles,
                                                 "max_total_hires_per_month": None}),
                          "with unlimited hiring"))
    if inp.budget is not None:
        out.append(_Limit(f"the budget ({money(inp.budget)})",
                          inp.model_copy(update={"budget": None}), "without the budget"))
    late = [r for r in inp.roles if r.lead_time > 0]
    if late:
        parts = [f"{r.lead_time} month{'s' if r.lead_time > 1 else ''} for {r.name}"
                 for r in late]
        roles = [r.model_copy(update={"lead_time": 0}) for r in inp.roles]
        out.append(_Limit(f"the hiring lead time ({', '.join(parts)})",
                          inp.model_copy(update={"roles": roles}), "with no lead time"))
    if inp.ratios:
        parts = [f"one {q.role} per {_heads(q.count)} {q.per}" for q in inp.ratios]
        out.append(_Limit(f"the role ratios ({', '.join(parts)})",
                          inp.model_copy(update={"ratios": []}), "without the role ratios",
                          plural=True))
    return out


def _unlimited_cap(inp: HiringPlanInput) -> int:
    """A throughput standing in for 'unlimited' that keeps the diagnosis bounded: enough
    heads in one month to carry the whole goal at the least productive useful ramp step."""
    rates = [r.productivity * min([f for f in r.ramp if f > 0] + [1.0])
             * (1 - r.attrition) ** inp.months for r in inp.roles if r.productivity > 0]
    if not rates or not inp.goal:
        return 1000
    need = sum(inp.goal) / min(rates)
    return int(min(1e6, max(1000.0, math.ceil(need) + 1)))


def _period_max(inp: HiringPlanInput, p: int, options: HighsOptions, cap: int) -> float | None:
    """The most revenue period p can reach, goals aside (None: no plan meets the limits)."""
    sol = run_highs(_build(inp, goals="ignore", maximise_period=p, hire_cap=cap), options)
    if not sol.has_solution or sol.objective is None:
        return None
    # The MIP may stop within its gap; its bound is what no plan can beat.
    return -sol.objective if sol.bound is None else -min(sol.objective, sol.bound)


def _min_shortfall(inp: HiringPlanInput, options: HighsOptions, cap: int
                   ) -> tuple[float, np.ndarray] | None:
    model = _build(inp, goals="elastic", hire_cap=cap)
    sol = run_highs(model, options)
    if not sol.has_solution:
        return None
    short = sol.values["short"]
    return float(short.sum()), short


def _reaches(value: float | None, goal: float) -> bool:
    return value is not None and value >= goal * (1 - GOAL_TOLERANCE) - 1e-6


def diagnose(inp: HiringPlanInput, options: HighsOptions | None = None) -> list[str]:
    """Why no plan meets the goals, in business terms: per period, how far short the best
    plan falls and which limit binds (lifting it alone makes the goal reachable)."""
    options = options or HighsOptions(time_limit=30, mip_gap=1e-6)
    cap = _unlimited_cap(inp)
    limits = _limits(inp)
    reasons: list[str] = []
    everything = _lift_all(inp)
    for p in range(inp.n_periods if inp.goal else 0):
        goal = inp.goal[p]
        best = _period_max(inp, p, options, cap)
        if best is None or _reaches(best, goal):
            continue
        label = inp.period_label(p)
        short = goal - best
        text = (f"{label} revenue can reach at most {money(best)} against a goal of "
                f"{money(goal)} ({money(short)}, {_pct(short / goal)} short)")
        binding = [lim for lim in limits
                   if _reaches(_period_max(lim.lifted, p, options, cap), goal)]
        if binding:
            text += ": " + "; ".join(f"{lim.binds}, {lim.what_if} the goal is reachable"
                                     for lim in binding)
        elif limits and _reaches(_period_max(everything, p, options, cap), goal):
            text += ": " + " and ".join(lim.name for lim in limits) + \
                " bind together; lifting any one alone is not enough"
        else:
            text += (": even with unlimited hiring, no budget, no lead time and no ratios the "
                     "starting roster and ramping new hires cannot reach it in time")
        reasons.append(text)
    if reasons:
        return reasons
    # Every goal is reachable on its own; together they are not (a shared budget, ratios).
    joint = _min_shortfall(inp, options, cap)
    if joint is not None and joint[0] > 0:
        misses = [f"{inp.period_label(p)} by {money(float(s))} "
                  f"({_pct(float(s) / inp.goal[p])})"
                  for p, s in enumerate(joint[1]) if s > 1e-6]
        text = ("each period's goal is reachable on its own but not all together: the best "
                "plan still misses " + ", ".join(misses))
        binding = [lim for lim in limits
                   if (j := _min_shortfall(lim.lifted, options, cap)) is not None
                   and j[0] <= 1e-6 * max(1.0, sum(inp.goal))]
        if binding:
            text += "; " + "; ".join(f"{lim.binds}, {lim.what_if} all goals are reachable"
                                     for lim in binding)
        return [text]
    return ["no hiring plan meets the limits (recruiting throughput, budget, lead time and "
            "role ratios together)"]


def _lift_all(inp: HiringPlanInput) -> HiringPlanInput:
    """Every limit lifted at once (lifting one that is absent changes nothing)."""
    roles = [r.model_copy(update={"max_hires_per_month": None, "lead_time": 0})
             for r in inp.roles]
    return inp.model_copy(update={"roles": roles, "budget": None, "ratios": [],
                                  "max_total_hires_per_month": None})


# ---------------------------------------------------------------------------------------------
# Chart


def write_hiring_plan_png(path: str | Path, result: HiringPlanResult) -> Path:
    """hiring_plan.png: headcount by role (stacked bars) and monthly revenue against the goal
    (a period's goal drawn as its monthly average)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    wide = result.table.pivot(index="month", columns="role", values="headcount")
    months = wide.index.to_numpy()
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    bottom = np.zeros(len(months))
    for role in wide.columns:
        ax.bar(months, wide[role].to_numpy(), bottom=bottom, label=f"{role} headcount",
               alpha=0.75)
        bottom += wide[role].to_numpy()
    ax.set_xlabel("month")
    ax.set_ylabel("expected headcount")
    rev = ax.twinx()
    monthly = result.months
    rev.plot(months, monthly["revenue"], color="black", marker="o", label="revenue")
    counts = monthly.groupby("period")["month"].transform("count")
    goal = monthly["period_goal"] / counts
    if goal.notna().any():
        rev.step(months, goal, where="mid", color="crimson", linestyle="--",
                 label="goal (monthly average of the period)")
    rev.set_ylabel("revenue per month")
    rev.set_ylim(bottom=0)  # a truncated axis would exaggerate month-to-month growth
    handles = ax.get_legend_handles_labels()
    more = rev.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8)
    ax.set_title(f"Hiring plan: cost {money(result.total_cost)}, "
                 f"revenue {money(result.total_revenue)}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
