"""Capacity curve on the bundled us-accounts data: how many reps the national workload and
travel need (optimizer.capacity.sweep), with the seconds each design of the sweep takes.

    python bench/capacity_curve.py [--quick]      # prints one JSON line

`run(quick)` is what the bench harness calls. Full: all 16,943 accounts, N = 80 … 120 in steps
of 10. Quick: the 1,722 accounts of Georgia, Florida, Alabama and South Carolina, N = 12 … 18
in steps of 2.

Assumptions (stated in the report): rep capacity = the mean capacity of datasets/us-accounts/
reps.csv (1,560 h: 1,600 h, every tenth rep 1,200 h); candidate centres = the segment-A places
(population ≥ 100,000), where reps would be based; haversine × 1.2 (road km); 80 km/h; four
visits per out-and-back trip; target utilisation 100 %; workload within ±10 % of the mean.
Designs start cold (design.solve takes no warm start).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from optimizer.capacity import (  # noqa: E402
    SizingResult,
    SizingSettings,
    capacity_from_reps,
    sweep,
    write_capacity_curve_png,
)
from optimizer.domain import DesignData, DistanceMetric  # noqa: E402
from optimizer.validate import validate_accounts  # noqa: E402

DATA = ROOT / "datasets" / "us-accounts"
QUICK_STATES = ("GA", "FL", "AL", "SC")
SPEED_KMH = 80.0
VISITS_PER_TRIP = 4.0
TARGET = 1.0


def inputs(quick: bool) -> tuple[DesignData, list[str], float]:
    """The accounts (without today's reps: sizing is greenfield), candidate centres and the
    rep capacity."""
    acc = pd.read_csv(DATA / "accounts.csv", dtype={"account_id": str})
    if quick:
        acc = acc[acc["state"].isin(QUICK_STATES)]
    acc = acc.drop(columns=["current_rep"]).reset_index(drop=True)
    frame, issues = validate_accounts(acc, DistanceMetric.haversine)
    if issues:
        raise SystemExit("\n".join(str(i) for i in issues))
    centres = frame.loc[frame["segment"] == "A", "account_id"].astype(str).tolist()
    capacity = capacity_from_reps(pd.read_csv(DATA / "reps.csv"), "reps.csv")
    return DesignData(frame), centres, capacity


def settings(quick: bool, centres: list[str]) -> SizingSettings:
    low, high, step = (12, 18, 2) if quick else (80, 120, 10)
    return SizingSettings(
        travel_speed=SPEED_KMH, visits_per_trip=VISITS_PER_TRIP, target_utilisation=TARGET,
        min_territories=low, max_territories=high, step=step,
        time_limit=30.0 if quick else 180.0, mip_gap=0.01,
        scenario={"metric": "haversine", "circuity": 1.2, "centres": centres,
                  "balance": {"workload": {"tolerance": 0.10, "hard": True}}})


def markdown(result: SizingResult, quick: bool, accounts: int) -> str:
    what = (f"{accounts:,} accounts of {', '.join(QUICK_STATES)}" if quick
            else f"all {accounts:,} accounts")
    lines = [
        f"Sizing sweep on {what}: rep capacity {result.capacity_hours:,.0f} h (mean of "
        f"reps.csv), {SPEED_KMH:g} km/h, {VISITS_PER_TRIP:g} visits per trip, target "
        f"{result.target_utilisation:.0%}, workload within ±10 % of the mean, candidate "
        "centres = segment-A places; each design starts cold. Recommended N: "
        f"**{result.recommended}** (workload alone needs ≥ {result.workload_lower_bound}).",
        "",
        "| N | status | seconds | gap | max util. | mean util. | travel h | workload CV "
        "| fits |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in result.curve.to_dict("records"):
        def pct(v: Any) -> str:
            return "n/a" if v is None or pd.isna(v) else f"{v:.1%}"

        gap = "n/a" if r["gap"] is None or pd.isna(r["gap"]) else f"{r['gap']:.2%}"
        travel = "n/a" if pd.isna(r["travel_hours"]) else f"{r['travel_hours']:,.0f}"
        cv = "n/a" if pd.isna(r["workload_cv"]) else f"{r['workload_cv']:.3f}"
        mark = " ◀ recommended" if r["recommended"] else ""
        lines.append(f"| {r['territories']}{mark} | {r['status']} | {r['seconds']:.1f} | {gap} "
                     f"| {pct(r['utilisation_max'])} | {pct(r['utilisation_mean'])} | {travel} "
                     f"| {cv} | {'yes' if r['fits'] else 'no'} |")
    lines += ["", *(f"- {n}" for n in result.notes)]
    return "\n".join(lines)


def run(quick: bool, png: Path | None = None) -> dict[str, Any]:
    """The sweep's rows (seconds per design included), the recommendation and a Markdown
    table; the curve's PNG is written to `png` when given."""
    t0 = time.perf_counter()
    data, centres, capacity = inputs(quick)
    s = settings(quick, centres)
    result = sweep(data, s, capacity_hours=capacity)
    if png is not None:
        write_capacity_curve_png(png, result)
    rows = result.curve.drop(columns=["reason"]).to_dict("records")
    return {"quick": quick, "accounts": len(data.accounts), "candidates": len(centres),
            "capacity_hours": capacity, "travel_speed": SPEED_KMH,
            "visits_per_trip": VISITS_PER_TRIP, "target_utilisation": TARGET,
            "time_limit_per_design": s.time_limit, "recommended": result.recommended,
            "workload_lower_bound": result.workload_lower_bound, "rows": rows,
            "reasons": result.curve["reason"].tolist(), "notes": result.notes,
            "seconds_per_design": [r["seconds"] for r in rows],
            "seconds": time.perf_counter() - t0, "markdown": markdown(result, quick,
                                                                      len(data.accounts))}


if __name__ == "__main__":
    from optimizer.io import json_safe

    quick = "--quick" in sys.argv[1:]
    print(json.dumps(json_safe(run(quick))))
