"""Contiguity beyond the exact method: a square grid of units (tests/optimizer/grids.py)
realigned among reps, or designed into territories, with `contiguity: true` through the CLI.

    python bench/contiguity_grid.py SIDE COUNT [--design] [--limit S] [--tolerance T]

prints one JSON line: wall seconds of the CLI run, status, objective, bound, gap, the
contiguity KPIs (method, repair moves, pairs split again, parts left unfixed) and the
territories in more than one piece, recounted from assignments.csv and the units file
(geo.unit_components).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optimizer.geo import load_units, unit_components  # noqa: E402
from tests.optimizer.grids import write_grid  # noqa: E402  (repo root on path)


def run(side: int, count: int, design: bool, limit: float, tolerance: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_grid(folder, side, count)
        scenario = folder / "s.yaml"
        lines = ["contiguity: true", f"balance: {{workload: {{tolerance: {tolerance}}}}}",
                 f"solver: {{time_limit: {limit}}}"]
        if design:
            lines.append("centres: units")
        scenario.write_text("\n".join(lines) + "\n")
        out = folder / "out"
        command = [sys.executable, "-m", "optimizer.cli", "design" if design else "align",
                   "--accounts", str(paths["accounts"]), "--units", str(paths["units"]),
                   "--scenario", str(scenario), "--out", str(out), "--quiet"]
        command += ["--territories", str(count)] if design else ["--reps", str(paths["reps"])]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
        summary = json.loads((out / "summary.json").read_text())
        accounts = pd.read_csv(paths["accounts"])
        assignments = pd.read_csv(out / "assignments.csv")
        parts = unit_components(accounts, assignments, load_units(paths["units"]))
    c = summary["kpis"]["contiguity"]
    return {"case": f"{'design' if design else 'align'} {side}x{side} -> {count}",
            "limit": limit, "wall": round(wall, 1), "seconds": round(summary["seconds"], 1),
            "status": summary["status"], "objective": summary["objective"],
            "bound": summary["bound"], "gap": summary["gap"], "method": c.get("method"),
            "repair_moves": c.get("repair_moves"), "border_resplits": c.get("border_resplits"),
            "unfixed_parts": c.get("unfixed_parts"),
            "territories_in_pieces": sum(n > 1 for n in parts.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("side", type=int)
    parser.add_argument("count", type=int, help="reps (align) or territories (--design)")
    parser.add_argument("--design", action="store_true")
    parser.add_argument("--limit", type=float, default=60.0)
    parser.add_argument("--tolerance", type=float, default=0.10)
    a = parser.parse_args()
    print(json.dumps(run(a.side, a.count, a.design, a.limit, a.tolerance)))


if __name__ == "__main__":
    main()
