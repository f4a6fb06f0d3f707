"""Writing a run's tables: every digit a planner adds up survives the CSV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.io import table_csv, write_tables


def test_tables_keep_their_digits(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "territory_id": ["T1", "T2", "T3"],
        "quota": [18_052_662.881216, 13_313_899.119018, 123_456_789.0],
        "potential": [27_868_240.0, 20_552_920.0, np.nan],  # whole numbers, one missing
        "share": [0.1 + 0.2, 1 / 3, 2e-7],
        "accounts": [62.0, 40.0, 7.0],
        "ratio": [np.inf, 1.0, 2.0],
    })
    write_tables(tmp_path, {"status": "optimal"}, {"quotas": frame})
    text = (tmp_path / "quotas.csv").read_text()
    assert text.splitlines() == [
        "territory_id,quota,potential,share,accounts,ratio",
        "T1,18052662.881216,27868240,0.3,62,inf",
        "T2,13313899.119018,20552920,0.333333,40,1.0",
        "T3,123456789.0,,0.0,7,2.0",
    ]
    back = pd.read_csv(tmp_path / "quotas.csv")
    assert back["quota"].sum() == frame["quota"].sum()
    assert json.loads((tmp_path / "summary.json").read_text()) == {"status": "optimal"}


def test_the_service_serves_the_same_csv(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["a"], "quota": [18_052_662.881216], "n": [3.0]})
    write_tables(tmp_path, {}, {"t": frame})
    assert table_csv(frame) == (tmp_path / "t.csv").read_text() == \
        "id,quota,n\na,18052662.881216,3\n"
