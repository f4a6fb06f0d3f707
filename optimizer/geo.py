"""Geography: unit polygons, adjacency, territory polygons and the geometric KPIs.

Geometry meets the models at a matrix: `adjacency` turns unit polygons into a sparse
adjacency matrix (rook: a shared boundary of positive length), which is all the contiguity
model needs. Everything else here turns a finished plan into polygons for maps, GeoJSON and
KPIs. Nothing in this module writes files; `load_units` is the one reader.

Territory polygons come from one of two sources:

- **units** (counties, ZIPs, bricks): every unit takes the territory of its accounts (a unit
  whose accounts are split goes to the territory holding most of its workload) and the units
  are dissolved per territory;
- **accounts alone**: the Voronoi cell of each account location, computed in a local
  equal-area projection and clipped to an outline of the data (see `account_cells`), is
  dissolved per territory.

Coordinates in and out are WGS84 (EPSG:4326) longitude/latitude.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import Delaunay, QhullError, cKDTree

from optimizer.errors import InputError, Issue

WGS84 = "EPSG:4326"
UNIT_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".zip")

# Outline of account data (see `account_cells`): Delaunay triangles with an edge longer than
# OUTLINE_EDGE_FACTOR × the 99th percentile of nearest-neighbour distances are dropped, and
# the rest is grown by OUTLINE_MARGIN × that edge limit. 4 × keeps a state or a country in
# one piece while oceans (Hawaii, Alaska) stay open; the margin keeps border towns inside.
OUTLINE_EDGE_FACTOR = 4.0
OUTLINE_MARGIN = 0.2
MIN_OUTLINE_EDGE_M = 2_000.0  # for very dense or tiny data sets
SINGLE_POINT_RADIUS_M = 10_000.0  # outline of one location (or of coincident points only)
MAX_DRAWN_LATITUDE = 85.0  # account polygons are drawn up to here (see `undrawable_extent`)


# --------------------------------------------------------------------------------------------
# Projections


def local_crs(lon: np.ndarray, lat: np.ndarray) -> pyproj.CRS:
    """A Lambert azimuthal equal-area CRS centred on the data (metres).

    Areas are exact everywhere and shapes are good near the centre, which is what Voronoi
    cells, buffers and areas need. The centre longitude is a circular mean, so data that
    straddle the antimeridian are centred correctly.

    Parameters
    ----------
    lon, lat : numpy.ndarray
        WGS84 degrees (NaN ignored).

    Returns
    -------
    pyproj.CRS
    """
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return pyproj.CRS.from_proj4("+proj=laea +lat_0=0 +lon_0=0 +datum=WGS84 +units=m")
    rad = np.radians(lon[ok])
    lon0 = math.degrees(math.atan2(float(np.sin(rad).mean()), float(np.cos(rad).mean())))
    lat0 = float(np.median(lat[ok]))
    return pyproj.CRS.from_proj4(
        f"+proj=laea +lat_0={lat0:.6f} +lon_0={lon0:.6f} +datum=WGS84 +units=m +no_defs")


def undrawable_extent(lat: np.ndarray, lon: np.ndarray) -> str | None:
    """The likely reason account polygons of these WGS84 points fail to draw, or None
    (to explain a failed drawing in the run's warnings).

    Voronoi cells are built in a local projection and brought back to longitude/latitude;
    near a pole or across the antimeridian that can wrap them around the globe (invalid
    geometries). Such data are solved like any other; only the drawings are skipped.
    """
    ok = np.isfinite(lat) & np.isfinite(lon)
    if not ok.any():
        return None
    if float(np.abs(lat[ok]).max()) > MAX_DRAWN_LATITUDE:
        return f"accounts beyond {MAX_DRAWN_LATITUDE:g}° latitude (near a pole)"
    if (lon[ok] > 90).any() and (lon[ok] < -90).any():
        return "accounts on both sides of the antimeridian (180° longitude)"
    return None


# --------------------------------------------------------------------------------------------
# Units


def load_units(path: str | Path) -> gpd.GeoDataFrame:
    """Read unit polygons (GeoJSON, GeoPackage, shapefile or zipped shapefile) with `unit_id`.

    The result is in WGS84, has `unit_id` as text (whole numbers read as numbers lose no
    leading zeros they never had; give ids with leading zeros as text), one row per unit and
    only valid, non-empty (multi)polygons: invalid geometries are repaired with
    `shapely.make_valid` and keep their polygonal part. A file without a CRS is taken as
    WGS84 when its coordinates are degrees (GeoJSON's rule).

    Parameters
    ----------
    path : str or pathlib.Path
        The units file.

    Returns
    -------
    geopandas.GeoDataFrame
        `unit_id`, the file's other properties, `geometry`.

    Raises
    ------
    InputError
        Every problem at once: unsupported or unreadable file, no `unit_id` column, missing or
        duplicate ids, missing, empty, non-polygonal or irreparable geometries, unknown CRS.
    """
    p = Path(path)
    name = p.name
    if not p.exists():
        raise InputError([Issue(name, None, None, f"file not found: {p}")])
    if p.suffix.lower() not in UNIT_SUFFIXES:
        raise InputError([Issue(name, None, None, "unsupported units file (use GeoJSON, "
                                "GeoPackage or a shapefile, optionally zipped)")])
    if p.suffix.lower() == ".zip":
        _check_zip(p)
    try:
        gdf = gpd.read_file(p)
    except Exception as exc:  # pyogrio raises several unrelated types for unreadable files
        raise InputError([Issue(name, None, None, f"cannot read the file: {exc}")]) from exc
    if "unit_id" not in gdf.columns:
        raise InputError([Issue(name, None, "unit_id", "missing column (the unit's id)")])
    issues: list[Issue] = []
    ids = _id_text(gdf["unit_id"])
    for row in np.flatnonzero(ids.isna().to_numpy()):
        issues.append(Issue(name, int(row) + 1, "unit_id", "missing unit_id"))
    dup = ids.duplicated(keep=False) & ids.notna()
    for uid, rows in ids[dup].groupby(ids[dup]).groups.items():
        where = ", ".join(str(int(r) + 1) for r in rows)
        issues.append(Issue(name, int(rows[0]) + 1, "unit_id",
                            f"duplicate unit_id {uid!r} (rows {where})"))
    geoms, geom_issues = _polygonal(gdf.geometry.to_numpy(), name)
    issues += geom_issues
    crs = gdf.crs
    minx, miny, maxx, maxy = shapely.total_bounds(geoms) if not issues else [np.nan] * 4
    in_degrees = minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90
    if crs is None:
        if np.isfinite([minx, miny, maxx, maxy]).all() and not in_degrees:
            issues.append(Issue(name, None, "geometry", "no coordinate reference system and the "
                                "coordinates are not degrees; add a .prj or use GeoJSON"))
        crs = WGS84
    elif pyproj.CRS(crs).is_geographic and np.isfinite([minx, maxx]).all() and not in_degrees:
        # GeoJSON is WGS84 by definition; projected metres in one are a mistake.
        issues.append(Issue(name, None, "geometry", f"coordinates out of the range of degrees "
                            f"(x {minx:g} to {maxx:g}, y {miny:g} to {maxy:g}): projected "
                            "coordinates need a file with their CRS (GeoPackage, .prj)"))
    if issues:
        raise InputError(issues)
    out = gpd.GeoDataFrame(gdf.drop(columns="geometry").assign(unit_id=ids),
                           geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    out = out.to_crs(WGS84) if out.crs is not None and not out.crs.equals(WGS84) else out
    return out.reset_index(drop=True)


def unit_points(units: gpd.GeoDataFrame) -> pd.DataFrame:
    """One point per unit: its centroid (computed in a local equal-area projection, so it
    does not drift with latitude), or a point inside it where the centroid falls outside (a
    crescent-shaped unit). What a design with `centres: units` measures travel to, and where
    maps draw such a centre.

    Parameters
    ----------
    units : geopandas.GeoDataFrame
        `unit_id` and polygons in WGS84, as `load_units` returns them.

    Returns
    -------
    pandas.DataFrame
        unit_id (text), lat, lon (WGS84 degrees), in the units' order.
    """
    geoms = units.geometry
    if not len(geoms):
        return pd.DataFrame({"unit_id": pd.Series(dtype=object), "lat": pd.Series(dtype=float),
                             "lon": pd.Series(dtype=float)})
    inner = geoms.representative_point()
    local = geoms.to_crs(local_crs(inner.x.to_numpy(), inner.y.to_numpy()))
    centroid = local.centroid
    point = gpd.GeoSeries(np.where(local.contains(centroid), centroid,
                                   inner.to_crs(local.crs)), crs=local.crs).to_crs(WGS84)
    return pd.DataFrame({"unit_id": units["unit_id"].astype(str).to_numpy(),
                         "lat": point.y.to_numpy(), "lon": point.x.to_numpy()})


def centre_unit_points(units: gpd.GeoDataFrame | None, centres: object,
                       account_ids: pd.Series) -> pd.DataFrame | None:
    """The points (`unit_points`) of the units a design may centre territories on: every
    unit for `centres: units`; for a list of ids, the listed ones that are units and not
    accounts (an id naming both is the account); None when no unit can be a centre.
    `centres` is the scenario's value as given (a job's scenario may not parse)."""
    if units is None:
        return None
    if centres == "units":
        return unit_points(units)
    if not isinstance(centres, list):
        return None
    listed = pd.Index([str(c) for c in centres]).difference(pd.Index(account_ids.astype(str)))
    ids = units["unit_id"].astype(str)
    if not ids.isin(listed).any():
        return None
    # Points of all units, then the listed: a point depends on the local projection, which
    # is fitted to the whole set (maps draw unit_points(units)).
    points = unit_points(units)
    return points[points["unit_id"].isin(listed)].reset_index(drop=True)


def _check_zip(path: Path) -> None:
    """A zipped shapefile must be a whole archive holding a .shp (GDAL's own messages for
    a truncated zip speak of missing files)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError([Issue(path.name, None, None, f"not a readable zip archive "
                                f"(truncated or corrupt?): {exc}")]) from exc
    if broken is not None:
        raise InputError([Issue(path.name, None, None, f"the zip archive is corrupt at "
                                f"{broken!r} (truncated upload?)")])
    if not any(n.lower().endswith(".shp") for n in names):
        raise InputError([Issue(path.name, None, None, "the zip holds no shapefile (.shp with "
                                "its .shx, .dbf and .prj)")])


def _id_text(values: pd.Series) -> pd.Series:
    """Ids as text; whole-number floats (a numeric column with gaps) lose the '.0'."""
    def one(v: object) -> str | None:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        text = str(v).strip()
        return text or None
    return pd.Series([one(v) for v in values], index=values.index, dtype=object)


def _polygonal(geoms: np.ndarray, source: str) -> tuple[np.ndarray, list[Issue]]:
    """Valid (multi)polygons: repair with make_valid, keep the polygonal part, report the rest."""
    issues: list[Issue] = []
    out = geoms.copy()
    for i, g in enumerate(geoms):
        if g is None or shapely.is_empty(g):
            issues.append(Issue(source, i + 1, "geometry", "missing or empty geometry"))
            continue
        if shapely.get_type_id(g) not in (3, 6, 7):  # Polygon, MultiPolygon, collection
            issues.append(Issue(source, i + 1, "geometry",
                                f"not a polygon ({g.geom_type})"))
            continue
        if not np.isfinite(shapely.get_coordinates(g)).all():  # GEOS fails on NaN/inf
            issues.append(Issue(source, i + 1, "geometry", "coordinates that are not finite "
                                "numbers (NaN or infinity)"))
            continue
        if shapely.is_valid(g) and shapely.get_type_id(g) != 7:
            continue
        why = shapely.is_valid_reason(g)
        fixed = _polygon_part(shapely.make_valid(g))
        if fixed is None:
            issues.append(Issue(source, i + 1, "geometry",
                                f"invalid geometry that cannot be repaired ({why})"))
        else:
            out[i] = fixed
    return out, issues


def _polygon_part(g: shapely.Geometry) -> shapely.Geometry | None:
    parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in (3, 6)]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return None if shapely.is_empty(merged) or shapely.area(merged) <= 0 else merged


