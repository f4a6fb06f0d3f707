"""Benchmarks behind `make bench`: writes bench/report.md and bench/report.json.

Each measurement runs in a fresh process (so peak RSS is that run's alone) and is repeated;
the report gives medians. Timings are noisy on a shared 2-core machine, so the peer — the
textbook approach, one HiGHS MIP over each account's K nearest reps — is measured in the same
run and compared by ratio.

    python bench/run.py            # national realignment, 3 runs each
    python bench/run.py --quick    # the regional data set, 1 run each (CI uses this)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run_child(kind: str, dataset: str, extra: dict[str, Any]) -> dict[str, Any]:
    """One measurement in a fresh interpreter; returns its JSON line."""
    cmd = [sys.executable, str(HERE / "measure.py"), kind, dataset, json.dumps(extra)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small data, one run each")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    dataset = "us-regional" if args.quick else "us-accounts"
    runs = args.runs or (1 if args.quick else 3)
    peer_k = 3 if args.quick else 30
    started = time.time()

    ours = [run_child("align", dataset, {}) for _ in range(runs)]
    print(f"ours: {[round(r['seconds'], 1) for r in ours]} s", flush=True)
    peer = [run_child("peer", dataset, {"k": peer_k, "bound": ours[0]["bound"]})
            for _ in range(runs)]
    print(f"peer: {[round(r['seconds'], 1) for r in peer]} s", flush=True)

    keys = ("seconds", "seconds_build", "seconds_solve", "seconds_other", "gap", "objective",
            "bound", "peak_rss_mb")
    report = {
        "dataset": dataset,
        "runs": runs,
        "machine": {"python": platform.python_version(), "cpus": _cpus(),
                    "platform": platform.platform()},
        "ours": {k: median_of(ours, k) for k in keys} | {
            "pairs": ours[0]["pairs"], "kpis": ours[0]["kpis"], "status": ours[0]["status"]},
        "peer": {k: median_of(peer, k) for k in keys} | {"k_nearest": peer_k,
                                                        "status": peer[0]["status"]},
        "all_runs": {"ours": ours, "peer": peer},
        "wall_seconds": time.time() - started,
    }
    o, p = report["ours"], report["peer"]
    report["ratio_seconds_peer_over_ours"] = (p["seconds"] / o["seconds"]) if o["seconds"] else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "report.md").write_text(render(report))
    print(render(report))


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _ratio_line(r: dict[str, Any]) -> str:
    if r["peer"]["objective"] is None:
        return ("The peer found no plan within its time limit, so there is no time ratio: our "
                "time is a proven gap, its time is the limit.")
    return (f"Peer time / our time: **{_fmt(r['ratio_seconds_peer_over_ours'], '.1f')}×** (the "
            "peer stops at its time limit or at its own gap, measured against its restricted "
            "problem; the gap above is recomputed against the full LP bound).")


def render(r: dict[str, Any]) -> str:
    o, p = r["ours"], r["peer"]
    before, after = o["kpis"]["before"], o["kpis"]["after"]
    pairs = o["pairs"]
    lines = [
        f"# Benchmark report: realignment of `{r['dataset']}`",
        "",
        f"Medians of {r['runs']} run(s), each in a fresh process, on {r['machine']['cpus']} "
        f"CPU(s) ({r['machine']['platform']}, Python {r['machine']['python']}). "
        "Gaps are against the LP bound over *every* account–rep pair.",
        "",
        "| | this engine | peer: one HiGHS MIP over K nearest reps |",
        "|---|---|---|",
        f"| status | {o['status']} | {p['status']} (K = {p['k_nearest']}) |",
        f"| total seconds | {_fmt(o['seconds'], '.1f')} | {_fmt(p['seconds'], '.1f')} |",
        f"| Pyomo model build, s | {_fmt(o['seconds_build'], '.1f')} | "
        f"{_fmt(p['seconds_build'], '.1f')} |",
        f"| HiGHS (compile + solve), s | {_fmt(o['seconds_solve'], '.1f')} | "
        f"{_fmt(p['seconds_solve'], '.1f')} |",
        f"| other (read, prepare, price, KPIs), s | {_fmt(o['seconds_other'], '.1f')} | "
        f"{_fmt(p['seconds_other'], '.1f')} |",
        f"| objective (travel / ideal travel) | {_fmt(o['objective'], '.5f')} | "
        f"{_fmt(p['objective'], '.5f')} |",
        f"| proven gap to the full-problem bound | {_fmt(o['gap'], '.3%')} | "
        f"{_fmt(p['gap'], '.3%')} |",
        f"| peak RSS, MB | {_fmt(o['peak_rss_mb'], ',.0f')} | {_fmt(p['peak_rss_mb'], ',.0f')} |",
        "",
        _ratio_line(r),
        "",
        f"Pairs: {pairs['pairs_allowed']:,} allowed and priced; {pairs['pairs_in_lp']:,} in the "
        f"final LP ({pairs['pairs_priced_in']:,} priced in by duals); {pairs['pairs_in_mip']:,} "
        "in the final MIP.",
        "",
        "## Before and after (this engine)",
        "",
        "| KPI | before | after |",
        "|---|---|---|",
    ]
    rows = [
        ("workload max / fair share", lambda k: k["balance"]["workload"]["max_over_fair"], ".3f"),
        ("workload min / fair share", lambda k: k["balance"]["workload"]["min_over_fair"], ".3f"),
        ("workload CV", lambda k: k["balance"]["workload"]["cv"], ".3f"),
        ("territories within ±10 %", lambda k: k["balance"]["workload"]
         ["share_within_tolerance"], ".0%"),
        ("reps over capacity", lambda k: k["utilisation"]["over_capacity_reps"], "d"),
        ("travel (visits × km)", lambda k: k["travel"]["total"], ",.0f"),
        ("workload-weighted mean km", lambda k: k["travel"]["workload_weighted_mean_distance"],
         ",.1f"),
        ("accounts moved", lambda k: k["disruption"]["accounts_moved_share"], ".1%"),
        ("workload moved", lambda k: k["disruption"]["workload_moved_share"], ".1%"),
    ]
    for name, get, spec in rows:
        lines.append(f"| {name} | {format(get(before), spec)} | {format(get(after), spec)} |")
    lines += ["", f"Benchmark wall time: {r['wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
