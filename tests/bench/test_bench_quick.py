"""The benchmark harness in quick mode, end to end: it must keep running (CI), write a
well-formed report, and its measurements must be right (published optima, hard bands held,
disruption limits kept). Nothing here asserts on time."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--only", "exactness,ladder,quality,national",
         "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=1800,
        check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return out


@pytest.mark.slow
def test_report_structure(quick: Path) -> None:
    report = json.loads((quick / "report.json").read_text())
    assert set(report["sections"]) == {"exactness", "ladder", "quality", "national"}
    for section in report["sections"].values():
        assert section["meta"]["quick"] is True
    md = (quick / "report.md").read_text()
    for heading in ("## Targets", "## 1. Exactness", "## 2. Scale ladder", "## 3. Quality",
                    "## 4. National realignment"):
        assert heading in md
    for png in ("price_of_balance.png", "disruption_frontier.png", "ladder.png"):
        assert (quick / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_exactness_equals_published_optima(quick: Path) -> None:
    ex = json.loads((quick / "report.json").read_text())["sections"]["exactness"]
    published = {1: 713, 2: 740}  # pmedcap1_1 and _2, first line of the OR-Library files
    assert [r["number"] for r in ex["instances"]] == [1, 2]
    for row in ex["instances"]:
        ours = row["ours"]
        assert row["optimum"] == published[row["number"]]
        assert ours["exit_code"] == 0 and ours["status"] == "optimal" and ours["proven"]
        assert ours["objective"] == pytest.approx(published[row["number"]], abs=1e-6)
        assert ours["bound"] == pytest.approx(published[row["number"]], abs=1e-6)
    if importlib.util.find_spec("pulp") is not None:
        pulp = ex["instances"][0]["pulp"]
        assert pulp["proven"] and pulp["objective"] == pytest.approx(713, abs=1e-6)


@pytest.mark.slow
def test_ladder_rows_are_complete(quick: Path) -> None:
    rows = json.loads((quick / "report.json").read_text())["sections"]["ladder"]["rows"]
    assert [(r["model"], r["accounts"]) for r in rows] == [("realignment", 300), ("design", 200)]
    align = rows[0]
    assert align["status"] == "optimal" and align["gap"] <= 0.005 + 1e-12
    for r in rows:
        assert r["peak_rss_mb"] > 0 and r["seconds_solve"] > 0
        assert 0 <= r["share_outside_solver"] <= 1
        assert r["seconds_build"] + r["seconds_solve"] <= r["seconds"]


@pytest.mark.slow
def test_quality_points_respect_their_scenarios(quick: Path) -> None:
    q = json.loads((quick / "report.json").read_text())["sections"]["quality"]
    price = {p["tolerance"]: p for p in q["price_of_balance"]}
    assert set(price) == {0.05, 0.20}
    for tol, p in price.items():
        assert p["status"] == "optimal"
        assert p["workload_max_over_fair"] <= 1 + tol + 1e-9
        assert p["workload_min_over_fair"] >= 1 - tol - 1e-9
    # A looser band can only lower the optimum: compare within the proven gaps.
    loose, tight = price[0.20], price[0.05]
    assert loose["travel_over_ideal"] * (1 - loose["gap"]) <= tight["travel_over_ideal"] + 1e-9
    for p in q["frontier"]:
        assert p["status"] in ("optimal", "feasible")
        assert p["accounts_moved_share"] <= p["max_share"] + 1e-9


def test_quick_refuses_to_overwrite_the_committed_report() -> None:
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--out", str(ROOT / "bench")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 2 and "--quick would overwrite" in done.stderr
