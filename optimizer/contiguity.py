r"""Contiguity: every territory one connected piece of the unit adjacency graph.

The graph
---------
Nodes are geographic units (counties, ZIPs, bricks); edges join units that share a border of
positive length (rook adjacency, `geo.adjacency_pairs`), computed once at the edge from the
polygons (`UnitGraph.from_polygons`). Accounts sit in units through `unit_id`; a model's
assignment units (an account, or a whole hierarchy) sit at the nodes of their accounts. The
node set of territory t is every node holding an account assigned to t (a unit whose accounts
are split belongs to each of their territories), and t is contiguous when that set induces a
connected subgraph.

Units outside the largest connected piece of the graph (islands with no neighbour, groups of
islands, units cut off by units holding no account) can never join a mainland territory in
one piece; they are exempt and said so in a warning, so they never make a scenario
infeasible. Accounts without a unit, or with one the polygons lack, are exempt too.

Exact method (up to `EXACT_UNITS` nodes): cut-based
---------------------------------------------------
Solve the MIP; for each territory t find the connected components of its node set. One is
the territory's *anchor* (the one holding its root: the centre's unit in a design, else the
unit nearest the rep's home base, else the heaviest); every other component C is stray and
its boundary N(C) = neighbours of C outside C separates it from the anchor. With x[u,t] = 1
when assignment unit u goes to t, for every unit i at a node of C:

    root form   (design: the centre's unit belongs to its territory; x[root,t] ≥ y[t])
        x[i,t] ≤ Σ_{v at a node of N(C)} x[v,t]
    anchor form (realignment: no root is imposed; a is a unit of the anchor component)
        x[i,t] + x[a,t] − 1 ≤ Σ_{v at a node of N(C)} x[v,t]

Both are valid for every contiguous plan (a path from C to the root or anchor leaves C through
N(C)), so each round's MIP is a relaxation of the contiguous problem and its dual bound stays
a valid lower bound (and so does the LP bound without cuts). Cuts are added and the MIP is
solved again, starting from the last plan made contiguous by the repair below, until the
MIP's plan is contiguous. Cuts are kept in a pool and go into every later model of the run.
A design's model holds the root form for every single node, C = {node of i}, from the start
(a unit away from its centre has a neighbour in its territory): without them the early
rounds' plans scatter lone units, and a round is spent on each.

A design's start with its centres given may use a restriction instead of cuts: every unit
away from its centre has, in its territory, a neighbour fewer hops from the centre, so any
plan that meets these rows is contiguous after one solve (it excludes some contiguous plans,
so it gives starts, never bounds).

Repair (above `EXACT_UNITS` nodes, and to turn any plan into a contiguous start)
-------------------------------------------------------------------------------
Stray components, smallest first, move whole to an adjacent territory when the bands (and
eligibility, locks, the disruption budget) still hold, choosing the move that costs least;
when none does, a move paired with one unit handed back across the border is tried. Parts
that cannot be fixed are reported in the warnings and in summary.json. A realignment's
repaired plan is then polished by local moves and by `optimizer.border_search`, which splits
pairs of bordering territories again by a small MIP with these cuts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyomo.environ as pyo
from scipy import sparse
from scipy.sparse.csgraph import connected_components, shortest_path

from optimizer.errors import InfeasibleScenarioError, InputError, Issue
from optimizer.repair import Bands
from optimizer.solve import HighsOptions, Solution, SolutionStatus, Termination, run_highs

if TYPE_CHECKING:
    import geopandas as gpd

    from optimizer.alignment import Scaled
    from optimizer.design import DesignProblem
    from optimizer.domain import AlignmentData, DesignData, Scenario
    from optimizer.problem import Problem
    from optimizer.result import PlanResult

# Above this many units in play, contiguity is restored by repair instead of exact cuts.
EXACT_UNITS = 400
MAX_ROUNDS = 200  # cut rounds per MIP call (each adds at least one violated cut)
ROUND_SECONDS, ROUND_SHARE = 3.0, 0.2  # a cut round's time while plans come out in pieces
TOL = 1e-9
POLISH_UNITS = 5_000  # local search on a start plan up to this many units in play
# Units a rebalance may pass along chains of territories (each move rescans the borders:
# about 15 ms at 5,000 units; a 50 × 50 grid among 25 reps needed 21).
MAX_PASSED = 500
ALLOCATION_SHARES = 4  # a design's contiguous start: one allocation's share of its time


@dataclass(frozen=True)
class UnitGraph:
    """Geographic units and their rook adjacency: `pairs` are row positions (i < j) into
    `unit_ids` (unit_id as text)."""

    unit_ids: tuple[str, ...]
    pairs: np.ndarray

    @staticmethod
    def from_polygons(units: gpd.GeoDataFrame) -> UnitGraph:
        """The graph of a units file read by `geo.load_units` (rook adjacency)."""
        from optimizer.geo import adjacency_pairs  # geometry stays at the edge

        return UnitGraph(tuple(units["unit_id"].astype(str)), adjacency_pairs(units))

    @property
    def n(self) -> int:
        return len(self.unit_ids)

    def matrix(self) -> sparse.csr_array:
        rows = np.concatenate([self.pairs[:, 0], self.pairs[:, 1]]).astype(np.int64)
        cols = np.concatenate([self.pairs[:, 1], self.pairs[:, 0]]).astype(np.int64)
        return sparse.csr_array((np.ones(len(rows), dtype=np.int8), (rows, cols)),
                                shape=(self.n, self.n))


def require_units(contiguity: bool, graph: UnitGraph | None) -> None:
    """Contiguity needs unit polygons; say so instead of ignoring the switch."""
    if contiguity and graph is None:
        raise InputError([Issue(
            "scenario", None, "contiguity",
            "contiguity: true needs unit polygons (a units file with a unit_id per polygon: "
            "--units, or a dataset with units; and a unit_id per account); without them "
            "territories cannot be made contiguous")])


def unit_graph(contiguity: bool, polygons: gpd.GeoDataFrame | None) -> UnitGraph | None:
    """The graph a model's data carry for `contiguity: true`, from unit polygons read by
    `geo.load_units` (the one path for the CLI and the service); None when contiguity is
    not asked (the polygons then only draw the maps). Contiguity without polygons is an
    InputError."""
    if not contiguity:
        return None
    graph = None if polygons is None else UnitGraph.from_polygons(polygons)
    require_units(contiguity, graph)
    return graph


@dataclass
class Stray:
    """A piece of territory `territory` cut off from its anchor."""

    territory: int
    nodes: np.ndarray
    units: np.ndarray  # assignment units of the territory at those nodes
    boundary: np.ndarray  # nodes next to the piece, outside it
    anchor_unit: int  # a unit of the anchor component (-1: none)


@dataclass
class Cut:
    territory: int
    lhs: tuple[int, ...]  # x[u, t] terms on the left (unit i, and the anchor unit a)
    rhs: tuple[int, ...]  # units at the boundary nodes
    constant: float  # -1 for the anchor form, 0 for the root form


@dataclass
class ContiguityReport:
    """What the run did about contiguity (summary.json's kpis.contiguity)."""

    method: str
    # MIP solves of the exact method over the whole run: a design's contiguous start solves
    # an allocation per round too, and a round whose plan is whole (or that is given more
    # time from the same plan) adds no cut, so `cuts` may be 0 after several rounds.
    rounds: int = 0
    cuts: int = 0  # cuts added for plans that came out in pieces
    repaired_moves: int = 0
    border_resplits: int = 0  # pairs of territories split again by border_search
    exempt_units: list[str] = field(default_factory=list)
    unfixed: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"enforced": True, "method": self.method, "cut_rounds": self.rounds,
                "cuts": self.cuts, "repair_moves": self.repaired_moves,
                "border_resplits": self.border_resplits,
                "exempt_units": self.exempt_units[:50],
                "exempt_unit_count": len(self.exempt_units),
                "unfixed_parts": len(self.unfixed), "unfixed": self.unfixed[:50]}


