"""`territory capacity`: a hiring plan from a plan file and a roster, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from optimizer.cli import EXIT_INFEASIBLE, EXIT_INPUT, app

PLAN = """months: 12
goal_period: quarter
goal: [100000, 140000, 180000, {q4}]
roles:
  - name: ae
    cost_per_month: 9000
    productivity: 20000
    ramp: [0.25, 0.5, 0.75]
    attrition: 0.02
    lead_time: 1
    max_hires_per_month: 2
  - name: manager
    cost_per_month: 14000
ratios:
  - {{role: manager, per: ae, count: 8}}
"""
ROSTER = "rep_id,capacity,role,start_date\nR1,1600,ae,2020-01-01\nR2,1600,ae,2026-12-01\n" \
         "M1,1600,manager,2019-01-01\n"


def run(tmp_path: Path, q4: int) -> tuple[int, str, Path]:
    (tmp_path / "plan.yaml").write_text(PLAN.format(q4=q4))
    (tmp_path / "reps.csv").write_text(ROSTER)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["capacity", "--plan", str(tmp_path / "plan.yaml"), "--reps",
                                   str(tmp_path / "reps.csv"), "--start", "2027-01-01",
                                   "--out", str(out)])
    return res.exit_code, res.output, out


def test_plan_meets_every_quarter(tmp_path: Path) -> None:
    code, output, out = run(tmp_path, 220_000)
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "optimal" and summary["hires"]["ae"] >= 1
    periods = pd.read_csv(out / "hiring_periods.csv")
    assert (periods["revenue"] >= periods["goal"] - 1e-6).all()
    plan = pd.read_csv(out / "hiring_plan.csv")
    assert set(plan["role"]) == {"ae", "manager"} and len(plan) == 24
    # R2 started a month before the plan: still ramping in month 1.
    month1 = plan[(plan["month"] == 1) & (plan["role"] == "ae")].iloc[0]
    assert month1["headcount"] == 2 and month1["ramped_fte"] < 2
    assert (out / "hiring_plan.png").stat().st_size > 10_000


def test_unreachable_goal_is_explained(tmp_path: Path) -> None:
    """Run after a plan that could be met, into the same folder: the failure's summary is
    all that is left there, not beside the earlier plan's tables and chart."""
    assert run(tmp_path, 220_000)[0] == 0
    code, output, out = run(tmp_path, 2_000_000)
    assert code == EXIT_INFEASIBLE, output
    reasons = json.loads((out / "summary.json").read_text())["reasons"]
    assert any("Q4 revenue can reach at most" in r and "binds" in r for r in reasons), reasons
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    message = json.loads((out / "summary.json").read_text())["message"]
    assert message == "the hiring plan cannot meet its goal or budget"


