"""Territory maps: a static PNG (matplotlib) and a self-contained interactive HTML (Leaflet).

Both maps colour territories with a greedy colouring of their adjacency, so neighbours
never share a colour however many territories there are; ids are written on the map rather
than in a 100-entry legend. The HTML inlines Leaflet (`optimizer/assets/leaflet/`) and draws
the polygons themselves on a plain background: no CDN, no tile server, it works offline.

Data far from the bulk of the accounts (Alaska and Hawaii next to the lower 48) is drawn in
insets in the PNG so that the main map stays readable.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
import pyproj
import shapely
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch
from matplotlib.path import Path as MplPath
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial import Delaunay, QhullError

from optimizer.geo import WGS84, adjacency_pairs, local_crs

# No pyplot and no matplotlib.use(): a bare Figure renders PNG with Agg whatever backend a
# notebook or GUI has chosen, without global state, so maps are safe in worker threads.

# A light qualitative palette (ColorBrewer-style pastels; grey and pale yellow left out so
# that every colour reads against white and against the dark account dots).
PALETTE = ("#8dd3c7", "#fdb462", "#bebada", "#fb8072", "#80b1d3", "#b3de69",
           "#fccde5", "#bc80bd", "#ccebc5", "#ffed6f", "#e5c494")
BORDER = "#333333"
OUTLINE = "#7a7a7a"

# Insets: account groups further than INSET_GAP_KM from the main group (single linkage) and
# outside its box are drawn in insets; outlying groups closer than INSET_MERGE_KM to each
# other share one inset (all of Alaska's scattered towns in one). No insets if there would
# be more than MAX_INSETS or if they would hold more than MAX_INSET_SHARE of the accounts.
INSET_GAP_KM = 500.0
INSET_MERGE_KM = 2500.0
MAX_INSETS = 3
MAX_INSET_SHARE = 0.25


# --------------------------------------------------------------------------------------------
# Colours


def territory_colours(territories: gpd.GeoDataFrame,
                      palette: tuple[str, ...] = PALETTE) -> dict[str, str]:
    """A colour per territory such that touching territories differ.

    Greedy colouring, territories with most neighbours first; each takes the least-used
    colour none of its neighbours has (so colours are spread evenly). Planar maps need few
    colours; should the palette run out, colours repeat.

    Parameters
    ----------
    territories : geopandas.GeoDataFrame
        territory_id, geometry.
    palette : tuple of str
        Colours to choose from.

    Returns
    -------
    dict
        territory_id → hex colour.
    """
    ids = [str(t) for t in territories["territory_id"]]
    geoms = territories.geometry
    present = ~(geoms.isna() | geoms.is_empty).to_numpy()
    neighbours: list[set[int]] = [set() for _ in ids]
    if present.sum() > 1:
        idx = np.flatnonzero(present)
        pairs = adjacency_pairs(geoms[present], rook=False)
        for i, j in idx[pairs]:
            neighbours[i].add(int(j))
            neighbours[j].add(int(i))
    order = sorted(range(len(ids)), key=lambda k: (-len(neighbours[k]), ids[k]))
    colour_of: dict[int, int] = {}
    used = np.zeros(len(palette), dtype=int)
    for k in order:
        taken = {colour_of[n] for n in neighbours[k] if n in colour_of}
        free = [c for c in range(len(palette)) if c not in taken]
        pool = free or list(range(len(palette)))
        choice = min(pool, key=lambda c: (used[c], c))
        colour_of[k] = choice
        used[choice] += 1
    return {ids[k]: palette[c] for k, c in colour_of.items()}


def _darker(colour: str, amount: float = 0.45) -> str:
    r, g, b = matplotlib.colors.to_rgb(colour)
    return matplotlib.colors.to_hex((r * (1 - amount), g * (1 - amount), b * (1 - amount)))


# --------------------------------------------------------------------------------------------
# Panels (main map and insets)


@dataclass(frozen=True)
class _Panel:
    bounds: tuple[float, float, float, float]  # lon/lat box the panel shows
    crs: pyproj.CRS


def _groups(lon: np.ndarray, lat: np.ndarray, gap_km: float) -> np.ndarray:
    """Single-linkage groups of points at `gap_km` (via the Delaunay minimum spanning tree)."""
    n = len(lon)
    if n < 4:
        return np.zeros(n, dtype=np.int64)
    crs = local_crs(lon, lat)
    x, y = pyproj.Transformer.from_crs(WGS84, crs, always_xy=True).transform(lon, lat)
    xy = np.column_stack([x, y])
    unique, inverse = np.unique(np.round(xy), axis=0, return_inverse=True)
    if len(unique) < 4:
        return np.zeros(n, dtype=np.int64)
    try:
        tri = Delaunay(unique)
    except (QhullError, ValueError):
        return np.zeros(n, dtype=np.int64)
    s = tri.simplices
    edges = np.concatenate([s[:, [0, 1]], s[:, [1, 2]], s[:, [2, 0]]])
    length = np.hypot(*(unique[edges[:, 0]] - unique[edges[:, 1]]).T) + 1e-9
    graph = coo_array((length, (edges[:, 0], edges[:, 1])), shape=(len(unique),) * 2)
    tree = coo_array(minimum_spanning_tree(graph.tocsr()))
    short = tree.data <= gap_km * 1000
    kept = coo_array((np.ones(int(short.sum())), (tree.row[short], tree.col[short])),
                     shape=(len(unique),) * 2)
    _, label = connected_components(kept, directed=False)
    return np.asarray(label[inverse.ravel()], dtype=np.int64)


def _panel(lon: np.ndarray, lat: np.ndarray, geoms: np.ndarray) -> _Panel:
    """A panel around these accounts, wide enough for the polygons' margin around them."""
    # The polygons reach past the accounts by the outline margin (tens of km); 2.5° of room
    # catches that but stays short of other groups (at least INSET_GAP_KM away).
    w, h = lon.max() - lon.min(), lat.max() - lat.min()
    px, py = min(max(w * 0.3, 0.5), 2.5), min(max(h * 0.3, 0.5), 2.5)
    near = shapely.clip_by_rect(geoms, lon.min() - px, lat.min() - py, lon.max() + px,
                                lat.max() + py)
    near = near[~(shapely.is_missing(near) | shapely.is_empty(near))]
    x0, y0, x1, y1 = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    if len(near):
        b = shapely.total_bounds(near)
        x0, y0, x1, y1 = min(x0, b[0]), min(y0, b[1]), max(x1, b[2]), max(y1, b[3])
    dx, dy = max((x1 - x0) * 0.01, 0.01), max((y1 - y0) * 0.01, 0.01)
    return _Panel((x0 - dx, y0 - dy, x1 + dx, y1 + dy), local_crs(lon, lat))


