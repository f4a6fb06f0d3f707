"""Benchmark inputs, written as the files a planner would hand the CLI or the library.

- OR-Library capacitated p-median instances (`pmedcap1_1` … `_20`) as accounts.csv,
  distances.csv (Euclidean, rounded down: the convention of the published optima) and
  scenario.yaml — the same files the tests use (tests/optimizer/orlib.py).
- Ladder subsets of the bundled national data: a fixed-seed random sample of `us-accounts`
  (seed 2024, without replacement, kept in file order), or all of `us-zips`.
- Generated reps for a ladder rung: N homes from weighted k-means (Lloyd's method on the unit
  sphere, workload weights, seed 2024, 40 iterations), each home moved to the sampled account
  nearest its centroid (so homes are real places); capacity = total workload / N × 1.15
  (above the ±10 % band, so the band, not capacity, binds).

Everything is deterministic: the same rung gives the same files on every machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer import datasets
from optimizer.distance import unit_vectors

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.optimizer.orlib import Instance, load, write  # noqa: E402  (repo root on path)

SEED = 2024
CAPACITY_HEADROOM = 1.15
ORLIB_DIR = ROOT / "tests" / "optimizer" / "data" / "orlib-cpmp"


def orlib_instance(number: int) -> Instance:
    return load(number)


def orlib_files(number: int, folder: Path, time_limit: float) -> dict[str, Path]:
    """The instance's CLI inputs; the scenario is travel only with a hard capacity, gap 0."""
    return write(load(number), folder, time_limit=time_limit)


def national_accounts(dataset: str) -> pd.DataFrame:
    d = datasets.get_dataset_or_raise(dataset)
    path = d.file("accounts.csv")
    assert path is not None
    return pd.read_csv(path, dtype={"account_id": str, "unit_id": str, "current_rep": str})


def sample_accounts(dataset: str, n: int | None) -> pd.DataFrame:
    """`n` accounts of `dataset` by a fixed-seed sample (all of them when n is None or
    larger than the data set), in file order."""
    acc = national_accounts(dataset)
    if n is None or n >= len(acc):
        return acc
    keep = np.sort(np.random.default_rng(SEED).choice(len(acc), size=n, replace=False))
    return acc.iloc[keep].reset_index(drop=True)


def generated_reps(acc: pd.DataFrame, n_reps: int, iterations: int = 40) -> pd.DataFrame:
    """N rep homes by workload-weighted k-means; capacity total / N × 1.15."""
    pts = unit_vectors(acc["lat"].to_numpy(float), acc["lon"].to_numpy(float))
    w = acc["workload"].to_numpy(float)
    rng = np.random.default_rng(SEED)
    centres = pts[rng.choice(len(pts), size=n_reps, replace=False, p=w / w.sum())]
    for _ in range(iterations):
        nearest = np.argmax(pts @ centres.T, axis=1)  # max cosine = nearest on the sphere
        sums = np.zeros_like(centres)
        np.add.at(sums, nearest, pts * w[:, None])
        mass = np.bincount(nearest, weights=w, minlength=n_reps)
        empty = mass <= 0
        sums[empty] = centres[empty]  # an empty cluster keeps its centre
        norm = np.linalg.norm(sums, axis=1, keepdims=True)
        centres = sums / np.where(norm > 0, norm, 1.0)
    home = np.argmax(centres @ pts.T, axis=1)  # the account nearest each centroid
    capacity = round(float(w.sum()) / n_reps * CAPACITY_HEADROOM, 1)
    return pd.DataFrame({"rep_id": [f"G{r + 1:03d}" for r in range(n_reps)],
                         "name": acc["name"].to_numpy()[home] if "name" in acc else None,
                         "lat": acc["lat"].to_numpy()[home], "lon": acc["lon"].to_numpy()[home],
                         "capacity": capacity, "role": "commercial"})


def ladder_files(dataset: str, n_accounts: int | None, n_reps: int, folder: Path,
                 bundled_reps: bool = False) -> dict[str, Path]:
    """accounts.csv and reps.csv of one rung. With `bundled_reps` the data set's own reps
    (and current alignment) are kept; otherwise reps are generated and the current alignment,
    which names the bundled reps, is dropped."""
    folder.mkdir(parents=True, exist_ok=True)
    acc = sample_accounts(dataset, n_accounts)
    if bundled_reps:
        reps_path = datasets.get_dataset_or_raise(dataset).file("reps.csv")
        assert reps_path is not None
        reps = pd.read_csv(reps_path, dtype={"rep_id": str})
    else:
        acc = acc.drop(columns=[c for c in ("current_rep",) if c in acc.columns])
        reps = generated_reps(acc, n_reps)
    files = {"accounts": folder / "accounts.csv", "reps": folder / "reps.csv"}
    acc.to_csv(files["accounts"], index=False)
    reps.to_csv(files["reps"], index=False)
    return files
