"""Sample-network generator behind `soe generate`.

Simulates one consistent supply network (plants -> DCs -> optional stores) over
the past 12 and next 13 ISO weeks around `as_of`, then writes it as a landing
zone exactly per `shared/spec/landing-zone.md`: several dated extracts per
source (CSV and Parquet mixed), later extracts upserting rows of earlier ones.

Clean SKU-locations carry ordinary noise only; a handful of problems are
planted at distinct SKU-locations and listed in `_planted_problems.json` so the
detection engine can be scored on precision and recall.

Everything is vectorised over records; the only loops run over weeks (the
replenishment simulation), SKU blocks, sources, extract dates and planted
problems. SKUs are simulated in fixed-size blocks, so memory stays bounded and
the output for a seed does not depend on the machine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

DEFAULT_AS_OF = date(2026, 11, 20)
PAST_WEEKS = 12
FUTURE_WEEKS = 13
N_WEEKS = PAST_WEEKS + FUTURE_WEEKS
CURRENT_WEEK = PAST_WEEKS  # index of week 0 (the week containing as_of)
EXTRACT_DAYS_BEFORE_AS_OF = (21, 14, 7, 0)
MASTER_EXTRACT_DAYS_BEFORE_AS_OF = 28
FIRM_HORIZON_DAYS = 84  # supply orders exist this long before they are due
BLOCK_SKUS = 10_000
NEVER = 1_000_000  # day number standing for "has not happened"
EPOCH = date(1970, 1, 1)

MAKE, BUY_TO_PLANT, BUY_TO_DC = 0, 1, 2
SOURCING_BY_SKU_MOD_5 = np.array([MAKE, MAKE, MAKE, BUY_TO_PLANT, BUY_TO_DC])
FAMILIES = ["beverages", "snacks", "dairy", "household", "personal_care", "frozen", "bakery", "pet_care"]
REGIONS = ["north", "south", "east", "west", "central"]
N_CUSTOMERS = 300
ORDER_WEEKDAY_WEIGHTS = np.array([0.26, 0.22, 0.20, 0.18, 0.14])  # Mon..Fri
POS_WEEKDAY_WEIGHTS = np.array([0.12, 0.12, 0.13, 0.14, 0.17, 0.20, 0.12])  # Mon..Sun

SOURCES = [
    "skus", "locations", "lanes", "sop_plan", "sales_orders", "inventory_snapshots",
    "purchase_orders", "production_orders", "resource_capacity", "shipments", "pos_sales",
]
STR, DATE, TS, INT, NUM = pa.string(), pa.date32(), pa.timestamp("s"), pa.int64(), pa.float64()
SCHEMAS: dict[str, pa.Schema] = {
    "skus": pa.schema([("sku_id", STR), ("product_family", STR), ("unit_cost", NUM), ("unit_price", NUM)]),
    "locations": pa.schema([("location_id", STR), ("location_type", STR), ("region", STR)]),
    "lanes": pa.schema([("from_location_id", STR), ("to_location_id", STR), ("transit_days", INT), ("cost_per_unit", NUM)]),
    "sop_plan": pa.schema([
        ("plan_version", STR), ("committed_at", TS), ("sku_id", STR), ("location_id", STR), ("week_start", DATE),
        ("demand_qty", NUM), ("supply_qty", NUM), ("safety_stock_qty", NUM)]),
    "sales_orders": pa.schema([
        ("order_id", STR), ("line_no", INT), ("customer_id", STR), ("sku_id", STR), ("location_id", STR),
        ("order_date", DATE), ("requested_date", DATE), ("promised_date", DATE), ("ordered_qty", NUM),
        ("shipped_qty", NUM), ("ship_date", DATE), ("status", STR)]),
    "inventory_snapshots": pa.schema([
        ("snapshot_date", DATE), ("sku_id", STR), ("location_id", STR), ("on_hand_qty", NUM), ("quality_hold_qty", NUM)]),
    "purchase_orders": pa.schema([
        ("po_id", STR), ("line_no", INT), ("supplier_id", STR), ("sku_id", STR), ("location_id", STR),
        ("order_date", DATE), ("promised_date", DATE), ("confirmed_date", DATE), ("ordered_qty", NUM),
        ("received_qty", NUM), ("received_date", DATE), ("status", STR)]),
    "production_orders": pa.schema([
        ("production_order_id", STR), ("sku_id", STR), ("location_id", STR), ("resource_id", STR),
        ("planned_start_date", DATE), ("planned_finish_date", DATE), ("planned_qty", NUM), ("completed_qty", NUM),
        ("actual_finish_date", DATE), ("status", STR)]),
    "resource_capacity": pa.schema([("location_id", STR), ("resource_id", STR), ("week_start", DATE), ("capacity_qty", NUM)]),
    "shipments": pa.schema([
        ("shipment_id", STR), ("sku_id", STR), ("from_location_id", STR), ("to_location_id", STR), ("ship_date", DATE),
        ("planned_arrival_date", DATE), ("eta_date", DATE), ("actual_arrival_date", DATE), ("qty", NUM)]),
    "pos_sales": pa.schema([("sale_date", DATE), ("sku_id", STR), ("location_id", STR), ("qty", NUM)]),
}
PRIMARY_KEYS: dict[str, list[str]] = {
    "skus": ["sku_id"], "locations": ["location_id"], "lanes": ["from_location_id", "to_location_id"],
    "sop_plan": ["plan_version", "sku_id", "location_id", "week_start"],
    "sales_orders": ["order_id", "line_no"], "inventory_snapshots": ["snapshot_date", "sku_id", "location_id"],
    "purchase_orders": ["po_id", "line_no"], "production_orders": ["production_order_id"],
    "resource_capacity": ["location_id", "resource_id", "week_start"], "shipments": ["shipment_id"],
    "pos_sales": ["sale_date", "sku_id", "location_id"],
}
PLANTED_PROBLEM_KINDS = [
    "demand_spike", "demand_drop", "supplier_slip", "late_transfer", "production_shortfall",
    "capacity_overload", "quality_hold", "excess_stock",
]


@dataclass(frozen=True)
class NetworkSize:
    skus: int = 40
    dcs: int = 3
    plants: int = 2
    stores: int = 0


@dataclass
class GenerationSummary:
    out_dir: Path
    as_of: date
    rows_per_source: dict[str, int]
    files_written: list[Path]
    planted_problems: list[dict[str, str]]


# ----------------------------------------------------------------------------- dates and ids

def day_number(d: date) -> int:
    return (d - EPOCH).days


def day_to_date(day: int) -> date:
    return EPOCH + timedelta(days=int(day))


def _dates(days: np.ndarray) -> pa.Array:
    days = np.asarray(days, dtype=np.int64)
    return pa.array(days.astype(np.int32), type=pa.int32(), mask=days >= NEVER).cast(DATE)


def _numbered(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), STR), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _take(labels: pa.Array, codes: np.ndarray) -> pa.Array:
    return labels.take(pa.array(np.asarray(codes, dtype=np.int64)))


def _num(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.float64))


def _width(count: int, minimum: int) -> int:
    return max(minimum, len(str(max(count, 1))))


# ----------------------------------------------------------------------------- writing

class _ExtractFile:
    """One extract file written in row batches (CSV: ISO dates, empty for null, no quotes)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            self._csv_schema = pa.schema([(f.name, STR if f.type == TS else f.type) for f in schema])
            self._handle = open(path, "wb")
            self._handle.write((",".join(schema.names) + "\n").encode())
            self._writer: pacsv.CSVWriter | pq.ParquetWriter = pacsv.CSVWriter(
                self._handle, self._csv_schema,
                write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))
        else:
            self._writer = pq.ParquetWriter(path, schema)

    def write(self, columns: dict[str, pa.Array]) -> None:
        table = pa.table(columns, schema=self.schema)
        if len(table) == 0:
            return
        self.rows += len(table)
        if isinstance(self._writer, pacsv.CSVWriter):
            for name in self.schema.names:
                if self.schema.field(name).type == TS:
                    index = table.schema.get_field_index(name)
                    table = table.set_column(index, name, pc.strftime(table[name], format="%Y-%m-%dT%H:%M:%S"))
            table = table.cast(self._csv_schema)
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()
        if self.path.suffix == ".csv":
            self._handle.close()