def adjacency_pairs(units: gpd.GeoDataFrame | gpd.GeoSeries, *, rook: bool = True) -> np.ndarray:
    """Pairs (i, j), i < j, of units (row positions) that are neighbours.

    Rook adjacency (the default, and what contiguity should use): the two boundaries share
    a line of positive length, or the interiors overlap (sloppy data; overlapping units are
    certainly connected). Units that meet at a single corner are *not* neighbours: a
    territory held together by a corner is not contiguous for a planner. With
    ``rook=False`` (queen), any touching pair counts. Candidate pairs come from a
    shapely STRtree and the test is an exact DE-9IM relate, so tens of thousands of units
    take seconds. Units whose shared border does not match exactly (gaps, slivers) are not
    neighbours; snap such data first (e.g. `shapely.set_precision`).

    Parameters
    ----------
    units : geopandas.GeoDataFrame or geopandas.GeoSeries
        Unit polygons (any CRS; the test is topological).
    rook : bool
        Shared edge (True) or shared edge or corner (False).

    Returns
    -------
    numpy.ndarray
        Integer array of shape (m, 2), sorted, with i < j.
    """
    geoms = np.asarray(units.geometry.to_numpy() if hasattr(units, "geometry")
                       else units.to_numpy())
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if rook and len(left):
        matrix = shapely.relate(geoms[left], geoms[right])
        # DE-9IM: position 4 is boundary/boundary, position 0 interior/interior.
        edge = np.array([m[4] == "1" or m[0] == "2" for m in matrix], dtype=bool)
        left, right = left[edge], right[edge]
    pairs = np.column_stack([left, right]).astype(np.int64)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order].reshape(-1, 2)


