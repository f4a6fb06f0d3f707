"""`territory quota` on a run's territories: top-down and the fairness LP."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from optimizer.cli import EXIT_INPUT, app

runner = CliRunner()


def territories(tmp_path: Path) -> Path:
    path = tmp_path / "territories.csv"
    pd.DataFrame({"territory_id": ["T1", "T2", "T3"], "potential": [500.0, 300.0, 200.0],
                  "history": [300.0, 300.0, 400.0]}).to_csv(path, index=False)
    return path


def test_top_down_sums_to_the_goal(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["quota", "--assignments", str(territories(tmp_path)), "--goal",
                              "1000", "--out", str(out)])
    assert res.exit_code == 0, res.output
    q = pd.read_csv(out / "quotas.csv").set_index("territory_id")["quota"]
    # Blend 50/50: T1 (0.5 + 0.3) / 2 = 0.4, T2 0.3, T3 0.3.
    assert q.to_dict() == {"T1": 400, "T2": 300, "T3": 300}
    assert json.loads((out / "summary.json").read_text())["deployed"] == 1000


def test_fair_quotas_keep_ratios_in_band(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["quota", "--assignments", str(territories(tmp_path)), "--goal",
                              "1000", "--method", "fair", "--band", "0.2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    q = pd.read_csv(out / "quotas.csv").set_index("territory_id")
    ratio = q["quota"] / pd.Series({"T1": 500.0, "T2": 300.0, "T3": 200.0})
    assert q["quota"].sum() == 1000
    assert ((ratio >= 0.8 - 1e-9) & (ratio <= 1.2 + 1e-9)).all()


def test_unknown_method(tmp_path: Path) -> None:
    res = runner.invoke(app, ["quota", "--assignments", str(territories(tmp_path)), "--goal",
                              "1000", "--method", "magic", "--out", str(tmp_path / "o")])
    assert res.exit_code == EXIT_INPUT and "unknown method 'magic'" in res.output
