"""Build the bundled `us-zips` dataset from the `zipcodes` package.

Every active ZIP code with a real coordinate becomes a geographic unit (and an account, for
scale work). ZIP, city, state, county, coordinates and ZIP type are as published by
`zipcodes`; the package has no population, so workload and potential are modelled
deterministically from the ZIP type (see us-zips/SOURCE.md). Run from the repository root:

    python datasets/build_us_zips.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import zipcodes

HERE = Path(__file__).resolve().parent
OUT = HERE / "us-zips"

# Yearly hours per ZIP by type: a STANDARD ZIP is a delivery area with residents and
# businesses; PO BOX, UNIQUE (one organisation) and MILITARY ZIPs are single points.
HOURS_BY_TYPE = {"STANDARD": 2.0, "PO BOX": 1.0, "UNIQUE": 1.0, "MILITARY": 1.0}
POTENTIAL_PER_HOUR = 1000.0  # currency units of yearly potential per hour of workload
VISITS = 1


def has_coordinates(z: dict[str, Any]) -> bool:
    """Non-empty lat/long that is not the (0, 0) placeholder `zipcodes` uses for unknowns."""
    if not z["lat"] or not z["long"]:
        return False
    return not (float(z["lat"]) == 0.0 and float(z["long"]) == 0.0)


def load_units() -> pd.DataFrame:
    rows = [
        {
            "unit_id": z["zip_code"],
            "name": z["city"],
            "state": z["state"],
            "county": z["county"],
            "lat": round(float(z["lat"]), 5),
            "lon": round(float(z["long"]), 5),
            "zip_type": z["zip_code_type"],
        }
        for z in zipcodes.list_all()
        if z["active"] and has_coordinates(z)
    ]
    units = pd.DataFrame(rows).sort_values("unit_id", kind="stable").reset_index(drop=True)
    if not units["unit_id"].str.fullmatch(r"\d{5}").all() or not units["unit_id"].is_unique:
        raise ValueError("ZIP codes must be unique 5-digit strings")
    return units


def add_modelled_attributes(units: pd.DataFrame) -> pd.DataFrame:
    unknown = set(units["zip_type"]) - set(HOURS_BY_TYPE)
    if unknown:
        raise ValueError(f"no workload rule for ZIP types {sorted(unknown)}")
    out = units.copy()
    out["workload"] = out["zip_type"].map(HOURS_BY_TYPE).astype(float)
    out["potential"] = (out["workload"] * POTENTIAL_PER_HOUR).round(0)
    out["visits"] = VISITS
    return out


def main() -> None:
    units = add_modelled_attributes(load_units())
    OUT.mkdir(exist_ok=True)
    units.to_csv(OUT / "units.csv", index=False)
    accounts = units.assign(account_id=units["unit_id"])[
        ["account_id", "unit_id", "name", "state", "lat", "lon", "workload", "potential", "visits"]
    ]
    accounts.to_csv(OUT / "accounts.csv", index=False)
    print(f"us-zips: {len(units)} units")


if __name__ == "__main__":
    main()