class Contiguity:
    """Contiguity of one model's plans (see the module docstring).

    Parameters
    ----------
    graph : UnitGraph
    account_unit : per account, its unit_id (text or missing)
    unit_of : per account, its assignment unit (the model's unit index)
    n_units, n_territories : sizes of the model's plan vector and territory index
    territory_names : for messages
    bands : what a repair move must respect
    plan_cost : a plan's objective in the model's own units (unit → territory)
    roots : per territory, the assignment unit that must belong to it when it is used
        (design: the centre's), or None for the anchor form
    hints : per territory, a preferred anchor node (-1: none)
    account_weight : per account, weight used to pick the heaviest component
    exact_units : nodes in play up to which the exact method is used
    """

    def __init__(self, graph: UnitGraph, account_unit: pd.Series, unit_of: np.ndarray,
                 n_units: int, n_territories: int, territory_names: list[str], bands: Bands,
                 plan_cost: Callable[[np.ndarray], float], *,
                 roots: np.ndarray | None = None, hints: np.ndarray | None = None,
                 account_weight: np.ndarray | None = None,
                 exact_units: int | None = None) -> None:
        self.graph = graph
        self.n_units = n_units
        self.n_terr = n_territories
        self.names = territory_names
        self.bands = bands
        self.plan_cost = plan_cost
        self.roots = roots
        # A band's size, to add up violations of metrics in different units.
        self.band_scale = np.maximum(
            np.where(np.isfinite(bands.hi), bands.hi, np.maximum(bands.lo, 1.0)), 1e-12)
        self.warnings: list[str] = []
        ids = account_unit.astype(object).where(account_unit.notna(), None)
        text = pd.Index([None if v is None else str(v) for v in ids], dtype=object)
        node_of_account = pd.Index(graph.unit_ids).get_indexer(text)
        outside = int((node_of_account < 0).sum())
        if outside:
            self.warnings.append(
                f"contiguity: {outside} account(s) have no unit_id or one the units file lacks; "
                "they are not part of any territory's shape")
        # Nodes in play: units holding accounts; exempt: outside the largest connected piece.
        active = np.zeros(graph.n, dtype=bool)
        active[node_of_account[node_of_account >= 0]] = True
        adj = graph.matrix()
        sub = adj[active][:, active]
        active_idx = np.flatnonzero(active)
        main = np.zeros(graph.n, dtype=bool)
        if len(active_idx):
            _, comp = connected_components(sub, directed=False)
            sizes = np.bincount(comp)
            main[active_idx[comp == int(np.argmax(sizes))]] = True
        exempt = active & ~main
        self.exempt_ids = [graph.unit_ids[i] for i in np.flatnonzero(exempt)]
        if self.exempt_ids:
            shown = ", ".join(self.exempt_ids[:8]) + (", ..." if len(self.exempt_ids) > 8 else "")
            self.warnings.append(
                f"contiguity: {len(self.exempt_ids)} unit(s) have no border with the mainland "
                f"of the units in play (islands, or cut off by units without accounts): they "
                f"join a territory without touching it ({shown})")
        self.in_play = int(main.sum())
        # The module constant is read at run time, so a caller (or a test) can lower it.
        self.exact = self.in_play <= (EXACT_UNITS if exact_units is None else exact_units)
        # Adjacency among nodes in play only.
        keep = main[graph.pairs[:, 0]] & main[graph.pairs[:, 1]] if len(graph.pairs) else \
            np.zeros(0, dtype=bool)
        self.edges = graph.pairs[keep] if len(graph.pairs) else graph.pairs.reshape(0, 2)
        mat = adj.multiply(main[:, None]).multiply(main[None, :])
        self.adj = sparse.csr_array(mat)
        # (account → node, unit) for accounts in play.
        ok = node_of_account >= 0
        ok[ok] = main[node_of_account[ok]]
        self.acc_node = node_of_account[ok]
        self.acc_unit = np.asarray(unit_of)[ok]
        weight = np.ones(len(unit_of)) if account_weight is None else np.asarray(account_weight)
        self.acc_weight = weight[ok]
        pair = pd.DataFrame({"node": self.acc_node, "unit": self.acc_unit}).drop_duplicates()
        self.pair_node = pair["node"].to_numpy()
        self.pair_unit = pair["unit"].to_numpy()
        # Units at each node (for cut right-hand sides), as CSR.
        order = np.argsort(self.pair_node, kind="stable")
        self.units_at_ptr = np.searchsorted(self.pair_node[order], np.arange(graph.n + 1))
        self.units_at = self.pair_unit[order]
        self.root_node = np.full(n_territories, -1)
        if roots is not None:
            node_of_unit = pd.Series(self.pair_node, index=self.pair_unit).groupby(level=0).first()
            for t, u in enumerate(roots):
                if u >= 0 and u in node_of_unit.index:
                    self.root_node[t] = int(node_of_unit[u])
        self.hints = np.full(n_territories, -1) if hints is None else np.asarray(hints)
        self.pool: dict[tuple[int, tuple[int, ...], tuple[int, ...]], Cut] = {}
        self.report = ContiguityReport("exact" if self.exact else "repair",
                                       exempt_units=self.exempt_ids)

    # -----------------------------------------------------------------------------------
    # Components

    def units_at_nodes(self, nodes: np.ndarray) -> np.ndarray:
        parts = [self.units_at[self.units_at_ptr[v]:self.units_at_ptr[v + 1]] for v in nodes]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def strays(self, plan: np.ndarray) -> list[Stray]:
        """Every piece of every territory that is not its anchor, for plan (unit → territory,
        -1 unassigned)."""
        terr = plan[self.pair_unit]
        ok = terr >= 0
        frame = pd.DataFrame({"node": self.pair_node[ok], "t": terr[ok]}).drop_duplicates()
        if frame.empty:
            return []
        vid = pd.MultiIndex.from_frame(frame[["node", "t"]])
        n_v = len(vid)
        # Edges between (a, t) and (b, t) for every graph edge (a, b) inside territory t.
        e = pd.DataFrame(self.edges, columns=["a", "b"])
        left = e.merge(frame.rename(columns={"node": "a"}), on="a")
        both = left.merge(frame.rename(columns={"node": "b"}), on=["b", "t"])
        ia = vid.get_indexer(pd.MultiIndex.from_arrays([both["a"], both["t"]]))
        ib = vid.get_indexer(pd.MultiIndex.from_arrays([both["b"], both["t"]]))
        g = sparse.csr_array((np.ones(len(ia)), (ia, ib)), shape=(n_v, n_v))
        _, comp = connected_components(g, directed=False)
        nodes = frame["node"].to_numpy()
        ts = frame["t"].to_numpy()
        comp_t = np.zeros(comp.max() + 1, dtype=np.int64)
        comp_t[comp] = ts
        per_t = np.bincount(comp_t, minlength=self.n_terr)
        # Weight of each (node, t): the workload of t's accounts at the node.
        acc_t = plan[self.acc_unit]
        aw = pd.DataFrame({"node": self.acc_node, "t": acc_t, "w": self.acc_weight})
        per_vertex = aw[aw["t"] >= 0].groupby(["node", "t"])["w"].sum()
        wv = per_vertex.reindex(vid).fillna(0.0).to_numpy()
        comp_w = np.bincount(comp, weights=wv + 1e-9)
        out: list[Stray] = []
        for t in np.flatnonzero(per_t > 1):
            comps = np.flatnonzero(comp_t == t)
            comps = comps[np.isin(comps, comp)]
            if len(comps) <= 1:
                continue
            anchor = self._anchor(int(t), comps, comp, nodes, comp_w)
            anchor_nodes = nodes[comp == anchor]
            anchor_units = self.units_at_nodes(anchor_nodes)
            anchor_units = anchor_units[plan[anchor_units] == t]
            a_unit = int(anchor_units[0]) if len(anchor_units) else -1
            for c in comps:
                if c == anchor:
                    continue
                cn = nodes[comp == c]
                nb = self.border(cn)
                us = self.units_at_nodes(cn)
                us = us[plan[us] == t]
                out.append(Stray(int(t), cn, us, nb, a_unit))
        return out

    def _anchor(self, t: int, comps: np.ndarray, comp: np.ndarray, nodes: np.ndarray,
                comp_w: np.ndarray) -> int:
        for special in (self.root_node[t], self.hints[t]):
            if special >= 0:
                hit = comp[(nodes == special) & np.isin(comp, comps)]
                if len(hit):
                    return int(hit[0])
        return int(comps[np.argmax(comp_w[comps])])

    # -----------------------------------------------------------------------------------
    # Cuts

    def cuts_for(self, strays: list[Stray]) -> list[Cut]:
        """New violated cuts separating each stray piece from its territory's anchor."""
        new = []
        for s in strays:
            rhs = tuple(int(v) for v in self.units_at_nodes(s.boundary))
            rooted = self.roots is not None and self.root_node[s.territory] >= 0
            for i in s.units:
                if rooted:
                    cut = Cut(s.territory, (int(i),), rhs, 0.0)
                elif s.anchor_unit >= 0 and s.anchor_unit != i:
                    cut = Cut(s.territory, (int(i), s.anchor_unit), rhs, -1.0)
                else:
                    continue
                key = (cut.territory, cut.lhs, cut.rhs)
                if key not in self.pool:
                    self.pool[key] = cut
                    new.append(cut)
        return new

    def _add_to_model(self, model: pyo.ConcreteModel, where: dict[tuple[int, int], int],
                      cuts: list[Cut]) -> int:
        if not hasattr(model, "contiguity_cuts"):
            model.contiguity_cuts = pyo.ConstraintList()
        added = 0
        for c in cuts:
            lhs = [where.get((u, c.territory)) for u in c.lhs]
            if lhs[0] is None:
                continue  # x[i, t] is fixed at 0 in this model: the cut holds
            if len(lhs) > 1 and lhs[1] is None:
                continue
            rhs = [p for p in (where.get((u, c.territory)) for u in c.rhs) if p is not None]
            expr = sum(model.x[p] for p in lhs) + c.constant - sum(model.x[p] for p in rhs)
            model.contiguity_cuts.add(expr <= 0)
            added += 1
        return added

    def _add_root_links(self, model: pyo.ConcreteModel,
                        where: dict[tuple[int, int], int]) -> None:
        """Design: an open centre's own unit belongs to its territory (x[root,t] ≥ y[t])."""
        if self.roots is None or not hasattr(model, "y") or hasattr(model, "contiguity_roots"):
            return
        model.contiguity_roots = pyo.ConstraintList()
        for t, u in enumerate(self.roots):
            if u < 0 or (model.y[t].fixed and pyo.value(model.y[t]) == 0):
                continue
            p = where.get((int(u), t))
            if p is None:
                model.contiguity_roots.add(model.y[t] <= 0)
            else:
                model.contiguity_roots.add(model.x[p] >= model.y[t])

    def _add_neighbour_rows(self, model: pyo.ConcreteModel,
                            where: dict[tuple[int, int], int]) -> None:
        """Design: a unit away from its centre's node has a neighbour in its territory,
        x[i,t] ≤ Σ_{v at a node next to i's} x[v,t] (the cut of the piece {node of i}, for
        every pair at once: the relaxation's plans otherwise come out with lone units)."""
        if self.roots is None or hasattr(model, "contiguity_neighbours"):
            return
        model.contiguity_neighbours = pyo.ConstraintList()
        for node, u in zip(self.pair_node, self.pair_unit, strict=True):
            near = self.units_at_nodes(self.adj[[node]].indices)
            for t in range(self.n_terr):
                p = where.get((int(u), t))
                if p is None or self.root_node[t] in (-1, node):
                    continue
                rhs = [q for q in (where.get((int(v), t)) for v in near) if q is not None]
                model.contiguity_neighbours.add(model.x[p] <= sum(model.x[q] for q in rhs))

    def add_nearer_neighbour_rows(self, model: pyo.ConcreteModel,
                                  where: dict[tuple[int, int], int],
                                  territories: np.ndarray) -> None:
        """Design with the centres given: a unit away from its centre's node has, in its
        territory, a neighbour fewer hops from that node, x[i,t] ≤ Σ_{v nearer} x[v,t].
        Every plan that meets these is contiguous (each unit has a path of falling hop
        counts to the centre), so one solve gives a contiguous plan; the rows exclude some
        contiguous plans too, so this is a start, not the exact method."""
        model.nearer_neighbour = pyo.ConstraintList()
        roots = self.root_node[territories]
        hops = shortest_path(self.adj, unweighted=True, indices=np.maximum(roots, 0))
        for t, root, d in zip(territories, roots, hops, strict=True):
            if root < 0:
                continue
            for node, u in zip(self.pair_node, self.pair_unit, strict=True):
                p = where.get((int(u), int(t)))
                if p is None or node == root:
                    continue
                near = self.adj[[node]].indices
                rhs = [q for q in (where.get((int(v), int(t))) for v in
                                   self.units_at_nodes(near[d[near] < d[node]]))
                       if q is not None]
                model.nearer_neighbour.add(model.x[p] <= sum(model.x[q] for q in rhs))

    # -----------------------------------------------------------------------------------
    # Solving

    def runner(self, pair_unit: np.ndarray, pair_terr: np.ndarray, *,
               complete: bool = True) -> Callable[..., Solution]:
        """A drop-in for `solve.run_highs` on a model over these pairs (variables `x`, and
        `y` in a design) whose returned plan is contiguous: cut rounds (exact), or one solve
        and a repair (large inputs). `complete`: the model holds every allowed pair, so an
        infeasible model means the scenario is."""

        def run(model: pyo.ConcreteModel, options: HighsOptions, **kwargs: Any) -> Solution:
            if self.exact:
                return self._solve_exact(model, options, pair_unit, pair_terr, complete,
                                         **kwargs)
            return self._solve_repair(model, options, pair_unit, pair_terr, **kwargs)

        return run

    def _plan(self, x: np.ndarray, pair_unit: np.ndarray, pair_terr: np.ndarray) -> np.ndarray:
        plan = np.full(self.n_units, -1)
        on = x > 0.5
        plan[pair_unit[on]] = pair_terr[on]
        return plan

    def _values(self, model: pyo.ConcreteModel, plan: np.ndarray, pair_unit: np.ndarray,
                pair_terr: np.ndarray) -> dict[str, np.ndarray] | None:
        x = (plan[pair_unit] == pair_terr).astype(float)
        if np.bincount(pair_unit[x > 0.5], minlength=self.n_units).min(initial=1) < 1:
            return None  # the plan uses a pair the model does not hold
        values = {"x": x}
        if hasattr(model, "y"):
            y = np.zeros(len(model.y))
            y[np.unique(plan[plan >= 0])] = 1.0
            values["y"] = y
        return values

    @staticmethod
    def _start(values: dict[str, np.ndarray]) -> dict[str, dict[object, float]]:
        return {name: {int(i): 1.0 for i in np.flatnonzero(v > 0.5)}
                for name, v in values.items()}

    def _solve_exact(self, model: pyo.ConcreteModel, options: HighsOptions,
                     pair_unit: np.ndarray, pair_terr: np.ndarray, complete: bool,
                     **kwargs: Any) -> Solution:
        started = time.perf_counter()
        limit = options.time_limit if options.time_limit is not None else float("inf")
        where = {(int(u), int(t)): i for i, (u, t) in enumerate(zip(pair_unit, pair_terr,
                                                                      strict=True))}
        self._add_root_links(model, where)
        self._add_neighbour_rows(model, where)
        self.report.cuts += self._add_to_model(model, where, list(self.pool.values()))
        start = kwargs.pop("start", None)
        best: tuple[float, np.ndarray] | None = None  # best contiguous plan (cost, plan)
        bound: float | None = None
        told = kwargs.pop("on_progress", None)

        def tell(bnd: float | None = None) -> None:
            # A round's own incumbent need not be contiguous, and its bound restarts low:
            # show the best contiguous plan and the best bound of any round (each is valid).
            nonlocal bound
            if bnd is not None:
                bound = bnd if bound is None else max(bound, bnd)
            if told is not None:
                told(None if best is None else best[0], bound)

        if start and "x" in start:
            x0 = np.zeros(len(pair_unit))
            x0[[int(k) for k, v in start["x"].items() if v > 0.5]] = 1.0
            plan0 = self._plan(x0, pair_unit, pair_terr)
            if (plan0 >= 0).all() and not self.strays(plan0):
                best = (self.plan_cost(plan0), plan0)
        compile_s = solve_s = 0.0
        last: Solution | None = None
        full = False  # a round may use all the time left (after a contiguous plan)
        for _ in range(MAX_ROUNDS):
            left = limit - (time.perf_counter() - started)
            if left <= 0.05 and last is not None:
                break
            # Short rounds while plans come out in pieces: the cuts, not the search tree,
            # are what the next round needs.
            share = left if full else max(ROUND_SECONDS, ROUND_SHARE * left)
            sol = run_highs(model, replace(options, time_limit=max(min(left, share), 0.05)),
                            start=start, **kwargs,
                            on_progress=None if told is None else lambda _, bnd: tell(bnd))
            last = sol
            self.report.rounds += 1
            compile_s += sol.seconds_compile
            solve_s += sol.seconds_solve
            if sol.bound is not None:
                bound = sol.bound if bound is None else max(bound, sol.bound)
            if not sol.has_solution:
                if sol.termination is Termination.infeasible and self.pool and complete:
                    raise InfeasibleScenarioError([
                        "no plan makes every territory one connected piece of the map within "
                        "the balance bands and limits (contiguity: true)"])
                if sol.termination is Termination.time_limit and not full and best is None:
                    full = True
                    continue
                break
            plan = self._plan(sol.values["x"], pair_unit, pair_terr)
            strays = self.strays(plan)
            if not strays:
                cost = sol.objective if sol.objective is not None else self.plan_cost(plan)
                if best is None or cost < best[0] - TOL:
                    best = (cost, plan)
                    tell()
                cut_short = sol.termination is Termination.time_limit and \
                    limit - (time.perf_counter() - started) > 0.5
                if cut_short and not full:
                    full = True  # the same model again, from this plan, with all the time
                    values = self._values(model, best[1], pair_unit, pair_terr)
                    start = self._start(values) if values is not None else None
                    continue
                if best[0] < cost - TOL:
                    break  # an earlier repaired plan is better: return it below
                sol.bound = bound
                sol.seconds_compile, sol.seconds_solve = compile_s, solve_s
                return sol
            full = False
            self.report.cuts += self._add_to_model(model, where, self.cuts_for(strays))
            fixed, unfixed = self.repair(plan)
            if not unfixed:
                fixed = self.polish(fixed, rounds=3, deadline=started + limit)
                cost = self.plan_cost(fixed)
                if best is None or cost < best[0] - TOL:
                    best = (cost, fixed)
                    tell()
            start = None
            if best is not None:
                values = self._values(model, best[1], pair_unit, pair_terr)
                start = self._start(values) if values is not None else None
            if sol.termination in (Termination.cancelled, Termination.bound_exceeded):
                break
        # Out of time (or rounds) before the MIP's own plan was contiguous.
        assert last is not None
        out = Solution(last.termination if last.termination is not Termination.optimal
                       else Termination.time_limit, SolutionStatus.none, None, bound,
                       compile_s, solve_s)
        if best is not None:
            values = self._values(model, best[1], pair_unit, pair_terr)
            if values is not None:
                out.status = SolutionStatus.feasible
                out.objective = best[0]
                out.values = values
        return out

    def _solve_repair(self, model: pyo.ConcreteModel, options: HighsOptions,
                      pair_unit: np.ndarray, pair_terr: np.ndarray, **kwargs: Any) -> Solution:
        sol = run_highs(model, options, **kwargs)
        if not sol.has_solution:
            return sol
        plan = self._plan(sol.values["x"], pair_unit, pair_terr)
        fixed, unfixed = self.repair(plan)
        self.note_unfixed(unfixed)
        values = self._values(model, fixed, pair_unit, pair_terr)
        if values is None or np.array_equal(fixed, plan):
            return sol
        sol.values = values
        sol.objective = self.plan_cost(fixed)
        sol.status = SolutionStatus.feasible
        if sol.termination is Termination.optimal:
            sol.termination = Termination.time_limit  # not proven: the repair moved units
        return sol

    # -----------------------------------------------------------------------------------
    # Repair

    def _loads(self, plan: np.ndarray) -> np.ndarray:
        loads = np.zeros((self.n_terr, 3))
        ok = plan >= 0
        np.add.at(loads, plan[ok], self.bands.amount[ok])
        return loads

    def _violation(self, load: np.ndarray, t: int) -> float:
        return float(self._violations(load[None], np.array([t]))[0])

    def _violations(self, loads: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Per row: how far loads (N, 3) of territories ts (N,) lie outside their bands,
        as shares of each band (summed metrics)."""
        b = self.bands
        return ((np.maximum(0, b.lo[ts] - loads) + np.maximum(0, loads - b.hi[ts]))
                / self.band_scale[ts]).sum(axis=-1)

    def repair(self, plan: np.ndarray, deadline: float = math.inf
               ) -> tuple[np.ndarray, list[Stray]]:
        """Move stray pieces into adjacent territories while the bands hold (see the module
        docstring); when some cannot move so, reattach every piece and restore the bands by
        boundary moves that keep territories whole (none begun after `deadline`). Returns the
        plan and the pieces it could not fix (the plan then keeps the bands and leaves those
        pieces cut off)."""
        first, unfixed = self._reattach(plan, keep_bands=True)
        if not unfixed:
            return first, []
        counted = self.report.repaired_moves
        loose, left = self._reattach(first, keep_bands=False)
        if not left:
            balanced = self.rebalance(loose, improve=False, deadline=deadline)
            if self.within_bands(balanced) and not self.strays(balanced):
                return balanced, []
        self.report.repaired_moves = counted  # those moves were not kept
        return first, unfixed

    def within_bands(self, plan: np.ndarray) -> bool:
        used = np.unique(plan[plan >= 0])
        return bool((self._violations(self._loads(plan)[used], used) <= 1e-12).all())

    def moved_amount(self, plan: np.ndarray) -> float:
        """What the plan moves away from today's reps, in the disruption budget's measure."""
        assert self.bands.moved is not None
        ok = plan >= 0
        return float(self.bands.moved[np.flatnonzero(ok), plan[ok]].sum())

    def _reattach(self, plan: np.ndarray, keep_bands: bool,
                  max_rounds: int = 50) -> tuple[np.ndarray, list[Stray]]:
        plan = plan.copy()
        b = self.bands
        loads = self._loads(plan)
        moved = self.moved_amount(plan) if b.moved is not None else 0.0
        strays: list[Stray] = []
        for _ in range(max_rounds):
            strays = self.strays(plan)
            if not strays:
                return plan, []
            progress = False
            strays.sort(key=lambda s: (b.amount[s.units, 0].sum(), len(s.units)))
            touched: set[int] = set()
            for s in strays:
                if s.territory in touched or not len(s.units):
                    continue
                move = self._best_move(plan, loads, moved, s, keep_bands)
                if move is None:
                    continue
                target, back = move
                units = s.units
                a = b.amount[units].sum(axis=0)
                if b.moved is not None:
                    moved += float(b.moved[units, target].sum() - b.moved[units, s.territory]
                                   .sum())
                plan[units] = target
                loads[s.territory] -= a
                loads[target] += a
                if back is not None:
                    if b.moved is not None:
                        moved += float(b.moved[back, s.territory] - b.moved[back, target])
                    plan[back] = s.territory
                    loads[target] -= b.amount[back]
                    loads[s.territory] += b.amount[back]
                self.report.repaired_moves += 1
                touched.update((s.territory, target))
                progress = True
            if not progress:
                break
        return plan, self.strays(plan)

    def _best_move(self, plan: np.ndarray, loads: np.ndarray, moved: float,
                   s: Stray, keep_bands: bool = True) -> tuple[int, int | None] | None:
        b = self.bands
        t = s.territory
        units = s.units
        a = b.amount[units].sum(axis=0)
        targets = np.unique(plan[self.units_at_nodes(s.boundary)])
        targets = targets[(targets >= 0) & (targets != t)]
        targets = targets[b.allowed[units][:, targets].all(axis=0)]
        if b.moved is not None:
            dmove = b.moved[units][:, targets].sum(axis=0) - b.moved[units, t].sum()
            if b.budget is not None:
                targets = targets[moved + dmove <= b.budget + 1e-9]
        damage = b.cost[units][:, targets].sum(axis=0) - b.cost[units, t].sum()
        before = self._violation(loads[t], t) + self._violations(loads[targets], targets)
        after = self._violation(loads[t] - a, t) + self._violations(loads[targets] + a, targets)
        holds = after <= before + 1e-12
        if holds.any():
            return int(targets[holds][np.argmin(damage[holds])]), None
        if not keep_bands:
            return (int(targets[np.lexsort((damage, after - before))[0]]), None) \
                if len(targets) else None
        # Paired move: the piece goes to t2 and one unit of t2 on t's border comes back.
        for t2 in targets[np.lexsort((targets, damage))]:
            back = self._hand_back(plan, loads, moved, s, int(t2), a)
            if back is not None:
                return int(t2), back
        return None

    def _hand_back(self, plan: np.ndarray, loads: np.ndarray, moved: float, s: Stray, t2: int,
                   a: np.ndarray) -> int | None:
        """A unit of t2 next to t (outside the piece s) that can go to t so that both bands
        hold, t loses a piece and t2 gains none. Not "both in one piece": t's other stray
        pieces go in later moves, and a territory in three pieces could never pass that."""
        b = self.bands
        t = s.territory
        t_nodes = self.nodes_of(plan, t)
        t_nodes = np.setdiff1d(t_nodes, s.nodes)
        near = self.border(t_nodes)
        cands = self.units_at_nodes(near)
        cands = cands[(plan[cands] == t2) & b.allowed[cands, t]]
        if self.roots is not None:  # a centre's own unit stays in its territory
            cands = cands[cands != self.roots[t2]]
        before = self._violation(loads[t], t) + self._violation(loads[t2], t2)
        lt = loads[t] - a + b.amount[cands]
        l2 = loads[t2] + a - b.amount[cands]
        ok = self._violations(lt, np.full(len(cands), t)) + \
            self._violations(l2, np.full(len(cands), t2)) <= before + 1e-12
        if b.moved is not None and b.budget is not None:
            d = float(b.moved[s.units, t2].sum() - b.moved[s.units, t].sum()) + \
                b.moved[cands, t] - b.moved[cands, t2]
            ok &= moved + d <= b.budget + 1e-9
        options = cands[ok]
        pieces_t, pieces_t2 = (self._pieces(self.nodes_of(plan, x)) for x in (t, t2))
        for w in options[np.argsort(b.cost[options, t] - b.cost[options, t2], kind="stable")]:
            trial = plan.copy()
            trial[s.units] = t2
            trial[w] = t
            if self._pieces(self.nodes_of(trial, t)) < pieces_t and \
                    self._pieces(self.nodes_of(trial, t2)) <= pieces_t2:
                return int(w)
        return None

    def _pieces(self, nodes: np.ndarray) -> int:
        return self.components(nodes)[0]

    def components(self, nodes: np.ndarray) -> tuple[int, np.ndarray]:
        """How many pieces these nodes make, and each node's piece."""
        if len(nodes) <= 1:
            return len(nodes), np.zeros(len(nodes), dtype=np.int32)
        n, labels = connected_components(self.adj[nodes][:, nodes], directed=False)
        return int(n), labels

    def in_one_piece(self, plan: np.ndarray, *territories: int) -> bool:
        """Whether each of these territories is one piece (only they changed: checking
        them, not every territory's pieces, keeps a move's check cheap on large maps)."""
        return all(self._pieces(self.nodes_of(plan, t)) <= 1 for t in territories)

    def keeps_whole(self, plan: np.ndarray, territories: np.ndarray) -> bool:
        """Whether these territories are each one piece with their centre's unit inside:
        a plan that changed only them is then as contiguous as it was."""
        return self.in_one_piece(plan, *territories) and self.roots_ok(plan, territories)

    def border(self, nodes: np.ndarray) -> np.ndarray:
        """The nodes next to these nodes, outside them (a piece's separator in the cuts)."""
        if not len(nodes):
            return np.zeros(0, dtype=np.int64)
        return np.setdiff1d(np.unique(self.adj[nodes].indices), nodes)

    def nodes_of(self, plan: np.ndarray, t: int) -> np.ndarray:
        return np.unique(self.pair_node[plan[self.pair_unit] == t])

    def boundary_moves(self, plan: np.ndarray) -> pd.DataFrame:
        """Every (unit, src, to) where the unit (in territory src) sits at a node next to a
        node of `to`. Sparse products, not table joins: a repair rescans the borders after
        every move, and at 5,000 units a join took 14 ms a scan."""
        terr = plan[self.pair_unit]
        ok = terr >= 0
        nodes, units, ts = self.pair_node[ok], self.pair_unit[ok], terr[ok]
        held = sparse.csr_array((np.ones(len(nodes)), (nodes, ts)),
                                shape=(self.graph.n, self.n_terr))
        near = (self.adj @ held)[nodes].tocoo()  # per (node, unit): territories next door
        row, to = near.row, near.col
        away = to != ts[row]
        key = np.unique(units[row[away]].astype(np.int64) * self.n_terr + to[away])
        unit = key // self.n_terr
        return pd.DataFrame({"unit": unit, "src": plan[unit], "to": key % self.n_terr})

    def rebalance(self, plan: np.ndarray, max_moves: int = 2000, improve: bool = True,
                  deadline: float = math.inf) -> np.ndarray:
        """Boundary moves that keep every territory in one piece: first while they reduce
        the total band violation (most first, then least cost; a swap when no single move
        does), then, with `improve`, while they lower the cost within the bands; no new move
        after `deadline` (`time.perf_counter()`)."""
        plan = plan.copy()
        b = self.bands
        loads = self._loads(plan)
        passed = np.zeros(self.n_units, dtype=bool)
        for phase in ("balance", "cost") if improve else ("balance",):
            for _ in range(max_moves):
                if time.perf_counter() > deadline:
                    break
                moves = self.boundary_moves(plan)
                if moves.empty:
                    break
                u = moves["unit"].to_numpy()
                src = moves["src"].to_numpy()
                dst = moves["to"].to_numpy()
                base = b.allowed[u, dst]
                if self.roots is not None:  # a centre's own unit stays in its territory
                    base &= ~(self.roots[src] == u)
                if b.moved is not None and b.budget is not None:
                    base &= self.moved_amount(plan) + b.moved[u, dst] - b.moved[u, src] \
                        <= b.budget + 1e-9
                a = b.amount[u]
                before = self._violations(loads[src], src) + self._violations(loads[dst], dst)
                after = self._violations(loads[src] - a, src) + \
                    self._violations(loads[dst] + a, dst)
                dcost = b.cost[u, dst] - b.cost[u, src]
                if phase == "balance":
                    gain = before - after
                    ok = base & (gain > 1e-12)
                    order = np.lexsort((dcost, -gain))
                else:
                    ok = base & (after <= before + 1e-12) & (dcost < -1e-9)
                    order = np.argsort(dcost)
                found = self._first_in_one_piece(plan, order[ok[order]], src, dst, [(u, dst)])
                if found is None and phase == "balance":
                    swapped = self._swap_once(plan, loads, balance=True)
                    if swapped is not None:
                        plan = swapped
                        continue
                    # Every neighbour at a band limit: pass load along a chain of
                    # territories, one move at a time, towards the shortfall (or away from
                    # the excess), never raising the violation; a unit passed on stays
                    # (the pulls change as the loads do, and must not send it back).
                    pull = self._pull(plan, loads, src, dst)
                    down = base & (after <= before + 1e-12) & (pull[dst] < pull[src]) & \
                        ~passed[u] & (passed.sum() < MAX_PASSED)
                    order = np.lexsort((dcost, pull[dst] - pull[src]))
                    found = self._first_in_one_piece(plan, order[down[order]], src, dst,
                                                     [(u, dst)])
                    if found is not None:
                        passed[u[found[0]]] = True
                if found is None:
                    break
                i, plan = found
                loads[src[i]] -= a[i]
                loads[dst[i]] += a[i]
                self.report.repaired_moves += 1
            if phase == "balance" and not self.within_bands(plan):
                break  # no feasible plan to improve
        return plan

    def _pull(self, plan: np.ndarray, loads: np.ndarray, src: np.ndarray,
              dst: np.ndarray) -> np.ndarray:
        """Per territory: borders crossed to the nearest territory under its band, minus
        borders to the nearest one over it (territories bordering when some (src, dst) move
        joins them). Moves to a lower pull carry load towards a shortfall or away from an
        excess; each lowers the units' total pull, so a chain of them ends."""
        b = self.bands
        graph = sparse.csr_array((np.ones(len(src)), (src, dst)),
                                 shape=(self.n_terr, self.n_terr))
        used = np.zeros(self.n_terr, dtype=bool)
        used[plan[plan >= 0]] = True
        pull = np.zeros(self.n_terr)
        for sign, off in ((1.0, (loads < b.lo - 1e-9)), (-1.0, (loads > b.hi + 1e-9))):
            sources = np.flatnonzero(off.any(axis=1) & used)
            if len(sources):
                hops = shortest_path(graph, unweighted=True, directed=False,
                                     indices=sources).min(axis=0)
                pull += sign * np.where(np.isfinite(hops), hops, self.n_terr)
        return pull

    def note_unfixed(self, unfixed: list[Stray]) -> None:
        """Record pieces the repair could not fix (warnings and the report)."""
        self.report.unfixed = [
            {"territory_id": self.names[s.territory],
             "units": [self.graph.unit_ids[v] for v in s.nodes[:20]],
             "unit_count": len(s.nodes)} for s in unfixed]

    def finish(self, plan: np.ndarray) -> list[str]:
        """Check the final plan; warnings for what is not contiguous (never silent)."""
        left = self.strays(plan)
        self.note_unfixed(left)
        out = list(self.warnings)
        if left:
            pieces = "; ".join(
                f"{u['territory_id']}: {u['unit_count']} unit(s) from {', '.join(u['units'][:3])}"
                for u in self.report.unfixed[:5])
            out.append(f"contiguity: {len(left)} piece(s) of territories are cut off and could "
                       f"not be reattached within the bands ({pieces})")
        return out

    def reroot(self, plan: np.ndarray) -> np.ndarray:
        """Design: a territory whose centre's own unit went elsewhere takes, as its centre,
        the cheapest free candidate among its own units (the root form needs it inside)."""
        if self.roots is None:
            return plan
        plan = plan.copy()
        used = {int(t) for t in np.unique(plan[plan >= 0])}
        heavy = self._heaviest_units(plan)
        for t in sorted(used):
            root = int(self.roots[t])
            if root >= 0 and plan[root] == t and root in heavy.get(t, {root}):
                continue
            members = np.flatnonzero(plan == t)
            free = [t2 for t2 in range(self.n_terr) if t2 not in used
                    and self.roots[t2] >= 0 and int(self.roots[t2]) in heavy.get(t, set())
                    and self.bands.allowed[members, t2].all()]
            if not free:
                continue
            cost = [float(self.bands.cost[members, t2].sum()) for t2 in free]
            new = free[int(np.argmin(cost))]
            plan[members] = new
            used.discard(t)
            used.add(new)
        return plan

    def _heaviest_units(self, plan: np.ndarray) -> dict[int, set[int]]:
        """Per territory in pieces, the units of its heaviest piece (the one to keep)."""
        out: dict[int, set[int]] = {}
        saved = self.root_node, self.hints
        self.root_node = self.hints = np.full(self.n_terr, -1)  # pieces by weight alone
        try:
            strays = self.strays(plan)
        finally:
            self.root_node, self.hints = saved
        for t in {s.territory for s in strays}:
            away = np.concatenate([s.units for s in strays if s.territory == t])
            members = np.flatnonzero(plan == t)
            out[t] = {int(u) for u in np.setdiff1d(members, away)}
        return out

    def recentre(self, plan: np.ndarray) -> np.ndarray:
        """Design: each territory's centre moved to its cheapest candidate inside it."""
        if self.roots is None:
            return plan
        plan = plan.copy()
        used = {int(t) for t in np.unique(plan[plan >= 0])}
        for t in sorted(used):
            members = np.flatnonzero(plan == t)
            inside = [t2 for t2 in np.flatnonzero(np.isin(self.roots, members))
                      if (t2 == t or t2 not in used) and self.bands.allowed[members, t2].all()]
            if not inside:
                continue
            cost = [float(self.bands.cost[members, t2].sum()) for t2 in inside]
            new = int(inside[int(np.argmin(cost))])
            if new != t:
                plan[members] = new
                used.discard(t)
                used.add(new)
        return plan

    def swap(self, plan: np.ndarray, max_swaps: int = 500,
             deadline: float = math.inf) -> np.ndarray:
        """Boundary swaps that lower the cost: a unit of s goes to d and one of d to s, both
        bands held and both territories left in one piece. Tight bands block most single
        moves (a unit's load has nowhere to go); a swap moves load both ways."""
        plan = plan.copy()
        loads = self._loads(plan)
        for _ in range(max_swaps):
            if time.perf_counter() > deadline:
                break
            swapped = self._swap_once(plan, loads, balance=False)
            if swapped is None:
                break
            plan = swapped
        return plan

    def _swap_once(self, plan: np.ndarray, loads: np.ndarray,
                   balance: bool) -> np.ndarray | None:
        """The plan after one boundary swap (`loads` updated in place), or None. With
        `balance`, the swap that most lowers the band violation (then costs least): where
        every neighbour sits at its limit, a swap shifts just the difference of two units'
        loads. Otherwise the cheapest swap that lowers the cost and no violation."""
        b = self.bands
        moves = self.boundary_moves(plan)
        u, src, dst = (moves[c].to_numpy() for c in ("unit", "src", "to"))
        ok = b.allowed[u, dst]
        if self.roots is not None:  # a centre's own unit stays in its territory
            ok &= self.roots[src] != u
        m = moves[ok].assign(dcost=b.cost[u, dst][ok] - b.cost[u, src][ok])
        pairs = m.merge(m, left_on=["src", "to"], right_on=["to", "src"],
                        suffixes=("", "_back"))
        dcost = (pairs["dcost"] + pairs["dcost_back"]).to_numpy()
        if not balance:
            pairs, dcost = pairs[dcost < -1e-9], dcost[dcost < -1e-9]
        if pairs.empty:
            return None
        u1, u2 = pairs["unit"].to_numpy(), pairs["unit_back"].to_numpy()
        s_, d_ = pairs["src"].to_numpy(), pairs["to"].to_numpy()
        shift = b.amount[u1] - b.amount[u2]
        before = self._violations(loads[s_], s_) + self._violations(loads[d_], d_)
        after = self._violations(loads[s_] - shift, s_) + \
            self._violations(loads[d_] + shift, d_)
        if balance:
            keep = before - after > 1e-12
            order = np.lexsort((dcost, after - before))
        else:
            keep = after <= before + 1e-12
            order = np.argsort(dcost)
        if b.moved is not None and b.budget is not None:
            keep &= self.moved_amount(plan) + b.moved[u1, d_] - b.moved[u1, s_] + b.moved[u2, s_] \
                - b.moved[u2, d_] <= b.budget + 1e-9
        found = self._first_in_one_piece(plan, order[keep[order]], s_, d_,
                                         [(u1, d_), (u2, s_)])
        if found is None:
            return None
        i, plan = found
        loads[s_[i]] -= shift[i]
        loads[d_[i]] += shift[i]
        self.report.repaired_moves += 2
        return plan

    def _first_in_one_piece(self, plan: np.ndarray, order: np.ndarray, src: np.ndarray,
                            dst: np.ndarray, change: list[tuple[np.ndarray, np.ndarray]]
                            ) -> tuple[int, np.ndarray] | None:
        """The first candidate i of `order` (of its first 50) whose change (unit[i] goes to
        territory[i], for each (unit, territory) pair of arrays) leaves both territories
        src[i] and dst[i] in one piece, and the plan after it."""
        for i in order[:50]:
            trial = plan.copy()
            for unit, territory in change:
                trial[unit[i]] = territory[i]
            if self.in_one_piece(trial, int(src[i]), int(dst[i])):
                return int(i), trial
        return None

    def polish(self, plan: np.ndarray, rounds: int = 10,
               deadline: float = math.inf) -> np.ndarray:
        """Cheaper contiguous plan within the bands: boundary moves, swaps and centre
        moves, none begun after `deadline` (`time.perf_counter()`): on thousands of units
        each move rescans the borders, and the solve's time limit holds."""
        best = plan
        for _ in range(rounds):
            if time.perf_counter() > deadline:
                break
            nxt = self.recentre(self.swap(self.rebalance(best, deadline=deadline),
                                          deadline=deadline))
            if self.plan_cost(nxt) >= self.plan_cost(best) - TOL or self.strays(nxt) or \
                    not self.within_bands(nxt):
                break
            best = nxt
        return best

    def roots_ok(self, plan: np.ndarray, territories: np.ndarray | None = None) -> bool:
        """Whether each territory (or each of these) holds its centre's unit."""
        if self.roots is None:
            return True
        used = np.unique(plan[plan >= 0]) if territories is None else territories
        return bool(all(self.roots[t] >= 0 and plan[self.roots[t]] == t for t in used))

    def contiguous_start(self, plan: np.ndarray, deadline: float = math.inf
                         ) -> tuple[float, np.ndarray] | None:
        """A heuristic plan made contiguous (repaired, centres inside their territories, then
        polished until `deadline`), with its cost; None when that fails and the exact method
        must not rely on it."""
        fixed, unfixed = self.repair(self.reroot(plan), deadline)
        fixed = self.reroot(fixed)
        if not unfixed and not self.within_bands(fixed):
            fixed = self.rebalance(fixed, improve=False, deadline=deadline)
            if not self.within_bands(fixed):
                return None
        if unfixed or not self.roots_ok(fixed):
            if self.exact:
                return None
            self.note_unfixed(unfixed)
        elif self.in_play <= POLISH_UNITS:
            fixed = self.polish(fixed, deadline=deadline)
        return self.plan_cost(fixed), fixed

    def repair_final(self, plan: np.ndarray, deadline: float = math.inf
                     ) -> tuple[np.ndarray, bool]:
        """Large inputs: the solved plan repaired, then polished and its borders searched
        until `deadline` (the repair's moves cost travel); True when the plan changed."""
        from optimizer.border_search import improve  # it builds on this class

        fixed, unfixed = self.repair(plan)
        self.note_unfixed(unfixed)
        changed = not np.array_equal(fixed, plan)
        if changed and not unfixed and self.in_play <= POLISH_UNITS:
            fixed = improve(self, self.polish(fixed, deadline=deadline), deadline)
        return fixed, changed


# ---------------------------------------------------------------------------------------------
# The two models' contiguity


def _unit_of_accounts(accounts: pd.DataFrame) -> pd.Series:
    if "unit_id" in accounts.columns:
        return accounts["unit_id"]
    return pd.Series([None] * len(accounts), index=accounts.index, dtype=object)


def for_alignment(data: AlignmentData, scenario: Scenario, p: Problem, s: Scaled,
                  exact_units: int | None = None) -> Contiguity | None:
    """Contiguity of a realignment (anchor form; the anchor prefers the unit of the account
    nearest each rep's home base), or None when the scenario does not ask for it."""
    require_units(scenario.contiguity, data.units)
    if not scenario.contiguity or data.units is None:
        return None
    graph = data.units
    acc_unit = _unit_of_accounts(data.accounts)
    node = pd.Index(graph.unit_ids).get_indexer(
        pd.Index([None if pd.isna(v) else str(v) for v in acc_unit], dtype=object))
    dist = np.where(np.isfinite(p.book.distance) & (node >= 0)[:, None], p.book.distance,
                    np.inf)
    hints = np.full(p.n_reps, -1)
    if len(dist):
        nearest = np.argmin(dist, axis=0)
        ok = np.isfinite(dist[nearest, np.arange(p.n_reps)])
        hints[ok] = node[nearest[ok]]

    bands = Bands(s.amount, s.lo, s.hi, p.allowed, s.cost, s.moved, s.budget)
    return Contiguity(graph, acc_unit, p.unit_of, p.n_units, p.n_reps, list(p.rep_ids), bands,
                      s.plan_cost, hints=hints,
                      account_weight=data.accounts["workload"].to_numpy(float),
                      exact_units=exact_units)


def for_design(data: DesignData, scenario: Scenario, p: DesignProblem,
               exact_units: int | None = None) -> Contiguity | None:
    """Contiguity of a design (root form: a territory holds its centre's unit; for a centre
    at a unit, the heaviest account of that unit)."""
    require_units(scenario.contiguity, data.units)
    if not scenario.contiguity or data.units is None:
        return None
    acc = data.accounts
    pos = pd.Index(acc["account_id"].astype(str)).get_indexer(pd.Index(p.candidate_ids))
    if p.candidate_is_unit.any():
        # A unit centre's root: the heaviest account in that unit (none: no root).
        by_weight = acc.assign(_row=np.arange(len(acc)), _unit=_unit_of_accounts(acc)) \
            .sort_values("workload", ascending=False, kind="stable")
        heaviest = by_weight.dropna(subset=["_unit"]).drop_duplicates("_unit")
        row_of = pd.Series(heaviest["_row"].to_numpy(), index=heaviest["_unit"].astype(str))
        in_unit = row_of.reindex(p.candidate_ids).fillna(-1).to_numpy(int)
        pos = np.where(p.candidate_is_unit, in_unit, pos)
    roots = np.where(pos >= 0, p.unit_of[np.maximum(pos, 0)], -1)
    n_c = p.n_candidates
    bands = Bands(p.amount, np.tile(p.lo, (n_c, 1)), np.tile(p.hi, (n_c, 1)), p.allowed,
                  p.travel)
    rows = np.arange(p.n_units)
    return Contiguity(data.units, _unit_of_accounts(acc), p.unit_of, p.n_units, n_c,
                      list(p.candidate_ids), bands,
                      lambda plan: float(p.travel[rows, plan].sum()), roots=roots,
                      account_weight=acc["workload"].to_numpy(float), exact_units=exact_units)


def annotate(contiguity: Contiguity | None, result: PlanResult,
             plan: np.ndarray) -> PlanResult:
    """Warnings for what the final plan leaves cut off, and summary.json's
    kpis.contiguity (enforced, method exact|repair, cut rounds, parts not fixed)."""
    if contiguity is None:
        return result
    result.warnings.extend(contiguity.finish(plan))
    result.kpis["contiguity"] = contiguity.report.as_dict()
    return result


def design_start(contig: Contiguity | None, p: DesignProblem,
                 incumbent: tuple[float, np.ndarray] | None, deadline: float,
                 threads: int | None, rounds: int = 8, settle: float = math.inf
                 ) -> tuple[float, np.ndarray] | None:
    """A contiguous incumbent for a design, the cheapest of: the heuristic's plan repaired
    (and a greedy one), a locate–allocate from its centres whose allocations are contiguous
    by construction (`nearer_neighbour_locate_allocate`), and one from its centres
    (allocation with cut rounds to the open centres, each centre moved to the best candidate
    inside its territory, until stable). The repair is quick, but its moves cost travel that
    polishing wins back only in part: North Carolina into 8, repaired 5,793, allocated
    5,645. With a start in hand by `settle`, the last of these stops there (the time after
    goes to improving the start); without one it may take until `deadline`."""
    if contig is None:
        return incumbent
    from optimizer.design import _greedy_centres  # design imports this module

    # Also from the greedy centres with every unit at its nearest one (no MIP needed).
    centres = _greedy_centres(p, np.random.default_rng(0))
    travel = np.where(p.allowed[:, centres], p.travel[:, centres], np.inf)
    starts = [centres[np.argmin(travel, axis=1)]]
    if incumbent is not None:
        starts.insert(0, incumbent[1])
    # Each start (its repair and polish) gets a share of the phase, as each allocation below
    # does.
    per_start = (deadline - time.perf_counter()) / ALLOCATION_SHARES
    made = [contig.contiguous_start(plan, time.perf_counter() + per_start) for plan in starts]
    if incumbent is not None and contig.exact:
        # From the heuristic's centres, allocations that are contiguous by construction: the
        # start that remains when no repair makes the heuristic's plan whole within the bands
        # (Georgia into 10 at ±5 %, where that plan depends on the HiGHS version).
        made.append(nearer_neighbour_locate_allocate(
            contig, p, np.unique(contig.reroot(incumbent[1])),
            time.perf_counter() + per_start, threads, rounds))
    found = [m for m in made if m is not None]
    best = min(found, key=lambda m: m[0]) if found else None
    if incumbent is None:
        return best
    plan = contig.reroot(incumbent[1])
    # An allocation that finds no contiguous plan soon has centres that do not suit the
    # map; the exact search, which moves the centres too, gets the time instead.
    per_allocation = (deadline - time.perf_counter()) / ALLOCATION_SHARES
    allocated = _contiguous_locate_allocate(
        contig, p, np.unique(plan[plan >= 0]),
        lambda centres, seconds: _cut_round_allocation(contig, p, centres, seconds, threads),
        deadline if best is None else min(deadline, settle), per_allocation, rounds)
    if allocated is not None and (best is None or allocated[0] < best[0] - TOL):
        best = allocated
    return best


def _contiguous_locate_allocate(
        contig: Contiguity, p: DesignProblem, centres: np.ndarray,
        allocate: Callable[[np.ndarray, float], tuple[float, np.ndarray] | None],
        deadline: float, per_allocation: float, rounds: int
) -> tuple[float, np.ndarray] | None:
    """`allocate(centres, seconds)` (a contiguous plan and its cost, or None), each centre
    then moved to the best candidate inside its territory, and again until the centres
    repeat, an allocation fails, `rounds` or `deadline`: the cheapest plan."""
    best: tuple[float, np.ndarray] | None = None
    seen: set[tuple[int, ...]] = set()
    for _ in range(rounds):
        key = tuple(int(c) for c in sorted(centres))
        left = min(deadline - time.perf_counter(), per_allocation)
        if key in seen or left <= 0.5:
            break
        seen.add(key)
        found = allocate(np.array(key), left)
        if found is None:
            break
        if best is None or found[0] < best[0] - TOL:
            best = found
        centres = _relocate_inside(contig, p, found[1])
    return best


def _cut_round_allocation(contig: Contiguity, p: DesignProblem, centres: np.ndarray,
                          seconds: float, threads: int | None
                          ) -> tuple[float, np.ndarray] | None:
    """The allocation to these centres with contiguity cut rounds; None when it has no
    contiguous plan in time."""
    model, u, j = _allocation_model(p, centres)
    sol = contig.runner(u, j, complete=False)(
        model, HighsOptions(time_limit=seconds, mip_gap=1e-3, threads=threads))
    if not sol.has_solution or sol.objective is None:
        return None
    plan = contig._plan(sol.values["x"], u, j)
    if contig.strays(plan) or not contig.roots_ok(plan):
        return None
    return float(sol.objective), plan


def _allocation_model(p: DesignProblem, centres: np.ndarray
                      ) -> tuple[pyo.ConcreteModel, np.ndarray, np.ndarray]:
    """The design's model with only `centres` open, over their allowed pairs (u, j)."""
    from optimizer.design import build  # design imports this module

    sub = np.zeros_like(p.allowed)
    sub[:, centres] = p.allowed[:, centres]
    u, j = np.nonzero(sub)
    closed = np.ones(p.n_candidates, dtype=bool)
    closed[centres] = False
    return build(p, u, j, closed=closed), u, j


def nearer_neighbour_allocation(contig: Contiguity, p: DesignProblem, centres: np.ndarray,
                                 time_limit: float, threads: int | None
                                 ) -> tuple[float, np.ndarray] | None:
    """The cheapest allocation to these centres (the centre's unit in its territory) in which
    every unit has a neighbour nearer its centre in its territory: contiguous by
    construction; None when there is none or none in time."""
    centres = centres[centres >= 0]
    model, u, j = _allocation_model(p, centres)
    where = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(u, j, strict=True))}
    contig._add_root_links(model, where)
    contig.add_nearer_neighbour_rows(model, where, centres)
    sol = run_highs(model, HighsOptions(time_limit=max(time_limit, 0.5), mip_gap=1e-3,
                                        threads=threads))
    if not sol.has_solution or sol.objective is None:
        return None
    plan = contig._plan(sol.values["x"], u, j)
    if contig.strays(plan) or not contig.roots_ok(plan):
        return None  # the rows rule this out; a start must be whole, so check anyway
    return contig.plan_cost(plan), plan


