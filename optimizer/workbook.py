"""The planner's Excel workbook: Summary, KPIs (before/after), Territories, Assignments.

Every sheet has a styled, frozen header row with an autofilter, sensible column widths and
number formats. Text that a spreadsheet would read as a formula (starting with =, +, -, @,
tab or carriage return; CSV/formula injection) is stored as a text cell with Excel's
quote-prefix flag: it shows and stays as typed, and editing it does not turn it into a
formula. Control characters that XML cannot hold are removed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from optimizer.compare import kpi_is_share, kpi_label, kpi_table

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F4E78")
MAX_TEXT = 32_767  # Excel's limit per cell

# Number formats by column name (territory and assignment tables).
FORMATS = {
    "workload": "#,##0.0",
    "capacity": "#,##0",
    "potential": "#,##0",
    "accounts": "#,##0",
    "travel": "#,##0",
    "utilisation": "0.0%",
    "compactness": "0.000",
    "parts": "0",
    "visits": "#,##0.##",
    "lat": "0.00000",
    "lon": "0.00000",
}


def safe_text(value: str) -> str:
    """Text without the control characters XML (and so XLSX) cannot hold, within Excel's
    cell limit."""
    return ILLEGAL_CHARACTERS_RE.sub("", value)[:MAX_TEXT]


def _cell_value(value: Any) -> Any:
    """A value openpyxl can write: numpy scalars unwrapped, NaN/NA/None blank."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return str(value)


def _put(ws: Worksheet, row: int, col: int, value: Any, number_format: str | None = None) -> None:
    v = _cell_value(value)
    cell = ws.cell(row=row, column=col)
    if isinstance(v, str):
        v = safe_text(v)
        cell.value = v
        if v.startswith(FORMULA_START):
            # Never a formula: stored as a string, and the quote prefix keeps Excel from
            # re-reading it as one when the cell is edited.
            cell.data_type = "s"
            cell.quotePrefix = True
        return
    cell.value = v
    if number_format and isinstance(v, int | float) and not isinstance(v, bool):
        cell.number_format = number_format


def _header(ws: Worksheet, names: Sequence[str]) -> None:
    for j, name in enumerate(names, start=1):
        _put(ws, 1, j, name)
        cell = ws.cell(row=1, column=j)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(vertical="center")
    ws.freeze_panes = "A2"


def _finish(ws: Worksheet, widths: Sequence[int], n_rows: int) -> None:
    for j, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(j)].width = w
    if widths:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(widths))}{max(n_rows + 1, 2)}"


def _width(name: str, values: Iterable[Any], number_format: str | None) -> int:
    sample = [v for v, _ in zip(values, range(2000), strict=False)]  # first rows are enough
    longest = len(str(name))
    for v in sample:
        if isinstance(v, float) and number_format:
            text = f"{v:,.1f}" if "0.0" in number_format or "%" in number_format else f"{v:,.0f}"
        else:
            text = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        longest = max(longest, len(text))
    return int(min(max(longest + 2, 8), 60))


def _write_frame(ws: Worksheet, frame: pd.DataFrame,
                 formats: Mapping[str, str] | None = None) -> None:
    """A table with header, formats by column name, widths, frozen header and filter."""
    fmt = {**FORMATS, **(formats or {})}
    names = [str(c) for c in frame.columns]
    _header(ws, names)
    columns = [frame[c].tolist() for c in frame.columns]
    for j, (name, values) in enumerate(zip(names, columns, strict=True), start=1):
        nf = fmt.get(name)
        for i, v in enumerate(values, start=2):
            _put(ws, i, j, v, nf)
    widths = [_width(n, vals, fmt.get(n)) for n, vals in zip(names, columns, strict=True)]
    _finish(ws, widths, len(frame))


