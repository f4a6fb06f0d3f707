"""The HiGHS wrapper: columns, starts and values map to the right Pyomo variables."""

from __future__ import annotations

import pyomo.environ as pyo

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
