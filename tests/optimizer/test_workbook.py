"""The planner's workbook: round trip, formatting and formula-injection safety."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from optimizer.workbook import write_workbook

RISKY = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
# XML parsers turn a bare CR into LF on reading (XML 1.0 §2.11): that is how it reads back.
READ_BACK = [r.replace("\r", "\n") for r in RISKY]


@pytest.fixture
def book(tmp_path: Path) -> Path:
    assignments = pd.DataFrame({
        "account_id": ["A1", "A2", "A3"] + [f"X{i}" for i in range(len(RISKY))],
        "territory_id": ["R1", "R2", "R1"] + ["R2"] * len(RISKY),
        "rep_id": ["R1", "R2", "R1"] + ["R2"] * len(RISKY),
        "previous_rep": ["R1", "R1", None] + ["R2"] * len(RISKY),
        "moved": [False, True, False] + [False] * len(RISKY),
        "name": ["Acme", "Bad\x01char", "0042", *RISKY],
        "workload": [10.5, 20.0, math.nan] + [1.0] * len(RISKY),
    })
    territories = pd.DataFrame({"territory_id": ["R1", "R2"], "rep_id": ["R1", "R2"],
                                "centre": [None, None], "workload": [10.5, 26.0],
                                "potential": [1000.0, 2000.0], "accounts": [2, 7],
                                "travel": [123.4, 567.8], "utilisation": [0.5, 1.2],
                                "capacity": [21.0, 21.0]})
    kpis = {"before": {"balance": {"workload": {"cv": 0.4, "share_within_tolerance": 0.5}},
                       "utilisation": {"over_capacity_reps": 1}},
            "after": {"balance": {"workload": {"cv": 0.1, "share_within_tolerance": 1.0}},
                      "utilisation": {"over_capacity_reps": 0}}}
    summary = {"status": "optimal", "objective": 1.25, "bound": 1.2, "gap": 0.004,
               "seconds": 2.5, "kpis": kpis, "objective_terms": {"travel": 99.0},
               "warnings": ["=HYPERLINK(\"http://x\")"]}
    return write_workbook(tmp_path / "workbook.xlsx", assignments, territories, kpis, summary)


def test_sheets_and_round_trip(book: Path) -> None:
    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames == ["Summary", "KPIs", "Territories", "Assignments"]
    back = pd.read_excel(book, sheet_name="Assignments", dtype={"name": str})
    assert back["account_id"].tolist()[:3] == ["A1", "A2", "A3"]
    assert back["name"].tolist() == ["Acme", "Badchar", "0042", *READ_BACK]
    assert back["moved"].tolist()[:2] == [False, True]
    assert back["workload"].tolist()[:2] == [10.5, 20.0] and math.isnan(back["workload"][2])
    terr = pd.read_excel(book, sheet_name="Territories")
    assert terr["utilisation"].tolist() == [0.5, 1.2]


def test_formatting(book: Path) -> None:
    wb = openpyxl.load_workbook(book)
    for ws in wb:
        assert ws.freeze_panes == "A2"
        assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A1:")
        assert ws["A1"].font.bold
    terr = wb["Territories"]
    header = [c.value for c in terr[1]]
    assert terr.cell(2, header.index("utilisation") + 1).number_format == "0.0%"
    assert terr.cell(2, header.index("workload") + 1).number_format == "#,##0.0"
    assert terr.column_dimensions["A"].width >= len("territory_id")


def test_text_is_never_a_formula(book: Path) -> None:
    wb = openpyxl.load_workbook(book)
    ws = wb["Assignments"]
    name_col = [c.value for c in ws[1]].index("name") + 1
    cells = [ws.cell(row, name_col) for row in range(5, 5 + len(RISKY))]
    assert [c.value for c in cells] == READ_BACK
    for c in cells:
        assert c.data_type == "s" and c.quotePrefix
    # The file itself holds no formula anywhere.
    with zipfile.ZipFile(book) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/"):
                assert "<f>" not in z.read(name).decode("utf-8"), name


def test_kpis_side_by_side(book: Path) -> None:
    kpis = pd.read_excel(book, sheet_name="KPIs").set_index("key")
    assert list(kpis.columns) == ["KPI", "Before", "After", "Change"]
    row = kpis.loc["balance.workload.cv"]
    assert row["Before"] == 0.4 and row["After"] == 0.1
    assert math.isclose(row["Change"], -0.3)
    assert kpis.loc["utilisation.over_capacity_reps", "KPI"] == \
        "Utilisation · reps over capacity"
    ws = openpyxl.load_workbook(book)["KPIs"]
    share_row = [c.value for c in ws["E"]].index("balance.workload.share_within_tolerance") + 1
    assert ws.cell(share_row, 2).number_format == "0.0%"


def test_summary_sheet(book: Path) -> None:
    summary = pd.read_excel(book, sheet_name="Summary")
    items = dict(zip(summary["Item"], summary["Value"], strict=True))
    assert items["Status"] == "optimal" and items["Gap"] == 0.004
    assert items["Objective terms · travel"] == 99.0
    assert items["Warnings 1"] == "=HYPERLINK(\"http://x\")"
    assert not any("kpis" in str(k).lower() for k in items)  # they are on the KPIs sheet


def test_without_kpis(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "w.xlsx", pd.DataFrame({"account_id": ["a"]}),
                          pd.DataFrame({"territory_id": ["t"]}), None, None)
    assert openpyxl.load_workbook(path).sheetnames == ["Summary", "KPIs", "Territories",
                                                       "Assignments"]
