"""`territory` end to end on the bundled regional data."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from optimizer.cli import app
from tests.optimizer.plan_checks import assert_plan_valid

runner = CliRunner()


def test_align_bundled_dataset(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["align", "--dataset", "us-regional", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Realignment: before and after" in res.output
    summary = json.loads((out / "summary.json").read_text())
    # Output to a pipe (not a terminal): progress as lines on stderr, one per phase at least,
    # ending with the result's figures.
    progress = res.stderr.splitlines()
    assert len(progress) >= 2 and progress[-1].split()[0] == "done"
    assert f"incumbent {summary['objective']:.6g}" in progress[-1]
    assert "Realignment" not in res.stderr
    # The result line whole, as a log keeps it (not wrapped at 80 columns).
    assert any(line.startswith("optimal: objective") and "in the final MIP" in line
               for line in res.stdout.splitlines()), res.stdout
    assert list(summary)[:5] == ["status", "objective", "bound", "gap", "seconds"]
    assert summary["status"] == "optimal" and summary["gap"] <= 0.005
    assert summary["bound"] <= summary["objective"]
    plan = pd.read_csv(out / "assignments.csv", dtype={"moved": bool})
    assert list(plan.columns[:5]) == ["account_id", "territory_id", "rep_id", "previous_rep",
                                      "moved"]
    terr = pd.read_csv(out / "territories.csv")
    assert {"territory_id", "rep_id", "centre", "workload", "potential", "accounts", "travel",
            "utilisation"} <= set(terr.columns)
    assert terr["accounts"].sum() == len(plan)
    # The output honours the bundled scenario's rules.
    from optimizer import datasets
    from optimizer.io import read_alignment, read_scenario

    d = datasets.get_dataset_or_raise("us-regional")
    sc = read_scenario(d.file("scenario.yaml"))
    data = read_alignment(d.file("accounts.csv"), d.file("reps.csv"), sc)
    before = summary["kpis"]["before"]["balance"]["workload"]
    after = summary["kpis"]["after"]["balance"]["workload"]
    assert before["share_within_tolerance"] < 1.0 <= after["share_within_tolerance"]
    assert after["max_over_fair"] <= 1.1 + 1e-9 and after["min_over_fair"] >= 0.9 - 1e-9

    class Shown:  # the CLI's files, read back as a result
        assignments = plan.astype({"previous_rep": object})
        territories = terr

    assert_plan_valid(data, sc, Shown)  # type: ignore[arg-type]


def test_datasets_list_and_export(tmp_path: Path) -> None:
    res = runner.invoke(app, ["datasets", "list"])
    assert res.exit_code == 0
    for name in ("us-accounts", "us-regional", "us-zips", "ga-counties"):
        assert name in res.output
    res = runner.invoke(app, ["datasets", "export", "us-accounts", str(tmp_path)])
    assert res.exit_code == 0, res.output
    accounts = pd.read_csv(tmp_path / "accounts.csv", dtype=str)
    reps = pd.read_csv(tmp_path / "reps.csv")
    assert len(accounts) > 16_000 and accounts["account_id"].is_unique
    assert len(reps) == 100
    assert (tmp_path / "SOURCE.md").exists()
    again = runner.invoke(app, ["datasets", "export", "us-accounts", str(tmp_path)])
    assert again.exit_code == 0, again.output  # the same files: rewritten
    # Another set's accounts.csv over them would replace the planner's file: refused whole.
    other = runner.invoke(app, ["datasets", "export", "us-regional", str(tmp_path)])
    said = " ".join(other.output.split())
    assert other.exit_code == 2 and f"{tmp_path / 'accounts.csv'} exists and is not " \
        "us-regional's accounts.csv" in said, said
    assert len(pd.read_csv(tmp_path / "accounts.csv", dtype=str)) == len(accounts)


def test_unknown_dataset_is_an_input_error() -> None:
    res = runner.invoke(app, ["datasets", "export", "nowhere", "x"])
    assert res.exit_code == 2
    assert "unknown data set 'nowhere'" in res.output


def test_outputs_maps_workbook_and_compare(tmp_path: Path) -> None:
    """A run writes the geography too, and `territory compare` reads two runs back."""
    a, b = tmp_path / "a", tmp_path / "b"
    ran = runner.invoke(app, ["align", "--dataset", "us-regional", "--out", str(a), "--quiet"])
    assert ran.exit_code == 0, ran.output
    tight = tmp_path / "tight.yaml"
    tight.write_text("circuity: 1.2\nbalance:\n  workload: {tolerance: 0.05}\n")
    assert runner.invoke(app, ["align", "--dataset", "us-regional", "--scenario", str(tight),
                               "--out", str(b), "--quiet"]).exit_code == 0
    for name in ("territories.geojson", "map.png", "map.html", "workbook.xlsx"):
        assert (a / name).stat().st_size > 1000, name
    summary = json.loads((a / "summary.json").read_text())
    assert 0 < summary["kpis"]["after"]["geography"]["compactness_mean"] <= 1
    assert "compactness" in pd.read_csv(a / "territories.csv").columns
    # The terminal's KPI table shows the geography too, before and after.
    row = next(line for line in ran.stdout.splitlines() if "Compactness" in line)
    geo = {k: summary["kpis"][k]["geography"]["compactness_mean"] for k in ("before", "after")}
    assert [c.strip() for c in row.split("│")[2:4]] == [f"{geo[k]:.2f}" for k in geo], row
    res = runner.invoke(app, ["compare", str(a), str(b)])
    assert res.exit_code == 0, res.output
    moved = (pd.read_csv(a / "assignments.csv").set_index("account_id")["rep_id"]
             != pd.read_csv(b / "assignments.csv").set_index("account_id")["rep_id"]).sum()
    assert f"{moved:,} account(s) have a different territory or rep" in res.output
    # Shares read as percentages, their changes in percentage points.
    after_a, after_b = (json.loads((d / "summary.json").read_text())["kpis"]["after"]
                        for d in (a, b))
    share_a, share_b = (k["balance"]["potential"]["share_within_tolerance"]
                        for k in (after_a, after_b))
    row = next(line for line in res.output.splitlines() if "potential · territories" in line)
    assert f"{100 * share_a:.1f} %" in row and f"{100 * (share_b - share_a):+.1f} pp" in row
    # Other changes are signed too: tighter bands cost travel.
    travel_a, travel_b = (k["travel"]["total"] for k in (after_a, after_b))
    assert travel_b > travel_a
    row = next(line for line in res.output.splitlines() if "Travel · total" in line)
    assert row.split("│")[-2].strip() == f"+{travel_b - travel_a:,.0f}"


def test_tables_leave_out_blank_columns_and_name_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A design's quotas have no rep and no start month: those columns would take room on
    the terminal (and push others off it) to show nothing."""
    from rich.console import Console

    from optimizer import cli

    buffer = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buffer, width=80))
    cli._print_frame(pd.DataFrame({"territory_id": ["T1", "T2"], "rep_id": [None, np.nan],
                                   "start_month": ["", ""], "quota": [1_000.0, 2_000.0]}))
    text = buffer.getvalue()
    header = text.splitlines()[1]
    assert "territory_id" in header and "quota" in header
    assert "rep_id" not in header and "start_month" not in header
    assert text.splitlines()[-1] == "(blank, not shown: rep_id, start_month)"