def _panels(lon: np.ndarray, lat: np.ndarray, geoms: np.ndarray) -> list[_Panel]:
    """The main panel (the group holding most accounts) and up to MAX_INSETS insets."""
    whole = [_panel(lon, lat, geoms)]
    groups = _groups(lon, lat, INSET_GAP_KM)
    counts = np.bincount(groups)
    if len(counts) == 1:
        return whole
    main = groups == int(np.argmax(counts))
    rest = np.flatnonzero(~main)
    if len(rest) > MAX_INSET_SHARE * len(lon):
        return whole
    sub = _groups(lon[rest], lat[rest], INSET_MERGE_KM)
    if sub.max() + 1 > MAX_INSETS:
        return whole
    panels = [_panel(lon[main], lat[main], geoms)]
    mx0, my0, mx1, my1 = panels[0].bounds
    for g in np.argsort(-np.bincount(sub), kind="stable"):
        sel = rest[sub == g]
        inside = ((lon[sel] >= mx0) & (lon[sel] <= mx1) & (lat[sel] >= my0)
                  & (lat[sel] <= my1))
        if inside.any():  # a gap inside the main area (sparse data), not an outlying region
            return whole
        panels.append(_panel(lon[sel], lat[sel], geoms))
    return panels


# --------------------------------------------------------------------------------------------
# Drawing helpers

Extent = tuple[float, float, float, float]


def _to_paths(geom: shapely.Geometry) -> list[MplPath]:
    """Matplotlib paths of a (multi)polygon, holes included."""
    paths = []
    for poly in shapely.get_parts(geom):
        if shapely.get_type_id(poly) != 3 or poly.is_empty:
            continue
        rings = [np.asarray(poly.exterior.coords)] + [np.asarray(r.coords)
                                                      for r in poly.interiors]
        verts = np.concatenate(rings)
        codes = np.concatenate([[MplPath.MOVETO] + [MplPath.LINETO] * (len(r) - 2)
                                + [MplPath.CLOSEPOLY] for r in rings])
        paths.append(MplPath(verts, codes))
    return paths


def _projected(geoms: np.ndarray, panel: _Panel) -> np.ndarray:
    """Geometries cut to the panel's box (with room to spare) and projected."""
    x0, y0, x1, y1 = panel.bounds
    pad_x, pad_y = (x1 - x0) * 0.5, (y1 - y0) * 0.5
    cut = shapely.clip_by_rect(geoms, x0 - pad_x, max(y0 - pad_y, -90), x1 + pad_x,
                               min(y1 + pad_y, 90))
    to = pyproj.Transformer.from_crs(WGS84, panel.crs, always_xy=True)
    return np.asarray(shapely.transform(
        cut, lambda c: np.column_stack(to.transform(c[:, 0], c[:, 1]))))


