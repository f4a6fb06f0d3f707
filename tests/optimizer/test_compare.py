"""Comparing two runs' output folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from optimizer.compare import compare_runs, flatten_kpis, kpi_label, kpi_table
from optimizer.errors import InputError


def _run(folder: Path, reps: dict[str, str], travel: float, moved: int,
         status: str = "optimal") -> Path:
    folder.mkdir()
    plan = pd.DataFrame({"account_id": list(reps), "territory_id": list(reps.values()),
                         "rep_id": list(reps.values()), "previous_rep": "R1", "moved": False,
                         "name": [f"Account {a}" for a in reps]})
    plan.to_csv(folder / "assignments.csv", index=False)
    kpis = {"after": {"travel": {"total": travel},
                      "disruption": {"accounts_moved": moved, "accounts_moved_share": 0.5},
                      "balance": {"workload": {"cv": 0.1}}}}
    summary = {"status": status, "objective": travel / 10, "bound": None, "gap": 0.0,
               "seconds": 1.5, "kpis": kpis}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_compare_finds_moves_and_differences(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", {"001": "R1", "002": "R1", "003": "R2", "004": "R2"}, 100.0, 1)
    b = _run(tmp_path / "b", {"001": "R1", "002": "R2", "003": "R1", "005": "R2"}, 80.0, 3)
    table, moves = compare_runs(a, b)
    assert list(moves["account_id"]) == ["002", "003", "004", "005"]  # leading zeros kept
    by_id = moves.set_index("account_id")
    assert by_id.loc["002", ["rep_a", "rep_b", "change"]].tolist() == ["R1", "R2", "moved"]
    assert by_id.loc["004", "change"] == "only in A" and by_id.loc["005", "change"] == "only in B"
    assert pd.isna(by_id.loc["004", "rep_b"])
    assert by_id.loc["003", "name"] == "Account 003"
    rows = table.set_index("kpi")
    assert list(table.columns) == ["kpi", "label", "A", "B", "Change"]
    assert rows.loc["travel.total", ["A", "B", "Change"]].tolist() == [100.0, 80.0, -20.0]
    assert rows.loc["disruption.accounts_moved", "Change"] == 2
    assert rows.loc["run.objective", ["A", "B"]].tolist() == [10.0, 8.0]
    assert rows.loc["run.seconds", "Change"] == 0


def test_identical_runs_have_no_moves(tmp_path: Path) -> None:
    plan = {"a": "R1", "b": "R2"}
    table, moves = compare_runs(_run(tmp_path / "a", plan, 5.0, 0),
                                _run(tmp_path / "b", plan, 5.0, 0))
    assert moves.empty
    assert (table["Change"].fillna(0) == 0).all()


def test_compare_rejects_failed_or_missing_runs(tmp_path: Path) -> None:
    ok = _run(tmp_path / "ok", {"a": "R1"}, 1.0, 0)
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "summary.json").write_text(json.dumps({"status": "infeasible"}))
    # A failed run is named as one (it had been 'file not found: …/assignments.csv').
    with pytest.raises(InputError, match="ended with status infeasible"):
        compare_runs(ok, failed)
    levels = tmp_path / "regions"  # a regions run: a summary, no plan KPIs
    levels.mkdir()
    (levels / "summary.json").write_text(json.dumps({"status": "optimal"}))
    pd.DataFrame({"account_id": [], "rep_id": []}).to_csv(levels / "assignments.csv")
    with pytest.raises(InputError, match=r"holds no plan KPIs \(run status: optimal\): "
                                         "compare takes the folders of align and design runs"):
        compare_runs(ok, levels)
    with pytest.raises(InputError, match="file not found"):
        compare_runs(tmp_path / "nowhere", ok)


def test_kpi_table_helpers() -> None:
    nested = {"a": 1, "b": {"c": 2.5, "d": True, "e": "text"}}
    assert flatten_kpis(nested) == {"a": 1.0, "b.c": 2.5, "b.d": 1.0}
    assert kpi_label("balance.workload.cv") == "Balance · workload · coefficient of variation"
    t = kpi_table({"x": {"k": 1.0}, "y": {"k": 3.0, "j": 2.0}}, difference=("x", "y"))
    assert t["kpi"].tolist() == ["k", "j"]
    assert t["Change"].iloc[0] == 2.0 and math.isnan(t["x"].iloc[1])