@pytest.mark.parametrize("width", [80, 160])
def test_tables_keep_every_value_whole_on_a_narrow_terminal(
        width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The capacity curve's eight columns on an 80-column terminal: headers fold, values
    stay whole, nothing is cut off at the edge; large numbers are separated, not 1.2e+06."""
    from rich.console import Console

    from optimizer import cli

    buffer = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buffer, width=width))
    frame = pd.DataFrame({"territories": [7, 8], "status": ["feasible", "optimal"],
                          "seconds": [8.213, 8.642], "utilisation_max": [1.186, 0.8933],
                          "utilisation_mean": [0.9061, 0.7817],
                          "travel_hours": [1989.4, 1846.2], "workload_cv": [0.08468, 0.07432],
                          "fits": [False, True]})
    cli._print_frame(frame)
    text = buffer.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    for value in ("feasible", "optimal", "8.213", "0.8933", "1,989", "0.08468", "False",
                  "True"):
        assert value in text, value
    if width == 160:
        assert "utilisation_mean" in text  # room enough: headers whole too
    buffer.seek(0)
    buffer.truncate()
    cli._print_frame(pd.DataFrame({"territory_id": ["T1", "T2"],
                                   "quota": [1_234_567.8, np.nan], "accounts": [12_345, 7],
                                   "change": [-2.451e-05, 3e-12]}))
    text = buffer.getvalue()
    assert "1,234,568" in text and "12,345" in text and "e+06" not in text
    assert "-0.00002451" in text and "e-" not in text  # a tiny change, no exponent
    assert "nan" not in text.lower()
    # Seventeen columns (a quota table) cannot fit 80: the id and the result stay, whole.
    buffer.seek(0)
    buffer.truncate()
    wide = pd.DataFrame({"territory_id": ["T01"], **{f"factor_{i}": [1.25] for i in range(15)},
                         "quota": [18_052_663.0]})
    cli._print_frame(wide)
    text = buffer.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    assert "T01" in text and "18,052,663" in text
    assert ("of 17 columns shown" in text) == (width == 80)


def test_output_warnings_reach_the_terminal(tmp_path: Path) -> None:
    """A design on a distance matrix alone has nothing to draw: the warning that the maps are
    not written shows under the result, not only in summary.json."""
    (tmp_path / "accounts.csv").write_text("account_id,workload\na,1\nb,1\nc,1\nd,1\n")
    pos = {"a": 0, "b": 1, "c": 10, "d": 11}
    (tmp_path / "distances.csv").write_text("from_id,to_id,distance\n" + "".join(
        f"{i},{j},{abs(pos[i] - pos[j])}\n" for i in pos for j in pos))
    (tmp_path / "s.yaml").write_text("mode: design\nmetric: matrix\n"
                                     "balance: {workload: {tolerance: 0.0}}\n")
    out = tmp_path / "out"
    res = runner.invoke(app, ["design", "--accounts", str(tmp_path / "accounts.csv"),
                              "--distances", str(tmp_path / "distances.csv"), "--territories",
                              "2", "--scenario", str(tmp_path / "s.yaml"), "--out", str(out),
                              "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objective"] == pytest.approx(2.0)  # {a, b} and {c, d}
    assert not (out / "map.png").exists()
    note = next(w for w in summary["warnings"] if "no coordinates" in w)
    assert f"warning: {note}" in res.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["design", "--dataset", "us-regional", "--territories", "0"],
     "command line column territories: Input should be greater than or equal to 1"),
    (["align", "--dataset", "us-regional", "--time-limit", "-5"],
     "command line column solver.time_limit: Input should be greater than 0"),
    (["design", "--dataset", "us-regional", "--territories", "3", "--time-limit", "0"],
     "command line column solver.time_limit: Input should be greater than 0")])
def test_command_line_overrides_are_checked_like_the_scenario(tmp_path: Path, args: list[str],
                                                              message: str) -> None:
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_a_file_is_refused_before_the_run(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("the planner's notes")
    for args in (["align", "--dataset", "us-regional", "--out", str(taken), "--quiet"],
                 ["datasets", "export", "us-regional", str(taken)]):
        res = runner.invoke(app, args)
        said = " ".join(res.output.split())
        assert res.exit_code == 2 and "is a file, not a folder for the outputs" in said, said
    below = taken / "sub"  # a folder that can never be made: its parent is a file
    for args in (["quota", "--assignments", str(tmp_path / "none.csv"), "--goal", "1",
                  "--out", str(below)],
                 ["datasets", "export", "us-regional", str(below)]):
        res = runner.invoke(app, args)
        said = " ".join(res.output.split())
        assert res.exit_code == 2 and f"{below} lies below {taken}, which is a file" in said, \
            said
    assert taken.read_text() == "the planner's notes"


def test_a_date_yaml_cannot_build_is_an_input_error(tmp_path: Path) -> None:
    """YAML reads 2027-13-01 as a date and fails building it; that is bad input (exit 2
    naming the file), not a traceback."""
    (tmp_path / "plan.yaml").write_text("start: 2027-13-01\nmonths: 3\n")
    res = runner.invoke(app, ["capacity", "--plan", str(tmp_path / "plan.yaml"), "--out",
                              str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert "plan.yaml: a value YAML reads as a date or number is not one: month must be in " \
        "1..12" in " ".join(res.output.split())
    (tmp_path / "plan.yaml").write_bytes(b"months: 3\nname: caf\xe9\n")  # Latin-1, not UTF-8
    res = runner.invoke(app, ["capacity", "--plan", str(tmp_path / "plan.yaml"), "--out",
                              str(tmp_path / "o")])
    assert res.exit_code == 2 and "plan.yaml: not UTF-8 text" in " ".join(res.output.split())
