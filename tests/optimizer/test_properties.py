"""Property tests (hypothesis) of the realignment, the greenfield design, the input checks and
exact quota rounding.

Feasible instances are feasible by construction: a plan is drawn first, then the bands,
locks, hierarchies, eligibility, capacities and account limits are set around it. The solver
must then return a complete plan that honours every rule (checked independently by
`plan_checks`), is at least as good as the drawn plan (mip_gap 0), and whose KPIs recompute
from the output tables. Infeasible instances must raise InfeasibleScenarioError with business
reasons, and garbage tables InputError naming row and column; never anything else.

Derandomized and without an example database, so CI runs the same cases every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from optimizer import alignment, design
from optimizer.distance import distance_matrix, haversine_km
from optimizer.domain import AlignmentData, DesignData, DistanceMetric, Scenario
from optimizer.errors import InfeasibleScenarioError, InputError
from optimizer.kpi import alignment_kpis, bands_of, book_from_frames
from optimizer.quota import round_exact
from optimizer.validate import validate_alignment, validate_design
from tests.optimizer.plan_checks import assert_plan_valid

SOLVES = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CHEAP = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])
SOLVER = {"time_limit": 20, "mip_gap": 0, "threads": 1}


OFTEN = st.integers(0, 3).map(bool)  # a rule is in play in about three cases of four


@dataclass
class Drawn:
    """An instance and the plan it was built around (rep position per account)."""

    accounts: pd.DataFrame
    reps: pd.DataFrame
    scenario: Scenario
    plan: np.ndarray

    def data(self) -> AlignmentData:
        return validate_alignment(self.accounts, self.reps, None, self.scenario.metric)


def _points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(33.0, 35.0, n).round(4), rng.uniform(-85.0, -83.0, n).round(4)


@st.composite
def feasible_alignments(draw: st.DrawFn) -> Drawn:
    n = draw(st.integers(3, 9))
    r = draw(st.integers(2, 4))
    workload = np.array(draw(st.lists(st.integers(1, 60), min_size=n, max_size=n)), float)
    plan = np.array(draw(st.lists(st.integers(0, r - 1), min_size=n, max_size=n)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    lat, lon = _points(rng, n)
    rlat, rlon = _points(rng, r)
    ids = [f"A{i}" for i in range(n)]
    rep_ids = [f"R{j}" for j in range(r)]
    roles = rng.choice(["ent", "com"], r)
    accounts = pd.DataFrame({"account_id": ids, "lat": lat, "lon": lon, "workload": workload,
                             "potential": rng.integers(0, 1000, n).astype(float),
                             "visits": rng.integers(1, 4, n).astype(float)})
    # Hierarchies: a parent among the earlier accounts of the same planned rep (no cycles).
    if draw(OFTEN):
        parents: list[str | None] = [None] * n
        for i in range(n):
            same = [j for j in range(i) if plan[j] == plan[i]]
            if same and rng.random() < 0.4:
                parents[i] = ids[int(rng.choice(same))]
        accounts["parent_id"] = parents
    if draw(OFTEN):  # locks agree with the plan
        accounts["locked_rep"] = [rep_ids[plan[i]] if rng.random() < 0.3 else None
                                  for i in range(n)]
    eligibility: dict[str, list[str]] = {}
    if draw(OFTEN):  # a segment per role; the plan gives each one a rep of its role
        accounts["segment"] = [f"S-{roles[plan[i]]}" if rng.random() < 0.6 else "open"
                               for i in range(n)]
        eligibility = {"S-ent": ["ent"], "S-com": ["com"]}
    if draw(OFTEN):
        accounts["current_rep"] = [rep_ids[j] for j in rng.integers(0, r, n)]

    loads = np.bincount(plan, weights=workload, minlength=r)
    counts = np.bincount(plan, minlength=r)
    capacity = np.ceil(np.maximum(loads, 1.0) * rng.uniform(1.0, 2.0, r))
    reps = pd.DataFrame({"rep_id": rep_ids, "lat": rlat, "lon": rlon, "capacity": capacity,
                         "role": roles})
    if draw(OFTEN):
        reps["max_accounts"] = counts + rng.integers(0, 2, r)

    balance: dict[str, Any] = {"workload": {}, "accounts": {}}
    band = draw(st.sampled_from(["tolerance", "absolute", "none"]))
    if band == "tolerance":
        fair = loads.sum() * capacity / capacity.sum()
        balance["workload"] = {"tolerance": float(np.abs(loads / fair - 1).max()) + 0.01}
    elif band == "absolute":
        balance["workload"] = {"min": max(0.0, loads.min() - 0.5), "max": loads.max() + 0.5}
    if draw(OFTEN):
        balance["accounts"] = {"min": int(counts.min()), "max": int(counts.max())}
    disruption: dict[str, Any] = {}
    if "current_rep" in accounts and draw(OFTEN):
        measure = draw(st.sampled_from(["accounts", "workload", "potential"]))
        value = np.ones(n) if measure == "accounts" else accounts[measure].to_numpy(float)
        current = np.array([rep_ids.index(c) for c in accounts["current_rep"]])
        moved = value[plan != current].sum() / value.sum() if value.sum() > 0 else 0.0
        disruption = {"measure": measure, "max_share": min(1.0, float(moved) + 0.01)}
    scenario = Scenario.model_validate({
        "balance": balance, "eligibility": eligibility, "disruption": disruption,
        "circuity": draw(st.sampled_from([1.0, 1.3])), "solver": SOLVER})
    return Drawn(accounts, reps, scenario, plan)


def _travel(accounts: pd.DataFrame, reps: pd.DataFrame, rep_of: np.ndarray,
            circuity: float) -> float:
    d = haversine_km(accounts["lat"].to_numpy(float), accounts["lon"].to_numpy(float),
                     reps["lat"].to_numpy(float)[rep_of], reps["lon"].to_numpy(float)[rep_of])
    return float((accounts["visits"].to_numpy(float) * d * circuity).sum())


def _flat(d: Any, prefix: str = "") -> dict[str, float]:
    if isinstance(d, dict):
        out: dict[str, float] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): float(d)}


@SOLVES
@given(feasible_alignments())
def test_feasible_realignments_honour_every_rule(drawn: Drawn) -> None:
    data = drawn.data()
    sc = drawn.scenario
    for rule in ("parent_id", "locked_rep", "segment", "current_rep"):
        event(f"{rule}: {rule in drawn.accounts}")
    event(f"disruption limit: {sc.disruption.max_share is not None}")
    result = alignment.solve(data, sc)
    assert result.report.status.value == "optimal"
    assert_plan_valid(data, sc, result)

    # At least as good as the plan the instance was built around (travel alone is minimised).
    reps = data.reps
    rep_pos = pd.Index(reps["rep_id"])
    rep_of = rep_pos.get_indexer(result.assignments["rep_id"])
    assert (rep_of >= 0).all()
    travel = _travel(data.accounts, reps, rep_of, sc.circuity)
    assert travel <= _travel(data.accounts, reps, drawn.plan, sc.circuity) * (1 + 1e-6) + 1e-6

    # KPIs recompute from the output tables: independently, and through the KPI module.
    after = result.kpis["after"]
    assert after["travel"]["total"] == pytest.approx(travel, rel=1e-9, abs=1e-9)
    terr = result.territories.set_index("rep_id").reindex(reps["rep_id"])
    acc = data.accounts
    for metric in ("workload", "potential"):
        load = np.bincount(rep_of, weights=acc[metric].to_numpy(float), minlength=len(reps))
        assert terr[metric].to_numpy(float) == pytest.approx(load, rel=1e-12, abs=1e-9)
    assert terr["accounts"].to_numpy(float) == pytest.approx(
        np.bincount(rep_of, minlength=len(reps)))
    assert terr["utilisation"].to_numpy(float) == pytest.approx(
        terr["workload"].to_numpy(float) / reps["capacity"].to_numpy(float))
    assert terr["travel"].sum() == pytest.approx(travel, rel=1e-9, abs=1e-9)
    loads = terr["workload"].to_numpy(float)
    assert after["balance"]["workload"]["max_over_mean"] == pytest.approx(
        loads.max() / loads.mean())
    if acc["current_rep"].notna().any():
        moved = result.assignments["moved"].to_numpy(bool)
        assert after["disruption"]["accounts_moved"] == moved.sum()
        assert after["disruption"]["workload_moved"] == pytest.approx(
            acc["workload"].to_numpy(float)[moved].sum())
    book = book_from_frames(acc, reps, distance_matrix(acc, reps, sc.metric, sc.circuity))
    again = _flat(alignment_kpis(book, rep_of, bands_of(sc.balance)))
    assert again == pytest.approx(_flat(after), rel=1e-12, abs=1e-12)


INFEASIBLE_KINDS = ("capacity", "locked overload", "conflicting locks", "disruption")


@st.composite
def infeasible_alignments(draw: st.DrawFn) -> tuple[str, pd.DataFrame, pd.DataFrame, Scenario]:
    kind = draw(st.sampled_from(INFEASIBLE_KINDS))
    n = draw(st.integers(3, 8))
    r = draw(st.integers(2, 3))
    workload = np.array(draw(st.lists(st.integers(1, 50), min_size=n, max_size=n)), float)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    lat, lon = _points(rng, n)
    rlat, rlon = _points(rng, r)
    ids = [f"A{i}" for i in range(n)]
    accounts = pd.DataFrame({"account_id": ids, "lat": lat, "lon": lon, "workload": workload})
    total = workload.sum()
    capacity = np.full(r, total)  # roomy: only the rule under test can fail
    balance: dict[str, Any] = {"workload": {}}
    disruption: dict[str, Any] = {}
    if kind == "capacity":  # every rep together holds less than the accounts need
        capacity = np.full(r, max(1.0, math.floor((total - 1) / r)))
    elif kind == "locked overload":  # rep R0 gets more locked workload than it can carry
        accounts["locked_rep"] = "R0"
        capacity[0] = max(1.0, total - 1)
    elif kind == "conflicting locks":  # a hierarchy locked to two reps
        accounts["parent_id"] = [None] + [ids[0]] * (n - 1)
        accounts["locked_rep"] = ["R0", "R1"] + [None] * (n - 2)
    else:  # everything is with R0 today, R0 may keep at most one account, nothing may move
        accounts["current_rep"] = "R0"
        disruption = {"max_share": 0.0}
    reps = pd.DataFrame({"rep_id": [f"R{j}" for j in range(r)], "lat": rlat, "lon": rlon,
                         "capacity": capacity})
    if kind == "disruption":
        reps["max_accounts"] = [1] + [n] * (r - 1)
    scenario = Scenario.model_validate({"balance": balance, "disruption": disruption,
                                        "solver": SOLVER})
    return kind, accounts, reps, scenario


@SOLVES
@given(infeasible_alignments())
def test_infeasible_realignments_are_explained(
        case: tuple[str, pd.DataFrame, pd.DataFrame, Scenario]) -> None:
    kind, accounts, reps, sc = case
    data = validate_alignment(accounts, reps, None, sc.metric)
    with pytest.raises(InfeasibleScenarioError) as caught:
        alignment.solve(data, sc)
    reasons = caught.value.reasons
    assert reasons and all(isinstance(x, str) and len(x) > 20 for x in reasons)
    expected = {"capacity": "capacity", "locked overload": "locked accounts give rep R0",
                "conflicting locks": "locked to several reps", "disruption": "disruption"}
    assert any(expected[kind] in x for x in reasons), reasons


CELLS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "=1+1", "NaN", "inf", "-0", "1e400", "١٢", "R0", "A0", "Ω"]))
ACCOUNT_COLUMNS = ["account_id", "lat", "lon", "workload", "potential", "visits",
                   "current_rep", "locked_rep", "parent_id", "segment", "extra"]
REP_COLUMNS = ["rep_id", "lat", "lon", "capacity", "max_accounts", "role"]


@st.composite
def garbage_tables(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Random tables, or valid ones with a few random cells: text, unicode, NaN, inf, huge
    numbers, formulas, blanks."""
    def random_table(columns: list[str], rows: int) -> pd.DataFrame:
        chosen = draw(st.lists(st.sampled_from(columns), unique=True, max_size=len(columns)))
        return pd.DataFrame({c: draw(st.lists(CELLS, min_size=rows, max_size=rows))
                             for c in chosen}, index=range(rows))

    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype(object)
        for _ in range(draw(st.integers(0, 2))):
            row = draw(st.integers(0, len(frame) - 1))
            frame.loc[row, draw(st.sampled_from(list(frame.columns)))] = draw(CELLS)
        return frame

    if draw(st.booleans()):
        accounts = random_table(ACCOUNT_COLUMNS, draw(st.integers(0, 6)))
        reps = random_table(REP_COLUMNS, draw(st.integers(0, 4)))
    else:
        n = draw(st.integers(1, 6))
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        lat, lon = _points(rng, n)
        accounts = corrupt(pd.DataFrame({
            "account_id": [f"A{i}" for i in range(n)], "lat": lat, "lon": lon,
            "workload": rng.integers(1, 20, n), "segment": "S", "current_rep": "R0"}))
        reps = corrupt(pd.DataFrame({"rep_id": ["R0", "R1"], "lat": [34.0, 33.5],
                                     "lon": [-84.0, -84.5], "capacity": [1000, 1000]}))
    # One cell that is certainly wrong, so the error must name it.
    bad_row = -1
    if len(accounts) and draw(st.booleans()):
        bad_row = draw(st.integers(0, len(accounts) - 1))
        accounts["workload"] = accounts.get("workload", pd.Series(1, index=accounts.index))
        accounts["workload"] = accounts["workload"].astype(object)
        accounts.loc[bad_row, "workload"] = "twelve"
    return accounts, reps, bad_row


