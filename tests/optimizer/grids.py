"""Square grids of units for contiguity beyond the exact method (tests and bench).

The bundled county maps stop at 159 units; a planner's ZIP or brick polygons run to
thousands. A grid of `side` × `side` cells of 0.05° (one account per cell, workload
Gamma(2, 10)) is the simplest map of that size whose optimum leaves ragged borders."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import box

CELL = 0.05  # degrees


def write_grid(folder: Path, side: int, reps: int, seed: int = 1) -> dict[str, Path]:
    """Write accounts.csv, reps.csv (reps at random cells, capacity 1.2 × total / reps) and
    units.geojson into `folder`; returns their paths by name."""
    rng = np.random.default_rng(seed)
    ids = [f"u{i}_{j}" for i in range(side) for j in range(side)]
    lat = np.repeat(np.arange(side), side) * CELL + 35.0
    lon = np.tile(np.arange(side), side) * CELL - 90.0
    paths = {name: folder / f"{name}.{ext}" for name, ext in
             (("accounts", "csv"), ("reps", "csv"), ("units", "geojson"))}
    gpd.GeoDataFrame({"unit_id": ids}, crs="EPSG:4326",
                     geometry=[box(x, y, x + CELL, y + CELL) for x, y in zip(lon, lat, strict=True)]
                     ).to_file(paths["units"], driver="GeoJSON")
    workload = rng.gamma(2.0, 10.0, len(ids))
    pd.DataFrame({"account_id": ids, "lat": lat + CELL / 2, "lon": lon + CELL / 2,
                  "workload": workload, "unit_id": ids}).to_csv(paths["accounts"], index=False)
    homes = rng.choice(len(ids), reps, replace=False)
    pd.DataFrame({"rep_id": [f"R{k:02d}" for k in range(reps)], "lat": lat[homes] + CELL / 2,
                  "lon": lon[homes] + CELL / 2, "capacity": 1.2 * workload.sum() / reps}
                 ).to_csv(paths["reps"], index=False)
    return paths
