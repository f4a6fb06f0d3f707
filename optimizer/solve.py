"""The one HiGHS wrapper: Pyomo model in, typed solution out.

A model is compiled with Pyomo's public standard-form compiler into sparse matrices and
handed to highspy in one call, which is much faster than the persistent interfaces for the
models built here and gives full access to HiGHS: progress callbacks, cancellation, MIP
starts and the row duals used for pricing. Solver settings become HiGHS options only here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from optimizer.errors import SolverError


class Termination(StrEnum):
    """Why the solver stopped."""

    optimal = "optimal"  # proven optimal (for a MIP: within the requested gap)
    time_limit = "time_limit"
    infeasible = "infeasible"
    unbounded = "unbounded"
    cancelled = "cancelled"
    bound_exceeded = "bound_exceeded"  # stopped: the MIP bound shows the goal is out of reach
    # Stopped before the time limit with the gap open: every method had run to a standstill
    # (a local optimum and a converged bound) and no exact search fitted the problem.
    stalled = "stalled"
    error = "error"


class SolutionStatus(StrEnum):
    """What the solver has to show for it."""

    none = "none"
    feasible = "feasible"
    optimal = "optimal"


class RunStatus(StrEnum):
    """The status word of summary.json."""

    optimal = "optimal"
    feasible = "feasible"
    infeasible = "infeasible"
    error = "error"


@dataclass(frozen=True)
class HighsOptions:
    """What one HiGHS call may use. `time_limit` in seconds, compiling the model included;
    `mip_gap` relative."""

    time_limit: float | None = None
    mip_gap: float | None = None
    threads: int | None = None
    lp_method: str = "simplex"
    # Reliability branching's strong-branching LPs: off pays where node LPs are cheap and
    # the bound closes only by branching (capacitated p-median: most of the time otherwise).
    strong_branching: bool = True


@dataclass(frozen=True)
class Progress:
    """A snapshot sent to the caller while a run is under way."""

    phase: str
    elapsed: float
    incumbent: float | None = None
    bound: float | None = None
    gap: float | None = None
    message: str = ""


ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[], bool]


@dataclass
class Solution:
    """Result of one HiGHS call on a compiled Pyomo model."""

    termination: Termination
    status: SolutionStatus
    objective: float | None
    bound: float | None
    seconds_compile: float
    seconds_solve: float
    values: dict[str, np.ndarray] = field(default_factory=dict)
    duals: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def has_solution(self) -> bool:
        return self.status is not SolutionStatus.none


def relative_gap(incumbent: float | None, bound: float | None) -> float | None:
    """(incumbent - bound) / |incumbent|, the convention HiGHS and the summaries use."""
    if incumbent is None or bound is None:
        return None
    if incumbent == bound:
        return 0.0
    return max(0.0, incumbent - bound) / max(abs(incumbent), 1e-10)


@dataclass
class _Compiled:
    highs: highspy.Highs
    var_slices: dict[str, tuple[np.ndarray, list[object]]]  # component -> (columns, indices)
    fixed: dict[str, np.ndarray]  # component -> values of its fixed variables (0 elsewhere)
    row_slices: dict[str, tuple[np.ndarray, list[object]]]  # component -> (rows, indices)
    offset: float
    seconds: float

    @property
    def is_mip(self) -> bool:
        return len(self.highs.getLp().integrality_) > 0


def _compile(model: pyo.ConcreteModel) -> _Compiled:
    started = time.perf_counter()
    # No column_order: given one, the compiler (Pyomo 6.10) keeps fixed variables as columns
    # but labels them with a repeat of another variable, so a variable fixed at 0 (a closed
    # centre) became a free column and the label's owner lost its column to the repeat (its
    # MIP start and value went astray). Its own order substitutes fixed variables; columns
    # are matched to variables by identity below.
    info = LinearStandardFormCompiler().write(model, mixed_form=True)
    n_rows, n_cols = info.A.shape
    lp = highspy.HighsLp()
    lp.num_col_ = n_cols
    lp.num_row_ = n_rows
    lp.col_cost_ = np.asarray(info.c.toarray()).ravel() if n_cols else np.zeros(0)
    lp.offset_ = float(info.c_offset[0]) if len(info.c_offset) else 0.0
    lower = np.array([-math.inf if v.lb is None else v.lb for v in info.columns], dtype=float)
    upper = np.array([math.inf if v.ub is None else v.ub for v in info.columns], dtype=float)
    lp.col_lower_ = np.where(np.isinf(lower), -highspy.kHighsInf, lower)
    lp.col_upper_ = np.where(np.isinf(upper), highspy.kHighsInf, upper)
    bound_type = np.array([r.bound_type for r in info.rows], dtype=int)
    rhs = np.asarray(info.rhs, dtype=float)
    lp.row_lower_ = np.where(bound_type <= 0, rhs, -highspy.kHighsInf)
    lp.row_upper_ = np.where(bound_type >= 0, rhs, highspy.kHighsInf)
    a = info.A.tocsc()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data.astype(float)
    integer = np.array([v.is_integer() for v in info.columns], dtype=bool)
    if integer.any():
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
            for flag in integer
        ]
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    status = highs.passModel(lp)
    if status == highspy.HighsStatus.kError:
        raise SolverError("HiGHS rejected the compiled model")

    # Columns per variable component; the compiler drops variables used nowhere (-1 here).
    column_of: dict[int, int] = {}
    for i, v in enumerate(info.columns):
        column_of.setdefault(id(v), i)
    var_slices: dict[str, tuple[np.ndarray, list[object]]] = {}
    fixed: dict[str, np.ndarray] = {}
    for comp in model.component_objects(pyo.Var, active=True):
        keys = list(comp.keys())
        cols = np.array([column_of.get(id(comp[k]), -1) for k in keys], dtype=np.int64)
        var_slices[comp.local_name] = (cols, keys)
        fixed[comp.local_name] = np.array([float(comp[k].value or 0.0) if comp[k].fixed else 0.0
                                           for k in keys])
    row_groups: dict[str, tuple[list[int], list[object]]] = {}
    for i, entry in enumerate(info.rows):
        con = entry.constraint
        name = con.parent_component().local_name
        rows, keys = row_groups.setdefault(name, ([], []))
        rows.append(i)
        keys.append(con.index())
    row_slices = {k: (np.array(r, dtype=np.int64), keys) for k, (r, keys) in row_groups.items()}
    return _Compiled(highs, var_slices, fixed, row_slices, lp.offset_,
                     time.perf_counter() - started)


# HiGHS keeps one thread scheduler per process and refuses to run (model status error) when a
# later call asks for another thread count, so a change of count restarts it first.
_scheduler_started = False  # some run has started it
_scheduler_threads: int | None = None  # the count it was asked for (None: HiGHS' default)


def _use_threads(highs: highspy.Highs, threads: int | None) -> None:
    global _scheduler_threads
    if threads is None:
        return  # HiGHS' default (threads = 0) runs on whatever scheduler there is
    if _scheduler_started and _scheduler_threads != threads:
        highspy.Highs.resetGlobalScheduler(True)
    _scheduler_threads = int(threads)
    highs.setOptionValue("threads", int(threads))


def _apply_options(highs: highspy.Highs, options: HighsOptions, is_mip: bool) -> None:
    if options.time_limit is not None:
        highs.setOptionValue("time_limit", max(0.01, float(options.time_limit)))
    _use_threads(highs, options.threads)
    if is_mip and options.mip_gap is not None:
        highs.setOptionValue("mip_rel_gap", float(options.mip_gap))
    if is_mip:
        # Planners read bands as exact: a workload of 0.7999991 against a minimum of 0.8 is a
        # violation to them, so integer plans are held to much tighter tolerances than default.
        highs.setOptionValue("mip_feasibility_tolerance", 1e-9)
        highs.setOptionValue("primal_feasibility_tolerance", 1e-9)
        if not options.strong_branching:
            highs.setOptionValue("mip_pscost_minreliable", 0)
    if not is_mip:
        highs.setOptionValue("solver", options.lp_method)


def run_highs(
    model: pyo.ConcreteModel,
    options: HighsOptions,
    *,
    on_progress: Callable[[float | None, float | None], None] | None = None,
    should_stop: StopCheck | None = None,
    start: Mapping[str, Mapping[object, float]] | None = None,
    duals: bool = False,
    stop_at_objective: float | None = None,
    stop_if_bound_above: float | None = None,
) -> Solution:
    """Solve `model` with HiGHS and return values per variable component (arrays in index order).

    on_progress(incumbent, bound) is called when the MIP improves; should_stop() is polled and
    interrupts the solve, keeping the incumbent. `start` is a MIP start as component -> {index:
    value}. With `duals`, row duals per constraint component are returned (LPs only), in the
    convention c - A'y = reduced costs. With `stop_at_objective`, a MIP stops as soon as it
    has a solution that good (the caller knows a bound HiGHS does not); it then reports
    Termination.optimal. With `stop_if_bound_above`, a MIP gives up once its dual bound shows
    that no solution that good exists (Termination.bound_exceeded).
    """
    compiled = _compile(model)
    if options.time_limit is not None:
        # The limit is the caller's budget for the call: compiling a large model takes
        # seconds of it (a design's MIP over 83,000 account–centre pairs: 1.5 s).
        options = replace(options, time_limit=options.time_limit - compiled.seconds)
    _apply_options(compiled.highs, options, compiled.is_mip)
    return _run_compiled(compiled, on_progress=on_progress, should_stop=should_stop,
                         start=start, duals=duals, stop_at_objective=stop_at_objective,
                         stop_if_bound_above=stop_if_bound_above)


def _run_compiled(
    compiled: _Compiled,
    *,
    on_progress: Callable[[float | None, float | None], None] | None = None,
    should_stop: StopCheck | None = None,
    start: Mapping[str, Mapping[object, float]] | None = None,
    duals: bool = False,
    stop_at_objective: float | None = None,
    stop_if_bound_above: float | None = None,
    seconds_compile: float | None = None,
) -> Solution:
    """`run_highs` on a model already compiled, with its options set."""
    highs = compiled.highs
    lp = highs.getLp()
    is_mip = len(lp.integrality_) > 0

    if start:
        column = np.zeros(lp.num_col_)
        for name, values in start.items():
            cols, keys = compiled.var_slices[name]
            position = dict(zip(keys, cols, strict=True))
            for key, value in values.items():
                if position[key] >= 0:
                    column[position[key]] = value
        sol = highspy.HighsSolution()
        sol.col_value = column.tolist()
        sol.value_valid = True
        highs.setSolution(sol)

    reached = False
    hopeless = False

    def on_event(event: object) -> None:
        nonlocal reached, hopeless
        out = event.data_out  # type: ignore[attr-defined]
        if should_stop is not None and should_stop():
            event.data_in.user_interrupt = True  # type: ignore[attr-defined]
        if stop_at_objective is not None and is_mip and out.mip_primal_bound <= stop_at_objective:
            reached = True
            event.data_in.user_interrupt = True  # type: ignore[attr-defined]
        if stop_if_bound_above is not None and is_mip and \
                stop_if_bound_above < out.mip_dual_bound < 1e50:
            hopeless = True
            event.data_in.user_interrupt = True  # type: ignore[attr-defined]
        if on_progress is not None and is_mip:
            inc = out.mip_primal_bound
            bnd = out.mip_dual_bound
            on_progress(inc if abs(inc) < 1e50 else None, bnd if abs(bnd) < 1e50 else None)

    if any(x is not None for x in (on_progress, should_stop, stop_at_objective,
                                   stop_if_bound_above)):
        if is_mip:
            highs.cbMipImprovingSolution.subscribe(on_event)
            highs.cbMipInterrupt.subscribe(on_event)
        else:
            highs.cbSimplexInterrupt.subscribe(on_event)
            highs.cbIpmInterrupt.subscribe(on_event)

    global _scheduler_started
    started = time.perf_counter()
    highs.run()
    _scheduler_started = True
    seconds = time.perf_counter() - started

    model_status = highs.getModelStatus()
    info = highs.getInfo()
    has_primal = info.primal_solution_status == 2
    termination = {
        highspy.HighsModelStatus.kOptimal: Termination.optimal,
        highspy.HighsModelStatus.kTimeLimit: Termination.time_limit,
        highspy.HighsModelStatus.kInfeasible: Termination.infeasible,
        highspy.HighsModelStatus.kUnbounded: Termination.unbounded,
        highspy.HighsModelStatus.kUnboundedOrInfeasible: Termination.infeasible,
        highspy.HighsModelStatus.kInterrupt: Termination.cancelled,
    }.get(model_status, Termination.error)
    if termination is Termination.cancelled and reached:
        termination = Termination.optimal
    elif termination is Termination.cancelled and hopeless:
        termination = Termination.bound_exceeded
    if termination is Termination.optimal and not reached:
        status = SolutionStatus.optimal
    elif has_primal:
        status = SolutionStatus.feasible
    else:
        status = SolutionStatus.none

    objective = float(info.objective_function_value) if has_primal else None
    bound: float | None
    if is_mip:
        raw = float(info.mip_dual_bound)
        bound = raw if abs(raw) < 1e50 else None
    else:
        bound = objective if termination is Termination.optimal else None

    result = Solution(termination, status, objective, bound,
                      compiled.seconds if seconds_compile is None else seconds_compile,
                      seconds)
    if has_primal:
        sol = highs.getSolution()
        col = np.asarray(sol.col_value)
        for name, (cols, _keys) in compiled.var_slices.items():
            result.values[name] = np.where(cols >= 0, col[np.maximum(cols, 0)],
                                           compiled.fixed[name])
        if duals and not is_mip and sol.dual_valid:
            row_dual = np.asarray(sol.row_dual)
            for name, (rows, _keys) in compiled.row_slices.items():
                result.duals[name] = row_dual[rows]
            col_dual = np.asarray(sol.col_dual)
            for name, (cols, _keys) in compiled.var_slices.items():
                result.duals["rc:" + name] = np.where(cols >= 0, col_dual[np.maximum(cols, 0)], 0.0)
    return result


class ReusableModel:
    """A Pyomo model compiled into HiGHS once and solved again after its objective
    coefficients or variable bounds change. The compile happens once, and HiGHS starts each
    solve from the last basis (locate–allocate solves one allocation LP per centre set,
    with only the travel costs different; at national scale its Pyomo build and compile
    took longer than its solve)."""

    def __init__(self, model: pyo.ConcreteModel, options: HighsOptions) -> None:
        self._compiled = _compile(model)
        _apply_options(self._compiled.highs, options, self._compiled.is_mip)
        self._compile_seconds: float | None = None  # charged to the first solve only

    def _columns(self, var: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cols, _keys = self._compiled.var_slices[var]
        present = cols >= 0
        return cols[present].astype(np.int32), np.asarray(values, dtype=float)[present]

    def set_costs(self, var: str, costs: np.ndarray) -> None:
        """Objective coefficients of component `var`, in its index order."""
        cols, values = self._columns(var, costs)
        self._compiled.highs.changeColsCost(len(cols), cols, values)

    def set_upper(self, var: str, upper: np.ndarray) -> None:
        """Upper bounds of component `var` (lower bounds stay 0), in its index order."""
        cols, values = self._columns(var, upper)
        self._compiled.highs.changeColsBounds(len(cols), cols, np.zeros(len(cols)), values)

    def solve(self, time_limit: float | None = None) -> Solution:
        if time_limit is not None:
            self._compiled.highs.setOptionValue("time_limit", max(0.01, float(time_limit)))
        sol = _run_compiled(self._compiled, seconds_compile=self._compile_seconds)
        self._compile_seconds = 0.0
        return sol
