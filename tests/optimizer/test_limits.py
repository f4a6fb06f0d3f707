"""Time limits keep the incumbent with its gap; cancellation stops a run; progress flows."""

from __future__ import annotations

import pytest

from optimizer.alignment import solve
from optimizer.domain import Scenario
from optimizer.errors import SolveCancelledError
from optimizer.solve import Progress
from tests.conftest import make_instance

HARD = {  # soft balance and a disruption limit make the LP bound weak: a real search
    "objective": {"travel": 1.0, "balance": 1.0},
    "balance": {"workload": {"tolerance": 0.1}, "potential": {"tolerance": 0.05, "hard": False}},
    "disruption": {"max_share": 0.5},
}


def test_time_limit_returns_incumbent_and_gap() -> None:
    inst = make_instance(400, 12, 21)
    inst.reps["capacity"] = 3000.0
    sc = Scenario.model_validate({**HARD, "solver": {"time_limit": 3, "mip_gap": 0.0}})
    seen: list[Progress] = []
    result = solve(inst.data(sc), sc, on_progress=seen.append)
    r = result.report
    assert r.status.value in ("feasible", "optimal")
    assert r.bound <= r.objective + 1e-9
    if r.status.value == "feasible":
        assert r.termination.value == "time_limit" and r.gap > 0
    assert len(result.assignments) == 400
    phases = [p.phase for p in seen]
    assert phases[0] == "prepare" and "lp" in phases and phases[-1] == "done"
    mip = [p for p in seen if p.phase == "mip" and p.incumbent is not None]
    assert mip and all(p.bound is None or p.bound <= p.incumbent + 1e-9 for p in mip)


def test_cancel_before_any_plan() -> None:
    inst = make_instance(200, 8, 22)
    inst.reps["capacity"] = 3000.0
    sc = Scenario.model_validate(HARD)
    with pytest.raises(SolveCancelledError):
        solve(inst.data(sc), sc, should_stop=lambda: True)


def test_time_out_before_the_lp_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """No plan exists before the LP relaxation is solved; a limit that ends it first (the
    national data given 10 s) is a plain message with what to change, not a solver status."""
    from optimizer import alignment
    from optimizer.errors import SolverError
    from optimizer.solve import Solution, SolutionStatus, Termination

    def lp_out_of_time(*_: object, **__: object) -> Solution:
        return Solution(Termination.time_limit, SolutionStatus.none, None, None, 0.0, 1.0)

    monkeypatch.setattr(alignment, "run_highs", lp_out_of_time)
    inst = make_instance(200, 8, 22)
    inst.reps["capacity"] = 3000.0
    sc = Scenario.model_validate({"solver": {"time_limit": 10}})
    with pytest.raises(SolverError, match=r"no plan found within the time limit \(10 s\): .*"
                                          r"pricing round 1, [\d,]+ account–rep pairs\)\. "
                                          r"Raise solver\.time_limit"):
        solve(inst.data(sc), sc)