@CHEAP
@given(garbage_tables())
def test_garbage_tables_give_row_and_column(case: tuple[pd.DataFrame, pd.DataFrame, int]
                                            ) -> None:
    accounts, reps, bad_row = case
    try:
        data = validate_alignment(accounts, reps, None, DistanceMetric.haversine)
    except InputError as exc:
        event("rejected")
        assert exc.issues
        sizes = {"accounts": len(accounts), "reps": len(reps)}
        for issue in exc.issues:
            assert issue.source in sizes and issue.message
            if issue.row is not None:  # a cell: row within the table, and its column
                assert 1 <= issue.row <= sizes[issue.source], issue
                assert issue.field in (accounts if issue.source == "accounts" else reps), issue
        if bad_row >= 0:
            assert any(i.source == "accounts" and i.row == bad_row + 1 and
                       i.field == "workload" for i in exc.issues), exc.issues
        return
    event("accepted and solved")
    assert bad_row < 0
    # Whatever passes the checks is solvable or explained, never a crash.
    try:
        result = alignment.solve(data, Scenario(solver={"time_limit": 5, "threads": 1}))
    except InfeasibleScenarioError as exc:
        assert exc.reasons
    else:
        assert len(result.assignments) == len(data.accounts)


@st.composite
def feasible_designs(draw: st.DrawFn) -> tuple[pd.DataFrame, Scenario, np.ndarray]:
    n = draw(st.integers(4, 8))
    k = draw(st.integers(2, 3))
    workload = np.array(draw(st.lists(st.integers(1, 40), min_size=n, max_size=n)), float)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    # A drawn design: k distinct centres, each account with one of them, each centre with itself.
    centres = rng.choice(n, k, replace=False)
    plan = centres[rng.integers(0, k, n)]
    plan[centres] = centres
    x, y = rng.uniform(0, 100, n).round(3), rng.uniform(0, 100, n).round(3)
    accounts = pd.DataFrame({"account_id": [f"A{i}" for i in range(n)], "x": x, "y": y,
                             "workload": workload})
    loads = np.array([workload[plan == c].sum() for c in centres])
    scenario = Scenario.model_validate({
        "mode": "design", "metric": "euclidean", "territories": k,
        "balance": {"workload": {"min": max(0.0, loads.min() - 0.5), "max": loads.max() + 0.5}},
        "solver": SOLVER})
    return accounts, scenario, plan


