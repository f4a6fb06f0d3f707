"""One benchmark measurement in its own process; prints one JSON line (the last on stdout).

    python bench/measure.py KIND '{"spec": ...}'

Kinds: align (this engine's realignment, library API), peer (one HiGHS MIP over each
account's K nearest reps), design (greenfield, library API), cli_design (an OR-Library
instance through the public `territory design` CLI in a subprocess), pulp / spopt (the OR-Library
peers, bench/peers.py), design_scale (bench/design_scale.py), capacity (bench/capacity_curve.py).

Every kind reports `seconds` (wall time of the work, imports excluded), `seconds_imports`,
and `peak_rss_mb` (this process's peak resident set, or the CLI subprocess's for cli_design).
Realignment and design also give a phase timeline (phase, seconds, RSS MB at its start), the
profile used to say where a missed target goes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from optimizer.errors import InfeasibleScenarioError, SolverError  # noqa: E402
from optimizer.io import read_alignment, read_design, scenario_from_dict, write_tables  # noqa: E402
from optimizer.solve import Progress  # noqa: E402

IMPORTED = time.time()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ChildPeak:
    """Peak RSS of this process's descendants (the CLI, CBC), sampled from /proc VmHWM.

    getrusage(RUSAGE_CHILDREN) would count the parent's own pages (a child's high-water mark
    starts from the parent's at fork), so the children's own high-water marks are polled;
    only growth in a child's last 0.1 s can be missed."""

    def __init__(self) -> None:
        self.peak_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.1):
            for child in me.children(recursive=True):
                try:
                    text = Path(f"/proc/{child.pid}/status").read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    if line.startswith("VmHWM:"):
                        kb = int(line.split()[1])
                        self.peak_kb[child.pid] = max(self.peak_kb.get(child.pid, 0), kb)

    def __enter__(self) -> ChildPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return max(self.peak_kb.values(), default=0) / 1024


class Timeline:
    """Phase changes of a run (from its progress callback) with the RSS at each."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.proc = psutil.Process()
        self.events: list[dict[str, Any]] = []

    def mark(self, phase: str) -> None:
        if self.events and self.events[-1]["phase"] == phase:
            return
        self.events.append({"phase": phase, "at": time.perf_counter() - self.started,
                            "cpu": time.process_time(),
                            "rss_mb": self.proc.memory_info().rss / 2**20})

    def __call__(self, p: Progress) -> None:
        self.mark(p.phase)

    def phases(self, end: float) -> list[dict[str, Any]]:
        """Wall and CPU seconds spent in each phase (consecutive repeats merged), in order.
        CPU seconds (all threads) say what the phase costs on a machine shared with others."""
        out: list[dict[str, Any]] = []
        cpu_end = time.process_time()
        for i, e in enumerate(self.events):
            nxt = self.events[i + 1] if i + 1 < len(self.events) else None
            stop = nxt["at"] if nxt else end
            out.append({"phase": e["phase"], "seconds": stop - e["at"],
                        "cpu_seconds": (nxt["cpu"] if nxt else cpu_end) - e["cpu"],
                        "rss_mb_at_start": e["rss_mb"]})
        return out


def _report_fields(r: Any, total: float, highs: float, build: float) -> dict[str, Any]:
    return {"status": r.status.value, "termination": r.termination.value,
            "objective": r.objective, "bound": r.bound, "gap": r.gap,
            "seconds_run": r.seconds, "seconds_build": build, "seconds_solve": highs,
            "seconds_other": total - build - highs,
            "share_outside_solver": (total - highs) / total if total > 0 else None}


def _finish(spec: dict[str, Any], result: Any, tl: Timeline, started: float,
            seconds_read: float) -> dict[str, Any]:
    """Write the plan's tables (when asked) and report where the time went."""
    tl.mark("output")
    t = time.perf_counter()
    if spec.get("out"):
        write_tables(spec["out"], result.summary(), {"assignments": result.assignments,
                                                     "territories": result.territories})
    seconds_output = time.perf_counter() - t
    total = time.perf_counter() - started
    r = result.report
    return _report_fields(r, total, r.seconds_solve, r.seconds_build) | {
        "seconds": total, "seconds_read": seconds_read, "seconds_output": seconds_output,
        "pairs": r.pricing, "phases": tl.phases(total)}


def align(spec: dict[str, Any]) -> dict[str, Any]:
    from optimizer.alignment import solve

    started = time.perf_counter()
    tl = Timeline()
    tl.mark("read")
    sc = scenario_from_dict(spec["scenario"])
    data = read_alignment(spec["accounts"], spec["reps"], sc)
    seconds_read = time.perf_counter() - started
    try:
        result = solve(data, sc, on_progress=tl)
    except InfeasibleScenarioError as exc:
        return {"status": "infeasible", "reasons": exc.reasons,
                "seconds": time.perf_counter() - started}
    except SolverError as exc:
        # No plan within the limit: still say where the time and memory went.
        total = time.perf_counter() - started
        return {"status": "error", "error": str(exc), "seconds": total,
                "phases": tl.phases(total)}
    return _finish(spec, result, tl, started, seconds_read) | {
        "terms": result.terms,
        "kpis": {k: v for k, v in result.kpis.items() if k in ("before", "after")}}