def _xy(panel: _Panel, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    to = pyproj.Transformer.from_crs(WGS84, panel.crs, always_xy=True)
    x, y = to.transform(lon, lat)
    return np.asarray(x), np.asarray(y)


def _extent(panel: _Panel) -> Extent:
    """The panel's box in its projection (sampled edges: a lon/lat box is curved there)."""
    x0, y0, x1, y1 = panel.bounds
    t = np.linspace(0, 1, 9)
    lon = np.concatenate([x0 + (x1 - x0) * t, x0 + (x1 - x0) * t, np.full(9, x0),
                          np.full(9, x1)])
    lat = np.concatenate([np.full(9, y0), np.full(9, y1), y0 + (y1 - y0) * t,
                          y0 + (y1 - y0) * t])
    x, y = _xy(panel, lon, lat)
    return float(x.min()), float(y.min()), float(x.max()), float(y.max())


def _label_point(geom: shapely.Geometry) -> shapely.Geometry | None:
    """Where a territory's id goes: inside its largest part."""
    parts = [p for p in shapely.get_parts(geom) if not p.is_empty and p.area > 0]
    if not parts:
        return None
    return shapely.point_on_surface(max(parts, key=lambda p: p.area))


def _font_size(n: int) -> float:
    return 11.0 if n <= 10 else 9.0 if n <= 30 else 7.5 if n <= 80 else 6.5


def _scale_bar(ax: Axes, extent: Extent) -> None:
    x0, y0, x1, _ = extent
    target = (x1 - x0) / 6
    step = 10 ** math.floor(math.log10(target))
    length = max(s * step for s in (1, 2, 5) if s * step <= target)
    bx, by = x1 - (x1 - x0) * 0.03 - length, y0 + (x1 - x0) * 0.02
    ax.plot([bx, bx + length], [by, by], color="#222222", lw=2, solid_capstyle="butt", zorder=6)
    ax.text(bx + length / 2, by + (x1 - x0) * 0.006, f"{length / 1000:g} km", ha="center",
            va="bottom", fontsize=7, color="#222222", zorder=6)


@dataclass(frozen=True)
class _Layers:
    """What every panel draws."""

    terr: gpd.GeoDataFrame
    colours: dict[str, str]
    acc: pd.DataFrame
    centres: pd.DataFrame | None
    outlines: gpd.GeoDataFrame | None
    label_size: float


def _draw_panel(ax: Axes, panel: _Panel, extent: Extent, layers: _Layers, main: bool) -> None:
    geoms = _projected(layers.terr.geometry.to_numpy(), panel)
    ids = [str(t) for t in layers.terr["territory_id"]]
    paths, faces = [], []
    for tid, g in zip(ids, geoms, strict=True):
        for p in _to_paths(g):
            paths.append(p)
            faces.append(layers.colours.get(tid, "#dddddd"))
    ax.add_collection(PatchCollection([PathPatch(p) for p in paths], facecolors=faces,
                                      edgecolors="none", alpha=0.85, zorder=1))
    if layers.outlines is not None and len(layers.outlines):
        lines = [PathPatch(p) for g in _projected(layers.outlines.geometry.to_numpy(), panel)
                 for p in _to_paths(g)]
        ax.add_collection(PatchCollection(lines, facecolors="none", edgecolors=OUTLINE,
                                          linewidths=0.35, zorder=2))
    ax.add_collection(PatchCollection([PathPatch(p) for p in paths], facecolors="none",
                                      edgecolors=BORDER, linewidths=0.8 if main else 0.6,
                                      zorder=3))
    acc = layers.acc
    if len(acc):
        x, y = _xy(panel, acc["lon"].to_numpy(float), acc["lat"].to_numpy(float))
        dots = [_darker(layers.colours.get(t, "#999999"))
                for t in acc["territory_id"].astype(str)]
        size = acc["_size"].to_numpy(float) * (1.0 if main else 0.7)
        ax.scatter(x, y, s=size, c=dots, linewidths=0, alpha=0.8, zorder=4)
    if layers.centres is not None and len(layers.centres):
        c = layers.centres
        x, y = _xy(panel, c["lon"].to_numpy(float), c["lat"].to_numpy(float))
        ax.scatter(x, y, s=34 if main else 22, marker="o", facecolors="white",
                   edgecolors="black", linewidths=1.1, zorder=7)
        ax.scatter(x, y, s=4, c="black", linewidths=0, zorder=8)
    x0, y0, x1, y1 = extent
    halo = [patheffects.withStroke(linewidth=2.2, foreground="white")]
    font = layers.label_size * (1.0 if main else 0.85)
    for tid, g in zip(ids, geoms, strict=True):
        pt = _label_point(g) if g is not None else None
        if pt is None or not (x0 <= pt.x <= x1 and y0 <= pt.y <= y1):
            continue
        ax.text(pt.x, pt.y, tid, ha="center", va="center", fontsize=font, fontweight="bold",
                color="#111111", path_effects=halo, zorder=9, clip_on=True)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if main:
        ax.set_axis_off()
        _scale_bar(ax, extent)
    else:
        for side in ax.spines.values():
            side.set_color("#999999")
            side.set_linewidth(0.8)


def _inset_room(main_extent: Extent, occupied: np.ndarray,
                sizes: list[tuple[float, float]]) -> Extent:
    """Lower the main map's bottom edge until the insets (lower left, side by side, sizes in
    the main map's units) cover nothing of it: AK and HI go below the Southwest."""
    x0, y0, x1, y1 = main_extent
    gap = 0.01 * (x1 - x0)
    width = sum(w for w, _ in sizes) + gap * (len(sizes) + 1)
    height = max(h for _, h in sizes) + 2 * gap
    under = occupied[occupied[:, 0] <= x0 + width]
    lowest = float(under[:, 1].min()) if len(under) else y1
    return x0, min(y0, lowest - height), x1, y1


def _account_frame(accounts: pd.DataFrame) -> pd.DataFrame:
    """Located, assigned accounts with a marker size by workload (area ∝ workload)."""
    acc = accounts.copy()
    acc["lat"] = pd.to_numeric(acc["lat"], errors="coerce")
    acc["lon"] = pd.to_numeric(acc["lon"], errors="coerce")
    acc = acc[acc["lat"].notna() & acc["lon"].notna() & acc["territory_id"].notna()]
    n = max(len(acc), 1)
    base = float(np.clip(4000.0 / n, 1.0, 16.0))  # dense national data: small dots
    if "workload" in acc.columns:
        w = pd.to_numeric(acc["workload"], errors="coerce").fillna(0.0).to_numpy(float)
        mean = w.mean() if len(w) and w.mean() > 0 else 1.0
        acc["_size"] = base * np.clip(w / mean, 0.4, 12.0)
    else:
        acc["_size"] = base
    return acc


def _legend_handles(layers: _Layers, assigned: pd.DataFrame, outline_label: str) -> list[Any]:
    """Symbols for the layers drawn, then (≤ 20 territories) a row per territory with its
    account count and workload over all its accounts, located or not."""
    handles: list[Any] = []
    if len(layers.acc):
        handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="#555555",
                              markeredgewidth=0, markersize=4,
                              label="account (area ∝ workload)"))
    if layers.centres is not None:
        handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="white",
                              markeredgecolor="black", markersize=7,
                              label="home base / centre"))
    handles.append(Line2D([], [], color=BORDER, lw=1.2, label="territory boundary"))
    if layers.outlines is not None and len(layers.outlines):
        handles.append(Line2D([], [], color=OUTLINE, lw=0.8, label=outline_label))
    terr = layers.terr
    if len(terr) <= 20:  # beyond that the ids on the map are the legend
        key = assigned["territory_id"].astype(str)
        work = (pd.to_numeric(assigned["workload"], errors="coerce").groupby(key).sum()
                if "workload" in assigned.columns else pd.Series(dtype=float))
        count = assigned.groupby(key).size()
        for tid in (str(t) for t in terr["territory_id"]):
            text = f"{tid}: {int(count.get(tid, 0)):,} accounts"
            if tid in work.index:
                text += f", {work[tid]:,.0f} h"
            handles.append(Patch(facecolor=layers.colours.get(tid, "#dddddd"),
                                 edgecolor=BORDER, linewidth=0.5, label=text))
    return handles


