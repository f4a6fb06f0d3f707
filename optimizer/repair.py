"""A first whole plan by local search, for when rounding the LP finds none.

With tight two-sided bands and many reps, rounding the LP can fail: the LP leaves nearly
every rep exactly on a band limit, so no rep has room for the units its neighbours split.
A search over whole assignments needs no room it cannot make: starting from the LP's
largest share of each unit, it

1. moves single units to one of their candidate reps while that lowers the total
   violation of the bands and the disruption budget (many moves at once, each rep in at
   most one of them);
2. for each rep still outside its band, finds an ejection chain: the rep passes a unit to a
   neighbour, which passes one on (or, for a rep short of its band, takes one from a
   neighbour, which takes one from the next), breadth-first, until a rep with room ends the
   chain and no rep on it leaves its band; over the disruption budget, it sends a unit
   back to its current rep and restores the bands that breaks by such chains;
3. once every band holds, lowers the pair costs (travel, disruption; soft bands are left
   to the MIP) while every band and the budget still hold: exchanges of two units between
   two reps, and single moves.

Steps 1 and 2 never raise the total violation, and no step after the bands first hold
breaks one (hard bands: balance, capacity, account limits; and the disruption budget);
only candidate pairs are used. The plan is a start for the MIP, not a claim of quality.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

# Breadth-first depth of an ejection chain (reps it passes through).
CHAIN_DEPTH = 6
TOL = 1e-9


@dataclass(frozen=True)
class Bands:
    """What a plan on whole units must respect: amounts per assignment unit (U, 3), bounds
    per territory (T, 3), allowed pairs and the cost of each pair (U, T), an optional
    disruption measure moved per pair with its budget."""

    amount: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    allowed: np.ndarray
    cost: np.ndarray
    moved: np.ndarray | None = None
    budget: float | None = None

    def violation(self, load: np.ndarray, reps: np.ndarray) -> np.ndarray:
        """Per row: how far the loads of `reps` lie outside their bands (summed metrics)."""
        return (np.maximum(self.lo[reps] - load, 0.0)
                + np.maximum(load - self.hi[reps], 0.0)).sum(axis=-1)

    def loads(self, plan: np.ndarray) -> np.ndarray:
        load = np.zeros(self.lo.shape)
        np.add.at(load, plan, self.amount)
        return load

    def over_budget(self, plan: np.ndarray) -> float:
        if self.budget is None or self.moved is None:
            return 0.0
        return max(float(self.moved[np.arange(len(plan)), plan].sum()) - self.budget, 0.0)

    def holds(self, plan: np.ndarray) -> bool:
        """Every unit on an allowed pair, every band and the budget met."""
        reps = np.arange(len(self.lo))
        return bool(self.violation(self.loads(plan), reps).max(initial=0.0) <= TOL
                    and self.over_budget(plan) <= TOL
                    and self.allowed[np.arange(len(plan)), plan].all())


@dataclass(frozen=True)
class _Candidates:
    """The (unit, rep) pairs moves may use, sorted by unit, and each unit's reps."""

    unit: np.ndarray
    rep: np.ndarray
    by_unit: list[np.ndarray]

    @staticmethod
    def of(unit: np.ndarray, rep: np.ndarray, n_units: int) -> _Candidates:
        order = np.argsort(unit, kind="stable")
        unit, rep = unit[order], rep[order]
        by_unit = np.split(rep, np.searchsorted(unit, np.arange(1, n_units)))
        return _Candidates(unit, rep, by_unit)


def repair(bands: Bands, cand_unit: np.ndarray, cand_rep: np.ndarray, start: np.ndarray,
           seconds: float = 10.0) -> np.ndarray | None:
    """A plan that `bands.holds`, reached from `start` by moves over the candidate pairs
    (cand_unit[i], cand_rep[i]), then made cheaper while time is left; None when the search
    gets stuck or `seconds` run out first."""
    stop = time.perf_counter() + seconds
    cand = _Candidates.of(cand_unit, cand_rep, len(start))
    plan = start.copy()
    load = bands.loads(plan)
    reps = np.arange(len(bands.lo))
    while not bands.holds(plan):
        while time.perf_counter() < stop and \
                _single_moves(bands, cand, plan, load, improve_cost=False):
            pass
        progress = False
        for r in np.flatnonzero(bands.violation(load, reps) > TOL):
            if time.perf_counter() > stop:
                return None
            progress |= _chain(bands, cand, plan, load, int(r))
        if not progress and bands.over_budget(plan) > TOL:
            progress = _move_home(bands, cand, plan, load, stop)
        if not progress and not bands.holds(plan):
            return None
    held = plan.copy()
    while time.perf_counter() < stop:
        swapped = _swaps(bands, cand, plan, load)
        if not _single_moves(bands, cand, plan, load, improve_cost=True) and not swapped:
            break
    # Each step checks the state it leaves against TOL, so this holds; kept as a guard.
    return plan if bands.holds(plan) else held


