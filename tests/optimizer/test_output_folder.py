"""A command's --out folder holds one run: a rerun replaces the files an earlier run of the
same command wrote there, a failed run leaves only its summary.json, and files the run reads
are never removed."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from optimizer.cli import EXIT_INFEASIBLE, app
from tests.conftest import Instance, make_instance

runner = CliRunner()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _aligned(tmp_path: Path, inst: Instance, out: Path) -> None:
    """The instance as a.csv and r.csv in `tmp_path`, aligned into `out`."""
    inst.accounts.to_csv(tmp_path / "a.csv", index=False)
    inst.reps.to_csv(tmp_path / "r.csv", index=False)
    res = runner.invoke(app, ["align", "--accounts", str(tmp_path / "a.csv"), "--reps",
                              str(tmp_path / "r.csv"), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output


def test_a_run_without_maps_leaves_no_earlier_map(tmp_path: Path) -> None:
    """The second run has distances and no coordinates, so it draws no map: the first run's
    maps (of another plan) must not stay beside its tables."""
    inst = make_instance(6, 2, 7)
    out = tmp_path / "o"
    _aligned(tmp_path, inst, out)
    assert {"map.png", "map.html", "territories.geojson"} <= set(_names(out))

    inst.accounts.drop(columns=["lat", "lon"]).to_csv(tmp_path / "a.csv", index=False)
    pairs = [(a, r, 1.0 + i + 2 * j) for i, a in enumerate(inst.accounts["account_id"])
             for j, r in enumerate(inst.reps["rep_id"])]
    (tmp_path / "d.csv").write_text("from_id,to_id,distance\n" + "".join(
        f"{a},{r},{d}\n" for a, r, d in pairs))
    (tmp_path / "s.yaml").write_text("metric: matrix\n")
    second = runner.invoke(app, ["align", "--accounts", str(tmp_path / "a.csv"), "--reps",
                                 str(tmp_path / "r.csv"), "--distances", str(tmp_path / "d.csv"),
                                 "--scenario", str(tmp_path / "s.yaml"), "--out", str(out),
                                 "--quiet"])
    assert second.exit_code == 0, second.output
    assert _names(out) == ["assignments.csv", "summary.json", "territories.csv",
                           "workbook.xlsx"]


def test_a_quota_run_replaces_the_tables_of_another_method(tmp_path: Path) -> None:
    """Derived quotas write manager and overlay tables; a top-down rerun into the same
    folder writes quotas.csv alone, and the derived tables go."""
    (tmp_path / "t.csv").write_text("territory_id,quota,potential,manager_id\n"
                                    "T1,400,500,M1\nT2,300,300,M1\nT3,300,200,M2\n")
    out = tmp_path / "q"
    derived = runner.invoke(app, ["quota", "--method", "derived", "--assignments",
                                  str(tmp_path / "t.csv"), "--out", str(out)])
    assert derived.exit_code == 0, derived.output
    assert _names(out) == ["manager_quotas.csv", "quotas.csv", "summary.json"]
    top_down = runner.invoke(app, ["quota", "--assignments", str(tmp_path / "t.csv"),
                                   "--goal", "1000", "--out", str(out)])
    assert top_down.exit_code == 0, top_down.output
    assert _names(out) == ["quotas.csv", "summary.json"]


def test_a_failed_run_spares_the_files_it_reads(tmp_path: Path) -> None:
    """Regions written into the plan's own folder, then a regions run that cannot hold (more
    regions than territories): the earlier regions table goes, the plan it read stays."""
    run = tmp_path / "run"
    _aligned(tmp_path, make_instance(12, 4, 8), run)
    regions = ["regions", "--plan", str(run), "--accounts", str(tmp_path / "a.csv"),
               "--out", str(run), "--regions"]
    ok = runner.invoke(app, [*regions, "2"])
    assert ok.exit_code == 0, ok.output
    assert "regions.csv" in _names(run)

    failed = runner.invoke(app, [*regions, "5"])
    assert failed.exit_code == EXIT_INFEASIBLE, failed.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["reasons"] == ["5 regions need at least 5 territories, but there are 4"]
    names = _names(run)
    assert "regions.csv" not in names
    assert {"territories.csv", "assignments.csv"} <= set(names)  # read by the run: spared
