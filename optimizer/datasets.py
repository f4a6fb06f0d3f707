"""The data sets bundled with the package (`datasets/` in the repository)."""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path

import territory_datasets

from optimizer.errors import InputError, Issue
from optimizer.io import check_output_folder

ROOT = Path(territory_datasets.__file__).resolve().parent


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str

    @property
    def path(self) -> Path:
        return ROOT / self.name

    def file(self, name: str) -> Path | None:
        p = self.path / name
        return p if p.exists() else None

    def files(self) -> list[Path]:
        return sorted(p for p in self.path.iterdir() if p.is_file())


CATALOGUE = {
    d.name: d
    for d in [
        Dataset("us-accounts", "16,943 US places (GeoNames, population ≥ 1,000) as accounts, "
                "100 reps, a state-block current alignment"),
        Dataset("us-regional", "372 Georgia places as accounts, 6 reps: the fast demo"),
        Dataset("us-zips", "41,036 active US ZIP codes as geographic units (and accounts)"),
        Dataset("ga-counties", "Georgia's 159 counties with polygons and 1990 population"),
        Dataset("nc-counties", "North Carolina's 100 counties with polygons (SIDS data)"),
    ]
}


def available() -> list[Dataset]:
    return [d for d in CATALOGUE.values() if d.path.exists()]


def get_dataset_or_raise(name: str) -> Dataset:
    d = CATALOGUE.get(name)
    if d is None or not d.path.exists():
        known = ", ".join(x.name for x in available())
        raise InputError([Issue("dataset", None, None, f"unknown data set {name!r} ({known})")])
    return d


def export(name: str, target: str | Path) -> list[Path]:
    """Copy a bundled data set's files (data, scenario, SOURCE.md) into `target`. A file of
    the same name with other content there (the planner's own accounts.csv) is refused
    before anything is copied; an earlier export of the same set is simply rewritten."""
    d = get_dataset_or_raise(name)
    out = Path(target)
    check_output_folder(out, "target")
    files = [f for f in d.files() if f.suffix in (".csv", ".geojson", ".yaml", ".md", ".json")]
    taken = [out / f.name for f in files
             if (out / f.name).exists() and not filecmp.cmp(f, out / f.name, shallow=False)]
    if taken:
        raise InputError([Issue("command line", None, "target", (
            f"{path} exists and is not {name}'s {path.name}: export into an empty folder, "
            "or move it away first")) for path in taken])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in files:
        shutil.copy2(f, out / f.name)
        written.append(out / f.name)
    return written