def write_map_png(path: str | Path, territories: gpd.GeoDataFrame, accounts: pd.DataFrame,
                  centres: pd.DataFrame | None = None, title: str = "Territories",
                  outlines: gpd.GeoDataFrame | None = None, *,
                  outline_label: str = "unit border", dpi: int = 150) -> Path:
    """Draw the territories as a PNG.

    Territory fills (neighbours in different colours) with their ids, account dots in a
    darker shade of their territory's colour (area ∝ workload), home bases or centres as
    ringed dots, optional outlines (unit or state borders) for orientation, a scale bar and
    a legend above the map (with a row per territory when there are at most 20). Accounts
    far from the bulk (Alaska and Hawaii beside the lower 48) are drawn in insets at the
    lower left, below the main map's data.

    Parameters
    ----------
    path : str or pathlib.Path
        The PNG to write.
    territories : geopandas.GeoDataFrame
        territory_id, geometry (WGS84), e.g. from `geo.territory_polygons`.
    accounts : pandas.DataFrame
        lat, lon, territory_id and optionally workload.
    centres : pandas.DataFrame, optional
        lat, lon, label: rep home bases (realignment) or territory centres (design).
    title : str
        Printed above the map.
    outlines : geopandas.GeoDataFrame, optional
        Background borders (WGS84).
    outline_label : str
        What the outlines are, for the legend.
    dpi : int
        Resolution; the figure is 16 inches wide for large data, 11 for small.

    Returns
    -------
    pathlib.Path
        `path`.
    """
    out = Path(path)
    terr = territories.to_crs(WGS84) if territories.crs is not None else territories
    acc = _account_frame(accounts)
    geoms = terr.geometry.to_numpy()
    if len(acc):
        lon, lat = acc["lon"].to_numpy(float), acc["lat"].to_numpy(float)
    else:
        b = terr.total_bounds
        lon, lat = np.array([b[0], b[2]]), np.array([b[1], b[3]])
    layers = _Layers(terr, territory_colours(terr), acc,
                     centres if centres is not None and len(centres) else None,
                     outlines, _font_size(len(terr)))
    panels = _panels(lon, lat, geoms)
    main = panels[0]
    extent = _extent(main)
    inset_extents = [_extent(p) for p in panels[1:]]
    if inset_extents:
        # Inset sizes in the main map's units: at most 24 % of its width, 30 % of it high.
        span = extent[2] - extent[0]
        sizes = []
        for e in inset_extents:
            a = (e[3] - e[1]) / max(e[2] - e[0], 1.0)
            w = min(0.24 * span, 0.30 * span / a)
            sizes.append((w, w * a))
        drawn = _projected(geoms, main)
        occupied = shapely.get_coordinates(drawn[~shapely.is_missing(drawn)])
        x, y = _xy(main, lon, lat)
        occupied = np.concatenate([occupied, np.column_stack([x, y])])
        inside = ((occupied[:, 0] >= extent[0]) & (occupied[:, 0] <= extent[2])
                  & (occupied[:, 1] >= extent[1]) & (occupied[:, 1] <= extent[3]))
        extent = _inset_room(extent, occupied[inside], sizes)
    x0, y0, x1, y1 = extent
    aspect = (y1 - y0) / max(x1 - x0, 1.0)
    width = 16.0 if len(terr) > 30 or len(acc) > 3000 else 11.0
    assigned = accounts[accounts["territory_id"].notna()]
    handles = _legend_handles(layers, assigned, outline_label)
    ncol = 5 if width > 12 else 3
    rows = math.ceil(len(handles) / ncol)
    header = max(0.95, 0.35 + 0.2 * rows)  # inches
    map_w = width - 0.3
    map_h = map_w * aspect
    if map_h > 1.25 * width:  # very tall regions: narrower map, same page height limit
        map_h = 1.25 * width
        map_w = map_h / aspect
    height = map_h + header + 0.2
    fig = Figure(figsize=(width, height), dpi=dpi)
    fig.patch.set_facecolor("white")
    ax = fig.add_axes(((width - map_w) / 2 / width, 0.1 / height, map_w / width,
                       map_h / height))
    _draw_panel(ax, main, extent, layers, True)
    ax.apply_aspect()
    to_fig = ax.transData + fig.transFigure.inverted()
    if inset_extents:
        gap = 0.01 * (x1 - x0)
        left = x0 + gap
        for panel, e, (w, h) in zip(panels[1:], inset_extents, sizes, strict=True):
            (fx0, fy0), (fx1, fy1) = to_fig.transform([(left, y0 + gap), (left + w, y0 + gap + h)])
            inset = fig.add_axes((fx0, fy0, fx1 - fx0, fy1 - fy0))
            inset.set_facecolor("white")
            _draw_panel(inset, panel, e, layers, False)
            left += w + gap
    fig.text(0.012, 1 - 0.32 / height, title, fontsize=15, fontweight="bold", va="center")
    fig.text(0.012, 1 - 0.66 / height,
             f"{len(terr)} territories · {len(assigned):,} accounts", fontsize=10,
             color="#444444", va="center")
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.995, 1 - 0.08 / height),
               ncol=ncol, fontsize=8, frameon=False, columnspacing=1.2, handletextpad=0.5)
    fig.savefig(out, dpi=dpi, facecolor="white")
    return out


