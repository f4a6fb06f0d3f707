"""Greenfield design at scale: the 3,409 US places with population >= 15,000 (bundled
us-accounts data) carved into 50 territories, workload within ±10 % of the mean, travel only.

    python bench/design_scale.py [time_limit]     # prints one JSON line

`run(time_limit)` is what the bench harness calls: bound, incumbent, gap, seconds and where the
time went (model building vs HiGHS vs the numpy Lagrangian).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from optimizer.design import solve
from optimizer.domain import DesignData, Scenario
from optimizer.solve import Progress
from optimizer.validate import validate_accounts

ROOT = Path(__file__).resolve().parent.parent
MIN_POPULATION = 15_000
TERRITORIES = 50


def data() -> DesignData:
    acc = pd.read_csv(ROOT / "datasets" / "us-accounts" / "accounts.csv")
    acc = acc[acc["population"] >= MIN_POPULATION].drop(columns=["current_rep"])
    return DesignData(validate_accounts(acc.reset_index(drop=True), scenario(60).metric)[0])


def scenario(time_limit: float) -> Scenario:
    return Scenario.model_validate({
        "mode": "design", "territories": TERRITORIES, "metric": "haversine",
        "objective": {"travel": 1.0},
        "balance": {"workload": {"tolerance": 0.10, "hard": True}},
        "solver": {"time_limit": time_limit, "mip_gap": 0.01}})


def run(time_limit: float = 120.0) -> dict[str, Any]:
    d = data()
    phases: list[dict[str, Any]] = []

    def progress(p: Progress) -> None:
        phases.append({"phase": p.phase, "elapsed": round(p.elapsed, 2),
                       "incumbent": p.incumbent, "bound": p.bound, "message": p.message})
        print(json.dumps(phases[-1]), file=sys.stderr, flush=True)

    started = time.perf_counter()
    result = solve(d, scenario(time_limit), on_progress=progress)
    seconds = time.perf_counter() - started
    r = result.report
    return {"accounts": len(d.accounts), "territories": TERRITORIES,
            "status": r.status.value, "termination": r.termination.value,
            "objective": r.objective, "bound": r.bound, "gap": r.gap, "seconds": seconds,
            "seconds_build": r.seconds_build, "seconds_solve_highs": r.seconds_solve,
            "pricing": r.pricing, "phases": phases}


if __name__ == "__main__":
    print(json.dumps(run(float(sys.argv[1]) if len(sys.argv) > 1 else 120.0)))