def adjacency(units: gpd.GeoDataFrame | gpd.GeoSeries, *, rook: bool = True) -> sparse.csr_array:
    """The symmetric 0/1 adjacency matrix of units, rows and columns in row order of `units`.

    See `adjacency_pairs` for what counts as a neighbour (rook by default).

    Parameters
    ----------
    units : geopandas.GeoDataFrame or geopandas.GeoSeries
    rook : bool

    Returns
    -------
    scipy.sparse.csr_array
        n × n, dtype int8, zero diagonal.
    """
    pairs = adjacency_pairs(units, rook=rook)
    n = len(units)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    data = np.ones(len(rows), dtype=np.int8)
    return sparse.csr_array((data, (rows, cols)), shape=(n, n))


# --------------------------------------------------------------------------------------------
# Accounts → territory per unit


@dataclass(frozen=True)
class UnitAssignment:
    """Which territory each unit belongs to, from the accounts in it.

    Attributes
    ----------
    territory : pandas.Series
        unit_id → territory_id for every unit that holds at least one assigned account.
    split : pandas.DataFrame
        Units whose accounts are in several territories: unit_id, territory_id (the one that
        got the unit), territories (how many), kept_share (its share of the unit's workload).
    empty_units : int
        Units with no assigned account (they belong to no territory).
    unknown_units : list of str
        unit_ids of accounts that are not in the units file.
    accounts_without_unit : int
        Assigned accounts with no unit_id.
    """

    territory: pd.Series
    split: pd.DataFrame
    empty_units: int
    unknown_units: list[str] = field(default_factory=list)
    accounts_without_unit: int = 0

    def warnings(self) -> list[str]:
        """Plain-language notes for summary.json."""
        out = []
        if len(self.split):
            worst = self.split.sort_values("kept_share").iloc[0]
            out.append(
                f"{len(self.split)} unit(s) hold accounts of more than one territory; each is "
                f"drawn in the territory with most of its workload (least clear: unit "
                f"{worst['unit_id']}, {worst['kept_share']:.0%} in {worst['territory_id']})")
        if self.unknown_units:
            shown = ", ".join(self.unknown_units[:5])
            more = ", ..." if len(self.unknown_units) > 5 else ""
            out.append(f"{len(self.unknown_units)} unit_id(s) of accounts are not in the units "
                       f"file and are not drawn ({shown}{more})")
        if self.accounts_without_unit:
            out.append(f"{self.accounts_without_unit} assigned account(s) have no unit_id and "
                       "are not drawn")
        if self.empty_units:
            out.append(f"{self.empty_units} unit(s) hold no account and belong to no territory")
        return out