# --------------------------------------------------------------------------------------------
# HTML


def _assets() -> tuple[str, str]:
    base = resources.files("optimizer") / "assets" / "leaflet"
    js = (base / "leaflet.js").read_text(encoding="utf-8")
    css = (base / "leaflet.css").read_text(encoding="utf-8")
    # The layer-control and marker icons are images we do not ship (the map uses neither);
    # dropping their url() keeps the page from asking for files that are not there.
    css = re.sub(r"url\(images/[^)]*\)", "none", css)
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)  # comments (they hold bug URLs)
    return js, css


def _display_geoms(geoms: np.ndarray, tolerance: float) -> np.ndarray:
    """Simplify for display; a coverage (territories, units) is simplified as a whole so
    that neighbours keep a common border without gaps or slivers."""
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    out = geoms.copy()
    if not present.any() or tolerance <= 0:
        return out
    sub = geoms[present]
    try:
        ok = bool(shapely.coverage_is_valid(sub))
    except shapely.errors.GEOSException:
        ok = False
    out[present] = (shapely.coverage_simplify(sub, tolerance) if ok
                    else shapely.simplify(sub, tolerance, preserve_topology=True))
    return out


def _geojson(geoms: np.ndarray, props: list[dict[str, Any]], decimals: int) -> dict[str, Any]:
    feats = []
    for g, p in zip(geoms, props, strict=True):
        if g is None or g.is_empty:
            continue
        rounded = shapely.set_precision(g, 10.0**-decimals, mode="pointwise")
        feats.append({"type": "Feature", "properties": p,
                      "geometry": json.loads(shapely.to_geojson(rounded))})
    return {"type": "FeatureCollection", "features": feats}


