"""Distances between accounts and reps: great-circle, planar, or a user matrix.

Geometry meets the models here, as a dense account × rep matrix (accounts by reps is at most
tens of millions of numbers at national scale); the models then work on arrays only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from optimizer.domain import DistanceMetric

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray,
                 lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km; arguments broadcast like numpy arrays."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    h = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def distance_matrix(accounts: pd.DataFrame, reps: pd.DataFrame, metric: DistanceMetric,
                    circuity: float = 1.0, distances: pd.DataFrame | None = None) -> np.ndarray:
    """Distance from every account (rows) to every rep's home base (columns).

    haversine: km × circuity (an approximation of road distance); euclidean: planar x, y;
    matrix: only the user's pairs. The user's distances override the metric for the pairs
    they list. Unknown pairs are NaN: such an account cannot go to that rep.
    """
    n, r = len(accounts), len(reps)
    if metric is DistanceMetric.haversine:
        d = haversine_km(accounts["lat"].to_numpy()[:, None], accounts["lon"].to_numpy()[:, None],
                         reps["lat"].to_numpy()[None, :], reps["lon"].to_numpy()[None, :])
        d *= circuity
    elif metric is DistanceMetric.euclidean:
        dx = accounts["x"].to_numpy()[:, None] - reps["x"].to_numpy()[None, :]
        dy = accounts["y"].to_numpy()[:, None] - reps["y"].to_numpy()[None, :]
        d = np.hypot(dx, dy) * circuity
    else:
        d = np.full((n, r), np.nan)
    if distances is not None and len(distances):
        row = pd.Index(accounts["account_id"]).get_indexer(distances["from_id"])
        col = pd.Index(reps["rep_id"]).get_indexer(distances["to_id"])
        keep = (row >= 0) & (col >= 0)
        d[row[keep], col[keep]] = distances["distance"].to_numpy()[keep]
    return d