def _assigned(accounts: pd.DataFrame, assignment: pd.DataFrame) -> pd.DataFrame:
    """Accounts joined to their territory (assigned accounts only), in account order."""
    out = accounts.copy()
    out["_tid"] = _territory_of(out, assignment)
    out = out[out["_tid"].notna()]
    out["_w"] = (pd.to_numeric(out["workload"], errors="coerce").fillna(0.0).to_numpy(float)
                 if "workload" in out.columns else 1.0)
    return out


def _territory_of(accounts: pd.DataFrame, assignment: pd.DataFrame) -> pd.Series:
    """territory_id (text) per account row, NaN when unassigned."""
    known = assignment.dropna(subset=["territory_id"])
    lookup = pd.Series(known["territory_id"].astype(str).to_numpy(),
                       index=known["account_id"].astype(str).to_numpy())
    return accounts["account_id"].astype(str).map(lookup)


def assign_units(accounts: pd.DataFrame, assignment: pd.DataFrame,
                 units: gpd.GeoDataFrame) -> UnitAssignment:
    """Give every unit the territory that holds most of its accounts' workload.

    Parameters
    ----------
    accounts : pandas.DataFrame
        account_id, unit_id and (optionally) workload; without workload each account counts 1.
    assignment : pandas.DataFrame
        account_id, territory_id.
    units : geopandas.GeoDataFrame
        With unit_id.

    Returns
    -------
    UnitAssignment
    """
    acc = _assigned(accounts, assignment)
    uid = _id_text(acc["unit_id"]) if "unit_id" in acc.columns else pd.Series(
        [None] * len(acc), index=acc.index, dtype=object)
    known = set(units["unit_id"].astype(str))
    has_unit = uid.notna()
    in_units = has_unit & uid.isin(known)
    unknown = sorted(set(uid[has_unit & ~in_units]))
    frame = pd.DataFrame({"unit_id": uid[in_units], "territory_id": acc.loc[in_units, "_tid"],
                          "w": acc.loc[in_units, "_w"]})
    # Ties and zero-workload units: most accounts, then the first territory id, so that the
    # choice is deterministic.
    load = frame.groupby(["unit_id", "territory_id"], sort=True).agg(w=("w", "sum"),
                                                                     n=("w", "size"))
    load = load.reset_index().sort_values(["unit_id", "w", "n", "territory_id"],
                                          ascending=[True, False, False, True])
    best = load.drop_duplicates("unit_id")
    counts = load.groupby("unit_id").size()
    totals = load.groupby("unit_id")["w"].sum()
    split_ids = counts[counts > 1].index
    split = best[best["unit_id"].isin(split_ids)].copy()
    split["territories"] = split["unit_id"].map(counts).to_numpy()
    tot = split["unit_id"].map(totals).to_numpy(float)
    split["kept_share"] = np.divide(split["w"].to_numpy(float), tot,
                                    out=np.ones(len(split)), where=tot > 0)
    territory = pd.Series(best["territory_id"].to_numpy(), index=best["unit_id"].to_numpy(),
                          name="territory_id")
    return UnitAssignment(
        territory=territory,
        split=split[["unit_id", "territory_id", "territories", "kept_share"]]
        .reset_index(drop=True),
        empty_units=len(known) - len(territory),
        unknown_units=unknown,
        accounts_without_unit=int((~has_unit).sum()),
    )


