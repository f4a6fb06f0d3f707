"""Benchmark suite behind `make bench`: writes report.json (merged section by section) and
report.md (regenerated from report.json as a whole), with PNG plots, into --out (default bench/).

    python bench/run.py                                  # every section, full size, 3 runs
    python bench/run.py --only exactness,ladder --runs 3 # re-run some sections; others kept
    python bench/run.py --quick --out /tmp/bench         # tiny sizes, ~1–2 min (CI)
    python bench/run.py --merge /tmp/a /tmp/b            # sections measured elsewhere

Sections: exactness (OR-Library CPMP through the CLI; PuLP + CBC and spopt peers), ladder
(realignment and design at growing sizes), quality (price of balance, disruption frontier),
national (national realignment vs one HiGHS MIP over K nearest reps), design (greenfield
3,409 × 50, bench/design_scale.py), capacity (bench/capacity_curve.py).

Every measurement runs in a fresh process (bench/measure.py), so its peak RSS is its own.
Timings are medians of --runs runs of this engine; peers run --peer-runs times (default 1:
they mostly run to their time limits). Timings on a shared machine are noisy; peers are
measured in the same run so the ratios stay meaningful.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import data  # noqa: E402
from bench.report import render, write_plots  # noqa: E402

TIME_SCALE = 1.0  # --time-scale: every time limit is multiplied by it


def lim(seconds: float) -> float:
    return seconds * TIME_SCALE


SECTIONS = ("exactness", "ladder", "quality", "national", "design", "capacity")
WORK = HERE / ".runs" / "suite"


# ---------------------------------------------------------------------------------------------
# Children


def run_child(kind: str, spec: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    """One measurement in a fresh interpreter; its JSON line, or {"error": ...}."""
    cmd = [sys.executable, str(HERE / "measure.py"), kind, json.dumps(spec)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {timeout:.0f} s"}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return {"error": tail[0][-500:], "exit_code": done.returncode}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def repeat(runs: int, kind: str, spec: dict[str, Any], label: str,
           timeout: float = 3600) -> dict[str, Any]:
    """`runs` children; medians of the numeric fields, the first run's other fields, and
    every run's raw numbers under `runs`."""
    results = [run_child(kind, spec, timeout) for _ in range(runs)]
    ok = [r for r in results if "error" not in r]
    secs = [round(r.get("seconds", 0.0), 1) for r in ok]
    print(f"  {label}: {secs} s" + (f" ({results[0]['error']})" if not ok else ""), flush=True)
    if not ok:
        return results[0] | {"runs": len(results)}  # the error and any profile it carries
    merged = dict(ok[0])
    for key, value in ok[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [r[key] for r in ok if isinstance(r.get(key), int | float)]
            merged[key] = statistics.median(values)
    merged["runs"] = len(ok)
    merged["seconds_each"] = [r["seconds"] for r in ok]
    return merged


def _scenario(**update: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"mode": "align", "metric": "haversine", "circuity": 1.2,
                            "objective": {"travel": 1.0, "balance": 0.0, "disruption": 0.0},
                            "balance": {"workload": {"tolerance": 0.10, "hard": True}},
                            "solver": {"time_limit": 60, "mip_gap": 0.005}}
    for key, value in update.items():
        base[key] = value
    return base


def _bundled(name: str) -> dict[str, str]:
    d = data.datasets.get_dataset_or_raise(name)
    return {"accounts": str(d.file("accounts.csv")), "reps": str(d.file("reps.csv"))}


def _bundled_scenario(name: str) -> dict[str, Any]:
    from optimizer.io import read_mapping

    path = data.datasets.get_dataset_or_raise(name).file("scenario.yaml")
    assert path is not None
    return read_mapping(path)


# ---------------------------------------------------------------------------------------------
# Sections


def exactness(args: argparse.Namespace) -> dict[str, Any]:
    numbers = [1, 2] if args.quick else list(range(1, 21))
    limit = lim(60.0 if args.quick else 300.0)
    pulp_on = [1] if args.quick else numbers
    spopt_on: list[int] = [] if args.quick else numbers
    rows = []
    for n in numbers:
        inst = data.orlib_instance(n)
        spec = {"number": n, "folder": str(WORK / f"orlib-{n}"), "time_limit": limit}
        row: dict[str, Any] = {"number": n, "points": len(inst.accounts), "p": inst.p,
                               "capacity": inst.capacity, "optimum": inst.optimum,
                               "ours": repeat(args.runs, "cli_design", spec, f"ours #{n}")}
        if n in pulp_on:
            row["pulp"] = repeat(args.peer_runs, "pulp", spec, f"PuLP+CBC #{n}",
                                 timeout=limit * 3 + 120)
        if n in spopt_on:
            row["spopt"] = repeat(args.peer_runs, "spopt", spec, f"spopt #{n}",
                                  timeout=limit * 3 + 120)
        rows.append(row)
    return {"instances": rows, "time_limit": limit, "solver_peers": "CBC bundled with PuLP "
            f"{_version('pulp')}; spopt {_version('spopt')}",
            "spopt_note": (
                "spopt's PMedian takes facility_capacities (Σ_i w[i] z[i,j] ≤ C[j] y[j]) with "
                "binary z, so it solves the capacitated p-median itself. Its objective is "
                "demand-weighted (Σ w[i] d[i,j] z[i,j]) while the OR-Library optima are not, "
                "so it is given d[i,j] / w[i] as the cost matrix; solved by the same CBC.")}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


# (data set, accounts or None for all, reps, bundled reps, time limit s, gap)
Rung = tuple[str, int | None, int, bool, float, float]
LADDER_ALIGN: list[Rung] = [
    ("us-accounts", 1000, 10, False, 60, 0.005),
    ("us-accounts", 5000, 50, False, 60, 0.005),
    ("us-accounts", None, 100, True, 60, 0.005),
    ("us-accounts", None, 300, False, 120, 0.005),
    ("us-zips", None, 300, False, 300, 0.01),
]
LADDER_ALIGN_QUICK: list[Rung] = [("us-accounts", 300, 5, False, 30, 0.005)]
LADDER_DESIGN: list[tuple[str, int, int, float, float]] = [("us-accounts", 1000, 10, 120, 0.01)]
LADDER_DESIGN_QUICK: list[tuple[str, int, int, float, float]] = [("us-accounts", 200, 4, 30, 0.01)]


def ladder(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    wanted = None if args.rungs is None else set(args.rungs.split(","))
    for name, n, reps, bundled, base_limit, gap in (LADDER_ALIGN_QUICK if args.quick
                                                    else LADDER_ALIGN):
        if wanted is not None and _rung("", name, n, reps) not in wanted:
            continue
        limit = lim(base_limit)
        folder = WORK / f"ladder-{name}-{n or 'all'}-{reps}"
        files = data.ladder_files(name, n, reps, folder, bundled_reps=bundled)
        accounts = sum(1 for _ in files["accounts"].open()) - 1
        spec = {"accounts": str(files["accounts"]), "reps": str(files["reps"]),
                "out": str(folder / "out"),
                "scenario": _scenario(solver={"time_limit": limit, "mip_gap": gap})}
        m = repeat(args.runs, "align", spec, f"realign {accounts}×{reps}", timeout=limit * 6)
        m.pop("kpis", None)
        rows.append({"model": "realignment", "dataset": name, "accounts": accounts,
                     "reps": reps, "reps_source": "bundled" if bundled else "generated",
                     "time_limit": limit, "mip_gap": gap, **m})
    for name, n, k, base_limit, gap in LADDER_DESIGN_QUICK if args.quick else LADDER_DESIGN:
        if wanted is not None and _rung("design-", name, n, k) not in wanted:
            continue
        limit = lim(base_limit)
        folder = WORK / f"design-{name}-{n}-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        acc = data.sample_accounts(name, n).drop(columns=["current_rep"])
        acc.to_csv(folder / "accounts.csv", index=False)
        spec = {"accounts": str(folder / "accounts.csv"), "out": str(folder / "out"),
                "scenario": _scenario(mode="design", territories=k, circuity=1.0,
                                      solver={"time_limit": limit, "mip_gap": gap})}
        m = repeat(args.runs, "design", spec, f"design {len(acc)}→{k}", timeout=limit * 6)
        rows.append({"model": "design", "dataset": name, "accounts": len(acc),
                     "reps": k, "reps_source": "territories", "time_limit": limit,
                     "mip_gap": gap, **m})
    return {"rows": rows, "sampling": (
        f"accounts: a fixed-seed sample of the data set (numpy default_rng({data.SEED}), "
        "without replacement, file order kept) or all of it; reps: the bundled 100 for the "
        "whole us-accounts × 100, otherwise generated: workload-weighted k-means homes (seed "
        f"{data.SEED}) moved to the nearest account, capacity = total workload / N × "
        f"{data.CAPACITY_HEADROOM}")}


def _rung(prefix: str, dataset: str, n: int | None, reps: int) -> str:
    """A rung's name for --rungs: 1kx10, 17kx100, 41kx300 (us-zips), design-1kx10."""
    size = n if n is not None else len(data.national_accounts(dataset))
    return f"{prefix}{round(size / 1000)}kx{reps}" if size >= 1000 else f"{prefix}{size}x{reps}"


TOLERANCES = [0.02, 0.05, 0.10, 0.15, 0.20]
SHARES = [0.0, 0.05, 0.10, 0.20, 0.30, 0.50, 1.0]


def quality(args: argparse.Namespace) -> dict[str, Any]:
    name = args.quality_data or ("us-regional" if args.quick else "us-accounts")
    limit = lim(30 if args.quick else 120)
    files = _bundled(name)
    base = _bundled_scenario(name)
    price = []
    for tol in [0.05, 0.20] if args.quick else TOLERANCES:
        sc = base | {"balance": {"workload": {"tolerance": tol, "hard": True}},
                     "solver": {"time_limit": limit, "mip_gap": 0.005}}
        m = run_child("align", {**files, "scenario": sc}, timeout=limit * 6)
        print(f"  price of balance ±{tol:.0%}: {m.get('seconds', 0):.1f} s "
              f"{m.get('error', '')}", flush=True)
        price.append({"tolerance": tol, **_quality_point(m)})
    frontier = []
    for share in [0.10, 0.50] if args.quick else SHARES:
        sc = base | {"objective": {"travel": 0.1, "balance": 1.0, "disruption": 0.0},
                     "balance": {"workload": {"tolerance": 0.02, "hard": False}},
                     "disruption": {"measure": "accounts",
                                    "max_share": None if share >= 1 else share},
                     "solver": {"time_limit": limit, "mip_gap": 0.01}}
        m = run_child("align", {**files, "scenario": sc}, timeout=limit * 6)
        print(f"  disruption ≤ {share:.0%}: {m.get('seconds', 0):.1f} s "
              f"{m.get('error', '')}", flush=True)
        frontier.append({"max_share": share, **_quality_point(m)})
    return {"dataset": name, "time_limit": limit, "price_of_balance": price,
            "frontier": frontier, "frontier_scenario": (
                "objective balance 1.0 + travel 0.1; workload soft band ±2 % of fair share; "
                "capacity (1,600 h per rep) hard; accounts moved ≤ max_share (1.0 = no "
                "limit)")}


def _quality_point(m: dict[str, Any]) -> dict[str, Any]:
    if "error" in m:
        return {"status": "error", "error": m["error"]}
    if m["status"] == "infeasible":
        return {"status": "infeasible", "reasons": m["reasons"]}
    after = m["kpis"]["after"]
    before = m["kpis"].get("before")
    w = after["balance"]["workload"]
    return {"status": m["status"], "gap": m["gap"], "seconds": m["seconds"],
            "travel_over_ideal": m["terms"]["travel_over_ideal"],
            "travel_total": after["travel"]["total"],
            "weighted_mean_km": after["travel"]["workload_weighted_mean_distance"],
            "workload_max_over_fair": w["max_over_fair"],
            "workload_min_over_fair": w["min_over_fair"], "workload_cv": w["cv"],
            "accounts_moved_share": after["disruption"]["accounts_moved_share"],
            "workload_moved_share": after["disruption"]["workload_moved_share"],
            "before": None if before is None else {
                "workload_max_over_fair": before["balance"]["workload"]["max_over_fair"],
                "workload_min_over_fair": before["balance"]["workload"]["min_over_fair"],
                "workload_cv": before["balance"]["workload"]["cv"],
                "travel_total": before["travel"]["total"]}}


def national(args: argparse.Namespace) -> dict[str, Any]:
    name = "us-regional" if args.quick else "us-accounts"
    peer_k = 3 if args.quick else 30
    sc = _bundled_scenario(name)
    sc["solver"] = {**sc["solver"], "time_limit": lim(sc["solver"]["time_limit"])}
    spec: dict[str, Any] = {**_bundled(name), "scenario": sc}
    ours = repeat(args.runs, "align", spec, "ours")
    if "error" in ours:
        return {"dataset": name, "error": ours["error"]}
    peer = repeat(args.peer_runs if not args.quick else 1, "peer",
                  spec | {"k": peer_k, "bound": ours["bound"]}, f"peer (K = {peer_k})")
    ratio = (peer["seconds"] / ours["seconds"]) if peer.get("objective") is not None else None
    return {"dataset": name, "ours": ours, "peer": peer, "k_nearest": peer_k,
            "ratio_seconds_peer_over_ours": ratio}


def design(args: argparse.Namespace) -> dict[str, Any]:
    if not (HERE / "design_scale.py").exists():
        return {"available": False}
    m = repeat(1 if args.quick else args.runs, "design_scale",
               {"time_limit": lim(30 if args.quick else 120)}, "design 3,409 → 50",
               timeout=lim(1800))
    return {"available": True, **m}


def capacity(args: argparse.Namespace) -> dict[str, Any]:
    if not (HERE / "capacity_curve.py").exists():
        return {"available": False}
    m = run_child("capacity", {"quick": args.quick}, timeout=3600)
    print(f"  capacity curve: {m.get('seconds', 0):.1f} s {m.get('error', '')}", flush=True)
    return {"available": True, **m}


RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "exactness": exactness, "ladder": ladder, "quality": quality, "national": national,
    "design": design, "capacity": capacity}


# ---------------------------------------------------------------------------------------------
# Report file


def load_report(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"sections": {}}
    report = json.loads(path.read_text())
    if "sections" not in report:  # the single-section format before the suite: national
        old = {"dataset": report.get("dataset"), "ours": report.get("ours"),
               "peer": report.get("peer"), "k_nearest": report.get("peer", {}).get("k_nearest"),
               "ratio_seconds_peer_over_ours": report.get("ratio_seconds_peer_over_ours"),
               "meta": {"quick": False, "runs": report.get("runs"), "peer_runs":
                        report.get("runs"), "measured": "before the suite",
                        "wall_seconds": report.get("wall_seconds")}}
        return {"sections": {"national": old} if report.get("ours") else {}}
    return dict(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None,
                        help=f"comma-separated sections ({', '.join(SECTIONS)}); default all")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="copy the sections of these report.json files (or of the "
                             "report.json in these folders) into --out; then run only what "
                             "--only names")
    parser.add_argument("--rungs", default=None,
                        help="ladder rungs to run, e.g. 17kx100,41kx300,design-1kx10 (all)")
    parser.add_argument("--quality-data", default=None,
                        help="bundled data set of the quality section (us-accounts; quick: "
                             "us-regional)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one run each (CI); needs --out elsewhere than bench/")
    parser.add_argument("--runs", type=int, default=None, help="runs of this engine (3)")
    parser.add_argument("--peer-runs", type=int, default=1, help="runs of each peer (1)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply every time limit (a loaded machine; the report says so)")
    args = parser.parse_args()
    everything = args.only is None and not args.merge
    chosen = [s.strip() for s in (args.only or (",".join(SECTIONS) if everything else ""))
              .split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    out = (args.out or (Path("out/bench-quick") if args.quick else HERE)).resolve()
    if args.quick and out == HERE:
        parser.error("--quick would overwrite the committed report: give another --out")
    if args.quick and "design" in chosen and everything:
        chosen.remove("design")  # the 3,409 × 50 design is not quick; ask for it by name
    args.runs = args.runs or (1 if args.quick else 3)
    global TIME_SCALE
    TIME_SCALE = args.time_scale
    out.mkdir(parents=True, exist_ok=True)
    report = load_report(out / "report.json")
    for other in args.merge:
        path = other / "report.json" if other.is_dir() else other
        report["sections"].update(load_report(path)["sections"])
    report["machine"] = {"python": platform.python_version(), "cpus": _cpus(),
                         "platform": platform.platform()}
    for name in chosen:
        print(f"[{name}]", flush=True)
        started = time.time()
        load_before = os.getloadavg()[0]
        section = RUNNERS[name](args)
        section["meta"] = {"load_average": [round(load_before, 1),
                                            round(os.getloadavg()[0], 1)],
                           "quick": args.quick, "runs": args.runs, "peer_runs": args.peer_runs,
                           "time_scale": args.time_scale, "cpus": _cpus(),
                           "measured": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                           "wall_seconds": time.time() - started}
        report["sections"][name] = section
        # Written after every section, so an interrupted run keeps what it measured.
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    plots = write_plots(report, out)
    (out / "report.md").write_text(render(report, plots))
    print(f"wrote {out / 'report.md'} and {out / 'report.json'}")


def _cpus() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