def _json_value(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return None if not math.isfinite(v) else round(v, 4)
    if isinstance(v, bool | int | str):
        return v
    return str(v)


def _script_json(data: Any) -> str:
    # "</" would end the <script> element early: ids and names are user data.
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")


def write_map_html(path: str | Path, territories: gpd.GeoDataFrame,
                   kpis: pd.DataFrame | None = None, points: pd.DataFrame | None = None, *,
                   centres: pd.DataFrame | None = None,
                   outlines: gpd.GeoDataFrame | None = None,
                   title: str = "Territories") -> Path:
    """Write a single, offline, interactive HTML map (Leaflet inlined; no tiles, no CDN).

    Territories are drawn in the PNG's colours; clicking one (on the map or in the side
    list) opens a popup with its KPI row. Accounts, centres and outlines are layers that
    can be switched off. Polygons are simplified for display (the GeoJSON output keeps full
    detail) and coordinates rounded to about 10–100 m so a national map stays a few MB.

    Parameters
    ----------
    path : str or pathlib.Path
        The HTML file to write.
    territories : geopandas.GeoDataFrame
        territory_id, geometry (WGS84).
    kpis : pandas.DataFrame, optional
        One row per territory with a territory_id column; every other column is shown in
        the popup (rep_id, workload, potential, accounts, travel, utilisation, ...).
    points : pandas.DataFrame, optional
        Accounts: lat, lon, territory_id, optional account_id and name.
    centres : pandas.DataFrame, optional
        lat, lon, label.
    outlines : geopandas.GeoDataFrame, optional
        Background borders (units or states), WGS84.
    title : str
        Page title and heading.

    Returns
    -------
    pathlib.Path
        `path`.
    """
    out = Path(path)
    terr = territories.to_crs(WGS84) if territories.crs is not None else territories
    colours = territory_colours(terr)
    minx, miny, maxx, maxy = terr.total_bounds if len(terr) else (-180.0, -60.0, 180.0, 75.0)
    span = float(np.hypot(maxx - minx, maxy - miny)) if np.isfinite(minx) else 1.0
    decimals = 3 if span > 20 else 4
    tolerance = span / 4000.0
    ids = [str(t) for t in terr["territory_id"]]
    rows: dict[str, dict[str, Any]] = {}
    if kpis is not None and len(kpis):
        for rec in kpis.to_dict(orient="records"):
            tid = str(rec.pop("territory_id"))
            rows[tid] = {str(k): _json_value(v) for k, v in rec.items()}
    props = [{"id": t, "colour": colours.get(t, "#dddddd"), "kpi": rows.get(t, {})}
             for t in ids]
    payload: dict[str, Any] = {
        "title": title,
        "territories": _geojson(_display_geoms(terr.geometry.to_numpy(), tolerance), props,
                                decimals),
        "outlines": None,
        "points": [],
        "centres": [],
    }
    if outlines is not None and len(outlines):
        o = outlines.to_crs(WGS84) if outlines.crs is not None else outlines
        payload["outlines"] = _geojson(_display_geoms(o.geometry.to_numpy(), tolerance),
                                       [{} for _ in range(len(o))], decimals)
    if points is not None and len(points):
        p = points.copy()
        p["lat"] = pd.to_numeric(p["lat"], errors="coerce")
        p["lon"] = pd.to_numeric(p["lon"], errors="coerce")
        p = p[p["lat"].notna() & p["lon"].notna()]
        index = {t: k for k, t in enumerate(ids)}
        tix = [index.get(str(t), -1) for t in p["territory_id"]]
        names = (p["name"] if "name" in p.columns and len(p) <= 20_000
                 else pd.Series([None] * len(p), index=p.index))
        aid = p["account_id"] if "account_id" in p.columns else pd.Series([None] * len(p),
                                                                            index=p.index)
        payload["points"] = [
            [round(float(a), 5), round(float(b), 5), t, _json_value(i), _json_value(nm)]
            for a, b, t, i, nm in zip(p["lat"], p["lon"], tix, aid, names, strict=True)]
    if centres is not None and len(centres):
        payload["centres"] = [[round(float(a), 5), round(float(b), 5), _json_value(lab)]
                              for a, b, lab in zip(centres["lat"], centres["lon"],
                                                   centres["label"], strict=True)
                              if np.isfinite(a) and np.isfinite(b)]
    js, css = _assets()
    parts = {"TITLE": html.escape(title), "CSS": css,
             "LEAFLET": js.replace("</script", "<\\/script"),
             "DATA": _script_json(payload), "APP": _APP}
    # One pass: text put in (user data) is never scanned for placeholders again.
    page = re.sub(r"%%([A-Z]+)%%", lambda m: parts[m.group(1)], _PAGE)
    out.write_text(page, encoding="utf-8")
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%%TITLE%%</title>
<style>
%%CSS%%
html, body { height: 100%; margin: 0; font: 13px/1.35 system-ui, sans-serif; color: #222; }
#wrap { display: flex; height: 100%; }
#map { flex: 1; background: #f3f4f1; }
#side { width: 290px; overflow: auto; border-left: 1px solid #ccc; background: #fff; }
#side h1 { font-size: 15px; margin: 10px 12px 4px; }
#side p { margin: 0 12px 8px; color: #555; }
#side table { border-collapse: collapse; width: 100%; }
#side th, #side td { padding: 3px 8px; text-align: right; border-bottom: 1px solid #eee; }
#side th { position: sticky; top: 0; background: #fafafa; cursor: pointer; }
#side td:first-child, #side th:first-child { text-align: left; }
#side tr:hover td { background: #f0f6ff; cursor: pointer; }
.sw { display: inline-block; width: 10px; height: 10px; margin-right: 5px;
      border: 1px solid #555; vertical-align: -1px; }
.kpi td { padding: 1px 6px; } .kpi td:last-child { text-align: right; }
</style>
</head>
<body>
<div id="wrap"><div id="map"></div><div id="side"></div></div>
<script>
%%LEAFLET%%
</script>
<script>
const DATA = %%DATA%%;
%%APP%%
</script>
</body>
</html>
"""

_APP = r"""
(function () {
  function esc(v) {
    return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  var LABELS = {rep_id: "Rep", centre: "Centre", workload: "Workload (h)",
                potential: "Potential", accounts: "Accounts", travel: "Travel",
                utilisation: "Utilisation", capacity: "Capacity (h)",
                compactness: "Compactness", parts: "Pieces"};
  function label(k) { return LABELS[k] || k.replace(/_/g, " "); }
  function fmt(k, v) {
    if (typeof v !== "number") return esc(v);
    if (/utilisation|share/i.test(k)) return (100 * v).toFixed(1) + " %";
    if (Math.abs(v) >= 100) return Math.round(v).toLocaleString("en-US");
    return v.toLocaleString("en-US", {maximumFractionDigits: 3});
  }
  function kpiTable(p) {
    var rows = "<tr><td colspan=2><b>" + esc(p.id) + "</b></td></tr>";
    Object.keys(p.kpi).forEach(function (k) {
      if (p.kpi[k] === null || p.kpi[k] === "") return;
      rows += "<tr><td>" + esc(label(k)) + "</td><td>" + fmt(k, p.kpi[k]) + "</td></tr>";
    });
    return "<table class='kpi'>" + rows + "</table>";
  }
  function darker(hex) {
    var n = parseInt(hex.slice(1), 16), f = 0.55;
    var r = Math.round(((n >> 16) & 255) * f), g = Math.round(((n >> 8) & 255) * f),
        b = Math.round((n & 255) * f);
    return "#" + ((1 << 24) + (r << 16) + (g << 8) + b).toString(16).slice(1);
  }
  var map = L.map("map", {preferCanvas: true, zoomSnap: 0.25});
  map.attributionControl.setPrefix("Leaflet");
  var overlays = {};
  var style = function (f) {
    return {color: "#333", weight: 1.2, fillColor: f.properties.colour, fillOpacity: 0.6};
  };
  var byId = {};
  var terr = L.geoJSON(DATA.territories, {
    style: style,
    onEachFeature: function (f, layer) {
      byId[f.properties.id] = layer;
      layer.bindPopup(kpiTable(f.properties));
      layer.bindTooltip(esc(f.properties.id), {sticky: true});
      layer.on("mouseover", function () { layer.setStyle({weight: 3}); });
      layer.on("mouseout", function () { terr.resetStyle(layer); });
    }
  }).addTo(map);
  overlays["Territories"] = terr;
  if (DATA.outlines) {
    overlays["Borders"] = L.geoJSON(DATA.outlines, {
      interactive: false, style: {color: "#777", weight: 0.6, fill: false}
    }).addTo(map);
  }
  var colours = DATA.territories.features.map(function (f) { return f.properties.colour; });
  var ids = DATA.territories.features.map(function (f) { return f.properties.id; });
  if (DATA.points.length) {
    var r = DATA.points.length > 5000 ? 1.6 : 3;
    var pts = L.layerGroup(DATA.points.map(function (p) {
      var c = p[2] >= 0 && p[2] < colours.length ? darker(colours[p[2]]) : "#555";
      var m = L.circleMarker([p[0], p[1]], {radius: r, stroke: false, fillColor: c,
                                            fillOpacity: 0.85});
      if (p[3] !== null) {
        m.bindTooltip(esc(p[3]) + (p[4] ? " · " + esc(p[4]) : "") +
                      (p[2] >= 0 ? " → " + esc(ids[p[2]]) : ""));
      }
      return m;
    }));
    pts.addTo(map);
    overlays["Accounts"] = pts;
  }
  if (DATA.centres.length) {
    var cen = L.layerGroup(DATA.centres.map(function (c) {
      return L.circleMarker([c[0], c[1]], {radius: 5, color: "#000", weight: 2,
                                           fillColor: "#fff", fillOpacity: 1})
        .bindTooltip(esc(c[2]));
    }));
    cen.addTo(map);
    overlays["Home bases / centres"] = cen;
  }
  L.control.layers(null, overlays, {collapsed: false}).addTo(map);
  L.control.scale({imperial: false}).addTo(map);
  if (terr.getLayers().length) { map.fitBounds(terr.getBounds(), {padding: [10, 10]}); }
  else { map.setView([20, 0], 2); }

  // Side list: every territory with its main KPIs; click to zoom and open the popup.
  var feats = DATA.territories.features;
  var keys = ["workload", "accounts", "utilisation"].filter(function (k) {
    return feats.length && k in feats[0].properties.kpi;
  });
  var side = document.getElementById("side");
  var sortKey = null, sortDir = 1;
  function render() {
    var list = feats.slice();
    if (sortKey) {
      list.sort(function (a, b) {
        var x = sortKey === "id" ? a.properties.id : a.properties.kpi[sortKey];
        var y = sortKey === "id" ? b.properties.id : b.properties.kpi[sortKey];
        return (x > y ? 1 : x < y ? -1 : 0) * sortDir;
      });
    }
    var h = "<h1>" + esc(DATA.title) + "</h1><p>" + feats.length +
      " territories. Click a row or a territory for its KPIs.</p><table><tr>" +
      "<th data-k='id'>territory</th>" +
      keys.map(function (k) {
        return "<th data-k='" + k + "'>" + esc(label(k)) + "</th>";
      }).join("") +
      "</tr>";
    list.forEach(function (f) {
      var p = f.properties;
      h += "<tr data-id='" + esc(p.id) + "'><td><span class='sw' style='background:" +
        esc(p.colour) + "'></span>" + esc(p.id) + "</td>" +
        keys.map(function (k) { return "<td>" + fmt(k, p.kpi[k]) + "</td>"; }).join("") +
        "</tr>";
    });
    side.innerHTML = h + "</table>";
  }
  side.addEventListener("click", function (e) {
    var th = e.target.closest("th");
    if (th) {
      var k = th.getAttribute("data-k");
      sortDir = sortKey === k ? -sortDir : (k === "id" ? 1 : -1);
      sortKey = k;
      render();
      return;
    }
    var tr = e.target.closest("tr[data-id]");
    if (!tr) return;
    var layer = byId[tr.getAttribute("data-id")];
    if (layer) { map.fitBounds(layer.getBounds(), {maxZoom: 9}); layer.openPopup(); }
  });
  render();
})();
"""