# --------------------------------------------------------------------------------------------
# Voronoi cells of accounts


@dataclass(frozen=True)
class AccountCells:
    """Voronoi cells of the distinct account locations, in a local equal-area CRS.

    Attributes
    ----------
    crs : pyproj.CRS
        The projection of `points`, `cells` and `outline` (metres).
    points : numpy.ndarray
        (k, 2) distinct locations.
    location : numpy.ndarray
        Per input account, the index of its location in `points` (-1: no coordinates).
    cells : numpy.ndarray
        k shapely polygons, the unclipped Voronoi cell of each location.
    outline : shapely.Geometry
        The area the data covers; cells are clipped to it after dissolving.
    """

    crs: pyproj.CRS
    points: np.ndarray
    location: np.ndarray
    cells: np.ndarray
    outline: shapely.Geometry


def account_cells(lat: Sequence[float] | np.ndarray,
                  lon: Sequence[float] | np.ndarray) -> AccountCells:
    """Voronoi cells of account locations and an outline of the area they cover.

    The outline is an "alpha shape": the Delaunay triangles of the locations whose longest
    edge is at most L = 4 × the 99th percentile of nearest-neighbour distances, grown by
    0.2 L, plus a disc of that radius around every location no triangle uses, with holes
    filled. It follows coasts and leaves oceans open, and it splits into parts where the
    data do (the lower 48, Alaska's towns, Hawaii), which a convex or concave hull cannot.
    Coincident locations share one cell.

    Parameters
    ----------
    lat, lon : array-like
        WGS84 degrees per account; NaN for accounts without coordinates.

    Returns
    -------
    AccountCells
    """
    lat_a = np.asarray(lat, dtype=float)
    lon_a = np.asarray(lon, dtype=float)
    ok = np.isfinite(lat_a) & np.isfinite(lon_a)
    crs = local_crs(lon_a, lat_a)
    location = np.full(len(lat_a), -1, dtype=np.int64)
    if not ok.any():
        empty = shapely.from_wkt("POLYGON EMPTY")
        return AccountCells(crs, np.zeros((0, 2)), location, np.array([], dtype=object), empty)
    to = pyproj.Transformer.from_crs(WGS84, crs, always_xy=True)
    x, y = to.transform(lon_a[ok], lat_a[ok])
    # 1 cm grid: coincident accounts (same town, same building) become one location.
    xy = np.round(np.column_stack([x, y]), 2)
    points, inverse = np.unique(xy, axis=0, return_inverse=True)
    location[ok] = inverse.ravel()
    outline = _outline(points)
    if len(points) == 1:
        cells = np.array([outline], dtype=object)
    else:
        diagram = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=outline,
                                           ordered=True)
        cells = _match_cells(shapely.get_parts(diagram), points)
    return AccountCells(crs, points, location, cells, outline)


