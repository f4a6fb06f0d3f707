"""Infeasible scenarios are explained in business terms, before or after solving."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from optimizer.alignment import solve
from optimizer.cli import EXIT_INFEASIBLE, EXIT_INPUT, app
from optimizer.domain import Scenario
from optimizer.errors import InfeasibleScenarioError, InputError
from tests.conftest import make_instance


def reasons(inst, body: dict) -> list[str]:
    sc = Scenario.model_validate(body)
    with pytest.raises(InfeasibleScenarioError) as err:
        solve(inst.data(sc), sc)
    return err.value.reasons


def test_total_workload_over_capacity() -> None:
    inst = make_instance(10, 3, 1)
    inst.reps["capacity"] = 50.0
    found = reasons(inst, {"balance": {"workload": {"tolerance": None}}})
    total = inst.accounts["workload"].sum()
    assert f"the accounts need {total:,.0f} h of workload but the reps' capacity add up to " \
           "only 150 h" in found[0]


def test_locked_accounts_overload_a_rep() -> None:
    inst = make_instance(10, 3, 2)
    inst.accounts["workload"] = 100.0
    inst.accounts["locked_rep"] = ["R1"] * 5 + [None] * 5
    inst.reps["capacity"] = [400.0, 400.0, 400.0]
    found = reasons(inst, {"balance": {"workload": {"tolerance": None}}})
    assert "locked accounts give rep R1 500 h of workload against its capacity of 400 h" in found


def test_conflicting_locks_in_a_hierarchy() -> None:
    inst = make_instance(6, 3, 3)
    inst.accounts["parent_id"] = [None, "A0", None, None, None, None]
    inst.accounts["locked_rep"] = ["R0", "R2", None, None, None, None]
    found = reasons(inst, {})
    assert any("hierarchy of A0 (2 accounts) is locked to several reps (R0, R2)" in r
               for r in found)


def test_a_role_no_rep_has_is_bad_input_named_once() -> None:
    """Eligibility to a role that no rep holds (here a capitalised one) is one input error
    on the scenario's key, not an infeasibility listed account by account."""
    inst = make_instance(6, 3, 4)
    sc = Scenario.model_validate({"eligibility": {"A": ["Commercial"], "B": ["commercial"]}})
    with pytest.raises(InputError) as err:
        solve(inst.data(sc), sc)
    n_a = int((inst.accounts["segment"] == "A").sum())
    assert [str(i) for i in err.value.issues] == [
        f"scenario column eligibility.A: no rep has role 'Commercial', so the {n_a:,} "
        "accounts of segment 'A' could go to no one (the reps' roles: 'commercial', "
        "'enterprise')"]


def test_accounts_no_rep_may_take_are_named_in_one_reason() -> None:
    """Hierarchies that mix segments with disjoint roles fit no rep: one reason names them
    (at most STUCK_SHOWN of them) with the count of their accounts (15 hierarchies of 2)."""
    inst = make_instance(30, 3, 4)
    a = inst.accounts
    a["segment"] = ["A", "B"] * 15
    a["parent_id"] = [None if i % 2 == 0 else f"A{i - 1}" for i in range(30)]
    found = reasons(inst, {"eligibility": {"A": ["enterprise"], "B": ["commercial"]}})
    stuck = [r for r in found if "cannot be assigned" in r]
    assert stuck == [
        "30 accounts cannot be assigned, because no rep is eligible for them (segment "
        "eligibility, hierarchy or missing distances): hierarchy of A0 (2 accounts), "
        + ", ".join(f"hierarchy of A{i} (2 accounts)" for i in range(2, 20, 2))
        + " and 5 more accounts or hierarchies"]


def test_band_unreachable_after_solving_lp() -> None:
    """Each rep alone could meet its band; together they cannot. The LP finds who fails."""
    inst = make_instance(14, 4, 5)
    inst.accounts["workload"] = [100.0] * 6 + [50.0] * 8
    inst.accounts["segment"] = ["A"] * 6 + ["B"] * 8
    inst.reps["role"] = ["enterprise", "enterprise", "commercial", "commercial"]
    # Segment A (600 h) may only go to R0 and R1, who can take 2 × 275 h at most.
    found = reasons(inst, {"eligibility": {"A": ["enterprise"]},
                           "balance": {"workload": {"tolerance": 0.1}}})
    assert any(r.startswith(("even the closest plan leaves rep R0's workload",
                             "even the closest plan leaves rep R1's workload"))
               and "over its upper band of 275 h" in r for r in found), found


def test_disruption_limit_too_tight() -> None:
    inst = make_instance(8, 3, 6)
    inst.accounts["current_rep"] = "R0"  # everything with one rep today
    found = reasons(inst, {"balance": {"workload": {"tolerance": 0.1}},
                           "disruption": {"max_share": 0.2}})
    assert len(found) == 1
    assert found[0].startswith("the disruption limit lets 20.0% of accounts move, but meeting "
                               "the balance bands and limits moves at least")


