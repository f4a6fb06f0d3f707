"""Loader for the Pfizer Turkey realignment case (tests/optimizer/data/pfizer-turkey)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

DATA = Path(__file__).parent / "data" / "pfizer-turkey"


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def frames(name: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """accounts, reps and distances tables as a planner would write them."""
    case = load(name)
    bricks = case["bricks"]
    current = case["current_sr_of_brick"]
    offices = case["sr_office_brick"]
    accounts = pd.DataFrame({
        "account_id": [f"B{b['id']}" for b in bricks],
        "workload": [b["index"] for b in bricks],
        "current_rep": [f"SR{c}" for c in current],
    })
    if "x" in bricks[0]:
        accounts["x"] = [b["x"] for b in bricks]
        accounts["y"] = [b["y"] for b in bricks]
    by_id = {b["id"]: b for b in bricks}
    reps = pd.DataFrame({
        "rep_id": [f"SR{k}" for k in offices],
        # Capacity only sets fair shares here (equal reps); it must not bind.
        "capacity": [10.0] * len(offices),
    })
    if "x" in bricks[0]:
        reps["x"] = [by_id[v]["x"] for v in offices.values()]
        reps["y"] = [by_id[v]["y"] for v in offices.values()]
    matrix = case["distance_brick_to_sr"]["matrix"]
    distances = pd.DataFrame([
        {"from_id": f"B{i + 1}", "to_id": f"SR{j + 1}", "distance": d}
        for i, row in enumerate(matrix) for j, d in enumerate(row)])
    return accounts, reps, distances


def references(name: str) -> list[dict]:
    return load(name)["reference"]["results"]