def _outline(points: np.ndarray) -> shapely.Geometry:
    if len(points) == 1:
        return shapely.buffer(shapely.points(points[0]), SINGLE_POINT_RADIUS_M)
    nn = cKDTree(points).query(points, k=2)[0][:, 1]
    edge = max(OUTLINE_EDGE_FACTOR * float(np.quantile(nn, 0.99)), MIN_OUTLINE_EDGE_M)
    margin = OUTLINE_MARGIN * edge
    try:
        tri = Delaunay(points)
    except (QhullError, ValueError):  # fewer than 4 points or all on a line
        return shapely.buffer(shapely.convex_hull(shapely.multipoints(points)), margin)
    corners = points[tri.simplices]
    longest = np.max([np.hypot(*(corners[:, k] - corners[:, (k + 1) % 3]).T)
                      for k in range(3)], axis=0)
    keep = longest <= edge
    rings = np.concatenate([corners[keep], corners[keep][:, :1]], axis=1)
    triangles = shapely.polygons(rings)
    used = np.zeros(len(points), dtype=bool)
    used[tri.simplices[keep].ravel()] = True
    # Triangles of one triangulation form a coverage: coverage union is exact and fast.
    body = shapely.coverage_union_all(triangles) if keep.any() else None
    pieces = [shapely.buffer(body, margin)] if body is not None else []
    if (~used).any():
        pieces.append(shapely.buffer(shapely.multipoints(points[~used]), margin))
    # Holes are empty interiors (deserts, lakes) enclosed by data: fill them so that the
    # territories tile the whole area; coasts and gaps that open outwards stay.
    filled = [shapely.polygons(shapely.get_exterior_ring(p))
              for p in shapely.get_parts(shapely.union_all(pieces))]
    return shapely.union_all(filled)