def _kpi_sheet(ws: Worksheet, kpis: Mapping[str, Any]) -> None:
    plans = {name.capitalize(): kpis[name] for name in ("before", "after")
             if isinstance(kpis.get(name), Mapping)}
    plans.update({str(k).capitalize(): v for k, v in kpis.items()
                  if k not in ("before", "after") and isinstance(v, Mapping)
                  and all(isinstance(x, Mapping | int | float) for x in v.values())})
    diff = ("Before", "After") if {"Before", "After"} <= set(plans) else None
    table = kpi_table(plans, difference=diff) if plans else pd.DataFrame(
        {"kpi": [], "label": []})
    value_cols = [c for c in table.columns if c not in ("kpi", "label")]
    names = ["KPI", *value_cols, "key"]
    _header(ws, names)
    for i, rec in enumerate(table.to_dict(orient="records"), start=2):
        key = str(rec["kpi"])
        share = kpi_is_share(key)
        _put(ws, i, 1, rec["label"])
        for j, col in enumerate(value_cols, start=2):
            v = rec[col]
            big = isinstance(v, float) and abs(v) >= 1000
            nf = "0.0%" if share else "#,##0" if big else "0.000"
            if isinstance(v, float) and v.is_integer() and not share:
                nf = "#,##0"
            _put(ws, i, j, v, nf)
        _put(ws, i, len(names), key)
    widths = [max(24, *(len(str(x)) + 2 for x in table["label"])) if len(table) else 24,
              *([14] * len(value_cols)), 36]
    _finish(ws, [min(w, 70) for w in widths], len(table))


def _summary_rows(summary: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in summary.items():
        if not prefix and key == "kpis":
            continue  # on the KPIs sheet
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += _summary_rows(value, name + ".")
        elif isinstance(value, list | tuple):
            if not value:
                rows.append((name, "none"))
            for k, item in enumerate(value, start=1):
                rows.append((f"{name} {k}", item if isinstance(item, int | float | str)
                             else str(item)))
        else:
            rows.append((name, value))
    return rows


def _summary_sheet(ws: Worksheet, summary: Mapping[str, Any]) -> None:
    rows = _summary_rows(summary)
    _header(ws, ["Item", "Value"])
    for i, (key, value) in enumerate(rows, start=2):
        _put(ws, i, 1, kpi_label(key) if "." in key else key.replace("_", " ").capitalize())
        nf = "0.000%" if key in ("gap",) else "#,##0.000" if isinstance(value, float) else None
        _put(ws, i, 2, value, nf)
        ws.cell(row=i, column=2).alignment = Alignment(horizontal="left", wrap_text=True)
    _finish(ws, [40, 100], len(rows))


def write_workbook(path: str | Path, assignments: pd.DataFrame, territories: pd.DataFrame,
                   kpis: Mapping[str, Any] | None, summary: Mapping[str, Any] | None) -> Path:
    """Write the run's Excel workbook.

    Sheets: **Summary** (status, objective, bound, gap, timings, objective terms, warnings),
    **KPIs** (one row per KPI, Before and After side by side with the change, plus any other
    KPI group given, e.g. geography), **Territories** and **Assignments** (the tables as
    given). All cells holding text are safe from formula injection.

    Parameters
    ----------
    path : str or pathlib.Path
        The .xlsx to write.
    assignments : pandas.DataFrame
        One row per account (account_id, territory_id, rep_id, previous_rep, moved, ...).
    territories : pandas.DataFrame
        One row per territory (territory_id, rep_id, workload, potential, accounts, travel,
        utilisation, capacity, ...).
    kpis : mapping, optional
        ``{"before": {...}, "after": {...}}`` as in summary.json (nested KPI dicts).
    summary : mapping, optional
        summary.json's content (its ``kpis`` key is skipped: that is the KPIs sheet).

    Returns
    -------
    pathlib.Path
        `path`.
    """
    out = Path(path)
    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    _summary_sheet(ws, summary or {})
    _kpi_sheet(wb.create_sheet("KPIs"), kpis or {})
    _write_frame(wb.create_sheet("Territories"), territories)
    _write_frame(wb.create_sheet("Assignments"), assignments)
    wb.save(out)
    return out