def peer(spec: dict[str, Any]) -> dict[str, Any]:
    """The textbook approach: one MIP over each account's k nearest reps, solved by HiGHS
    with the scenario's time limit and gap."""
    from optimizer.alignment import Pairs, Scaled, build
    from optimizer.problem import prepare
    from optimizer.solve import HighsOptions, relative_gap, run_highs

    started = time.perf_counter()
    sc = scenario_from_dict(spec["scenario"])
    data = read_alignment(spec["accounts"], spec["reps"], sc)
    p = prepare(data, sc)
    s = Scaled.of(p)
    k = int(spec["k"])
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
    highs = sol.seconds_solve + sol.seconds_compile
    return {"status": sol.termination.value, "seconds": total, "seconds_build": seconds_build,
            "seconds_solve": highs, "seconds_other": total - seconds_build - highs,
            "share_outside_solver": (total - highs) / total,
            "objective": objective, "bound": spec.get("bound"),
            "gap": relative_gap(objective, spec.get("bound")), "k_nearest": k}


def design(spec: dict[str, Any]) -> dict[str, Any]:
    from optimizer.design import solve

    started = time.perf_counter()
    tl = Timeline()
    tl.mark("read")
    sc = scenario_from_dict(spec["scenario"])
    data = read_design(spec["accounts"], sc)
    seconds_read = time.perf_counter() - started
    result = solve(data, sc, on_progress=tl)
    return _finish(spec, result, tl, started, seconds_read)


def cli_design(spec: dict[str, Any]) -> dict[str, Any]:
    """An OR-Library instance through `territory design` (the public CLI) in a subprocess."""
    from bench.data import orlib_files, orlib_instance

    folder = Path(spec["folder"])
    files = orlib_files(int(spec["number"]), folder, float(spec["time_limit"]))
    out = folder / "out"
    exe = Path(sys.executable).with_name("territory")
    cmd = [str(exe), "design", "--accounts", str(files["accounts"]), "--distances",
           str(files["distances"]), "--scenario", str(files["scenario"]), "--out", str(out),
           "--quiet"]
    t = time.perf_counter()
    with ChildPeak() as child:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t
    summary = json.loads((out / "summary.json").read_text()) if (
        out / "summary.json").exists() else {}
    optimum = orlib_instance(int(spec["number"])).optimum
    objective = summary.get("objective")
    return {"exit_code": done.returncode, "seconds": seconds,
            "seconds_model": summary.get("seconds"), "status": summary.get("status"),
            "objective": objective, "bound": summary.get("bound"), "gap": summary.get("gap"),
            "optimum": optimum,
            "matches_optimum": objective is not None and abs(objective - optimum) < 1e-6,
            "proven": summary.get("status") == "optimal" and summary.get("bound") is not None
            and abs(summary["bound"] - optimum) < 1e-6,
            "timing": summary.get("timing"), "pricing": summary.get("pricing"),
            "stderr_tail": done.stderr[-800:] if done.returncode else "",
            "peak_rss_mb": child.mb}


def orlib_peer(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    from bench import peers

    if kind == "spopt":
        import spopt.locate  # noqa: F401  (a heavy import, kept out of the timing)
    run = peers.pulp_cbc if kind == "pulp" else peers.spopt_cbc
    t = time.perf_counter()
    with ChildPeak() as child:
        out = run(int(spec["number"]), float(spec["time_limit"]))
    # CBC runs as a child process of PuLP: the model's peak is Python's plus CBC's.
    return out | {"seconds": time.perf_counter() - t, "peak_rss_mb_python": peak_rss_mb(),
                  "peak_rss_mb_solver": child.mb}


def hook(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Another helper's benchmark module (imported only here, so its absence is a status)."""
    import importlib

    name = "bench.design_scale" if kind == "design_scale" else "bench.capacity_curve"
    t = time.perf_counter()
    module = importlib.import_module(name)
    args = {"time_limit": spec["time_limit"]} if kind == "design_scale" else {
        "quick": bool(spec.get("quick"))}
    result = module.run(**args)
    return {"result": result, "seconds": time.perf_counter() - t}


def main() -> None:
    kind, spec = sys.argv[1], json.loads(sys.argv[2])
    if kind == "align":
        out = align(spec)
    elif kind == "peer":
        out = peer(spec)
    elif kind == "design":
        out = design(spec)
    elif kind == "cli_design":
        out = cli_design(spec)
    elif kind in ("pulp", "spopt"):
        out = orlib_peer(kind, spec)
    elif kind in ("design_scale", "capacity"):
        out = hook(kind, spec)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    out.setdefault("peak_rss_mb", peak_rss_mb())
    out["cpu_seconds"] = time.process_time()  # this process, all threads, imports included
    out["seconds_imports"] = IMPORTED - psutil.Process(os.getpid()).create_time()
    from optimizer.io import json_safe

    print(json.dumps(json_safe(out)))


if __name__ == "__main__":
    main()
