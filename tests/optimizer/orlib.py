"""OR-Library capacitated p-median instances (tests/optimizer/data/orlib-cpmp) as the
files a planner would give `territory design`: accounts.csv, distances.csv, scenario.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).parent / "data" / "orlib-cpmp"


@dataclass(frozen=True)
class Instance:
    number: int
    optimum: int
    p: int
    capacity: int
    accounts: pd.DataFrame
    distances: pd.DataFrame


def load(number: int) -> Instance:
    lines = (DATA / f"pmedcap1_{number}.txt").read_text().split("\n")
    _, optimum = map(int, lines[0].split())
    n, p, capacity = map(int, lines[1].split())
    rows = np.array([list(map(float, line.split())) for line in lines[2:2 + n]])
    ids = [f"P{int(i)}" for i in rows[:, 0]]
    accounts = pd.DataFrame({"account_id": ids, "x": rows[:, 1], "y": rows[:, 2],
                             "workload": rows[:, 3], "visits": 1.0})
    # The published optima use Euclidean distances rounded down.
    d = np.floor(np.hypot(rows[:, 1][:, None] - rows[:, 1][None, :],
                          rows[:, 2][:, None] - rows[:, 2][None, :]))
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    distances = pd.DataFrame({"from_id": np.array(ids)[i.ravel()],
                              "to_id": np.array(ids)[j.ravel()], "distance": d.ravel()})
    return Instance(number, optimum, p, capacity, accounts, distances)


def write(inst: Instance, folder: Path, time_limit: float = 300) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    inst.accounts.to_csv(folder / "accounts.csv", index=False)
    inst.distances.to_csv(folder / "distances.csv", index=False)
    (folder / "scenario.yaml").write_text(
        "mode: design\nmetric: matrix\n"
        f"territories: {inst.p}\n"
        "balance:\n"
        f"  workload: {{tolerance: null, max: {inst.capacity}, hard: true}}\n"
        f"solver: {{time_limit: {time_limit:g}, mip_gap: 0}}\n")
    return {n: folder / f"{n}.{'yaml' if n == 'scenario' else 'csv'}"
            for n in ("accounts", "distances", "scenario")}
