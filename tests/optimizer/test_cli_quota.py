"""`territory quota`: top-down and the fairness LP on a run's territories, bottom-up roll-up
of submissions, and derived manager and overlay quotas; expectations computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
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


@pytest.mark.parametrize("method", ["top-down", "fair"])
def test_without_history_the_table_shows_none(tmp_path: Path, method: str) -> None:
    """A run's territories.csv has potential and no history: shares come from potential,
    and the quota table does not show potential again under history's name."""
    path = tmp_path / "territories.csv"
    pd.DataFrame({"territory_id": ["T1", "T2", "T3"],
                  "potential": [500.0, 300.0, 200.0]}).to_csv(path, index=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["quota", "--assignments", str(path), "--goal", "1000",
                              "--method", method, "--out", str(out)])
    assert res.exit_code == 0, res.output
    q = pd.read_csv(out / "quotas.csv").set_index("territory_id")
    assert not {"history", "history_share"} & set(q.columns)
    assert q["quota"].to_dict() == {"T1": 500, "T2": 300, "T3": 200}
    assert "shares come from potential alone" in res.output


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
    assert res.exit_code == EXIT_INPUT and "method" in res.output and "bottom-up" in res.output


def test_goal_is_required_for_top_down(tmp_path: Path) -> None:
    res = runner.invoke(app, ["quota", "--assignments", str(territories(tmp_path)),
                              "--out", str(tmp_path / "o")])
    assert res.exit_code == EXIT_INPUT and "needs a goal" in res.output


def submissions(tmp_path: Path) -> Path:
    path = tmp_path / "submissions.csv"
    path.write_text("territory_id,submitted,manager,region\nT1,300,M1,East\nT2,200,M1,East\n"
                    "T3,500,M2,West\n")
    return path


