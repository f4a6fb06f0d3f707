"""Comparing plans: KPI tables side by side and the accounts whose rep differs.

`kpi_table` flattens the nested KPI dicts of `optimizer.kpi` (as in summary.json) into one
row per KPI, so a before/after table (workbook) and a run-against-run table (`territory
compare`) read the same. `compare_runs` reads two run output folders.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer.errors import InputError, Issue
from optimizer.io import check_finished_run

# Plain-language names of the KPI keys of optimizer.kpi; unknown keys fall back to the key
# with underscores as spaces, so new KPIs show up without touching this table.
_NAMES = {
    "accounts_assigned": "accounts assigned",
    "accounts_unassigned": "accounts unassigned",
    "max_over_mean": "max / mean",
    "min_over_mean": "min / mean",
    "cv": "coefficient of variation",
    "max_over_fair": "max / fair share",
    "min_over_fair": "min / fair share",
    "share_within_tolerance": "territories within tolerance",
    "workload_weighted_mean_distance": "workload-weighted mean distance",
    "max_distance": "longest distance",
    "over_capacity_reps": "reps over capacity",
    "compactness_mean": "mean compactness (Polsby–Popper)",
    "compactness_min": "least compact territory (Polsby–Popper)",
    "disconnected_territories": "territories in more than one piece",
    "disconnected_parts": "extra pieces (0 = contiguous)",
}


def flatten_kpis(kpis: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested KPI dict → {"balance.workload.cv": 0.09, ...} (numbers only, order kept).

    Parameters
    ----------
    kpis : mapping
        One plan's KPIs (e.g. ``summary["kpis"]["after"]``).
    prefix : str
        Key prefix (used in recursion).

    Returns
    -------
    dict
        Dotted key → value; booleans become 0/1, non-numbers are left out.
    """
    out: dict[str, float] = {}
    for key, value in kpis.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_kpis(value, name + "."))
        elif isinstance(value, bool | int | float | np.number) and value is not None:
            out[name] = float(value)
    return out


def kpi_label(key: str) -> str:
    """A readable label for a dotted KPI key: 'Balance · workload · coefficient of variation'."""
    parts = key.split(".")
    words = [_NAMES.get(p, p.replace("_", " ")) for p in parts]
    words[0] = words[0][:1].upper() + words[0][1:]
    return " · ".join(words)


def kpi_is_share(key: str) -> bool:
    """Whether a KPI is a share/ratio best shown as a percentage."""
    leaf = key.rsplit(".", 1)[-1]
    return "share" in leaf or key == "run.gap" or (key.startswith("utilisation.")
                                                   and leaf in ("max", "mean"))


def kpi_table(plans: Mapping[str, Mapping[str, Any]], *,
              difference: tuple[str, str] | None = None) -> pd.DataFrame:
    """KPIs of several plans side by side, one row per KPI.

    Parameters
    ----------
    plans : mapping
        Column name → nested KPI dict, e.g. ``{"Before": k0, "After": k1}``.
    difference : tuple of str, optional
        (a, b): add a column ``Change`` = b − a.

    Returns
    -------
    pandas.DataFrame
        kpi (dotted key), label, one column per plan (NaN where a plan lacks the KPI) and
        optionally Change. Rows in first-seen order.
    """
    flat = {name: flatten_kpis(k) for name, k in plans.items()}
    keys: list[str] = []
    for values in flat.values():
        keys += [k for k in values if k not in keys]
    table = pd.DataFrame({"kpi": keys, "label": [kpi_label(k) for k in keys]})
    for name, values in flat.items():
        table[name] = [values.get(k, math.nan) for k in keys]
    if difference is not None:
        a, b = difference
        table["Change"] = table[b] - table[a]
    return table


