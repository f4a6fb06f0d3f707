"""Where the national greenfield gap lies (issue 6's missed target): the LP relaxation of
(1)–(6) (`optimizer/design.py`) restricted to each place's K nearest candidate centres and
the pairs of the heuristic's plan, solved by HiGHS. Restricting pairs can only raise an
LP, so plan − LP(K) is at most the plan's gap to the full LP, and plans that use those
pairs alone are at least LP(K): it shows how far the plan is from the best such plan, and
how many of the LP's open centres are fractional.

    python bench/nearest_lp.py 40     # prints one JSON line; K = 40 about 5 min, 100 about 30

It is an experiment behind the report, not the product's method (that LP is far too slow at
this size: the x ≤ y rows make it very degenerate).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.design_scale import data, scenario
from optimizer.design import build, improve_by_neighbours, locate_allocate, prepare
from optimizer.solve import HighsOptions, run_highs

HEURISTIC_SECONDS = 30.0  # locate–allocate, then pair re-optimisation (the solve's step 1)


def run(k: int) -> dict[str, object]:
    p = prepare(data(), scenario(120))
    started = time.perf_counter()
    plan = locate_allocate(p, started + HEURISTIC_SECONDS, None)
    assert plan is not None, "locate–allocate found no plan"
    cost, centre_of = improve_by_neighbours(p, plan, started + HEURISTIC_SECONDS, None)
    travel = np.where(p.allowed, p.travel, np.inf)
    keep = np.zeros_like(p.allowed)
    np.put_along_axis(keep, np.argpartition(travel, k - 1, axis=1)[:, :k], True, axis=1)
    keep[np.arange(p.n_units), centre_of] = True
    u, j = np.nonzero(keep)
    t0 = time.perf_counter()
    lp = run_highs(build(p, u, j, relaxed=True), HighsOptions(lp_method="ipm"))
    y = np.asarray(lp.values["y"]) if lp.has_solution else np.zeros(0)
    return {"k": k, "pairs": len(u), "plan": round(cost), "termination": lp.termination.value,
            "lp": None if lp.objective is None else round(lp.objective),
            "plan_over_lp": None if not lp.objective else round(cost / lp.objective - 1, 4),
            "open_centres": int((y > 1e-6).sum()),
            "fractional_centres": int(((y > 1e-6) & (y < 1 - 1e-6)).sum()),
            "lp_seconds": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 40)))