def test_bad_plan_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text("months: 0\nroles: []\nbogus: 1\n")
    res = CliRunner().invoke(app, ["capacity", "--plan", str(tmp_path / "plan.yaml"),
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == EXIT_INPUT
    assert "plan.yaml" in res.output and "months" in res.output and "bogus" in res.output


def test_a_start_that_is_no_date_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN.format(q4=200000))
    res = CliRunner().invoke(app, ["capacity", "--plan", str(tmp_path / "plan.yaml"),
                                   "--start", "2027-13-01", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert "column --start: not a date (YYYY-MM-DD): '2027-13-01'" in res.output


def test_a_roster_the_plan_cannot_count_is_refused(tmp_path: Path) -> None:
    """Reps of a role the plan lacks ('AE' for 'ae', 'sdr') counted for no role, and the
    reps replaced a role's own `initial` roster: both changed the plan without a word."""
    (tmp_path / "plan.yaml").write_text(PLAN.format(q4=220_000).replace(
        "cost_per_month: 14000", "cost_per_month: 14000\n    initial: [24]"))
    (tmp_path / "reps.csv").write_text("rep_id,capacity,role,start_date\n"
                                       "R1,1600,AE,2020-01-01\nR2,1600,,2020-01-01\n"
                                       "R3,1600,sdr,2020-01-01\nM1,1600,manager,2019-01-01\n")
    res = CliRunner().invoke(app, ["capacity", "--plan", str(tmp_path / "plan.yaml"), "--reps",
                                   str(tmp_path / "reps.csv"), "--start", "2027-01-01",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == EXIT_INPUT, res.output
    said = " ".join(res.output.split())
    for issue in ("plan.yaml column roles.1.initial: role 'manager' gives its starting roster "
                  "here and the reps (reps.csv) give it too; give it in one place",
                  "reps.csv row 1, column role: 'AE' is not a role of the plan ('ae', "
                  "'manager'), so the rep would count for none; did you mean 'ae'?",
                  "reps.csv row 3, column role: 'sdr' is not a role of the plan ('ae', "
                  "'manager'), so the rep would count for none"):
        assert issue in said, said
    assert "row 2" not in said  # no role: the default, ae, which the plan has


def test_a_sizing_that_fits_no_n_fails_the_combined_run(tmp_path: Path) -> None:
    """A hiring plan that can be met beside a sizing where no N fits (three 300-h accounts,
    100 h a rep, at most 2 territories): exit 3, and summary.json's status says it too (it
    said the hiring plan's 'optimal')."""
    (tmp_path / "plan.yaml").write_text(PLAN.format(q4=220_000) + (
        "sizing: {min_territories: 1, max_territories: 2, time_limit: 5}\n"))
    (tmp_path / "reps.csv").write_text(ROSTER)
    (tmp_path / "a.csv").write_text("account_id,lat,lon,workload\nA1,33.7,-84.4,300\n"
                                    "A2,33.8,-84.3,300\nA3,33.9,-84.2,300\n")
    res = CliRunner().invoke(app, ["capacity", "--plan", str(tmp_path / "plan.yaml"),
                                   "--reps", str(tmp_path / "reps.csv"), "--capacity-hours",
                                   "100", "--accounts", str(tmp_path / "a.csv"), "--start",
                                   "2027-01-01", "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == EXIT_INFEASIBLE, res.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == summary["sizing"]["status"] == "infeasible"
    assert summary["termination"] == "optimal"  # the hiring plan itself was solved


def test_no_n_fits_points_the_way_to_room(tmp_path: Path) -> None:
    """130 h of accounts, 50 h a rep at 90 %: at least 3 territories. An 80-h account cannot
    fit the ±10 % band of 4 or 5 territories (at most 28.6 h at N = 5: 130 h / 5 × 1.1):
    larger N only narrow it, so the note points to fewer territories or a wider band, not to
    'widen the range'. Below the workload's own bound it points up."""
    (tmp_path / "a.csv").write_text("account_id,lat,lon,workload\n" + "".join(
        f"A{i},33.{i},-84.{i},{80 if i == 5 else 10}\n" for i in range(6)))

    def note(low: int, high: int) -> str:
        res = CliRunner().invoke(app, ["capacity", "--accounts", str(tmp_path / "a.csv"),
                                       "--capacity-hours", "50", "--min-n", str(low),
                                       "--max-n", str(high), "--time-limit", "5", "--out",
                                       str(tmp_path / f"o{low}"), "--quiet"])
        assert res.exit_code == EXIT_INFEASIBLE, res.output
        notes = json.loads((tmp_path / f"o{low}" / "summary.json").read_text())["notes"]
        return str(notes[0])

    assert note(4, 5).endswith(
        "no N swept has a design within the balance band (at N = 5: account A5 alone has 80 h "
        "of workload, more than a territory may hold (28.6 h)); try fewer territories or a "
        "wider tolerance")
    assert note(1, 2).endswith("the workload alone needs at least 3 territories: try larger N")


def test_sizing_messages_name_the_options_typed(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("account_id,lat,lon,workload\nA1,33.7,-84.4,10\n")
    base = ["capacity", "--accounts", str(tmp_path / "a.csv"), "--capacity-hours", "100",
            "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(app, [*base, "--min-n", "0", "--max-n", "3"])
    said = " ".join(res.output.split())
    assert res.exit_code == EXIT_INPUT
    assert "command line column --min-n: Input should be greater than or equal to 1" in said
    res = CliRunner().invoke(app, base)
    said = " ".join(res.output.split())
    assert "command line column min_territories: Field required (or give --min-n)" in said
    assert "command line column max_territories: Field required (or give --max-n)" in said


def test_a_role_no_rep_holds_keeps_the_plans_own_roster(tmp_path: Path) -> None:
    """The reps are all AEs; the plan's manager role gives its own starting roster (one
    manager, 24 months in): it is kept, so no manager is hired in month 1 (with the roster
    dropped, the 1-per-8 ratio hired one)."""
    (tmp_path / "plan.yaml").write_text(PLAN.format(q4=220_000).replace(
        "cost_per_month: 14000", "cost_per_month: 14000\n    initial: [24]"))
    (tmp_path / "reps.csv").write_text(ROSTER.replace("M1,1600,manager,2019-01-01\n", ""))
    res = CliRunner().invoke(app, ["capacity", "--plan", str(tmp_path / "plan.yaml"), "--reps",
                                   str(tmp_path / "reps.csv"), "--start", "2027-01-01",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    plan = pd.read_csv(tmp_path / "out" / "hiring_plan.csv")
    month1 = plan[(plan["month"] == 1) & (plan["role"] == "manager")].iloc[0]
    assert month1["headcount"] == 1 and month1["hires"] == 0