# ----------------------------------------------------------------------------- the network

@dataclass
class _Network:
    """Master data and calendar shared by every SKU block."""

    seed: int
    size: NetworkSize
    as_of_day: int
    week_monday: np.ndarray  # day number of each simulated week's Monday
    sku_labels: pa.Array
    location_labels: pa.Array
    location_type: np.ndarray
    plant_locations: np.ndarray
    dc_locations: np.ndarray
    store_locations: np.ndarray
    store_dc: np.ndarray  # index into dcs of the DC serving each store
    transit_plant_dc: np.ndarray  # (plants, dcs)
    family: np.ndarray
    season: np.ndarray  # (families, weeks)
    sourcing: np.ndarray
    home_plant: np.ndarray
    supplier: np.ndarray
    resource: np.ndarray  # global resource index of make SKUs, -1 otherwise
    resource_plant: np.ndarray
    resource_labels: pa.Array
    id_width: dict[str, int]  # fixed per network so ids agree across blocks and extracts
    planted: list[dict[str, str]] = field(default_factory=list)
    shortfall_resources: set[int] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=lambda: {"SO": 0, "PO": 0, "MO": 0, "SH": 0})

    @property
    def n_locations(self) -> int:
        return len(self.location_type)


def _build_network(seed: int, size: NetworkSize, as_of: date) -> _Network:
    rng = np.random.default_rng([seed, 0])
    as_of_day = day_number(as_of)
    week0_monday = as_of_day - as_of.weekday()
    week_monday = week0_monday + 7 * (np.arange(N_WEEKS) - CURRENT_WEEK)

    plant_names = [f"PLANT-{i + 1:02d}" for i in range(size.plants)]
    dc_names = [f"DC-{i + 1:02d}" for i in range(size.dcs)]
    store_names = [f"STORE-{i + 1:02d}" for i in range(size.stores)]
    location_type = np.array(["plant"] * size.plants + ["dc"] * size.dcs + ["store"] * size.stores)
    plant_locations = np.arange(size.plants)
    dc_locations = size.plants + np.arange(size.dcs)
    store_locations = size.plants + size.dcs + np.arange(size.stores)
    store_dc = np.arange(size.stores) % max(size.dcs, 1)
    transit_plant_dc = 1 + (plant_locations[:, None] + np.arange(size.dcs)[None, :]) % 4

    sku_index = np.arange(size.skus)
    sourcing = SOURCING_BY_SKU_MOD_5[sku_index % 5]
    home_plant = (sku_index // 5) % size.plants
    n_suppliers = int(np.clip(size.skus // 200, 3, 200))
    supplier = rng.integers(0, n_suppliers, size.skus)
    family = rng.integers(0, len(FAMILIES), size.skus)
    phase = rng.random(len(FAMILIES))
    week_of_year = np.array([day_to_date(d).isocalendar().week for d in week_monday])
    season = 1 + 0.12 * np.sin(2 * np.pi * (week_of_year[None, :] / 52 + phase[:, None]))

    made_per_plant = max(1, math.ceil(np.count_nonzero(sourcing == MAKE) / size.plants))
    resources_per_plant = int(np.clip(math.ceil(made_per_plant / 2500), 2, 26))
    resource = np.where(
        sourcing == MAKE, home_plant * resources_per_plant + (sku_index // (5 * size.plants)) % resources_per_plant, -1)
    resource_plant = np.repeat(plant_locations, resources_per_plant)
    resource_names = [f"RES-{p + 1:02d}-{chr(65 + r)}" for p in range(size.plants) for r in range(resources_per_plant)]

    return _Network(
        seed=seed, size=size, as_of_day=as_of_day, week_monday=week_monday,
        sku_labels=_numbered("SKU-", sku_index + 1, _width(size.skus, 4)),
        location_labels=pa.array(plant_names + dc_names + store_names),
        location_type=location_type, plant_locations=plant_locations, dc_locations=dc_locations,
        store_locations=store_locations, store_dc=store_dc, transit_plant_dc=transit_plant_dc,
        family=family, season=season, sourcing=sourcing, home_plant=home_plant, supplier=supplier,
        resource=resource, resource_plant=resource_plant, resource_labels=pa.array(resource_names),
        id_width={  # from upper bounds on the number of records
            "SO": _width(size.skus * size.dcs * N_WEEKS * 4, 7), "PO": _width(size.skus * (size.dcs + 1) * N_WEEKS * 2, 6),
            "MO": _width(size.skus * N_WEEKS * 2, 6), "SH": _width(size.skus * (size.dcs + size.stores) * N_WEEKS * 2, 7)},
    )


def _master_tables(net: _Network) -> dict[str, dict[str, pa.Array]]:
    rng = np.random.default_rng([net.seed, 1])
    n = net.size.skus
    unit_cost = np.round(rng.lognormal(np.log(8.0), 0.6, n), 2)
    unit_price = np.round(unit_cost * rng.uniform(1.25, 2.2, n), 2)
    skus = {"sku_id": net.sku_labels, "product_family": _take(pa.array(FAMILIES), net.family),
            "unit_cost": _num(unit_cost), "unit_price": _num(unit_price)}
    repriced = np.flatnonzero(rng.random(n) < 0.03)
    skus_update = {"sku_id": _take(net.sku_labels, repriced),
                   "product_family": _take(pa.array(FAMILIES), net.family[repriced]),
                   "unit_cost": _num(unit_cost[repriced]), "unit_price": _num(np.round(unit_price[repriced] * 1.05, 2))}

    region_of_dc = np.arange(net.size.dcs) % len(REGIONS)
    region = np.concatenate([np.arange(net.size.plants) % len(REGIONS), region_of_dc, region_of_dc[net.store_dc]])
    locations = {"location_id": net.location_labels, "location_type": pa.array(net.location_type),
                 "region": _take(pa.array(REGIONS), region)}

    plant_from, dc_to = np.meshgrid(net.plant_locations, net.dc_locations, indexing="ij")
    dc_from, dc_other = np.meshgrid(net.dc_locations, net.dc_locations, indexing="ij")
    between_dcs = dc_from != dc_other
    from_loc = np.concatenate([plant_from.ravel(), dc_from[between_dcs], net.dc_locations[net.store_dc]])
    to_loc = np.concatenate([dc_to.ravel(), dc_other[between_dcs], net.store_locations])
    transit = np.concatenate([net.transit_plant_dc.ravel(), np.full(between_dcs.sum(), 2),
                              np.ones(net.size.stores, dtype=np.int64)])
    cost = np.round(0.15 + 0.1 * transit + rng.uniform(0, 0.1, len(transit)), 2)
    lanes = {"from_location_id": _take(net.location_labels, from_loc), "to_location_id": _take(net.location_labels, to_loc),
             "transit_days": pa.array(transit.astype(np.int64)), "cost_per_unit": _num(cost)}
    return {"skus": skus, "skus_update": skus_update, "locations": locations, "lanes": lanes}


# ----------------------------------------------------------------------------- one block of SKUs

@dataclass
class _Records:
    """A source's records with their lifecycle (day numbers, NEVER = not happened)."""

    columns: dict[str, np.ndarray]
    created: np.ndarray
    change_days: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.created)


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _split_weekly_into_lines(qty: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split weekly quantities into 1-3 order lines: returns (flat cell index, line qty)."""
    flat_qty = qty.ravel()
    cells = np.flatnonzero(flat_qty > 0)
    cell_qty = flat_qty[cells]
    counts = 1 + (cell_qty >= 30).astype(np.int64) + (cell_qty >= 120)
    group = np.repeat(np.arange(len(cells)), counts)
    weights = rng.random(len(group)) + 0.5
    share = weights / np.bincount(group, weights)[group]
    line_qty = np.floor(share * cell_qty[group])
    first_line = np.cumsum(counts) - counts
    line_qty[first_line] += cell_qty - np.bincount(group, line_qty, minlength=len(cells))
    return cells[group], line_qty


def _group_numbers(group_keys: list[np.ndarray], line_keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort rows by group then line keys; return (row order, group number per sorted row, 1-based line_no)."""
    order = np.lexsort((group_keys + line_keys)[::-1])
    if len(order) == 0:
        return order, order, order
    sorted_keys = np.stack([k[order] for k in group_keys])
    new_group = np.r_[True, np.any(sorted_keys[:, 1:] != sorted_keys[:, :-1], axis=0)]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    line_no = np.arange(len(order)) - starts[group] + 1
    return order, group, line_no


def _late_days(rng: np.random.Generator, planned: np.ndarray, share: float, as_of_day: int) -> np.ndarray:
    """A one-day slip on a few records, never one that would make a clean record late at as_of."""
    slip = (rng.random(len(planned)) < share).astype(np.int64)
    straddles = (planned <= as_of_day) & (planned + slip > as_of_day - 3)
    return np.where(straddles, 0, slip)


def _simulate_block(net: _Network, block: int, sku_start: int, sku_stop: int,
                    resource_load: np.ndarray) -> dict[str, _Records | list[dict[str, np.ndarray]]]:
    rng = np.random.default_rng([net.seed, 2, block])
    size = net.size
    monday = net.week_monday
    sku = np.arange(sku_start, sku_stop)
    nb, n_dcs, n_stores, W = len(sku), size.dcs, size.stores, N_WEEKS
    past = np.arange(W) <= CURRENT_WEEK
    sourcing = net.sourcing[sku]
    has_plant = sourcing != BUY_TO_DC
    season = net.season[net.family[sku]]  # (nb, W)

    # ---- plan of record (latest committed version)
    dc_scale = 0.6 + 0.8 * (np.arange(n_dcs) + 1) / n_dcs
    mu_customer = np.maximum(2.0, rng.lognormal(np.log(40), 0.9, (nb, n_dcs)) * dc_scale)
    plan_customer = np.round(mu_customer[:, :, None] * season[:, None, :])
    mu_store = np.maximum(3.0, rng.lognormal(np.log(6), 0.7, (nb, n_stores)))
    plan_store = np.round(mu_store[:, :, None] * season[:, None, :])
    store_to_dc = np.eye(n_dcs)[net.store_dc] if n_stores else np.zeros((0, n_dcs))
    plan_dc = plan_customer + np.einsum("nsw,sd->ndw", plan_store, store_to_dc)
    plan_plant_demand = np.where(has_plant[:, None], plan_dc.sum(axis=1), 0.0)
    plan_plant_supply = np.concatenate([plan_plant_demand[:, 1:], plan_plant_demand[:, -1:]], axis=1)
    ss_store = np.round(1.0 * plan_store.mean(axis=2))
    ss_dc = np.round(1.5 * plan_dc.mean(axis=2))
    ss_plant = np.round(0.5 * plan_plant_demand.mean(axis=1))
    target_store = ss_store + np.round(plan_store.mean(axis=2))
    target_dc = ss_dc + np.round(1.5 * plan_dc.mean(axis=2))
    target_plant = ss_plant + np.round(1.5 * plan_plant_demand.mean(axis=1))

    # ---- planted problems (first block only): overrides of the clean simulation
    demand_multiplier = np.ones((nb, n_dcs, W))
    dc_reacts = np.ones((nb, n_dcs, W), dtype=bool)
    dc_blocked = np.zeros((nb, n_dcs, W), dtype=bool)
    dc_bonus = np.zeros((nb, n_dcs, W))
    plant_yield = np.where(past & (rng.random((nb, W)) < 0.08), rng.uniform(0.93, 0.99, (nb, W)), 1.0)
    planted: dict[str, tuple[int, int]] = {}
    if block == 0:
        planted = _choose_planted(net, sourcing, rng)
        for kind, (s, d) in planted.items():
            if kind == "demand_spike":
                demand_multiplier[s, d, CURRENT_WEEK - 1:CURRENT_WEEK + 4] = 2.0
                dc_reacts[s, d, CURRENT_WEEK - 1:] = False
            elif kind == "demand_drop":
                demand_multiplier[s, d, CURRENT_WEEK - 3:CURRENT_WEEK + 4] = 0.45
            elif kind in ("supplier_slip", "late_transfer"):
                dc_blocked[s, d, CURRENT_WEEK - 1:CURRENT_WEEK + 3] = True
                dc_reacts[s, d, CURRENT_WEEK - 1:] = False
            elif kind == "excess_stock":
                dc_bonus[s, d, CURRENT_WEEK - 4] = 8 * np.round(plan_dc[s, d].mean())
                dc_reacts[s, d, CURRENT_WEEK - 4:] = False
            elif kind == "production_shortfall":
                plant_yield[s, CURRENT_WEEK - 1] = 0.4
    delayed_qty = {kind: plan_dc[s, d, CURRENT_WEEK - 1:CURRENT_WEEK + 3].sum()
                   for kind, (s, d) in planted.items() if kind in ("supplier_slip", "late_transfer")}

    # ---- actual demand
    noise = np.clip(rng.normal(0, 0.07, (nb, n_dcs, W)), -0.15, 0.15)
    actual_customer = np.round(plan_customer * (1 + noise) * demand_multiplier)
    store_noise = np.clip(rng.normal(0, 0.07, (nb, n_stores, W)), -0.15, 0.15)
    actual_store = np.round(plan_store * (1 + store_noise))

    sales = _sales_lines(net, rng, actual_customer)
    ship_week = (sales["ship_day"] - monday[0]) // 7
    counted = (~sales["cancelled"]) & (ship_week >= 0) & (ship_week < W)
    shipped_out = np.bincount(
        (sales["cell"][counted] // W) * W + ship_week[counted], sales["shipped_qty"][counted],
        minlength=nb * n_dcs * W).reshape(nb, n_dcs, W)

    # ---- replenishment: stores <- DCs <- plants, one week at a time
    receipts_store = np.zeros((nb, n_stores, W))
    stock = target_store.copy()
    initial_store = stock.copy()
    for k in range(W):
        receipts_store[:, :, k] = np.maximum(0, np.ceil(target_store + plan_store[:, :, k] - stock))
        stock = stock + receipts_store[:, :, k] - (actual_store[:, :, k] if past[k] else plan_store[:, :, k])
    store_pull = np.einsum("nsw,sd->ndw", receipts_store, store_to_dc)

    receipts_dc = np.zeros((nb, n_dcs, W))
    arrivals_dc = np.zeros((nb, n_dcs, W))
    for kind, (s, d) in planted.items():
        if kind in delayed_qty:
            arrivals_dc[s, d, CURRENT_WEEK + 3] = delayed_qty[kind]
    stock = target_dc.copy()
    initial_dc = stock.copy()
    for k in range(W):
        outflow_plan = plan_customer[:, :, k] + store_pull[:, :, k]
        reorder = np.maximum(0, np.ceil(target_dc + outflow_plan - stock))
        order_qty = np.where(dc_reacts[:, :, k], reorder, plan_dc[:, :, k])
        order_qty = np.where(dc_blocked[:, :, k], 0, order_qty) + dc_bonus[:, :, k]
        receipts_dc[:, :, k] = order_qty
        outflow = (shipped_out[:, :, k] if past[k] else plan_customer[:, :, k]) + store_pull[:, :, k]
        stock = stock + order_qty + arrivals_dc[:, :, k] - outflow

    transfer_sku = (sourcing != BUY_TO_DC)[:, None, None]
    plant_ship = np.where(transfer_sku, receipts_dc, 0).sum(axis=1)
    if "late_transfer" in planted:
        plant_ship[planted["late_transfer"][0], CURRENT_WEEK - 1] += delayed_qty["late_transfer"]
    # Production plans for what the DCs would order: a DC waiting for a late transfer orders nothing meanwhile,
    # and a plant cutting its production to that ran short of its S&OP plan, which still counts that DC's demand
    # (an unplanted shortage at the plant). It makes the DC's share and holds it a few weeks instead.
    plant_ship_planned = plant_ship.copy()
    if "late_transfer" in planted:
        late_sku, late_dc = planted["late_transfer"]
        future = slice(CURRENT_WEEK, CURRENT_WEEK + 3)
        plant_ship_planned[late_sku, future] += plan_dc[late_sku, late_dc, future]
    plant_ship_next = np.concatenate([plant_ship_planned[:, 1:], plan_plant_demand[:, -1:]], axis=1)
    plant_planned = np.zeros((nb, W))
    plant_completed = np.zeros((nb, W))
    stock = np.maximum(target_plant, plant_ship[:, 0] + ss_plant)
    initial_plant = stock.copy()
    for k in range(W):
        target = np.maximum(target_plant, plant_ship_next[:, k] + ss_plant)
        plant_planned[:, k] = np.where(has_plant, np.maximum(0, np.ceil(target + plant_ship_planned[:, k] - stock)), 0)
        plant_completed[:, k] = np.round(plant_planned[:, k] * (plant_yield[:, k] if past[k] else 1.0))
        stock = stock + plant_completed[:, k] - plant_ship_planned[:, k]  # as planned: the held share stays out

    made = sourcing == MAKE
    np.add.at(resource_load, (np.repeat(net.resource[sku][made], W), np.tile(np.arange(W), made.sum())),
              plant_planned[made].ravel())

    # ---- records
    shipments = _shipment_records(net, rng, sku, receipts_dc, receipts_store, planted, delayed_qty)
    purchases = _purchase_records(net, rng, sku, receipts_dc, plant_planned, plant_completed, planted, delayed_qty)
    production = _production_records(net, rng, sku, plant_planned, plant_completed, planted)
    pos = _pos_records(net, sku, actual_store)

    initial = np.zeros((nb, net.n_locations))
    initial[:, net.dc_locations] = initial_dc
    initial[:, net.store_locations] = initial_store
    initial[:, net.plant_locations] = np.where(
        has_plant[:, None], initial_plant[:, None] * (net.home_plant[sku][:, None] == np.arange(size.plants)), 0)
    stocked = np.zeros((nb, net.n_locations), dtype=bool)
    stocked[:, net.dc_locations] = True
    stocked[:, net.store_locations] = True
    stocked[np.flatnonzero(has_plant), net.plant_locations[net.home_plant[sku][has_plant]]] = True
    snapshots = _snapshot_records(net, sku, initial, stocked, sales, shipments, purchases, production, pos, planted)

    plan_parts = _plan_rows(net, sku, plan_store, plan_dc, plan_plant_demand, plan_plant_supply,
                            ss_store, ss_dc, ss_plant, has_plant, rng)
    _record_planted(net, sku, planted, shipments, purchases, production)
    return {
        "sales_orders": _sales_records(net, sku, sales), "shipments": shipments, "purchase_orders": purchases,
        "production_orders": production, "pos_sales": pos, "inventory_snapshots": snapshots, "sop_plan": plan_parts,
    }


def _choose_planted(net: _Network, sourcing: np.ndarray, rng: np.random.Generator) -> dict[str, tuple[int, int]]:
    """Pick a distinct SKU (and DC) for each SKU-bound planted problem."""
    wanted = {
        "demand_spike": MAKE, "demand_drop": MAKE, "late_transfer": MAKE, "production_shortfall": MAKE,
        "supplier_slip": BUY_TO_DC, "excess_stock": BUY_TO_DC, "quality_hold": BUY_TO_PLANT,
    }
    used: set[int] = set()
    chosen: dict[str, tuple[int, int]] = {}
    for kind, kind_sourcing in wanted.items():
        candidates = [s for s in np.flatnonzero(sourcing == kind_sourcing) if s not in used]
        if not candidates:
            continue
        s = int(candidates[int(rng.integers(0, len(candidates)))])
        used.add(s)
        chosen[kind] = (s, int(rng.integers(0, net.size.dcs)))
    return chosen


def _sales_lines(net: _Network, rng: np.random.Generator, actual_customer: np.ndarray) -> dict[str, np.ndarray]:
    """Customer order lines whose non-cancelled quantities add up to actual demand."""
    as_of_day = net.as_of_day
    cell, qty = _split_weekly_into_lines(actual_customer, rng)
    week = cell % N_WEEKS
    requested = net.week_monday[week] + rng.choice(5, len(cell), p=ORDER_WEEKDAY_WEIGHTS)
    order_day = requested - np.minimum(150, 1 + np.floor(rng.exponential(20, len(cell))).astype(np.int64))
    promised = requested + np.where(rng.random(len(cell)) < 0.05, rng.integers(1, 3, len(cell)), 0)
    late = np.where(rng.random(len(cell)) < 0.05, rng.integers(1, 4, len(cell)), 0)
    ship_day = promised + late
    short = (rng.random(len(cell)) < 0.03) & (qty >= 4)
    shipped_qty = np.where(short, np.floor(qty * rng.uniform(0.5, 0.95, len(cell))), qty)
    lines = {"cell": cell, "order_day": order_day, "requested_day": requested, "promised_day": promised,
             "ship_day": ship_day, "ordered_qty": qty, "shipped_qty": shipped_qty,
             "cancel_day": np.full(len(cell), NEVER), "cancelled": np.zeros(len(cell), dtype=bool)}
    copies = np.flatnonzero(rng.random(len(cell)) < 0.02)
    cancelled = {key: values[copies].copy() for key, values in lines.items()}
    window = cancelled["requested_day"] - cancelled["order_day"]
    cancelled["cancel_day"] = cancelled["order_day"] + np.floor(rng.random(len(copies)) * window).astype(np.int64)
    cancelled["cancelled"][:] = True
    cancelled["ship_day"][:] = NEVER
    cancelled["shipped_qty"][:] = 0
    lines = _concat([lines, cancelled])
    lines["customer"] = rng.integers(0, N_CUSTOMERS, len(lines["cell"]))
    visible = lines["order_day"] <= as_of_day
    return {key: values[visible] for key, values in lines.items()} | {
        "all_ship_day": lines["ship_day"], "all_shipped_qty": lines["shipped_qty"],
        "all_cell": lines["cell"], "all_cancelled": lines["cancelled"]}


def _sales_records(net: _Network, sku: np.ndarray, sales: dict[str, np.ndarray]) -> _Records:
    n_dcs = net.size.dcs
    dc = (sales["cell"] // N_WEEKS) % n_dcs
    line_sku = sku[sales["cell"] // (N_WEEKS * n_dcs)]
    order, group, line_no = _group_numbers([dc, sales["order_day"], sales["customer"]], [line_sku, sales["requested_day"]])
    order_no = net.counters["SO"] + group + 1
    net.counters["SO"] += int(group.max()) + 1 if len(group) else 0
    columns = {key: sales[key][order] for key in (
        "customer", "order_day", "requested_day", "promised_day", "ship_day", "ordered_qty", "shipped_qty", "cancel_day")}
    columns |= {"order_no": order_no, "line_no": line_no, "sku": line_sku[order], "location": net.dc_locations[dc[order]]}
    return _Records(columns, columns["order_day"], [columns["ship_day"], columns["cancel_day"]])


def _shipment_records(net: _Network, rng: np.random.Generator, sku: np.ndarray, receipts_dc: np.ndarray,
                      receipts_store: np.ndarray, planted: dict[str, tuple[int, int]],
                      delayed_qty: dict[str, float]) -> _Records:
    """Plant -> DC and DC -> store transfers: depart Monday, arrive after the lane's transit days."""
    nb, n_dcs, W = receipts_dc.shape
    transfer = np.broadcast_to((net.sourcing[sku] != BUY_TO_DC)[:, None, None], receipts_dc.shape) & (receipts_dc > 0)
    s, d, k = np.nonzero(transfer)
    plant = net.home_plant[sku[s]]
    parts = [{"sku": sku[s], "from": net.plant_locations[plant], "to": net.dc_locations[d],
              "ship_day": net.week_monday[k], "qty": receipts_dc[s, d, k],
              "transit": net.transit_plant_dc[plant, d]}]
    s, st, k = np.nonzero(receipts_store > 0)
    parts.append({"sku": sku[s], "from": net.dc_locations[net.store_dc[st]], "to": net.store_locations[st],
                  "ship_day": net.week_monday[k], "qty": receipts_store[s, st, k], "transit": np.ones(len(s), dtype=np.int64)})
    rows = _concat(parts)
    planned_arrival = rows["ship_day"] + rows["transit"]
    slip = _late_days(rng, planned_arrival, 0.05, net.as_of_day)
    rows |= {"planned_arrival": planned_arrival, "eta": planned_arrival + slip,
             "eta_change": np.where(slip > 0, rows["ship_day"], NEVER), "arrival": planned_arrival + slip,
             "special": np.zeros(len(planned_arrival), dtype=bool)}
    if "late_transfer" in planted:
        ps, pd_ = planted["late_transfer"]
        plant = net.home_plant[sku[ps]]
        ship_day = net.week_monday[CURRENT_WEEK - 1]
        arrival = ship_day + net.transit_plant_dc[plant, pd_]
        rows = _concat([rows, {
            "sku": np.array([sku[ps]]), "from": np.array([net.plant_locations[plant]]),
            "to": np.array([net.dc_locations[pd_]]), "ship_day": np.array([ship_day]),
            "qty": np.array([delayed_qty["late_transfer"]]), "transit": np.array([arrival - ship_day]),
            "planned_arrival": np.array([arrival]), "eta": np.array([net.week_monday[CURRENT_WEEK + 3] + 1]),
            "eta_change": np.array([arrival]), "arrival": np.array([NEVER]), "special": np.array([True])}])
    order = np.lexsort((rows["to"], rows["sku"], rows["ship_day"]))
    rows = {key: values[order] for key, values in rows.items()}
    rows["created"] = rows["ship_day"] - FIRM_HORIZON_DAYS - rng.integers(0, 7, len(order))
    rows["number"] = net.counters["SH"] + np.arange(len(order)) + 1
    net.counters["SH"] += len(order)
    return _Records(rows, rows["created"], [rows["eta_change"], rows["arrival"]])


def _purchase_records(net: _Network, rng: np.random.Generator, sku: np.ndarray, receipts_dc: np.ndarray,
                      plant_planned: np.ndarray, plant_completed: np.ndarray,
                      planted: dict[str, tuple[int, int]], delayed_qty: dict[str, float]) -> _Records:
    """Supplier POs: into DCs (due Monday) for buy-to-DC SKUs, into plants (due Wednesday) for buy-to-plant."""
    sourcing = net.sourcing[sku]
    s, d, k = np.nonzero((sourcing == BUY_TO_DC)[:, None, None] & (receipts_dc > 0))
    parts = [{"sku": sku[s], "location": net.dc_locations[d], "promised": net.week_monday[k],
              "qty": receipts_dc[s, d, k], "received_qty": receipts_dc[s, d, k]}]
    s, k = np.nonzero((sourcing == BUY_TO_PLANT)[:, None] & (plant_planned > 0))
    parts.append({"sku": sku[s], "location": net.plant_locations[net.home_plant[sku[s]]],
                  "promised": net.week_monday[k] + 2, "qty": plant_planned[s, k], "received_qty": plant_completed[s, k]})
    rows = _concat(parts)
    slip = _late_days(rng, rows["promised"], 0.05, net.as_of_day)
    rows |= {"confirmed": rows["promised"] + slip, "confirm_change": np.where(slip > 0, rows["promised"] - 10, NEVER),
             "received": rows["promised"] + slip, "cancel": np.full(len(slip), NEVER)}
    if "supplier_slip" in planted:
        ps, pd_ = planted["supplier_slip"]
        promised = net.week_monday[CURRENT_WEEK - 1]
        qty = delayed_qty["supplier_slip"]
        rows = _concat([rows, {
            "sku": np.array([sku[ps]]), "location": np.array([net.dc_locations[pd_]]), "promised": np.array([promised]),
            "qty": np.array([qty]), "received_qty": np.array([0.0]),
            "confirmed": np.array([net.week_monday[CURRENT_WEEK + 3]]), "confirm_change": np.array([promised - 3]),
            "received": np.array([NEVER]), "cancel": np.array([NEVER])}])
    n = len(rows["sku"])
    rows["order_day"] = rows["promised"] - FIRM_HORIZON_DAYS - rng.integers(0, 7, n)
    copies = np.flatnonzero(rng.random(n) < 0.01)
    cancelled = {key: values[copies].copy() for key, values in rows.items()}
    cancelled |= {"cancel": cancelled["order_day"] + rng.integers(2, 10, len(copies)),
                  "received": np.full(len(copies), NEVER), "received_qty": np.zeros(len(copies)),
                  "confirm_change": np.full(len(copies), NEVER)}
    rows = _concat([rows, cancelled])
    rows["supplier"] = net.supplier[rows["sku"]]
    order, group, line_no = _group_numbers([rows["supplier"], rows["location"], rows["order_day"]], [rows["sku"], rows["promised"]])
    rows = {key: values[order] for key, values in rows.items()}
    rows["po_no"] = net.counters["PO"] + group + 1
    rows["line_no"] = line_no
    net.counters["PO"] += int(group.max()) + 1 if len(group) else 0
    return _Records(rows, rows["order_day"], [rows["confirm_change"], rows["received"], rows["cancel"]])


def _production_records(net: _Network, rng: np.random.Generator, sku: np.ndarray, plant_planned: np.ndarray,
                        plant_completed: np.ndarray, planted: dict[str, tuple[int, int]]) -> _Records:
    """Weekly production orders of make SKUs: start Monday, finish Friday, released a week before start."""
    s, k = np.nonzero((net.sourcing[sku] == MAKE)[:, None] & (plant_planned > 0))
    start = net.week_monday[k]
    finish = start + 4
    slip = _late_days(rng, finish, 0.05, net.as_of_day)
    rows = {"sku": sku[s], "location": net.plant_locations[net.home_plant[sku[s]]], "resource": net.resource[sku[s]],
            "start": start, "finish": finish, "qty": plant_planned[s, k], "completed": plant_completed[s, k],
            "actual_finish": finish + slip, "progress": np.full(len(s), NEVER), "cancel": np.full(len(s), NEVER)}
    if "production_shortfall" in planted:
        late = (s == planted["production_shortfall"][0]) & (k == CURRENT_WEEK - 1)
        rows["progress"] = np.where(late, finish, NEVER)
        rows["actual_finish"] = np.where(late, NEVER, rows["actual_finish"])
    rows["created"] = start - FIRM_HORIZON_DAYS - rng.integers(0, 7, len(s))
    copies = np.flatnonzero(rng.random(len(s)) < 0.01)
    cancelled = {key: values[copies].copy() for key, values in rows.items()}
    cancelled |= {"cancel": cancelled["created"] + rng.integers(3, 20, len(copies)),
                  "actual_finish": np.full(len(copies), NEVER), "completed": np.zeros(len(copies)),
                  "progress": np.full(len(copies), NEVER)}
    rows = _concat([rows, cancelled])
    order = np.lexsort((rows["sku"], rows["resource"], rows["start"]))
    rows = {key: values[order] for key, values in rows.items()}
    rows["number"] = net.counters["MO"] + np.arange(len(order)) + 1
    net.counters["MO"] += len(order)
    return _Records(rows, rows["created"], [rows["start"] - 7, rows["start"], rows["actual_finish"], rows["progress"], rows["cancel"]])


def _pos_records(net: _Network, sku: np.ndarray, actual_store: np.ndarray) -> _Records:
    """Daily POS at stores: each week's sales spread over the days with a weekday pattern."""
    daily = np.floor(actual_store[..., None] * POS_WEEKDAY_WEIGHTS)
    daily[..., 5] += actual_store - daily.sum(axis=-1)
    s, st, k, day = np.nonzero(daily > 0)
    sale_day = net.week_monday[k] + day
    rows = {"sku": sku[s], "location": net.store_locations[st], "sale_day": sale_day, "qty": daily[s, st, k, day]}
    visible = sale_day <= net.as_of_day
    rows = {key: values[visible] for key, values in rows.items()}
    return _Records(rows, rows["sale_day"], [])


def _snapshot_records(net: _Network, sku: np.ndarray, initial: np.ndarray, stocked: np.ndarray,
                      sales: dict[str, np.ndarray], shipments: _Records, purchases: _Records, production: _Records,
                      pos: _Records, planted: dict[str, tuple[int, int]]) -> _Records:
    """End-of-day stock on the as_of weekday of each past week, derived from every stock movement."""
    n_loc = net.n_locations
    first_sku = sku[0]
    sales_cell = sales["all_cell"]
    sales_sku = sku[sales_cell // (N_WEEKS * net.size.dcs)]
    sales_loc = net.dc_locations[(sales_cell // N_WEEKS) % net.size.dcs]
    sh, po, mo = shipments.columns, purchases.columns, production.columns
    completion_day = np.minimum(mo["actual_finish"], mo["progress"])
    movements = [
        (sales_sku, sales_loc, sales["all_ship_day"], -np.where(sales["all_cancelled"], 0, sales["all_shipped_qty"])),
        (sh["sku"], sh["from"], sh["ship_day"], -sh["qty"]),
        (sh["sku"], sh["to"], sh["arrival"], sh["qty"]),
        (po["sku"], po["location"], po["received"], po["received_qty"]),
        (mo["sku"], mo["location"], completion_day, mo["completed"]),
        (pos.columns["sku"], pos.columns["location"], pos.columns["sale_day"], -pos.columns["qty"]),
    ]
    cell = np.concatenate([(m_sku - first_sku) * n_loc + m_loc for m_sku, m_loc, _, _ in movements])
    day = np.concatenate([m_day for _, _, m_day, _ in movements])
    qty = np.concatenate([m_qty for _, _, _, m_qty in movements]).astype(np.float64)
    snapshot_days = net.as_of_day - 7 * np.arange(PAST_WEEKS, -1, -1)
    stocked_cells = np.flatnonzero(stocked.ravel())
    parts = []
    for snapshot_day in snapshot_days:
        moved = day <= snapshot_day
        on_hand = initial.ravel() + np.bincount(cell[moved], qty[moved], minlength=initial.size)
        hold = np.zeros(initial.size)
        if "quality_hold" in planted and snapshot_day >= net.as_of_day - 7:
            s, d = planted["quality_hold"]
            held = s * n_loc + net.dc_locations[d]
            hold[held] = np.round(0.95 * on_hand[held])
        parts.append({"snapshot_day": np.full(len(stocked_cells), snapshot_day),
                      "sku": first_sku + stocked_cells // n_loc, "location": stocked_cells % n_loc,
                      "on_hand": on_hand[stocked_cells], "hold": hold[stocked_cells]})
    rows = _concat(parts)
    return _Records(rows, rows["snapshot_day"], [])


def _plan_rows(net: _Network, sku: np.ndarray, plan_store: np.ndarray, plan_dc: np.ndarray,
               plan_plant_demand: np.ndarray, plan_plant_supply: np.ndarray, ss_store: np.ndarray,
               ss_dc: np.ndarray, ss_plant: np.ndarray, has_plant: np.ndarray,
               rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Latest committed plan, plus an older and a later (not yet committed at as_of) version."""
    W = N_WEEKS
    parts = []
    for demand, supply, ss, locations in (
        (plan_dc, plan_dc, ss_dc, net.dc_locations),
        (plan_store, plan_store, ss_store, net.store_locations),
    ):
        s, j = np.nonzero(np.ones(demand.shape[:2], dtype=bool))
        parts.append({"sku": np.repeat(sku[s], W), "location": np.repeat(locations[j], W),
                      "week": np.tile(np.arange(W), len(s)), "demand": demand[s, j].ravel(),
                      "supply": supply[s, j].ravel(), "ss": np.repeat(ss[s, j], W)})
    s = np.flatnonzero(has_plant)
    parts.append({"sku": np.repeat(sku[s], W), "location": np.repeat(net.plant_locations[net.home_plant[sku[s]]], W),
                  "week": np.tile(np.arange(W), len(s)), "demand": plan_plant_demand[s].ravel(),
                  "supply": plan_plant_supply[s].ravel(), "ss": np.repeat(ss_plant[s], W)})
    latest = _concat(parts)
    versions = [latest]
    for spread in (0.10, 0.05):  # the older version, then the next cycle's
        factor = 1 + np.clip(rng.normal(0, spread, len(latest["demand"])), -0.3, 0.3)
        versions.append(latest | {"demand": np.round(latest["demand"] * factor), "supply": np.round(latest["supply"] * factor)})
    return versions


def _record_planted(net: _Network, sku: np.ndarray, planted: dict[str, tuple[int, int]],
                    shipments: _Records, purchases: _Records, production: _Records) -> None:
    """Describe every planted problem for `_planted_problems.json`."""
    week = {k: day_to_date(net.week_monday[CURRENT_WEEK + k]).isoformat() for k in range(-4, 5)}
    for kind, (s, d) in planted.items():
        sku_label = net.sku_labels[int(sku[s])].as_py()
        dc_label = net.location_labels[int(net.dc_locations[d])].as_py()
        plant_label = net.location_labels[int(net.plant_locations[net.home_plant[sku[s]]])].as_py()
        entry = {"problem": kind, "sku_id": sku_label, "location_id": dc_label, "reference_id": ""}
        if kind == "demand_spike":
            entry |= {"week_start": week[0], "note": f"actual and booked demand 2x plan from {week[-1]} to week +3 (of which only the part "
                      "already booked is visible); replenishment stays at plan, so available stock is below safety "
                      "stock now and runs out within the fence if demand keeps running at the booked rate"}
        elif kind == "demand_drop":
            entry |= {"week_start": week[0], "note": f"actual and booked demand 0.45x plan from {week[-3]} to week +3"}
        elif kind == "supplier_slip":
            po = purchases.columns
            line = np.flatnonzero((po["sku"] == sku[s]) & (po["received"] == NEVER) & (po["cancel"] == NEVER)
                                  & (po["promised"] == net.week_monday[CURRENT_WEEK - 1]))[0]
            entry |= {"reference_id": f"PO-{po['po_no'][line]:0{net.id_width['PO']}d}:{po['line_no'][line]}",
                      "week_start": week[-1], "note": f"open PO line for 4 weeks of supply promised {week[-1]}, "
                      f"confirmed {week[3]}; no other receipts until then: projected stockout inside the fence, "
                      "before the line arrives"}
        elif kind == "late_transfer":
            sh = shipments.columns
            row = np.flatnonzero((sh["sku"] == sku[s]) & (sh["arrival"] == NEVER))[0]
            entry |= {"reference_id": f"SH-{sh['number'][row]:0{net.id_width['SH']}d}",
                      "week_start": week[-1], "note": f"transfer of 4 weeks of supply shipped {week[-1]}, not arrived, "
                      f"eta {day_to_date(sh['eta'][row])}; projected stockout inside the fence, before it arrives"}
        elif kind == "production_shortfall":
            mo = production.columns
            row = np.flatnonzero((mo["sku"] == sku[s]) & (mo["progress"] < NEVER))[0]
            net.shortfall_resources.add(int(net.resource[sku[s]]))
            entry |= {"location_id": plant_label,
                      "reference_id": f"MO-{mo['number'][row]:0{net.id_width['MO']}d}",
                      "week_start": week[-1], "note": "production order due "
                      f"{day_to_date(mo['finish'][row])} still in progress with 40% completed"}
        elif kind == "quality_hold":
            entry |= {"week_start": week[0], "note": "95% of on-hand stock on quality hold in the last two snapshots: "
                      "available stock below safety stock"}
        elif kind == "excess_stock":
            entry |= {"week_start": week[0], "note": f"8 extra weeks of supply received in week of {week[-4]}: "
                      "about 11 weeks of cover against a 3-week target"}
        net.planted.append(entry)


# ----------------------------------------------------------------------------- extracts

def _state_at(net: _Network, source: str, records: _Records, rows: np.ndarray, extract_day: int) -> dict[str, pa.Array]:
    """The contract columns of `rows` as the source system showed them on `extract_day`."""
    c = {key: values[rows] for key, values in records.columns.items()}
    sku_id, loc = _take(net.sku_labels, c["sku"]), None
    if "location" in c:
        loc = _take(net.location_labels, c["location"])
    if source == "sales_orders":
        cancelled = c["cancel_day"] <= extract_day
        shipped = ~cancelled & (c["ship_day"] <= extract_day)
        status = np.where(cancelled, "cancelled", np.where(shipped, "shipped", "open"))
        return {"order_id": _numbered("SO-", c["order_no"], net.id_width["SO"]), "line_no": pa.array(c["line_no"]),
                "customer_id": _numbered("CUST-", c["customer"] + 1, 4), "sku_id": sku_id, "location_id": loc,
                "order_date": _dates(c["order_day"]), "requested_date": _dates(c["requested_day"]),
                "promised_date": _dates(c["promised_day"]), "ordered_qty": _num(c["ordered_qty"]),
                "shipped_qty": _num(np.where(shipped, c["shipped_qty"], 0)),
                "ship_date": _dates(np.where(shipped, c["ship_day"], NEVER)), "status": pa.array(status)}
    if source == "purchase_orders":
        cancelled = c["cancel"] <= extract_day
        received = ~cancelled & (c["received"] <= extract_day)
        status = np.where(cancelled, "cancelled", np.where(received, "received", "open"))
        return {"po_id": _numbered("PO-", c["po_no"], net.id_width["PO"]), "line_no": pa.array(c["line_no"]),
                "supplier_id": _numbered("SUP-", c["supplier"] + 1, 3), "sku_id": sku_id, "location_id": loc,
                "order_date": _dates(c["order_day"]), "promised_date": _dates(c["promised"]),
                "confirmed_date": _dates(np.where(c["confirm_change"] <= extract_day, c["confirmed"], c["promised"])),
                "ordered_qty": _num(c["qty"]), "received_qty": _num(np.where(received, c["received_qty"], 0)),
                "received_date": _dates(np.where(received, c["received"], NEVER)), "status": pa.array(status)}
    if source == "production_orders":
        cancelled = c["cancel"] <= extract_day
        completed = ~cancelled & (c["actual_finish"] <= extract_day)
        status = np.select(
            [cancelled, completed, c["start"] <= extract_day, c["start"] - 7 <= extract_day],
            ["cancelled", "completed", "in_progress", "released"], "planned")
        done = np.where(completed | (c["progress"] <= extract_day), c["completed"], 0)
        return {"production_order_id": _numbered("MO-", c["number"], net.id_width["MO"]), "sku_id": sku_id,
                "location_id": loc, "resource_id": _take(net.resource_labels, c["resource"]),
                "planned_start_date": _dates(c["start"]), "planned_finish_date": _dates(c["finish"]),
                "planned_qty": _num(c["qty"]), "completed_qty": _num(done),
                "actual_finish_date": _dates(np.where(completed, c["actual_finish"], NEVER)), "status": pa.array(status)}
    if source == "shipments":
        return {"shipment_id": _numbered("SH-", c["number"], net.id_width["SH"]), "sku_id": sku_id,
                "from_location_id": _take(net.location_labels, c["from"]), "to_location_id": _take(net.location_labels, c["to"]),
                "ship_date": _dates(c["ship_day"]), "planned_arrival_date": _dates(c["planned_arrival"]),
                "eta_date": _dates(np.where(c["eta_change"] <= extract_day, c["eta"], c["planned_arrival"])),
                "actual_arrival_date": _dates(np.where(c["arrival"] <= extract_day, c["arrival"], NEVER)),
                "qty": _num(c["qty"])}
    if source == "inventory_snapshots":
        return {"snapshot_date": _dates(c["snapshot_day"]), "sku_id": sku_id, "location_id": loc,
                "on_hand_qty": _num(c["on_hand"]), "quality_hold_qty": _num(c["hold"])}
    if source == "pos_sales":
        return {"sale_date": _dates(c["sale_day"]), "sku_id": sku_id, "location_id": loc, "qty": _num(c["qty"])}
    raise ValueError(f"no extract state for source {source}")


def _extract_rows(records: _Records, extract_day: int, previous_day: int | None) -> np.ndarray:
    """Rows an incremental extract carries: everything at the first extract, then what was created or changed."""
    exists = records.created <= extract_day
    if previous_day is None:
        return np.flatnonzero(exists)
    touched = records.created > previous_day
    for change_day in records.change_days:
        touched |= (change_day > previous_day) & (change_day <= extract_day)
    return np.flatnonzero(exists & touched)


def _file_name(extract_day: int, source_index: int, extract_index: int, suffix: str = "") -> str:
    extension = "parquet" if (source_index + extract_index) % 2 == 0 else "csv"
    return f"{day_to_date(extract_day).isoformat()}{suffix}.{extension}"


class LandingZoneExists(Exception):
    """The output folder already holds extracts: writing a network beside them would mix two networks."""


def existing_extracts(out_dir: Path) -> list[Path]:
    """The files in `out_dir`'s source folders (a landing zone already there)."""
    return sorted(path for source in SOURCES if (out_dir / source).is_dir()
                  for path in (out_dir / source).iterdir() if path.is_file())


# The extracts the generator wrote into a folder (relative paths, one per line): what `soe demo` may replace.
GENERATED_EXTRACTS = ".generated_extracts"


def extracts_not_generated(out_dir: Path) -> list[Path]:
    """The extracts in `out_dir` that the generator did not write there: someone's own files."""
    listing = out_dir / GENERATED_EXTRACTS
    generated = set(listing.read_text().splitlines()) if listing.is_file() else set()
    return [path for path in existing_extracts(out_dir) if path.relative_to(out_dir).as_posix() not in generated]


def _clear_landing_zone(out_dir: Path) -> None:
    """Remove the extracts of every source folder and the generator's lists (nothing else in `out_dir`)."""
    for path in existing_extracts(out_dir):
        path.unlink()
    for listing in ("_planted_problems.json", GENERATED_EXTRACTS):
        (out_dir / listing).unlink(missing_ok=True)


def generate_landing_zone(out_dir: Path, *, seed: int = 7, size: NetworkSize = NetworkSize(),
                          as_of: date | None = None, replace: bool = False,
                          progress: Callable[[str], None] | None = None) -> GenerationSummary:
    """Simulate the sample network and write it to `out_dir` as a landing zone ending on `as_of`.

    A folder that already holds extracts is refused (`LandingZoneExists`) unless `replace`, which first
    removes them: another network's extracts, of other dates, would otherwise stay beside the new ones
    and win or lose the upsert by date.
    """
    if size.skus < 1 or size.dcs < 1 or size.plants < 1 or size.stores < 0:
        raise ValueError(f"a network needs at least one SKU, DC and plant: {size}")
    as_of = as_of or DEFAULT_AS_OF
    report = progress or (lambda message: None)
    out_dir = Path(out_dir)
    existing = existing_extracts(out_dir) if out_dir.is_dir() else []
    if existing and not replace:
        raise LandingZoneExists(f"{out_dir} already holds {len(existing)} extract(s), e.g. "
                                f"{existing[0].relative_to(out_dir)}")
    if existing:
        _clear_landing_zone(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net = _build_network(seed, size, as_of)
    files: dict[tuple[str, str], _ExtractFile] = {}

    def extract_file(source: str, name: str) -> _ExtractFile:
        if (source, name) not in files:
            files[(source, name)] = _ExtractFile(out_dir / source / name, SCHEMAS[source])
        return files[(source, name)]

    master_day = net.as_of_day - MASTER_EXTRACT_DAYS_BEFORE_AS_OF
    master = _master_tables(net)
    extract_file("skus", _file_name(master_day, 0, 0)).write(master["skus"])
    extract_file("skus", _file_name(net.as_of_day, 0, 1)).write(master["skus_update"])
    extract_file("locations", _file_name(master_day, 1, 0)).write(master["locations"])
    extract_file("lanes", _file_name(master_day, 2, 0)).write(master["lanes"])

    monday0 = net.week_monday[CURRENT_WEEK]
    commits = [datetime.combine(day_to_date(day), datetime.min.time()) + timedelta(hours=16)
               for day in (monday0 - 21, monday0 - 49, net.as_of_day + 3)]
    plan_files = [_file_name(monday0 - 21, 3, 0), _file_name(monday0 - 49, 3, 1),
                  _file_name(net.as_of_day, 3, 1, "_next_cycle")]
    extract_days = [net.as_of_day - offset for offset in EXTRACT_DAYS_BEFORE_AS_OF]
    execution_sources = ["sales_orders", "inventory_snapshots", "purchase_orders", "production_orders", "shipments"]
    if size.stores:
        execution_sources.append("pos_sales")
    for source in execution_sources:
        for j, extract_day in enumerate(extract_days):
            extract_file(source, _file_name(extract_day, SOURCES.index(source), j))

    resource_load = np.zeros((len(net.resource_plant), N_WEEKS))
    n_blocks = math.ceil(size.skus / BLOCK_SKUS)
    for block in range(n_blocks):
        start, stop = block * BLOCK_SKUS, min(size.skus, (block + 1) * BLOCK_SKUS)
        report(f"simulating SKUs {start + 1}-{stop} of {size.skus}")
        simulated = _simulate_block(net, block, start, stop, resource_load)
        for version, commit, name in zip(simulated["sop_plan"], commits, plan_files):
            n = len(version["sku"])
            extract_file("sop_plan", name).write({
                "plan_version": _take(pa.array([f"SOP-{commit:%Y-%m-%d}"]), np.zeros(n)),
                "committed_at": pa.array(np.full(n, np.datetime64(commit, "s")), type=TS),
                "sku_id": _take(net.sku_labels, version["sku"]), "location_id": _take(net.location_labels, version["location"]),
                "week_start": _dates(net.week_monday[version["week"]]), "demand_qty": _num(version["demand"]),
                "supply_qty": _num(version["supply"]), "safety_stock_qty": _num(version["ss"])})
        for source in execution_sources:
            records = simulated[source]
            for j, extract_day in enumerate(extract_days):
                rows = _extract_rows(records, extract_day, extract_days[j - 1] if j else None)
                extract_file(source, _file_name(extract_day, SOURCES.index(source), j)).write(
                    _state_at(net, source, records, rows, extract_day))

    report("writing resource capacity")
    _write_resource_capacity(net, resource_load, extract_days, extract_file)
    for extract in files.values():
        extract.close()
    (out_dir / "_planted_problems.json").write_text(json.dumps(net.planted, indent=2) + "\n")
    (out_dir / GENERATED_EXTRACTS).write_text(
        "".join(f"{source}/{name}\n" for source, name in sorted(files)))

    rows_per_source = {source: 0 for source in SOURCES if source != "pos_sales" or size.stores}
    for (source, _), extract in files.items():
        rows_per_source[source] += extract.rows
    report(f"wrote {sum(rows_per_source.values()):,} rows in {len(files)} files")
    return GenerationSummary(out_dir=out_dir, as_of=as_of, rows_per_source=rows_per_source,
                             files_written=sorted(extract.path for extract in files.values()),
                             planted_problems=list(net.planted))


def _write_resource_capacity(net: _Network, resource_load: np.ndarray, extract_days: list[int],
                             extract_file: Callable[[str, str], _ExtractFile]) -> None:
    """Capacity comfortably above the heaviest week's load, except one planted overloaded resource-week."""
    n_res, W = resource_load.shape
    capacity = np.maximum(10, np.ceil(1.25 * resource_load.max(axis=1) / 10) * 10)
    weekly = np.repeat(capacity[:, None], W, axis=1)
    reduced = weekly.copy()
    overload_week = CURRENT_WEEK + 2
    loaded = np.flatnonzero(resource_load[:, overload_week] > 0)
    if len(loaded):
        preferred = [r for r in loaded if r not in net.shortfall_resources] or list(loaded)
        res = int(preferred[-1])
        reduced[res, overload_week] = np.floor(0.75 * resource_load[res, overload_week])
        net.planted.append({
            "problem": "capacity_overload", "sku_id": "",
            "location_id": net.location_labels[int(net.resource_plant[res])].as_py(),
            "reference_id": net.resource_labels[res].as_py(),
            "week_start": day_to_date(net.week_monday[overload_week]).isoformat(),
            "note": f"planned maintenance cuts capacity to {reduced[res, overload_week]:.0f} against a planned load of "
                    f"{resource_load[res, overload_week]:.0f} (announced {day_to_date(net.as_of_day - 10)})"})
    res, k = np.divmod(np.arange(n_res * W), W)
    records = _Records(
        {"resource": res, "week": k, "normal": weekly.ravel(), "reduced": reduced.ravel()},
        net.week_monday[k] - FIRM_HORIZON_DAYS - 7,
        [np.where(weekly.ravel() != reduced.ravel(), net.as_of_day - 10, NEVER)])
    source_index = SOURCES.index("resource_capacity")
    for j, extract_day in enumerate(extract_days):
        rows = _extract_rows(records, extract_day, extract_days[j - 1] if j else None)
        c = {key: values[rows] for key, values in records.columns.items()}
        capacity_now = np.where(records.change_days[0][rows] <= extract_day, c["reduced"], c["normal"])
        extract_file("resource_capacity", _file_name(extract_day, source_index, j)).write({
            "location_id": _take(net.location_labels, net.resource_plant[c["resource"]]),
            "resource_id": _take(net.resource_labels, c["resource"]),
            "week_start": _dates(net.week_monday[c["week"]]), "capacity_qty": _num(capacity_now)})