def _read_run(folder: str | Path, tag: str) -> tuple[dict[str, Any], pd.DataFrame]:
    d = Path(folder)
    if d.is_dir():
        check_finished_run(d)  # a failed run: say so, not that its plan files are missing
    issues = []
    summary_path, assign_path = d / "summary.json", d / "assignments.csv"
    for p in (summary_path, assign_path):
        if not p.exists():
            issues.append(Issue(f"run {tag}", None, None, f"file not found: {p}"))
    if issues:
        raise InputError(issues)
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        # ids as text: leading zeros and 'R001' vs '1' must compare as written
        assign = pd.read_csv(assign_path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as exc:
        raise InputError([Issue(f"run {tag}", None, None, f"cannot read {d}: {exc}")]) from exc
    kpis = summary.get("kpis") if isinstance(summary, dict) else None
    if not isinstance(kpis, dict) or "after" not in kpis:
        status = summary.get("status") if isinstance(summary, dict) else None
        raise InputError([Issue(f"run {tag}", None, "kpis", (
            f"{summary_path} holds no plan KPIs (run status: {status}): compare takes the "
            "folders of align and design runs"))])
    missing = {"account_id", "rep_id"} - set(assign.columns)
    if missing:
        raise InputError([Issue(f"run {tag}", None, ", ".join(sorted(missing)),
                                f"{assign_path} lacks column(s)")])
    return summary, assign


def compare_runs(dir_a: str | Path, dir_b: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare two run output folders (summary.json and assignments.csv in each).

    Parameters
    ----------
    dir_a, dir_b : str or pathlib.Path
        Output folders of two runs on the same accounts (e.g. two scenarios).

    Returns
    -------
    kpis : pandas.DataFrame
        kpi, label, A, B, Change (= B − A), one row per KPI of the plans (``kpis.after``),
        followed by the runs' status, objective and seconds.
    moves : pandas.DataFrame
        Accounts whose rep differs: account_id, rep_a, rep_b, territory_a, territory_b,
        change (``moved``, ``only in A``, ``only in B``) and name when the runs have it;
        sorted by account_id.

    Raises
    ------
    InputError
        A folder lacks its files or its KPIs (a failed run).
    """
    sa, aa = _read_run(dir_a, "A")
    sb, ab = _read_run(dir_b, "B")
    table = kpi_table({"A": sa["kpis"]["after"], "B": sb["kpis"]["after"]},
                      difference=("A", "B"))
    run_rows = []
    for key in ("objective", "gap", "seconds"):
        va, vb = sa.get(key), sb.get(key)
        if isinstance(va, int | float) or isinstance(vb, int | float):
            fa = float(va) if isinstance(va, int | float) else math.nan
            fb = float(vb) if isinstance(vb, int | float) else math.nan
            run_rows.append({"kpi": f"run.{key}", "label": kpi_label(f"run.{key}"),
                             "A": fa, "B": fb, "Change": fb - fa})
    if run_rows:
        table = pd.concat([table, pd.DataFrame(run_rows)], ignore_index=True)

    cols = ["account_id", "rep_id"] + (["territory_id"] if "territory_id" in aa.columns
                                       and "territory_id" in ab.columns else [])
    left = aa[cols + (["name"] if "name" in aa.columns else [])]
    right = ab[cols + (["name"] if "name" in ab.columns else [])]
    both = left.merge(right, on="account_id", how="outer", suffixes=("_a", "_b"),
                      indicator=True)
    rep_a, rep_b = both["rep_id_a"], both["rep_id_b"]
    differs = (both["_merge"] != "both") | (rep_a.fillna("") != rep_b.fillna(""))
    moves = both[differs].copy()
    moves["change"] = moves["_merge"].map({"both": "moved", "left_only": "only in A",
                                           "right_only": "only in B"}).astype(str)
    out = pd.DataFrame({"account_id": moves["account_id"], "rep_a": moves["rep_id_a"],
                        "rep_b": moves["rep_id_b"]})
    if "territory_id_a" in moves.columns:
        out["territory_a"] = moves["territory_id_a"]
        out["territory_b"] = moves["territory_id_b"]
    out["change"] = moves["change"]
    if "name_a" in moves.columns or "name_b" in moves.columns:
        na = moves["name_a"] if "name_a" in moves.columns else pd.Series(None, index=moves.index)
        nb = moves["name_b"] if "name_b" in moves.columns else pd.Series(None, index=moves.index)
        out["name"] = na.fillna(nb)
    elif "name" in moves.columns:
        out["name"] = moves["name"]
    return table, out.sort_values("account_id").reset_index(drop=True)
