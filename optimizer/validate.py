"""All-at-once checks of accounts, reps and distances; every problem names its row and column.

Rows are 1-based data rows (the header is not counted), as a planner counts them in a sheet.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from optimizer.domain import AlignmentData, DesignData, DistanceMetric
from optimizer.errors import InputError, Issue, cell

ACCOUNT_COLUMNS = ("account_id", "lat", "lon", "x", "y", "workload", "potential", "visits",
                   "current_rep", "locked_rep", "parent_id", "unit_id", "segment", "name")
ID_COLUMNS = ("account_id", "current_rep", "locked_rep", "parent_id", "unit_id", "segment", "name")
REP_ID_COLUMNS = ("rep_id", "role", "name")
# In a numeric column these mean "no value" (spreadsheet and R/pandas exports write them);
# in a text column they are text as written (segment NA is North America).
MISSING_NUMBER = frozenset({"na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>"})


def id_text(series: pd.Series) -> pd.Series:
    """Ids as trimmed strings; blanks become NA."""
    s = series.astype("string").str.strip()
    return s.mask(s == "", pd.NA)


def _floats(raw: pd.Series) -> pd.Series:
    """Numbers of a column, NaN where a cell is not one. An integer beyond float range (JSON
    allows 1 followed by 400 zeros) becomes ±inf, so it is named as not finite."""
    try:
        return pd.to_numeric(raw, errors="coerce").astype(float)
    except OverflowError:
        return raw.map(_float_or_nan).astype(float)


def _float_or_nan(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]
    except (TypeError, ValueError):
        return math.nan


class TableChecker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.issues: list[Issue] = []

    def add(self, row: int | None, field: str | None, message: str) -> None:
        self.issues.append(Issue(self.source, row, field, message))

    def rows(self, mask: np.ndarray | pd.Series, field: str, message: str,
             values: pd.Series | None = None) -> None:
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            shown = "" if values is None else f" (got {cell(values.iloc[i])})"
            self.add(int(i) + 1, field, message + shown)

    def require(self, df: pd.DataFrame, column: str, why: str = "") -> bool:
        if column not in df.columns:
            self.add(None, column, f"required column is missing{why}")
            return False
        return True

    def number(self, df: pd.DataFrame, column: str, *, default: float | None = None,
               low: float | None = None, high: float | None = None,
               strictly_positive: bool = False) -> pd.Series:
        """Parse a numeric column, flagging text, blanks (without default) and range errors."""
        raw = df[column] if column in df.columns else pd.Series([pd.NA] * len(df), index=df.index)
        text = raw.astype("string").str.strip()
        blank = raw.isna() | (text == "") | text.str.lower().isin(MISSING_NUMBER)
        value = _floats(raw.where(~blank))
        if raw.dtype in (bool, object):  # JSON true/false: a flag is not an amount
            value = value.mask(raw.map(lambda v: isinstance(v, bool | np.bool_)), np.nan)
        self.rows(~blank & value.isna(), column, "not a number", raw)
        if default is None:
            self.rows(blank, column, "is empty")
        else:
            value = value.where(~blank, default)
        parsed = value.notna()
        finite = parsed & np.isfinite(value.fillna(0))
        self.rows(parsed & ~finite, column, "must be finite", raw)  # and no range issue too
        if low is not None:
            bad = finite & (value <= low if strictly_positive else value < low)
            self.rows(bad, column, f"must be {'>' if strictly_positive else '≥'} {low:g}", raw)
        if high is not None:
            self.rows(finite & (value > high), column, f"must be ≤ {high:g}", raw)
        return value

    def unique_ids(self, ids: pd.Series, column: str) -> None:
        self.rows(ids.isna(), column, "is empty")
        first_row: dict[str, int] = {}
        for i, v in enumerate(ids):
            if v is pd.NA:
                continue
            if v in first_row:
                self.add(i + 1, column, f"duplicate {column} {v!r} (first on row {first_row[v]})")
            else:
                first_row[v] = i + 1


def _coordinates(check: TableChecker, df: pd.DataFrame, metric: DistanceMetric,
                 out: pd.DataFrame, who: str) -> None:
    if metric is DistanceMetric.euclidean:
        if check.require(df, "x", " (metric euclidean needs planar x, y)") & check.require(
            df, "y", " (metric euclidean needs planar x, y)"):
            out["x"] = check.number(df, "x")
            out["y"] = check.number(df, "y")
        return
    optional = metric is DistanceMetric.matrix
    has = "lat" in df.columns and "lon" in df.columns
    if not has:
        if not optional:
            check.require(df, "lat", f" ({who} need WGS84 lat, lon)")
            check.require(df, "lon", f" ({who} need WGS84 lat, lon)")
        return
    out["lat"] = check.number(df, "lat", low=-90, high=90,
                              default=np.nan if optional else None)
    out["lon"] = check.number(df, "lon", low=-180, high=180,
                              default=np.nan if optional else None)


def validate_reps(df: pd.DataFrame, metric: DistanceMetric, *, source: str = "reps",
                  needs_location: bool = True) -> tuple[pd.DataFrame, list[Issue]]:
    check = TableChecker(source)
    out = pd.DataFrame(index=df.index)
    if check.require(df, "rep_id"):
        out["rep_id"] = id_text(df["rep_id"])
        check.unique_ids(out["rep_id"], "rep_id")
    if needs_location:
        _coordinates(check, df, metric, out, "reps")
    if check.require(df, "capacity", " (selling hours per year)"):
        out["capacity"] = check.number(df, "capacity", low=0, strictly_positive=True)
    out["max_accounts"] = limit = check.number(df, "max_accounts", default=np.nan, low=0)
    if "max_accounts" in df.columns:
        check.rows(np.isfinite(limit) & (limit != np.round(limit)), "max_accounts",
                   "must be a whole number of accounts", df["max_accounts"])
    out["role"] = id_text(df["role"]) if "role" in df.columns else pd.Series(pd.NA, index=df.index,
                                                                           dtype="string")
    out["name"] = id_text(df["name"]) if "name" in df.columns else out.get("rep_id")
    if "start_date" in df.columns:
        dates = pd.to_datetime(df["start_date"], errors="coerce")
        check.rows(df["start_date"].notna() & dates.isna(), "start_date", "not a date (YYYY-MM-DD)",
                   df["start_date"])
        out["start_date"] = dates
    return out.reset_index(drop=True), check.issues


def validate_accounts(df: pd.DataFrame, metric: DistanceMetric, *,
                      source: str = "accounts") -> tuple[pd.DataFrame, list[Issue]]:
    check = TableChecker(source)
    out = pd.DataFrame(index=df.index)
    if check.require(df, "account_id"):
        out["account_id"] = id_text(df["account_id"])
        check.unique_ids(out["account_id"], "account_id")
    _coordinates(check, df, metric, out, "accounts")
    if check.require(df, "workload", " (hours per year)"):
        out["workload"] = check.number(df, "workload", low=0)
    out["potential"] = check.number(df, "potential", default=0.0, low=0)
    out["visits"] = check.number(df, "visits", default=1.0, low=0)
    for column in ID_COLUMNS[1:]:
        out[column] = id_text(df[column]) if column in df.columns else pd.Series(
            pd.NA, index=df.index, dtype="string")
    extra = [c for c in df.columns if c not in ACCOUNT_COLUMNS]
    for column in extra:
        out[column] = df[column]
    return out.reset_index(drop=True), check.issues


def _hierarchy_issues(accounts: pd.DataFrame, source: str) -> list[Issue]:
    check = TableChecker(source)
    ids = [None if v is pd.NA else str(v) for v in accounts["account_id"]]
    parents = [None if v is pd.NA else str(v) for v in accounts["parent_id"]]
    row_of = {v: i for i, v in enumerate(ids) if v is not None}
    for i, parent in enumerate(parents):
        if parent is None:
            continue
        if parent not in row_of:
            check.add(i + 1, "parent_id", f"unknown account {parent!r}")
        elif parent == ids[i]:
            check.add(i + 1, "parent_id", "an account cannot be its own parent")
    # Cycles: follow parents; a walk that returns to an account of the same walk is one.
    state = [0] * len(ids)  # 0 new, 1 on the current walk, 2 done
    for start in range(len(ids)):
        path: list[int] = []
        node: int | None = start
        while node is not None and state[node] == 0:
            state[node] = 1
            path.append(node)
            parent = parents[node]
            node = row_of.get(parent) if parent is not None and parent != ids[node] else None
        if node is not None and state[node] == 1:
            cycle = path[path.index(node):]
            names = " → ".join(str(ids[j]) for j in [*cycle, cycle[0]])
            for j in cycle:
                check.add(j + 1, "parent_id", f"cyclic hierarchy: {names}")
        for j in path:
            state[j] = 2
    return check.issues


def _distance_issues(distances: pd.DataFrame, accounts: pd.DataFrame, targets: pd.Series,
                     source: str, target: str) -> tuple[pd.DataFrame, list[Issue]]:
    """from_id must be an account; to_id one of `targets` (reps, or candidate centres)."""
    check = TableChecker(source)
    out = pd.DataFrame(index=distances.index)
    ok = all(check.require(distances, c) for c in ("from_id", "to_id", "distance"))
    if not ok:
        return out, check.issues
    out["from_id"] = id_text(distances["from_id"])
    out["to_id"] = id_text(distances["to_id"])
    out["distance"] = check.number(distances, "distance", low=0)
    accounts_known = set(accounts["account_id"].dropna())
    check.rows(~out["from_id"].isin(accounts_known).to_numpy(), "from_id", "unknown account",
               out["from_id"])
    check.rows(~out["to_id"].isin(set(targets.dropna())).to_numpy(), "to_id",
               f"unknown {target}", out["to_id"])
    # A pair given twice (perhaps with two distances): which one is meant is not ours to guess.
    if (repeated := out.duplicated(["from_id", "to_id"]).to_numpy()).any():
        row = pd.Series(np.arange(len(out)), index=out.index)
        first = row.groupby([out["from_id"], out["to_id"]], dropna=False).transform("min")
        for i in np.flatnonzero(repeated):
            check.add(int(i) + 1, "to_id", f"the pair ({out['from_id'].iloc[i]}, "
                      f"{out['to_id'].iloc[i]}) is given twice (first on row "
                      f"{int(first.iloc[i]) + 1})")
    return out.reset_index(drop=True), check.issues


def validate_alignment(accounts: pd.DataFrame, reps: pd.DataFrame,
                       distances: pd.DataFrame | None, metric: DistanceMetric,
                       *, sources: tuple[str, str, str] = ("accounts", "reps", "distances"),
                       ) -> AlignmentData:
    """Check everything and return typed data, or raise one InputError listing every problem."""
    acc, issues = validate_accounts(accounts, metric, source=sources[0])
    rep, rep_issues = validate_reps(reps, metric, source=sources[1])
    issues += rep_issues
    dist = None
    if "account_id" in acc.columns and "rep_id" in rep.columns:
        known_reps = set(rep["rep_id"].dropna())
        cross = TableChecker(sources[0])
        for column in ("current_rep", "locked_rep"):
            col = acc[column]
            cross.rows((col.notna() & ~col.isin(known_reps)).to_numpy(), column, "unknown rep", col)
        issues += cross.issues
        issues += _hierarchy_issues(acc, sources[0])
        if distances is not None:
            dist, dist_issues = _distance_issues(distances, acc, rep["rep_id"], sources[2], "rep")
            issues += dist_issues
    if metric is DistanceMetric.matrix and distances is None:
        issues.append(Issue(sources[2], None, None, "metric 'matrix' needs a distances file"))
    if len(acc) == 0:
        issues.append(Issue(sources[0], None, None, "no accounts"))
    if len(rep) == 0:
        issues.append(Issue(sources[1], None, None, "no reps"))
    if issues:
        raise InputError(issues)
    return AlignmentData(acc, rep, dist)


def validate_design(accounts: pd.DataFrame, distances: pd.DataFrame | None,
                    metric: DistanceMetric, *, sources: tuple[str, str] = ("accounts",
                                                                            "distances"),
                    unit_points: pd.DataFrame | None = None) -> DesignData:
    """Check the inputs of a greenfield design (distances go from accounts to candidate
    centres: accounts, or units when `unit_points` are given); raise one InputError listing
    every problem."""
    acc, issues = validate_accounts(accounts, metric, source=sources[0])
    dist = None
    if "account_id" in acc.columns:
        issues += _hierarchy_issues(acc, sources[0])
        if distances is not None:
            centres, kind = acc["account_id"], "account"
            if unit_points is not None:
                centres = pd.concat([centres, unit_points["unit_id"]], ignore_index=True)
                kind = "account or unit"
            dist, dist_issues = _distance_issues(distances, acc, centres, sources[1], kind)
            issues += dist_issues
    if metric is DistanceMetric.matrix and distances is None:
        issues.append(Issue(sources[1], None, None, "metric 'matrix' needs a distances file"))
    if len(acc) == 0:
        issues.append(Issue(sources[0], None, None, "no accounts"))
    if issues:
        raise InputError(issues)
    return DesignData(acc, dist, unit_points=unit_points)