def _match_cells(cells: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Cells in the order of `points` (GEOS keeps the order with ordered=True; checked)."""
    if len(cells) == len(points) and shapely.contains_xy(cells, points[:, 0],
                                                         points[:, 1]).all():
        return cells
    tree = shapely.STRtree(cells)
    out = np.empty(len(points), dtype=object)
    hits = tree.query(shapely.points(points), predicate="intersects")
    out[hits[0]] = cells[hits[1]]
    return out


def dissolve_cells(cells: AccountCells, labels: Sequence[object] | np.ndarray,
                   weights: Sequence[float] | np.ndarray | None = None,
                   name: str = "territory_id") -> gpd.GeoDataFrame:
    """Dissolve account cells by a label per account, clipped to the outline, in WGS84.

    A location shared by accounts with different labels goes to the label with the most
    weight there (workload; ties: more accounts, then the smaller label), and is reported in
    ``attrs["warnings"]``. Accounts without coordinates or without a label are skipped.

    Parameters
    ----------
    cells : AccountCells
        From `account_cells` for the same accounts, in the same order.
    labels : array-like
        Territory (or state, region, ...) per account; None/NaN = not drawn.
    weights : array-like, optional
        Workload per account (default 1 each).
    name : str
        Name of the label column of the result.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per label that has at least one located account: `name`, geometry
        (Polygon or MultiPolygon). ``attrs["warnings"]`` lists notes for the run summary.
    """
    lab = pd.Series(np.asarray(labels, dtype=object)).astype(object)
    lab = lab.where(lab.notna(), None)
    w = np.ones(len(lab)) if weights is None else np.nan_to_num(np.asarray(weights, float))
    frame = pd.DataFrame({"loc": cells.location, "label": lab.to_numpy(), "w": w})
    frame = frame[(frame["loc"] >= 0) & frame["label"].notna()]
    frame["label"] = frame["label"].astype(str)
    notes: list[str] = []
    if frame.empty:
        out = gpd.GeoDataFrame({name: pd.Series([], dtype=object)},
                               geometry=gpd.GeoSeries([], crs=WGS84), crs=WGS84)
        out.attrs["warnings"] = notes
        return out
    load = frame.groupby(["loc", "label"]).agg(w=("w", "sum"), n=("w", "size")).reset_index()
    load = load.sort_values(["loc", "w", "n", "label"], ascending=[True, False, False, True])
    owner = load.drop_duplicates("loc")
    shared = int((load.groupby("loc").size() > 1).sum())
    if shared:
        notes.append(f"{shared} location(s) hold accounts of more than one {name}; each is drawn "
                     f"in the {name} with most workload there")
    loc = owner["loc"].to_numpy()
    owner_label = owner["label"].to_numpy()
    names, codes = np.unique(owner_label, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    merged = np.empty(len(names), dtype=object)
    for k in range(len(names)):
        merged[k] = _union_cells(cells.cells[loc[order[bounds[k]:bounds[k + 1]]]])
    clipped = shapely.intersection(merged, cells.outline)
    geoms = gpd.GeoSeries(clipped, crs=cells.crs).to_crs(WGS84)
    out = gpd.GeoDataFrame({name: names.astype(object)}, geometry=geoms.to_numpy(), crs=WGS84)
    out.attrs["warnings"] = notes
    return out


def _union_cells(parts: np.ndarray) -> shapely.Geometry:
    # Voronoi cells share their edges exactly, so coverage union is valid and ~10× faster
    # than a general union; the check guards against GEOS rounding a shared vertex.
    if len(parts) == 1:
        return parts[0]
    merged = shapely.coverage_union_all(parts)
    if shapely.is_valid(merged):
        return merged
    return shapely.union_all(parts)


# --------------------------------------------------------------------------------------------
# Territory polygons


def territory_polygons(accounts: pd.DataFrame, assignment: pd.DataFrame,
                       units: gpd.GeoDataFrame | None = None, *,
                       cells: AccountCells | None = None) -> gpd.GeoDataFrame:
    """One polygon per territory, in WGS84.

    With `units`: every unit takes the territory of its accounts (the one with most of its
    workload when they are split) and units are dissolved per territory; units without
    accounts belong to no territory. Without units: the accounts' Voronoi cells (see
    `account_cells`) are dissolved per territory. Notes for the run summary (split units,
    unknown unit ids, shared locations) are in ``attrs["warnings"]``.

    Parameters
    ----------
    accounts : pandas.DataFrame
        account_id, lat, lon (WGS84; NaN allowed, such accounts are skipped), optional
        workload and unit_id.
    assignment : pandas.DataFrame
        account_id, territory_id.
    units : geopandas.GeoDataFrame, optional
        Unit polygons with unit_id (from `load_units`).
    cells : AccountCells, optional
        Precomputed `account_cells(accounts.lat, accounts.lon)`, to draw several plans of the
        same accounts (before and after) without recomputing the diagram.

    Returns
    -------
    geopandas.GeoDataFrame
        territory_id, geometry; territories with no drawable account are absent.
    """
    if units is not None:
        ua = assign_units(accounts, assignment, units)
        own = units[["unit_id", "geometry"]].copy()
        own["territory_id"] = own["unit_id"].astype(str).map(ua.territory)
        own = own[own["territory_id"].notna()]
        geoms = own.geometry.to_numpy()
        labels = own["territory_id"].to_numpy(dtype=object)
        names = np.array(sorted(set(labels)), dtype=object)
        coverage = bool(len(geoms)) and bool(shapely.coverage_is_valid(geoms))
        merged = []
        for t in names:
            parts = geoms[labels == t]
            merged.append(shapely.coverage_union_all(parts) if coverage
                          else shapely.union_all(parts))
        out = gpd.GeoDataFrame({"territory_id": names}, geometry=np.array(merged, dtype=object),
                               crs=units.crs or WGS84)
        if not out.crs.equals(WGS84):
            out = out.to_crs(WGS84)
        out.attrs["warnings"] = ua.warnings()
        return out
    if "lat" not in accounts.columns or "lon" not in accounts.columns:
        raise InputError([Issue("accounts", None, "lat", "territory polygons need lat, lon "
                                "(or a units file)")])
    if cells is None:
        cells = account_cells(pd.to_numeric(accounts["lat"], errors="coerce").to_numpy(float),
                              pd.to_numeric(accounts["lon"], errors="coerce").to_numpy(float))
    labels = _territory_of(accounts, assignment)
    weights = (pd.to_numeric(accounts["workload"], errors="coerce").fillna(0).to_numpy(float)
               if "workload" in accounts.columns else None)
    out = dissolve_cells(cells, labels.to_numpy(dtype=object), weights)
    missing = int((cells.location < 0).sum())
    if missing:
        out.attrs["warnings"].append(f"{missing} account(s) have no coordinates and are not "
                                     "drawn")
    return out


# --------------------------------------------------------------------------------------------
# Geometric KPIs


def disconnected_parts(territories: gpd.GeoDataFrame) -> dict[str, int]:
    """Number of separate polygon parts per territory (1 = one piece, 0 = no geometry).

    Parts are counted geometrically: pieces that touch only at a corner are separate (rook).
    A unit that is itself in several pieces (a county with islands) adds its pieces; for the
    contiguity KPI of unit-based territories use `unit_components`, which counts each unit
    as one node of the adjacency graph.

    Parameters
    ----------
    territories : geopandas.GeoDataFrame
        territory_id, geometry.

    Returns
    -------
    dict
        territory_id → number of parts.
    """
    geoms = territories.geometry.to_numpy()
    n = np.where(shapely.is_missing(geoms) | shapely.is_empty(geoms), 0,
                 shapely.get_num_geometries(geoms))
    return {str(t): int(k) for t, k in zip(territories["territory_id"], n, strict=True)}


def territory_components(adjacency_matrix: sparse.sparray | sparse.spmatrix,
                         labels: Sequence[object] | np.ndarray) -> dict[str, int]:
    """Connected components of each territory in the unit adjacency graph.

    An independent check of `disconnected_parts` (graph, not geometry) and the test a
    contiguity constraint must pass: every territory has exactly one component.

    Parameters
    ----------
    adjacency_matrix : scipy sparse matrix
        n × n unit adjacency (from `adjacency`).
    labels : array-like
        Territory per unit (None: the unit belongs to no territory and is ignored).

    Returns
    -------
    dict
        territory_id → number of components.
    """
    lab = pd.Series(np.asarray(labels, dtype=object))
    valid = lab.notna().to_numpy()
    codes, names = pd.factorize(lab.astype(object).where(lab.notna(), None))
    coo = sparse.coo_array(adjacency_matrix)
    same = (codes[coo.row] == codes[coo.col]) & valid[coo.row] & valid[coo.col]
    n = len(lab)
    graph = sparse.csr_array((np.ones(int(same.sum())), (coo.row[same], coo.col[same])),
                             shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    frame = pd.DataFrame({"t": codes[valid], "c": comp[valid]})
    per = frame.groupby("t")["c"].nunique()
    return {str(names[int(t)]): int(k) for t, k in zip(per.index, per.to_numpy(), strict=True)}


def compactness(polygons: gpd.GeoDataFrame) -> dict[str, float]:
    """Polsby–Popper compactness per territory: 4π · area / perimeter², in (0, 1].

    1 is a disc; a square is 0.785; long or ragged shapes score low. Area and perimeter are
    geodesic (on the WGS84 ellipsoid), so Alaska and Maine are measured alike with no
    projection. The perimeter includes holes (enclaves of other territories count against
    compactness) and all parts of a multi-part territory. Polygons clipped to a data outline
    (no units) inherit its ragged coast: compare plans of the same data, not data sets.

    Parameters
    ----------
    polygons : geopandas.GeoDataFrame
        territory_id, geometry (WGS84, or any CRS with `to_crs`).

    Returns
    -------
    dict
        territory_id → score (NaN for a missing or empty geometry).
    """
    gdf = polygons if polygons.crs is None or polygons.crs.equals(WGS84) \
        else polygons.to_crs(WGS84)
    geod = pyproj.Geod(ellps="WGS84")
    out: dict[str, float] = {}
    for tid, geom in zip(gdf["territory_id"], gdf.geometry, strict=True):
        if geom is None or geom.is_empty:
            out[str(tid)] = float("nan")
            continue
        # Oriented rings give a positive area; holes are subtracted.
        area = geod.geometry_area_perimeter(shapely.orient_polygons(geom))[0]
        rings = shapely.get_rings(shapely.get_parts(geom))
        perimeter = sum(geod.line_length(*np.asarray(r.coords).T) for r in rings)
        out[str(tid)] = 4 * math.pi * area / perimeter**2 if perimeter > 0 else 0.0
    return out


def unit_components(accounts: pd.DataFrame, assignment: pd.DataFrame,
                    units: gpd.GeoDataFrame,
                    adjacency_matrix: sparse.sparray | sparse.spmatrix | None = None
                    ) -> dict[str, int]:
    """Pieces per territory of a unit-based plan: components in the rook adjacency graph.

    The contiguity KPI: 1 for every territory means the plan is contiguous. Units take the
    territory of their accounts as in `assign_units`.

    Parameters
    ----------
    accounts, assignment, units
        As for `territory_polygons`.
    adjacency_matrix : scipy sparse matrix, optional
        `adjacency(units)`, if already computed.

    Returns
    -------
    dict
        territory_id → number of connected pieces.
    """
    ua = assign_units(accounts, assignment, units)
    labels = units["unit_id"].astype(str).map(ua.territory).to_numpy(dtype=object)
    matrix = adjacency(units) if adjacency_matrix is None else adjacency_matrix
    return territory_components(matrix, labels)


def geo_kpis(polygons: gpd.GeoDataFrame,
             components: dict[str, int] | None = None) -> dict[str, float]:
    """The geometric KPIs of a plan, for summary.json and the workbook.

    Parameters
    ----------
    polygons : geopandas.GeoDataFrame
        From `territory_polygons`.
    components : dict, optional
        From `unit_components` when the plan is unit-based (contiguity is only a KPI then).

    Returns
    -------
    dict
        compactness_mean, compactness_min (Polsby–Popper); with components also
        disconnected_territories (territories in more than one piece) and disconnected_parts
        (pieces beyond the first, summed: 0 means every territory is contiguous).
    """
    pp = np.array([v for v in compactness(polygons).values() if np.isfinite(v)])
    out: dict[str, float] = {
        "compactness_mean": float(pp.mean()) if len(pp) else float("nan"),
        "compactness_min": float(pp.min()) if len(pp) else float("nan"),
    }
    if components is not None:
        parts = np.array(list(components.values()), dtype=np.int64)
        out["disconnected_territories"] = int((parts > 1).sum())
        out["disconnected_parts"] = int(np.maximum(parts - 1, 0).sum())
    return out
