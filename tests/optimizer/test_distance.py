"""Distances and candidate thinning."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optimizer.distance import haversine_km, spread_rows
from optimizer.domain import DistanceMetric


def test_spread_rows_cover_every_cluster_of_accounts() -> None:
    rng = np.random.default_rng(5)
    near, far = rng.normal(0, 10, (60, 2)), rng.normal(1000, 10, (60, 2))
    xy = np.vstack([near, far])
    acc = pd.DataFrame({"account_id": [f"A{i}" for i in range(120)], "x": xy[:, 0],
                        "y": xy[:, 1]})
    rows = spread_rows(acc, DistanceMetric.euclidean, 10)
    assert rows is not None
    assert 2 <= len(rows) <= 10 and (np.diff(rows) > 0).all()  # distinct, sorted
    assert (rows < 60).any() and (rows >= 60).any()  # both clusters have candidates


def test_spread_rows_on_the_sphere_keep_the_dateline_together() -> None:
    # Accounts on both sides of the 180th meridian are one cluster: one candidate serves
    # them all, within a few km of each, not one per side.
    lon = np.r_[np.linspace(179.80, 179.99, 20), np.linspace(-179.99, -179.80, 20)]
    acc = pd.DataFrame({"account_id": [f"A{i}" for i in range(40)], "lat": 0.0, "lon": lon})
    rows = spread_rows(acc, DistanceMetric.haversine, 1)
    assert rows is not None and len(rows) == 1
    gap = haversine_km(0.0, lon, 0.0, lon[rows[0]])
    # A k-means on lon/lat would centre near longitude 0 and pick an end account, 44 km
    # from the other end.
    assert gap.max() < 25.0


def test_spread_rows_need_coordinates() -> None:
    acc = pd.DataFrame({"account_id": ["A", "B"], "workload": [1.0, 2.0]})
    assert spread_rows(acc, DistanceMetric.matrix, 1) is None