@SOLVES
@given(feasible_designs())
def test_feasible_designs_are_complete_banded_and_no_worse(
        case: tuple[pd.DataFrame, Scenario, np.ndarray]) -> None:
    accounts, sc, plan = case
    data: DesignData = validate_design(accounts, None, sc.metric)
    result = design.solve(data, sc)
    assert result.report.status.value == "optimal"
    out = result.assignments
    assert sorted(out["account_id"]) == sorted(accounts["account_id"])
    terr = result.territories
    assert len(terr) == sc.territories and set(out["territory_id"]) == set(terr["territory_id"])
    acc = data.accounts.set_index("account_id")
    xy = acc[["x", "y"]].to_numpy(float)
    centre_of = dict(zip(terr["territory_id"], terr["centre"], strict=True))
    rule = sc.balance.workload
    assert rule.min is not None and rule.max is not None
    travel = 0.0
    for tid, rows in out.groupby("territory_id"):
        load = acc.loc[rows["account_id"], "workload"].sum()
        assert rule.min - 1e-9 <= load <= rule.max + 1e-9
        assert terr.set_index("territory_id").loc[tid, "workload"] == pytest.approx(load)
        centre = acc.index.get_loc(centre_of[tid])
        members = acc.index.get_indexer(rows["account_id"])
        travel += float(np.hypot(*(xy[members] - xy[centre]).T).sum())
    drawn = float(np.hypot(*(xy - xy[plan]).T).sum())
    assert travel <= drawn * (1 + 1e-6) + 1e-6
    assert result.kpis["after"]["travel"]["total"] == pytest.approx(travel, rel=1e-9, abs=1e-9)


@CHEAP
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), max_size=30),
       st.sampled_from([1.0, 0.01, 5.0, 1000.0]))
def test_round_exact_keeps_the_sum_and_each_amount_within_a_unit(amounts: list[float],
                                                                 unit: float) -> None:
    out = round_exact(amounts, unit)
    a = np.asarray(amounts, float)
    assert out.shape == a.shape
    steps = out / unit
    assert np.allclose(steps, np.round(steps), atol=1e-6)  # multiples of the unit
    if len(a):
        # Σ rounded = Σ amounts rounded to the unit (halves up), up to float noise in Σ.
        assert abs(np.round(steps).sum() - a.sum() / unit) <= 0.5 + 1e-6 * max(
            1.0, np.abs(a).sum() / unit)
        assert (np.abs(out - a) < unit * (1 + 1e-9) + 1e-9).all()
    assert np.array_equal(out, round_exact(amounts, unit))  # deterministic
