"""A simple greedy baseline to compare the optimiser with (tests only).

Largest shortage (in units) first, ties by SKU and location; for each, the nearest donor (fewest
transit days) ships as much as it can spare (its lowest balance above safety stock over the horizon)
departing tomorrow; then the next donor. Only reallocations; no joint view of the network.
"""

from __future__ import annotations

import pandas as pd

from soe_assets.respond.candidates import Problem


def greedy_value(problem: Problem) -> tuple[float, pd.DataFrame]:
    """(revenue protected, shipments made: sku_id, from_location_id, to_location_id, qty)."""
    pos = problem.positions
    spare = (pos.assign(m=(pos["proj"] - pos["ss"]).clip(lower=0)).groupby(["sku_id", "location_id"])["m"].min())
    spare = spare.to_dict()
    acts = problem.actions
    lanes = acts[acts["action_type"].isin(["reallocate_stock", "alternate_source"]) & (acts["depart_week"] == 0)]
    shipped = []
    total = 0.0
    # ties broken by place, so the baseline answers the same way on every run
    by_size = problem.shortages.sort_values(["short_qty", "sku_id", "location_id"], ascending=[False, True, True])
    for short in by_size.itertuples():
        series = pos[(pos["sku_id"] == short.sku_id) & (pos["location_id"] == short.location_id)].set_index("week_index")
        fence = series[series["inside_time_fence"]]
        proj = fence["proj"].copy()
        options = lanes[(lanes["sku_id"] == short.sku_id) & (lanes["to_location_id"] == short.location_id)]
        for lane in options.sort_values(["transit_days", "from_location_id"]).itertuples():
            need = max(0.0, -proj.min())
            give = min(need, spare.get((short.sku_id, lane.from_location_id), 0.0))
            if give <= 0:
                continue
            spare[(short.sku_id, lane.from_location_id)] -= give
            proj[proj.index >= lane.arrive_week] += give
            shipped.append((short.sku_id, lane.from_location_id, short.location_id, give))
        covered = short.short_qty - max(0.0, -proj.min())
        total += covered * float(fence["price"].iloc[0])
    return total, pd.DataFrame(shipped, columns=["sku_id", "from_location_id", "to_location_id", "qty"])
