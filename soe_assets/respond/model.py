"""The joint decision: one linear programme per block of SKUs, solved with HiGHS (``scipy.optimize.linprog``).

Notation (per SKU s; locations l; horizon weeks k = 0..H-1; fence weeks k < F):

- ``P[l,k]`` projected available balance (end of week) of the trusted view, ``SS[l,k]`` safety stock.
- ``S[l] = max(0, max_{k<F} -P[l,k])``: the shortage of a short location inside the fence.

Variables

- ``x[a] >= 0`` units of candidate action ``a`` (``candidates.py``): a lane transfer departing in a
  fence week, an expedite of a PO line / in-transit shipment into an earlier fence week, a
  production pull-in into an earlier fence week, a reprioritisation (order A of a short SKU runs in
  fence week t in the slot of order B of another SKU on the same full resource; B takes A's old
  week: +1 for A's SKU and -1 for B's SKU at the plant in weeks t..a-1). Each action changes the projection of the weeks
  it covers by ``E[a,l,k]`` in {-1, 0, +1} per unit, so the new balance is
  ``P'[l,k] = P[l,k] + sum_a E[a,l,k] x[a]``.
- ``u[l] in [0, S[l]]`` the shortage left uncovered at short location l.
- ``w[l,k] in [0, -P[l,k]]`` the shortage left in fence week k (weeks with ``P < 0``): demand still waiting.

Objective (minimise; equal to maximising revenue protected minus action cost and waiting, up to a constant)

    sum_l price[s] * u[l]  +  sum_a cost[a] * x[a]  +  late * sum_{l,k} price[s] * w[l,k]

``price[s] * (S[l] - u[l])`` is the revenue protected; ``late`` (``late_service_share_per_week``) prices a
unit waiting a week, so units that serve the backorders earlier are worth something even where the worst
week cannot be covered (week 0, which nothing reaches in time); ``cost[a]`` per unit is the lane cost +
handling for transfers, premium + per-day rate for expedites, pull-ins and reprioritisations
(``RespondConfig``), plus
a tiny epsilon so no unneeded unit moves.

Constraints

1. No new exception at a location that gives stock (donors, every week of the horizon, which also
   covers the transfer's arrival): ``P'[l,k] >= min(SS[l,k], P[l,k])``, i.e.
   ``sum_a E[a,l,k] x[a] >= -max(0, P[l,k] - SS[l,k])``. A donor at or above safety stock stays at or
   above it; one already below gives nothing in and before that week. The SKU-location of an order a
   reprioritisation pushes later is such a location.
2. Shortage cover (short locations, fence weeks with ``P < 0``): ``sum_a E[a,l,k] x[a] + u[l] >= -P[l,k]``
   and ``sum_a E[a,l,k] x[a] + w[l,k] >= -P[l,k]``.
   Lane transit times are in ``E``: a transfer counts at the receiver only from its arrival week.
3. Resource capacity (per resource and fence week t): ``sum of pull-ins finishing in t <= spare[r,t]``
   (capacity minus planned load), so no capacity overload is created. Reprioritisations are
   capacity-neutral (A and B swap slots) and take no spare capacity.
4. Supply availability (per PO line / shipment / production order): ``sum over its target weeks of
   x[a] <= open qty``; a reprioritisation counts against both the order it pulls in and the one it
   pushes later.
5. Departures (donor l, departure week d): a transfer leaves on the Monday of d (week 0: tomorrow), so
   it ships the stock on hand at the start of d, not receipts or pulled-in production landing later in
   d, and so do the transfers booked to leave l in d (``B``, from ``booked_transfer_out_qty``):
   ``O[l,d] - B[l,d] + sum_a E[a,l,d-1] x[a] - sum_{a departs l in d} x[a] >= min(0, O[l,d] - B[l,d])`` with
   ``O`` the opening balance (the stock at as_of for d = 0, else ``P[l,d-1]``), in every week l ships
   from and every week a booked transfer leaves it.
6. Demand room (donor l serving customers, ``demand_above_plan`` window ending in week e): transfers down the
   network are demand at their donor, so ``sum_{a down from l, departing <= e} x[a] < threshold - demand`` of
   that window (``candidates.departures_in_demand_windows``), where l is not above plan already: no new
   exception there.

Decomposition: SKUs are independent except through shared resources (3) and reprioritisations
(which lower another SKU). SKUs linked by a resource candidate or a reprioritisation are merged into one connected component (``scipy.sparse.csgraph``); components
are packed into blocks of about ``block_max_variables`` variables and each block is one sparse LP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from soe_assets.respond.candidates import Problem, departures_in_demand_windows
from soe_assets.respond.config import RespondConfig


@dataclass
class Solution:
    actions: pd.DataFrame
    """The candidate actions with ``qty`` (LP value, continuous) added."""
    failed_blocks: int
    """Blocks HiGHS did not solve (a time-out, a numerical failure): their actions stay at 0."""
    unsolved_skus: frozenset[str] = frozenset()
    """The SKUs of those blocks: their escalations say the model was not solved, not that nothing can help."""


def expand_weeks(effects: pd.DataFrame) -> pd.DataFrame:
    """One row per (effect, week) the effect covers: action_id, sku_id, location_id, week_index, sign."""
    if not len(effects):
        return pd.DataFrame(columns=["action_id", "sku_id", "location_id", "week_index", "sign"])
    start = effects["start_week"].to_numpy(dtype=np.int64)
    n = np.maximum(effects["end_week"].to_numpy(dtype=np.int64) - start + 1, 0)
    rep = np.repeat(np.arange(len(effects)), n)
    within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    out = effects.iloc[rep][["action_id", "sku_id", "location_id", "sign"]].reset_index(drop=True)
    out["week_index"] = start[rep] + within
    return out


def _blocks(problem: Problem, config: RespondConfig) -> pd.Series:
    """Block number per SKU (index sku_id): connected components over shared resources and over the
    SKUs one action touches (a reprioritisation lowers another SKU), packed."""
    from scipy import sparse  # scipy is imported here, not at start-up (~0.3 s; see background_import)
    from scipy.sparse.csgraph import connected_components

    acts = problem.actions
    skus = pd.Index(pd.unique(np.concatenate([problem.shortages["sku_id"].to_numpy(dtype=object),
                                              problem.effects["sku_id"].to_numpy(dtype=object)])))
    linked = acts[acts["resource_key"].notna()][["sku_id", "resource_key"]].drop_duplicates()
    resources = pd.Index(linked["resource_key"].unique())
    touched = problem.effects[["action_id", "sku_id"]].merge(
        acts[["action_id", "sku_id"]].rename(columns={"sku_id": "action_sku"}), on="action_id")
    touched = touched[touched["sku_id"] != touched["action_sku"]][["action_sku", "sku_id"]].drop_duplicates()
    n = len(skus) + len(resources)
    graph = sparse.coo_matrix(
        (np.ones(len(linked) + len(touched)),
         (np.concatenate([skus.get_indexer(linked["sku_id"]), skus.get_indexer(touched["action_sku"])]),
          np.concatenate([len(skus) + resources.get_indexer(linked["resource_key"]), skus.get_indexer(touched["sku_id"])]))),
        shape=(n, n))
    _, component = connected_components(graph, directed=False)
    per_sku = acts.groupby("sku_id").size().reindex(skus, fill_value=0).to_numpy() + 1
    comp = pd.DataFrame({"component": component[: len(skus)], "size": per_sku}, index=skus)
    sizes = comp.groupby("component")["size"].sum()
    packed = (sizes.cumsum() - sizes) // max(config.block_max_variables, 1)
    return comp["component"].map(packed).rename("block")


class _Rows:
    """The constraint rows of the LP as they are built: the non-zeros (row, column, value) of ``A_ub``, and per
    row its bound ``b_ub`` and its block."""

    def __init__(self) -> None:
        self.count = 0
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.bounds: list[np.ndarray] = []
        self.blocks: list[np.ndarray] = []

    def add(self, bounds: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        """New rows with these bounds and blocks; returns their numbers."""
        numbers = self.count + np.arange(len(bounds))
        self.count += len(bounds)
        self.bounds.append(np.asarray(bounds, dtype=float))
        self.blocks.append(np.asarray(blocks))
        return numbers

    def coefficients(self, rows, cols, vals) -> None:
        self.rows.append(np.asarray(rows))
        self.cols.append(np.asarray(cols))
        self.vals.append(np.asarray(vals, dtype=float))


def solve(problem: Problem, config: RespondConfig) -> Solution:
    from scipy import sparse
    from scipy.optimize import linprog

    acts = problem.actions.reset_index(drop=True)
    shortages = problem.shortages.reset_index(drop=True)
    if not len(shortages):
        return Solution(acts.assign(qty=0.0), 0)
    block_of_sku = _blocks(problem, config)
    pos = problem.positions[["sku_id", "location_id", "week_index", "proj", "ss", "inside_time_fence", "opening",
                             "booked_out"]]
    n_a, n_u = len(acts), len(shortages)
    short_pos = shortages[["sku_id", "location_id"]].assign(u_col=n_a + np.arange(n_u))
    cover_rows = pos[pos["inside_time_fence"] & (pos["proj"] < 0)].merge(short_pos, on=["sku_id", "location_id"])
    cover_rows = cover_rows.reset_index(drop=True)
    n_w = len(cover_rows)
    cover_rows["w_col"] = n_a + n_u + np.arange(n_w)
    # ---- variables: actions, then u, then w
    price = problem.positions.groupby("sku_id")["price"].first()
    var_block = np.concatenate([block_of_sku.reindex(acts["sku_id"]).to_numpy(),
                                block_of_sku.reindex(shortages["sku_id"]).to_numpy(),
                                block_of_sku.reindex(cover_rows["sku_id"]).to_numpy()]).astype(np.int64)
    # + tie-breaker 0.001 per week of later departure: between equal plans, ship early (a buffer on transit)
    tie = 0.001 * np.clip(acts["depart_week"].to_numpy(dtype=float), 0, None)
    cost = np.concatenate([acts["cost_per_unit"].to_numpy(dtype=float) + config.epsilon_cost_per_unit + tie,
                           price.reindex(shortages["sku_id"]).fillna(0).to_numpy(dtype=float),
                           config.late_service_share_per_week
                           * price.reindex(cover_rows["sku_id"]).fillna(0).to_numpy(dtype=float)])
    upper = np.concatenate([acts["upper_qty"].to_numpy(dtype=float), shortages["short_qty"].to_numpy(dtype=float),
                            -cover_rows["proj"].to_numpy(dtype=float)])
    action_pos = pd.Series(np.arange(n_a), index=acts["action_id"].to_numpy())

    cells = expand_weeks(problem.effects)
    cells["col"] = action_pos.reindex(cells["action_id"]).to_numpy()
    lp = _Rows()

    # 1. donor floors (only locations some action lowers), as  -sum E x <= max(0, P - SS)
    lowered = cells[cells["sign"] < 0][["sku_id", "location_id"]].drop_duplicates()
    floor_rows = pos.merge(lowered, on=["sku_id", "location_id"]).reset_index(drop=True)
    floor_rows["row"] = lp.add(np.maximum(floor_rows["proj"] - floor_rows["ss"], 0).to_numpy(float),
                               block_of_sku.reindex(floor_rows["sku_id"]).to_numpy())
    nz = cells.merge(floor_rows[["sku_id", "location_id", "week_index", "row"]], on=["sku_id", "location_id", "week_index"])
    lp.coefficients(nz["row"], nz["col"], -nz["sign"].to_numpy(float))

    # 5. departures, as  -sum E[l,d-1] x + sum departing x <= max(0, O[l,d] - B[l,d]): in every week a donor
    #    ships from, and in every week a booked transfer leaves a lowered donor (it needs its stock on Monday too)
    acts_pos = acts.assign(col=np.arange(n_a), block=var_block[:n_a])
    keys = ["sku_id", "location_id", "week_index"]
    departing = acts_pos[acts_pos["depart_week"] >= 0].rename(
        columns={"from_location_id": "location_id", "depart_week": "week_index"})
    booked_out = pos[pos["booked_out"] > 0].merge(lowered, on=["sku_id", "location_id"])[keys]
    dep_rows = (pd.concat([departing[keys], booked_out]).drop_duplicates()
                .merge(pos[[*keys, "opening", "booked_out"]], on=keys, how="left"))
    dep_rows["row"] = lp.add(
        np.maximum(dep_rows["opening"].fillna(0.0) - dep_rows["booked_out"].fillna(0.0), 0).to_numpy(float),
        block_of_sku.reindex(dep_rows["sku_id"]).to_numpy())
    leaving = departing.merge(dep_rows[[*keys, "row"]], on=keys)
    before = cells.assign(week_index=cells["week_index"] + 1).merge(dep_rows[[*keys, "row"]], on=keys)
    lp.coefficients(leaving["row"], leaving["col"], np.ones(len(leaving)))
    lp.coefficients(before["row"], before["col"], -before["sign"].to_numpy(float))

    # 2. shortage cover, as  -sum E x - u <= P  (the worst week) and  -sum E x - w <= P  (each week)
    for slack_col in ("u_col", "w_col"):
        rows = cover_rows.assign(row=lp.add(cover_rows["proj"].to_numpy(float),
                                            block_of_sku.reindex(cover_rows["sku_id"]).to_numpy()))
        nz = cells.merge(rows[["sku_id", "location_id", "week_index", "row"]], on=["sku_id", "location_id", "week_index"])
        lp.coefficients(nz["row"], nz["col"], -nz["sign"].to_numpy(float))
        lp.coefficients(rows["row"], rows[slack_col], -np.ones(n_w))

    # 3. resource capacity:  sum x <= spare (pull-ins; a reprioritisation is capacity-neutral: capacity_week -1)
    pulls = acts_pos[acts_pos["resource_key"].notna() & (acts_pos["capacity_week"] >= 0)]
    if len(pulls):
        cap_rows = pulls.groupby(["resource_key", "capacity_week"]).agg(block=("block", "first")).reset_index()
        cap_rows = cap_rows.merge(problem.capacity.rename(columns={"week_index": "capacity_week"}),
                                  on=["resource_key", "capacity_week"], how="left")
        cap_rows["row"] = lp.add(cap_rows["spare_qty"].fillna(0).to_numpy(float), cap_rows["block"].to_numpy())
        nz = pulls.merge(cap_rows[["resource_key", "capacity_week", "row"]], on=["resource_key", "capacity_week"])
        lp.coefficients(nz["row"], nz["col"], np.ones(len(nz)))

    # 4. supply availability per item:  sum x <= open qty (a reprioritisation uses up both orders it swaps)
    items = pd.concat([acts_pos[["item_key", "item_qty", "block", "col"]],
                       acts_pos[["other_item_key", "other_item_qty", "block", "col"]].set_axis(
                           ["item_key", "item_qty", "block", "col"], axis=1)], ignore_index=True)
    items = items[items["item_key"].notna()]
    if len(items):
        item_rows = items.groupby("item_key").agg(qty=("item_qty", "first"), block=("block", "first")).reset_index()
        item_rows["row"] = lp.add(item_rows["qty"].to_numpy(float), item_rows["block"].to_numpy())
        nz = items.merge(item_rows[["item_key", "row"]], on="item_key")
        lp.coefficients(nz["row"], nz["col"], np.ones(len(nz)))

    # 6. demand room at donors serving customers:  sum of transfers down the network leaving by a window's end
    #    <= what the window takes before the donor would be above plan (a departure after the last window counts
    #    in it)
    nz = departures_in_demand_windows(problem, acts_pos)
    if len(nz):
        room_rows = nz[["sku_id", "location_id", "end_week", "room_qty"]].drop_duplicates(
            ["sku_id", "location_id", "end_week"]).reset_index(drop=True)
        # strictly below the threshold: a hair under it, never negative
        room_rows["row"] = lp.add(np.maximum(room_rows["room_qty"].to_numpy(float) - 1e-3, 0.0),
                                  block_of_sku.reindex(room_rows["sku_id"]).to_numpy())
        nz = nz.merge(room_rows[["sku_id", "location_id", "end_week", "row"]], on=["sku_id", "location_id", "end_week"])
        lp.coefficients(nz["row"], nz["col"], np.ones(len(nz)))

    row_idx = np.concatenate(lp.rows).astype(np.int64)
    col_idx = np.concatenate(lp.cols).astype(np.int64)
    vals = np.concatenate(lp.vals)
    rhs = np.concatenate(lp.bounds).astype(float)
    row_block = np.concatenate(lp.blocks).astype(np.int64)
    n_rows = lp.count

    # ---- local numbering inside each block
    n_vars = n_a + n_u + n_w
    var_order = np.argsort(var_block, kind="stable")
    var_local = np.empty(n_vars, dtype=np.int64)
    var_counts = np.bincount(var_block, minlength=row_block.max(initial=0) + 1)
    var_starts = np.concatenate([[0], np.cumsum(var_counts)[:-1]])
    var_local[var_order] = np.arange(n_vars) - np.repeat(var_starts, var_counts)
    row_order = np.argsort(row_block, kind="stable")
    row_local = np.empty(n_rows, dtype=np.int64)
    n_blocks = len(var_counts)
    row_counts = np.bincount(row_block, minlength=n_blocks)
    row_starts = np.concatenate([[0], np.cumsum(row_counts)[:-1]])
    row_local[row_order] = np.arange(n_rows) - np.repeat(row_starts, row_counts)
    nz_block = row_block[row_idx]
    nz_order = np.argsort(nz_block, kind="stable")
    nz_counts = np.bincount(nz_block, minlength=n_blocks)
    nz_starts = np.concatenate([[0], np.cumsum(nz_counts)[:-1]])

    x = np.zeros(n_vars)
    failed: list[int] = []
    for b in range(n_blocks):
        if var_counts[b] == 0:
            continue
        vsel = var_order[var_starts[b]: var_starts[b] + var_counts[b]]
        rsel = row_order[row_starts[b]: row_starts[b] + row_counts[b]]
        zsel = nz_order[nz_starts[b]: nz_starts[b] + nz_counts[b]]
        c_b = cost[vsel]
        bounds = np.column_stack([np.zeros(len(vsel)), upper[vsel]])
        if len(rsel):
            a_b = sparse.csr_matrix((vals[zsel], (row_local[row_idx[zsel]], var_local[col_idx[zsel]])),
                                    shape=(len(rsel), len(vsel)))
            b_b = np.empty(len(rsel))
            b_b[row_local[rsel]] = rhs[rsel]
            result = linprog(c_b, A_ub=a_b, b_ub=b_b, bounds=bounds, method="highs")
        else:
            result = linprog(c_b, bounds=bounds, method="highs")
        if result.status != 0:
            failed.append(b)
        if result.status == 0:
            x[vsel] = result.x
        else:  # infeasible cannot happen (x = 0, u = S is feasible); keep "do nothing" on any failure
            slack = vsel[vsel >= n_a]
            x[slack] = upper[slack]
    unsolved = frozenset(block_of_sku.index[block_of_sku.isin(failed)])
    return Solution(acts.assign(qty=x[:n_a]), len(failed), unsolved)