def test_bottom_up_rolls_up_and_closes_the_gap(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["quota", "--method", "bottom-up", "--submissions",
                              str(submissions(tmp_path)), "--goal", "1200", "--close-gap",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    q = pd.read_csv(out / "quotas.csv").set_index(["level", "id"])
    # Submissions add up to 1,000 against a goal of 1,200: each is scaled by 1.2.
    assert q.loc[("territory", "T1"), "quota"] == 360
    assert q.loc[("territory", "T2"), "quota"] == 240
    assert q.loc[("territory", "T3"), "quota"] == 600
    assert q.loc[("territory", "T1"), "parent"] == "M1"
    assert q.loc[("manager", "M1"), "submitted"] == 500
    assert q.loc[("manager", "M1"), "quota"] == 600
    assert q.loc[("manager", "M1"), "parent"] == "East"
    assert q.loc[("region", "West"), "quota"] == 600
    # T1 submitted 30 % of the total: its share of the goal is 360, 60 above its submission.
    assert q.loc[("territory", "T1"), "goal_share"] == 360
    assert q.loc[("territory", "T1"), "gap"] == 60
    assert q.loc[("company", "company"), "gap"] == 200
    summary = json.loads((out / "summary.json").read_text())
    assert summary["submitted"] == 1000 and summary["gap"] == 200
    assert summary["deployed"] == 1200


def test_bottom_up_without_closing_keeps_submissions(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["quota", "--method", "bottom-up", "--assignments",
                              str(submissions(tmp_path)), "--goal", "1200", "--out", str(out)])
    assert res.exit_code == 0, res.output
    q = pd.read_csv(out / "quotas.csv").set_index(["level", "id"])
    assert q.loc[("territory", "T3"), "quota"] == 500
    assert q.loc[("company", "company"), "quota"] == 1000
    assert q.loc[("territory", "T3"), "gap"] == 100  # 50 % of 1,200 = 600 against 500


def test_derived_manager_and_overlay_quotas(tmp_path: Path) -> None:
    table = tmp_path / "quotas.csv"
    table.write_text("territory_id,quota,manager_id\nT1,400,M1\nT2,300,M1\nT3,300,M2\n")
    coverage = tmp_path / "coverage.csv"
    coverage.write_text("overlay_id,territory_id,share\nO1,T1,1\nO1,T2,0.5\nO2,T3,1\n")
    out = tmp_path / "out"
    res = runner.invoke(app, ["quota", "--method", "derived", "--assignments", str(table),
                              "--manager-factor", "0.9", "--coverage", str(coverage),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    managers = pd.read_csv(out / "manager_quotas.csv").set_index("manager_id")
    # M1 leads T1 and T2: 0.9 × (400 + 300); M2 leads T3: 0.9 × 300.
    assert managers["quota"].to_dict() == {"M1": 630, "M2": 270}
    assert managers.loc["M1", "team_quota"] == 700 and managers.loc["M1", "team_size"] == 2
    overlays = pd.read_csv(out / "overlay_quotas.csv").set_index("overlay_id")
    # O1 is measured on all of T1 and half of T2: 400 + 150.
    assert overlays["quota"].to_dict() == {"O1": 550, "O2": 300}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["managers"] == 2 and summary["manager_quotas_total"] == 900


def test_derived_deploys_top_down_first(tmp_path: Path) -> None:
    path = tmp_path / "territories.csv"
    pd.DataFrame({"territory_id": ["T1", "T2", "T3"], "potential": [500.0, 300.0, 200.0],
                  "history": [300.0, 300.0, 400.0], "manager_id": ["M1", "M1", "M2"]}
                 ).to_csv(path, index=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["quota", "--method", "derived", "--assignments", str(path),
                              "--goal", "1000", "--out", str(out)])
    assert res.exit_code == 0, res.output
    # Top-down as in test_top_down_sums_to_the_goal (400, 300, 300), then teams summed.
    assert pd.read_csv(out / "quotas.csv")["quota"].tolist() == [400, 300, 300]
    managers = pd.read_csv(out / "manager_quotas.csv").set_index("manager_id")
    assert managers["quota"].to_dict() == {"M1": 700, "M2": 300}


def test_derived_needs_managers_or_coverage(tmp_path: Path) -> None:
    res = runner.invoke(app, ["quota", "--method", "derived", "--assignments",
                              str(territories(tmp_path)), "--goal", "1000",
                              "--out", str(tmp_path / "o")])
    assert res.exit_code == EXIT_INPUT and "manager_id" in res.output


def test_overlay_coverage_names_unknown_territories(tmp_path: Path) -> None:
    table = tmp_path / "quotas.csv"
    table.write_text("territory_id,quota\nT1,400\n")
    coverage = tmp_path / "coverage.csv"
    coverage.write_text("overlay_id,territory_id\nO1,T1\nO1,T9\n")
    res = runner.invoke(app, ["quota", "--method", "derived", "--assignments", str(table),
                              "--coverage", str(coverage), "--out", str(tmp_path / "o")])
    assert res.exit_code == EXIT_INPUT and "row 2" in res.output and "T9" in res.output


def _quota(tmp_path: Path, *args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["quota", *args, "--out", str(tmp_path / "out")])
    return res.exit_code, " ".join(res.output.split())


def test_bad_cells_are_named_with_the_file_and_the_cell(tmp_path: Path) -> None:
    """A start month 'Oct' was read as a rep in seat all year, 4.5 as 4; text in potential
    was reported as 'territories … got nan', the table's name not the file's."""
    (tmp_path / "b.csv").write_text("territory_id,potential,history,start_month\n"
                                    "T1,100,90,\nT1,200,210,Oct\nT3,abc,100,4.5\n")
    code, said = _quota(tmp_path, "--assignments", str(tmp_path / "b.csv"), "--goal", "1000")
    assert code == EXIT_INPUT, said
    for issue in ("b.csv row 3, column potential: not a number (got 'abc')",
                  "b.csv row 2, column start_month: not a number (got 'Oct')",
                  "b.csv row 3, column start_month: must be a whole month from 1 to 12 "
                  "(got '4.5')",
                  "b.csv row 2, column territory_id: duplicate territory_id 'T1' (first on "
                  "row 1)"):
        assert issue in said, said


def test_derived_quotas_name_what_they_leave_out(tmp_path: Path) -> None:
    """T4 has no manager: its 400 roll up to no one, said in a note. An overlay covering a
    territory twice would count its quota twice: refused. An empty share is a whole share."""
    (tmp_path / "dq.csv").write_text("territory_id,quota,manager_id\n"
                                     "T1,100,M1\nT2,200,M1\nT3,300,M2\nT4,400,\n")
    (tmp_path / "cov.csv").write_text("overlay_id,territory_id,share\nO1,T1,\nO1,T2,0.5\n")
    args = ["--assignments", str(tmp_path / "dq.csv"), "--method", "derived", "--coverage",
            str(tmp_path / "cov.csv"), "--goal", "5000"]
    code, said = _quota(tmp_path, *args)
    assert code == 0, said
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["warnings"] == [
        "territory quotas taken from the table's quota column (the goal of 5,000 is not used)",
        "1 territories have no manager_id, so their quotas (400) roll up to no manager: T4"]
    overlays = pd.read_csv(tmp_path / "out" / "overlay_quotas.csv")
    assert overlays["quota"].tolist() == [200]  # all of T1 (100) and half of T2 (100)

    (tmp_path / "cov.csv").write_text("overlay_id,territory_id,share\nO1,T1,1\nO1,T1,2\n")
    code, said = _quota(tmp_path, *args)
    assert code == EXIT_INPUT, said
    assert "cov.csv row 2, column share: must be ≤ 1 (got '2')" in said, said
    assert "cov.csv row 2, column territory_id: overlay O1 covers territory T1 twice (first " \
           "on row 1): give one row with its share" in said, said


def test_bottom_up_submissions_are_checked_against_the_plan(tmp_path: Path) -> None:
    """With the plan's territories and a separate submissions file, a submission for a
    territory the plan lacks is refused, and territories without one are named (the goal was
    spread over those that submitted, without a word). From a run folder alone, the
    submissions are its territories.csv (it was read as a file: 'Is a directory')."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "territories.csv").write_text("territory_id,rep_id,potential\n"
                                         "T1,R1,100\nT2,R2,100\nT3,R3,100\nT4,R4,100\n")
    (tmp_path / "s.csv").write_text("territory_id,submitted\nT1,100\nT2,200\n")
    code, said = _quota(tmp_path, "--assignments", str(run), "--submissions",
                        str(tmp_path / "s.csv"), "--method", "bottom-up", "--goal", "1500",
                        "--close-gap")
    assert code == 0, said
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["warnings"] == [
        "2 of the 4 territories of territories.csv have no submission, so no quota: T3, T4"]
    (tmp_path / "s.csv").write_text("territory_id,submitted\nT1,100\nT9,200\n")
    code, said = _quota(tmp_path, "--assignments", str(run), "--submissions",
                        str(tmp_path / "s.csv"), "--method", "bottom-up", "--goal", "1500")
    assert code == EXIT_INPUT
    assert "s.csv row 2, column territory_id: not a territory_id of territories.csv (got " \
           "'T9')" in said, said
    code, said = _quota(tmp_path, "--assignments", str(run), "--method", "bottom-up",
                        "--goal", "1500")
    assert code == EXIT_INPUT
    assert "territories.csv column submitted: required column is missing" in said, said


def test_a_column_of_weight_zero_may_add_up_to_zero(tmp_path: Path) -> None:
    """New territories have no history yet: with the potential weight at 1 the quotas follow
    potential alone (100 : 300), instead of 'history adds up to 0'."""
    (tmp_path / "t.csv").write_text("territory_id,potential,history\nT1,100,0\nT2,300,0\n")
    code, said = _quota(tmp_path, "--assignments", str(tmp_path / "t.csv"), "--goal", "1000",
                        "--potential-weight", "1")
    assert code == 0, said
    quotas = pd.read_csv(tmp_path / "out" / "quotas.csv").set_index("territory_id")["quota"]
    assert quotas.to_dict() == {"T1": 250, "T2": 750}


def test_quotas_short_of_the_goal_say_why(tmp_path: Path) -> None:
    """T2's rep starts in April: its target, 341.7 (half of 200/600 and half of 210/600 of
    1,000), is prorated to 9/12, and the company absorbs the 85.4 left; rounding to units of
    100 loses the other 14.6. The summary had said nothing of the 100 missing. A goal of 0
    deploys nothing: refused."""
    (tmp_path / "c.csv").write_text("territory_id,rep_id,potential,history,start_month\n"
                                    "T1,R1,100,90,\nT2,R2,200,210,4\nT3,R3,300,300,1\n")
    code, said = _quota(tmp_path, "--assignments", str(tmp_path / "c.csv"), "--goal", "1000",
                        "--unit", "100")
    assert code == 0, said
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["deployed"] == 900
    assert summary["warnings"] == [
        "the quotas add up to 900, 100 short of the 1,000 to deploy: 85 of ramp shortfall "
        "absorbed by the company; 15 lost to rounding to units of 100"]
    code, said = _quota(tmp_path, "--assignments", str(tmp_path / "c.csv"), "--goal", "0",
                        "--method", "fair")
    assert code == EXIT_INPUT and "method fair needs a goal above 0" in said, said


def test_the_ramp_and_its_shortfall_from_the_command_line(tmp_path: Path) -> None:
    """Targets 158.3, 341.7, 500 (half potential, half history shares of 1,000). A ramp of
    0.5, 0.5: T2 (starts in April) carries 9 months, 8 of them productive, so 8/12 of its
    target, 227.8; T3 (January) 11/12, 458.3. The shortfall, 155.6, is spread over T1, the one
    rep in seat all year: 313.9. Rounded exactly to 1,000: 314, 228, 458."""
    (tmp_path / "c.csv").write_text("territory_id,rep_id,potential,history,start_month\n"
                                    "T1,R1,100,90,\nT2,R2,200,210,4\nT3,R3,300,300,1\n")
    code, said = _quota(tmp_path, "--assignments", str(tmp_path / "c.csv"), "--goal", "1000",
                        "--ramp", "0.5, 0.5", "--shortfall", "spread")
    assert code == 0, said
    quotas = pd.read_csv(tmp_path / "out" / "quotas.csv").set_index("territory_id")["quota"]
    assert quotas.to_dict() == {"T1": 314, "T2": 228, "T3": 458}
    code, said = _quota(tmp_path, "--assignments", str(tmp_path / "c.csv"), "--goal", "1000",
                        "--ramp", "0.5,x")
    assert code == EXIT_INPUT and "column --ramp: not a list of numbers" in said, said