def test_cli_writes_infeasible_summary(tmp_path: Path) -> None:
    inst = make_instance(6, 2, 7)
    inst.reps["capacity"] = 10.0
    inst.accounts.to_csv(tmp_path / "a.csv", index=False)
    inst.reps.to_csv(tmp_path / "r.csv", index=False)
    res = CliRunner().invoke(app, ["align", "--accounts", str(tmp_path / "a.csv"), "--reps",
                                   str(tmp_path / "r.csv"), "--out", str(tmp_path / "o"),
                                   "--quiet"])
    assert res.exit_code == EXIT_INFEASIBLE
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["status"] == "infeasible"
    assert "capacity add up to only 20 h" in summary["reasons"][0]
    assert isinstance(pd.read_csv(tmp_path / "a.csv"), pd.DataFrame)


def test_an_infeasible_run_leaves_no_earlier_plan_behind(tmp_path: Path) -> None:
    """Rerun into the same folder: the infeasible run removes the first run's plan files, so
    nothing downstream can take them for its plan, and `territory quota` refuses the folder."""
    inst = make_instance(6, 2, 7)
    inst.accounts.to_csv(tmp_path / "a.csv", index=False)
    inst.reps.to_csv(tmp_path / "r.csv", index=False)
    out = tmp_path / "o"
    align = ["align", "--accounts", str(tmp_path / "a.csv"), "--reps", str(tmp_path / "r.csv"),
             "--out", str(out), "--quiet"]
    assert CliRunner().invoke(app, align).exit_code == 0
    assert (out / "assignments.csv").exists() and (out / "workbook.xlsx").exists()
    inst.reps["capacity"] = 10.0
    inst.reps.to_csv(tmp_path / "r.csv", index=False)
    assert CliRunner().invoke(app, align).exit_code == EXIT_INFEASIBLE
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    res = CliRunner().invoke(app, ["quota", "--assignments", str(out), "--goal", "1000",
                                   "--out", str(tmp_path / "q")])
    assert res.exit_code == EXIT_INPUT
    assert "ended with status infeasible" in res.output


@pytest.mark.parametrize(("measure", "clear", "why"), [
    ("potential", "potential", "they count potential moved, and the accounts with a rep "
     "today have no potential"),
    ("accounts", "current_rep", "no account has a rep today (current_rep)")])
def test_a_disruption_limit_that_counts_nothing_is_named(measure: str, clear: str,
                                                         why: str) -> None:
    """A limit on moves that cannot bind says so instead of passing in silence."""
    inst = make_instance(8, 2, 5)
    inst.accounts[clear] = 0.0 if clear == "potential" else None
    sc = Scenario.model_validate({"balance": {"workload": {"tolerance": None}},
                                  "disruption": {"measure": measure, "max_share": 0.1}})
    warnings = solve(inst.data(sc), sc).warnings
    assert f"the disruption limit and weight have no effect: {why}" in warnings
    # with potential on the books, no such warning
    sc_ok = Scenario.model_validate({"balance": {"workload": {"tolerance": None}},
                                     "disruption": {"max_share": 0.5}})
    assert not any("disruption" in w for w in solve(make_instance(8, 2, 5).data(sc_ok),
                                                    sc_ok).warnings)


@pytest.mark.parametrize(("rep_limit", "balance", "expected"), [
    # 8 accounts of 100 h, 2 reps of equal capacity: fair 400 h, band 360–440 h. One
    # account gives R0 100 h at most.
    ({"max_accounts": [1.0, float("nan")]}, {"workload": {"tolerance": 0.1}},
     "rep R0 can gather at most 100 h of workload within its max_accounts of 1 account, "
     "below its minimum of 360 h"),
    # At least 3 accounts each; 250 h of capacity hold 2.5 accounts of 100 h, so 2 whole
    # ones.
    ({"capacity": [250.0, 1000.0]},
     {"workload": {"tolerance": None}, "accounts": {"tolerance": None, "min": 3}},
     "rep R0 can gather at most 2 accounts within its capacity of 250 h of workload, below "
     "its minimum of 3 accounts"),
])
def test_a_limit_that_keeps_a_rep_below_another_minimum_is_named(
        rep_limit: dict, balance: dict, expected: str) -> None:
    """A cap on one measure against a minimum of another: the explanation names both,
    not the one side the LP's closest plan happens to break."""
    inst = make_instance(8, 2, 11)
    inst.accounts["workload"] = 100.0
    for column, values in rep_limit.items():
        inst.reps[column] = values
    assert reasons(inst, {"balance": balance}) == [expected]


def test_amounts_in_reasons_read_naturally() -> None:
    """Counts of accounts are not 'accounts of accounts', and a small limit keeps its tenth,
    so the 26 h account and the 25.8 h limit it breaks do not both read as 26 h."""
    inst = make_instance(5, 2, 12)
    inst.reps["max_accounts"] = 1.0
    found = reasons(inst, {"balance": {"workload": {"tolerance": None}}})
    assert "the accounts need 5 accounts but the reps' upper limits add up to only 2 " \
           "accounts" in found, found
    inst = make_instance(5, 2, 12)
    inst.accounts["workload"] = [26.0, 24.0, 10.0, 10.0, 16.0]
    inst.reps["capacity"] = 25.8
    found = reasons(inst, {"balance": {"workload": {"tolerance": None}}})
    assert "account A0 alone has 26 h of workload, more than any rep it may go to can " \
           "take" in found, found
    assert "the accounts need 86 h of workload but the reps' capacity add up to only " \
           "51.6 h" in found, found
