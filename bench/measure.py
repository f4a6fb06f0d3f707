"""One benchmark measurement in its own process; prints one JSON line.

    python bench/measure.py align us-accounts '{}'
    python bench/measure.py peer  us-accounts '{"k": 30, "bound": 1.2775}'
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

from optimizer import datasets
from optimizer.alignment import Pairs, Scaled, build, solve
from optimizer.io import read_alignment, read_scenario
from optimizer.problem import prepare
from optimizer.solve import HighsOptions, relative_gap, run_highs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    kind, name, extra = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    started = time.perf_counter()
    d = datasets.get_dataset_or_raise(name)
    sc = read_scenario(d.file("scenario.yaml"))
    data = read_alignment(d.file("accounts.csv"), d.file("reps.csv"), sc)
    if kind == "align":
        result = solve(data, sc)
        r = result.report
        total = time.perf_counter() - started
        out = {"status": r.status.value, "seconds": total, "seconds_build": r.seconds_build,
               "seconds_solve": r.seconds_solve,
               "seconds_other": total - r.seconds_build - r.seconds_solve,
               "objective": r.objective, "bound": r.bound, "gap": r.gap, "pairs": r.pricing,
               "kpis": {"before": result.kpis["before"], "after": result.kpis["after"]}}
    else:
        # The textbook approach: one MIP over each account's k nearest reps, solved by HiGHS
        # with the scenario's time limit and gap.
        p = prepare(data, sc)
        s = Scaled.of(p)
        k = int(extra["k"])
        order = np.argsort(np.where(p.allowed, p.travel, np.inf), axis=1)[:, :k]
        mask = np.zeros_like(p.allowed)
        np.put_along_axis(mask, order, True, axis=1)
        mask &= p.allowed
        t = time.perf_counter()
        model = build(s, Pairs.from_mask(mask))
        seconds_build = time.perf_counter() - t
        sol = run_highs(model, HighsOptions(time_limit=sc.solver.time_limit,
                                            mip_gap=sc.solver.mip_gap))
        total = time.perf_counter() - started
        objective = None if sol.objective is None else sol.objective / s.obj_scale
        out = {"status": sol.termination.value, "seconds": total, "seconds_build": seconds_build,
               "seconds_solve": sol.seconds_solve + sol.seconds_compile,
               "seconds_other": total - seconds_build - sol.seconds_solve - sol.seconds_compile,
               "objective": objective, "bound": extra.get("bound"),
               "gap": relative_gap(objective, extra.get("bound"))}
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
