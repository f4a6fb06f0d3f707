"""Bad input is reported all at once, by file, row and column, before any solve."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from optimizer.alignment import AlignmentResult
from optimizer.alignment import solve as solve_alignment
from optimizer.cli import EXIT_INPUT, app
from optimizer.design import solve as solve_design
from optimizer.domain import DistanceMetric, Scenario
from optimizer.errors import InputError
from optimizer.io import read_alignment, read_design, read_scenario
from optimizer.validate import validate_alignment

REPS = pd.DataFrame({"rep_id": ["R1", "R2"], "lat": ["33.7", "34.0"], "lon": ["-84.4", "-83.4"],
                     "capacity": ["1600", "1600"]})


def accounts(**overrides: list) -> pd.DataFrame:
    base = {"account_id": ["A1", "A2", "A3"], "lat": ["33.1", "33.2", "33.3"],
            "lon": ["-84.1", "-84.2", "-84.3"], "workload": ["10", "20", "30"]}
    base.update(overrides)
    return pd.DataFrame(base)


def issues_of(acc: pd.DataFrame, reps: pd.DataFrame = REPS) -> list[str]:
    with pytest.raises(InputError) as err:
        validate_alignment(acc, reps, None, DistanceMetric.haversine)
    return [str(i) for i in err.value.issues]


def test_everything_reported_at_once() -> None:
    acc = accounts(account_id=["A1", "A1", ""], lat=["33.1", "abc", "95"],
                   lon=["-84.1", "", "-84.3"], workload=["10", "-5", "nan"],
                   current_rep=["R1", "R9", None], parent_id=[None, None, "A7"])
    found = issues_of(acc)
    expected = [
        "accounts row 2, column account_id: duplicate account_id 'A1' (first on row 1)",
        "accounts row 3, column account_id: is empty",
        "accounts row 2, column lat: not a number (got 'abc')",
        "accounts row 3, column lat: must be ≤ 90 (got '95')",
        "accounts row 2, column lon: is empty",
        "accounts row 2, column workload: must be ≥ 0 (got '-5')",
        "accounts row 2, column current_rep: unknown rep (got 'R9')",
        "accounts row 3, column parent_id: unknown account 'A7'",
    ]
    for line in expected:
        assert line in found, (line, found)
    assert any("row 3, column workload" in f for f in found)  # NaN is not a workload


def test_missing_columns() -> None:
    found = issues_of(pd.DataFrame({"account_id": ["A1"]}), REPS.drop(columns=["capacity"]))
    assert "accounts column lat: required column is missing (accounts need WGS84 lat, lon)" \
        in found
    assert "accounts column workload: required column is missing (hours per year)" in found
    assert "reps column capacity: required column is missing (selling hours per year)" in found


def test_cyclic_hierarchy_names_the_cycle() -> None:
    found = issues_of(accounts(parent_id=["A2", "A3", "A1"]))
    assert sum("cyclic hierarchy: A1 → A2 → A3 → A1" in f for f in found) == 3


def test_reps_checked_too() -> None:
    reps = REPS.assign(capacity=["0", "x"], rep_id=["R1", "R1"], lat=["33.7", "-91"])
    found = issues_of(accounts(), reps)
    assert "reps row 1, column capacity: must be > 0 (got '0')" in found
    assert "reps row 2, column capacity: not a number (got 'x')" in found
    assert "reps row 2, column rep_id: duplicate rep_id 'R1' (first on row 1)" in found
    assert "reps row 2, column lat: must be ≥ -90 (got '-91')" in found


def test_scenario_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("objective: {travel: -1}\nbalanse: {}\nsolver: {mip_gap: 2}\n")
    with pytest.raises(InputError) as err:
        read_scenario(f)
    fields = {i.field for i in err.value.issues}
    assert {"objective.travel", "balanse", "solver.mip_gap"} <= fields


def test_scenario_centres_as_written_in_yaml(tmp_path: Path) -> None:
    """Numeric ids (county FIPS codes) are ids as accounts.csv reads them; anything else is
    one message naming `centres`."""
    f = tmp_path / "s.yaml"
    f.write_text("mode: design\ncentres: [13001, '13003', A7]\n")
    assert read_scenario(f).centres == ["13001", "13003", "A7"]
    for written, message in (
            ("everywhere", "must be 'accounts', 'units' or a list of account or unit ids "
                           "(got 'everywhere')"),
            ("[13001, 1.5]", "item 2 is not an account or unit id (got 1.5)"),
            ("[true]", "item 1 is not an account or unit id (got True)")):
        f.write_text(f"mode: design\ncentres: {written}\n")
        with pytest.raises(InputError) as err:
            read_scenario(f)
        assert [(i.field, i.message) for i in err.value.issues] == [("centres", message)]


def test_cli_exit_code_2_and_message(tmp_path: Path) -> None:
    acc = accounts(workload=["10", "-1", "3"])
    acc.to_csv(tmp_path / "accounts.csv", index=False)
    REPS.to_csv(tmp_path / "reps.csv", index=False)
    res = CliRunner().invoke(app, ["align", "--accounts", str(tmp_path / "accounts.csv"),
                                   "--reps", str(tmp_path / "reps.csv"),
                                   "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == EXIT_INPUT
    assert "accounts.csv row 2, column workload: must be ≥ 0" in res.output
    assert not (tmp_path / "out" / "assignments.csv").exists()


def test_text_cells_come_through_as_written(tmp_path: Path) -> None:
    """Segment NA (North America) and a name None are text; in a number column NA is the
    missing value spreadsheet exports write, so an optional column takes its default."""
    rows = ("account_id,lat,lon,workload,potential,segment,name\n"
            "A1,33.1,-84.1,10,NA,NA,None\n"
            "NA,33.2,-84.2,20,5,EU,\n")
    (tmp_path / "accounts.csv").write_text(rows)
    REPS.to_csv(tmp_path / "reps.csv", index=False)
    data = read_alignment(tmp_path / "accounts.csv", tmp_path / "reps.csv", Scenario())
    acc = data.accounts.set_index("account_id")
    assert list(acc.index) == ["A1", "NA"]
    assert acc.loc["A1", "segment"] == "NA" and acc.loc["A1", "name"] == "None"
    assert pd.isna(acc.loc["NA", "name"])  # an empty cell is missing
    assert list(acc["potential"]) == [0.0, 5.0]
    # and NA in a required number column is a missing value, named as such
    (tmp_path / "accounts.csv").write_text("account_id,lat,lon,workload\nA1,33.1,-84.1,N/A\n")
    with pytest.raises(InputError) as err:
        read_alignment(tmp_path / "accounts.csv", tmp_path / "reps.csv", Scenario())
    assert [str(i) for i in err.value.issues] == [
        "accounts.csv row 1, column workload: is empty"]


def test_numbers_in_messages_read_as_written() -> None:
    """A table of numbers (an API body, a Parquet or Excel file) shows its bad cells as
    numbers, and text cells stay quoted."""
    acc = accounts(workload=[10.0, -5.0, 30.0], lat=[33.1, 95, 33.3])
    assert issues_of(acc) == [
        "accounts row 2, column lat: must be ≤ 90 (got 95.0)",
        "accounts row 2, column workload: must be ≥ 0 (got -5.0)"]
    assert issues_of(accounts(workload=["10", "-5", "x"])) == [
        "accounts row 3, column workload: not a number (got 'x')",
        "accounts row 2, column workload: must be ≥ 0 (got '-5')"]
    # JSON allows an integer beyond float range (it crashed the check) and true/false (read
    # as 1 and 0 h); a long value is cut short in the message.
    assert issues_of(accounts(workload=[10**400, True, 5])) == [
        "accounts row 2, column workload: not a number (got True)",
        f"accounts row 1, column workload: must be finite (got {'1' + '0' * 56}…)"]


def _segment_plan(folder: Path, eligibility: dict[str, list[str]]) -> AlignmentResult:
    """Three accounts (A1 of segment NA near R1, A2 of EU near R1, A3 of EU at R2), a
    commercial rep R1 and an enterprise rep R2, aligned on travel alone."""
    (folder / "accounts.csv").write_text(
        "account_id,lat,lon,workload,segment\n"
        "A1,33.70,-84.40,10,NA\nA2,33.71,-84.41,10,EU\nA3,34.00,-83.40,10,EU\n")
    pd.DataFrame({"rep_id": ["R1", "R2"], "lat": ["33.7", "34.0"], "lon": ["-84.4", "-83.4"],
                  "capacity": ["1600", "1600"], "role": ["commercial", "enterprise"]}
                 ).to_csv(folder / "reps.csv", index=False)
    sc = Scenario.model_validate({"balance": {"workload": {"tolerance": None}},
                                  "eligibility": eligibility})
    return solve_alignment(read_alignment(folder / "accounts.csv", folder / "reps.csv", sc), sc)


def test_eligibility_of_segment_na_is_kept(tmp_path: Path) -> None:
    """`eligibility: {NA: [enterprise]}` sends the NA accounts to the enterprise rep, though
    the commercial rep is nearer (it was silently dropped when NA was read as missing)."""
    result = _segment_plan(tmp_path, {"NA": ["enterprise"]})
    plan = result.assignments.set_index("account_id")["rep_id"]
    assert plan.to_dict() == {"A1": "R2", "A2": "R1", "A3": "R2"}
    assert not result.warnings


def test_eligibility_for_a_segment_no_account_has_is_named(tmp_path: Path) -> None:
    """A rule for a segment that no account has (a typo: 'Na' for 'NA') does nothing; the
    run says so instead of aligning as if the rule held."""
    result = _segment_plan(tmp_path, {"Na": ["enterprise"]})
    plan = result.assignments.set_index("account_id")["rep_id"]
    assert plan.to_dict() == {"A1": "R1", "A2": "R1", "A3": "R2"}  # each to its nearest rep
    assert result.warnings == [
        "eligibility for segment 'Na' has no effect: no account has that segment (the "
        "accounts' segments: 'EU', 'NA')"]


def test_a_distance_pair_given_twice_and_a_fractional_account_limit_are_refused() -> None:
    dist = pd.DataFrame({"from_id": ["A1", "A2", "A1"], "to_id": ["R1", "R1", "R1"],
                         "distance": ["5", "6", "7"]})
    reps = REPS.assign(max_accounts=["2.5", "3"])
    with pytest.raises(InputError) as err:
        validate_alignment(accounts(), reps, dist, DistanceMetric.haversine)
    assert [str(i) for i in err.value.issues] == [
        "reps row 1, column max_accounts: must be a whole number of accounts (got '2.5')",
        "distances row 3, column to_id: the pair (A1, R1) is given twice (first on row 1)"]


def test_align_refuses_a_design_scenario(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("mode: design\nterritories: 3\n")
    res = CliRunner().invoke(app, ["align", "--dataset", "us-regional", "--scenario",
                                   str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o")])
    assert res.exit_code == EXIT_INPUT
    assert "s.yaml column mode: territory align realigns (mode align), and this scenario " \
        "says mode design: run it with territory design" in " ".join(res.output.split())


def test_eligibility_with_a_rep_without_a_role(tmp_path: Path) -> None:
    """A rep without a role is eligible for no restricted segment (it crashed on the
    missing value): the enterprise account goes to the enterprise rep, though farther."""
    (tmp_path / "accounts.csv").write_text(
        "account_id,lat,lon,workload,segment\nA1,33.70,-84.40,10,ent\nA2,34.00,-83.40,10,\n")
    (tmp_path / "reps.csv").write_text(
        "rep_id,lat,lon,capacity,role\nR1,34.0,-83.4,1600,ent\nR2,33.7,-84.4,1600,\n")
    sc = Scenario.model_validate({"balance": {"workload": {"tolerance": None}},
                                  "eligibility": {"ent": ["ent"]}})
    result = solve_alignment(read_alignment(tmp_path / "accounts.csv", tmp_path / "reps.csv",
                                            sc), sc)
    plan = result.assignments.set_index("account_id")["rep_id"]
    assert plan.to_dict() == {"A1": "R1", "A2": "R1"}  # A2 sits on R1's home base
    assert not result.warnings


def test_settings_of_the_other_mode_are_named_as_ignored(tmp_path: Path) -> None:
    """territories and centres in an alignment, a disruption limit in a design: each did
    nothing without a word."""
    result = _segment_plan(tmp_path, {})
    assert not result.warnings
    sc = Scenario.model_validate({"balance": {"workload": {"tolerance": None}},
                                  "territories": 5, "centres": ["A1"]})
    data = read_alignment(tmp_path / "accounts.csv", tmp_path / "reps.csv", sc)
    assert solve_alignment(data, sc).warnings == [
        "territories and centres are design settings, ignored in an alignment: each rep "
        "keeps one territory"]
    design = Scenario.model_validate({"mode": "design", "territories": 2,
                                      "balance": {"workload": {"tolerance": None}},
                                      "disruption": {"max_share": 0.1}})
    result = solve_design(read_design(tmp_path / "accounts.csv", design), design)
    assert result.warnings == [
        "the disruption limit is ignored in a design: territories are carved anew, with no "
        "reps to move accounts between"]