def nearer_neighbour_locate_allocate(contig: Contiguity, p: DesignProblem,
                                     centres: np.ndarray, deadline: float,
                                     threads: int | None, rounds: int
                                     ) -> tuple[float, np.ndarray] | None:
    """Locate–allocate from these centres by `nearer_neighbour_allocation` until `deadline`:
    the cheapest plan. Georgia into 10 at ±5 % (highspy 1.15.1): 9,995 from the heuristic's
    centres, 9,340 after six rounds in about 7 s."""
    return _contiguous_locate_allocate(
        contig, p, centres,
        lambda c, seconds: nearer_neighbour_allocation(contig, p, c, seconds, threads),
        deadline, math.inf, rounds)


def _relocate_inside(contig: Contiguity, p: DesignProblem, plan: np.ndarray) -> np.ndarray:
    """Each territory's 1-median among the candidates whose unit lies inside it."""
    assert contig.roots is not None
    t = np.where(p.allowed, p.travel, np.inf)
    new: list[int] = []
    for c in np.unique(plan[plan >= 0]):
        members = plan == c
        inside = np.flatnonzero((contig.roots >= 0) & members[np.maximum(contig.roots, 0)])
        inside = np.setdiff1d(inside, new)
        if not len(inside):
            new.append(int(c))
            continue
        cost = t[np.ix_(np.flatnonzero(members), inside)].sum(axis=0)
        new.append(int(inside[np.argmin(cost)]))
    return np.array(new)