def _single_moves(bands: Bands, cand: _Candidates, plan: np.ndarray, load: np.ndarray,
                  improve_cost: bool) -> bool:
    """One batch of single-unit moves, each rep in at most one. Without `improve_cost`,
    moves that lower the violation of the bands and the budget (cheapest first among
    equals); with it, moves that lower the cost and keep every band and the budget.
    Updates plan and load; True if anything moved."""
    units, to = cand.unit, cand.rep
    frm = plan[units]
    keep = to != frm
    units, to, frm = units[keep], to[keep], frm[keep]
    amt = bands.amount[units]
    v_from = bands.violation(load[frm] - amt, frm) - bands.violation(load[frm], frm)
    v_to = bands.violation(load[to] + amt, to) - bands.violation(load[to], to)
    d_band = v_from + v_to
    d_cost = bands.cost[units, to] - bands.cost[units, frm]
    budget = bands.budget if bands.moved is not None else None
    moved_now = 0.0
    d_moved = np.zeros(len(units))
    if budget is not None:
        assert bands.moved is not None
        moved_now = float(bands.moved[np.arange(len(plan)), plan].sum())
        d_moved = bands.moved[units, to] - bands.moved[units, frm]

    def over(moved: float | np.ndarray) -> float | np.ndarray:
        return np.maximum(moved - budget, 0.0) if budget is not None else 0.0

    if improve_cost:
        # Both reps end inside their bands.
        inside = (bands.violation(load[frm] - amt, frm) <= TOL) & \
            (bands.violation(load[to] + amt, to) <= TOL)
        good = np.flatnonzero(inside & (d_cost < -TOL))
        order = good[np.argsort(d_cost[good], kind="stable")]
    else:
        d_viol = d_band + over(moved_now + d_moved) - over(moved_now)
        good = np.flatnonzero(d_viol < -TOL)
        order = good[np.lexsort((d_cost[good], d_viol[good]))]
    used = np.zeros(len(bands.lo), dtype=bool)
    changed = False
    for i in order:
        r, t, u = int(frm[i]), int(to[i]), int(units[i])
        if used[r] or used[t]:
            continue
        # Earlier moves of the batch changed the budget's use: check this one afresh.
        d_over = float(over(moved_now + d_moved[i])) - float(over(moved_now))
        if float(over(moved_now + d_moved[i])) > TOL if improve_cost else \
                d_band[i] + d_over >= -TOL:
            continue
        moved_now += float(d_moved[i])
        used[r] = used[t] = True
        plan[u] = t
        load[r] -= bands.amount[u]
        load[t] += bands.amount[u]
        changed = True
    return changed


def _swaps(bands: Bands, cand: _Candidates, plan: np.ndarray, load: np.ndarray) -> bool:
    """One batch of cost-lowering exchanges (u at r goes to t, v at t goes to r; both
    candidate pairs) that keep both bands and the budget, each rep in at most one. Updates
    plan and load; True if anything moved."""
    n_reps = len(bands.lo)
    frm = plan[cand.unit]
    keep = frm != cand.rep
    unit, frm, to = cand.unit[keep], frm[keep], cand.rep[keep]
    d_cost = bands.cost[unit, to] - bands.cost[unit, frm]
    # Pair each move r → t (r < t, each exchange once) with every move t → r.
    order = np.argsort(frm * n_reps + to, kind="stable")
    key = (frm * n_reps + to)[order]
    back = to * n_reps + frm
    first = np.searchsorted(key, back)
    count = np.searchsorted(key, back, side="right") - first
    count[frm > to] = 0
    i = np.repeat(np.arange(len(unit)), count)
    start = np.repeat(first - np.cumsum(count) + count, count)
    j = order[start + np.arange(len(i))]
    d = d_cost[i] + d_cost[j]
    good = d < -TOL
    i, j, d = i[good], j[good], d[good]
    r, t = frm[i], to[i]
    shift = bands.amount[unit[j]] - bands.amount[unit[i]]  # what r gains, t loses
    holds = (bands.violation(load[r] + shift, r) <= TOL) & \
        (bands.violation(load[t] - shift, t) <= TOL)
    i, j, d, r, t = i[holds], j[holds], d[holds], r[holds], t[holds]
    if not len(i):
        return False
    moved_now = 0.0
    if bands.moved is not None and bands.budget is not None:
        moved_now = float(bands.moved[np.arange(len(plan)), plan].sum())
    used = np.zeros(n_reps, dtype=bool)
    changed = False
    for k in np.argsort(d, kind="stable"):
        a, b = int(r[k]), int(t[k])
        if used[a] or used[b]:
            continue
        u, v = int(unit[i[k]]), int(unit[j[k]])
        if bands.budget is not None and bands.moved is not None:
            step = float(bands.moved[u, b] - bands.moved[u, a]
                         + bands.moved[v, a] - bands.moved[v, b])
            if moved_now + step > bands.budget + TOL:
                continue
            moved_now += step
        used[a] = used[b] = True
        plan[u], plan[v] = b, a
        change = bands.amount[v] - bands.amount[u]
        load[a] += change
        load[b] -= change
        changed = True
    return changed


