"""The HiGHS wrapper: columns, starts and values map to the right Pyomo variables."""

from __future__ import annotations

import itertools

import pyomo.environ as pyo
import pytest

from optimizer import solve
from optimizer.solve import HighsOptions, Termination, _compile, run_highs


def _model() -> pyo.ConcreteModel:
    """Pick one of five items at least cost; items 0–2 are fixed shut (as closed centres
    are), so only 3 and 4 are columns."""
    m = pyo.ConcreteModel()
    m.y = pyo.Var(range(5), domain=pyo.Binary)
    for j in range(3):
        m.y[j].fix(0)
    m.pick = pyo.Constraint(expr=sum(m.y[j] for j in range(5)) == 1)
    m.obj = pyo.Objective(expr=sum((10 - j) * m.y[j] for j in range(5)))
    return m


def test_fixed_variables_take_no_column_and_free_ones_keep_their_own() -> None:
    compiled = _compile(_model())
    cols, keys = compiled.var_slices["y"]
    assert keys == [0, 1, 2, 3, 4]
    assert list(cols[:3]) == [-1, -1, -1]
    assert len({int(c) for c in cols[3:]}) == 2 and (cols[3:] >= 0).all()
    assert compiled.highs.getLp().num_col_ == 2  # no padding columns


def test_start_and_values_land_on_the_right_variables() -> None:
    m = _model()
    # Start from the dearer item 3; the optimum is item 4 (cost 6 against 7).
    seen: list[float | None] = []
    sol = run_highs(m, HighsOptions(time_limit=10, mip_gap=0), start={"y": {3: 1.0}},
                    on_progress=lambda inc, _bnd: seen.append(inc))
    assert sol.termination is Termination.optimal
    assert list(sol.values["y"]) == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert sol.objective == 6.0
    fixed_to_one = _model()
    fixed_to_one.y[0].unfix()
    fixed_to_one.y[4].fix(1)
    fixed_to_one.y[3].fix(0)
    sol = run_highs(fixed_to_one, HighsOptions(time_limit=10, mip_gap=0))
    assert list(sol.values["y"]) == [0.0, 0.0, 0.0, 0.0, 1.0]  # a fixed 1 reads back as 1


def test_runs_may_ask_for_different_thread_counts() -> None:
    """HiGHS keeps one thread scheduler per process; a run asking for another count than the
    last (a scenario's solver.threads after a default run) still solves, to the same optimum."""
    weights = [12, 7, 11, 8, 9, 6, 13, 5]
    values = [w + i % 3 for i, w in enumerate(weights)]
    best = max(sum(v for v, on in zip(values, pick, strict=True) if on)
               for pick in itertools.product([0, 1], repeat=8)
               if sum(w for w, on in zip(weights, pick, strict=True) if on) <= 30)
    for threads in (None, 1, 2, None, 1):
        m = pyo.ConcreteModel()
        m.x = pyo.Var(range(8), domain=pyo.Binary)
        m.cap = pyo.Constraint(expr=sum(w * m.x[i] for i, w in enumerate(weights)) <= 30)
        m.obj = pyo.Objective(expr=-sum(v * m.x[i] for i, v in enumerate(values)))
        sol = run_highs(m, HighsOptions(time_limit=10, mip_gap=0, threads=threads))
        assert sol.termination is Termination.optimal, threads
        assert sol.objective == -best


def test_the_time_limit_covers_compiling_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller's time limit is its budget for the call: the seconds spent compiling the
    model (over a second for a large design) come off what HiGHS is given."""
    compiled: list[solve._Compiled] = []

    def slow_compile(model: pyo.ConcreteModel) -> solve._Compiled:
        compiled.append(_compile(model))
        compiled[-1].seconds = 4.0
        return compiled[-1]

    monkeypatch.setattr(solve, "_compile", slow_compile)
    sol = run_highs(_model(), HighsOptions(time_limit=10, mip_gap=0))
    assert sol.termination is Termination.optimal and sol.seconds_compile == 4.0
    assert compiled[0].highs.getOptionValue("time_limit")[1] == 6.0