def _move_home(bands: Bands, cand: _Candidates, plan: np.ndarray, load: np.ndarray,
               stop: float) -> bool:
    """Over the disruption budget: sends a unit to the candidate rep where it moves least
    (its current rep), and lets ejection chains restore the bands that breaks. Units that
    give back most go first; True at the first that lowers the budget's excess with every
    band held (plan and load updated), False if none does."""
    assert bands.moved is not None
    units = np.arange(len(plan))
    now = bands.moved[units, plan]
    for u in np.argsort(-now, kind="stable"):
        if now[u] <= TOL or time.perf_counter() > stop:
            break
        reps = cand.by_unit[u]
        home = int(reps[np.argmin(bands.moved[u, reps])]) if len(reps) else -1
        if home < 0 or bands.moved[u, home] >= now[u] - TOL:
            continue
        trial_plan, trial_load = plan.copy(), load.copy()
        frm = int(plan[u])
        trial_plan[u] = home
        trial_load[frm] -= bands.amount[u]
        trial_load[home] += bands.amount[u]
        for r in (frm, home):
            while bands.violation(trial_load[r][None], np.array([r]))[0] > TOL and \
                    _chain(bands, cand, trial_plan, trial_load, r):
                pass
        every = np.arange(len(bands.lo))
        if bands.violation(trial_load, every).max(initial=0.0) <= TOL and \
                bands.over_budget(trial_plan) < bands.over_budget(plan) - TOL:
            plan[:] = trial_plan
            load[:] = trial_load
            return True
    return False


def _chain(bands: Bands, cand: _Candidates, plan: np.ndarray, load: np.ndarray, first: int
           ) -> bool:
    """An ejection chain that lowers `first`'s band violation and raises no other rep's
    (nor the budget's). Over its band, `first` passes a unit on; short of it, it takes
    one. Breadth-first over reps; a chain ends at a rep with room, or back at `first` (a
    cycle: an exchange of units). Applies the chain found and returns True."""
    push = bool((load[first] > bands.hi[first] + TOL).any())
    sign = -1.0 if push else 1.0  # what a rep's passing (push) or taking (pull) does to it
    # parent[rep] = (previous rep, unit passed between them)
    parent: dict[int, tuple[int, int] | None] = {first: None}
    frontier = [(first, np.zeros(bands.amount.shape[1]))]
    for _ in range(CHAIN_DEPTH):
        nxt = []
        for r, change in frontier:
            if push:
                units = np.flatnonzero(plan == r)
            else:
                units = cand.unit[(cand.rep == r) & (plan[cand.unit] != r)]
            if not len(units):
                continue
            after = bands.violation(load[r] + change + sign * bands.amount[units],
                                     np.full(len(units), r))
            limit = bands.violation(load[r], np.array([r]))[0]
            # the first rep must improve; the others must end no worse than they are now
            ok = after < limit - TOL if r == first else after <= limit + TOL
            for u in units[ok][np.argsort(bands.amount[units[ok]].sum(axis=1),
                                          kind="stable")]:
                for t in (cand.by_unit[u] if push else (plan[u],)):
                    t = int(t)
                    if t == first and r != first:  # close the cycle
                        last = (int(u), r, t) if push else (int(u), t, r)
                        if _apply(bands, plan, load, [*_moves(parent, r, push), last],
                                  first):
                            return True
                        continue
                    if t in parent:
                        continue
                    parent[t] = (r, int(u))
                    arrive = -sign * bands.amount[u]  # t gains what r passes, or loses
                    # what r takes from it
                    now = bands.violation(load[t], np.array([t]))[0]
                    then = bands.violation((load[t] + arrive)[None], np.array([t]))[0]
                    if then <= now + TOL and _apply(bands, plan, load,
                                                    _moves(parent, t, push), first):
                        return True
                    nxt.append((t, arrive))
        frontier = nxt
    return False


def _moves(parent: dict[int, tuple[int, int] | None], end: int, push: bool
           ) -> list[tuple[int, int, int]]:
    """The chain from the search's first rep to `end` as (unit, from, to) moves."""
    moves = []
    rep = end
    while (link := parent[rep]) is not None:
        prev, unit = link
        moves.append((unit, prev, rep) if push else (unit, rep, prev))
        rep = prev
    return moves


def _apply(bands: Bands, plan: np.ndarray, load: np.ndarray, moves: list[tuple[int, int, int]],
           first: int) -> bool:
    """Applies `moves` if they lower `first`'s violation without raising another rep's or
    the budget's."""
    reps = np.array(sorted({r for _, a, b in moves for r in (a, b)}))
    after = load[reps].copy()
    at = {int(r): i for i, r in enumerate(reps)}
    trial = plan.copy()
    for unit, frm, to in moves:
        after[at[frm]] -= bands.amount[unit]
        after[at[to]] += bands.amount[unit]
        trial[unit] = to
    before_v, after_v = bands.violation(load[reps], reps), bands.violation(after, reps)
    others = reps != first
    if not after_v[~others][0] < before_v[~others][0] - TOL or \
            (after_v[others] > before_v[others] + TOL).any() or \
            bands.over_budget(trial) > bands.over_budget(plan) + TOL:
        return False
    for unit, frm, to in moves:
        plan[unit] = to
        load[frm] -= bands.amount[unit]
        load[to] += bands.amount[unit]
    return True
