"""pandera data contracts, one per landing-zone source.

These classes are the executable form of ``shared/spec/landing-zone.md``:
column names, logical types (``metadata={"kind": ...}``), nullability,
ranges, enums and the primary key (``Config.unique``). Referential integrity
and "not after the extract date" rules need run-time values (the master data,
the file's extract date), so they are declared in ``data_contracts.sources``
and attached by ``data_contracts.validation``.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

STR = {"kind": "str"}
DATE = {"kind": "date"}
TS = {"kind": "ts"}
INT = {"kind": "int"}
NUM = {"kind": "num"}

Int = Series[pd.Int64Dtype]

# The largest quantity or amount of money a row may carry: no real order, stock count or price comes near it, and
# the KPIs' exact sums (38 digits, 10 of them decimals) of quantity x cost must hold every row's value.
MAX_AMOUNT = 10**12
# The longest lane: ten years is a typo, not a route.
MAX_TRANSIT_DAYS = 3650

# Weeks are ISO weeks, named by their Monday (landing-zone.md), wherever a source names one.
MONDAY = "week_start must be a Monday (ISO week start)"


def is_monday(week_start: pd.Series) -> pd.Series:
    return week_start.dt.dayofweek == 0


class LandingModel(pa.DataFrameModel):
    """Shared configuration: extra columns are allowed and ignored."""

    class Config:
        strict = False
        coerce = False


class Skus(LandingModel):
    sku_id: Series[str] = pa.Field(metadata=STR)
    product_family: Series[str] = pa.Field(metadata=STR)
    unit_cost: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)
    unit_price: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)

    class Config:
        unique = ["sku_id"]


class Locations(LandingModel):
    location_id: Series[str] = pa.Field(metadata=STR)
    location_type: Series[str] = pa.Field(isin=["plant", "dc", "store"], metadata=STR)
    region: Series[str] = pa.Field(metadata=STR)

    class Config:
        unique = ["location_id"]


class Lanes(LandingModel):
    from_location_id: Series[str] = pa.Field(metadata=STR)
    to_location_id: Series[str] = pa.Field(metadata=STR)
    transit_days: Int = pa.Field(ge=0, le=MAX_TRANSIT_DAYS, metadata=INT)
    cost_per_unit: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)

    class Config:
        unique = ["from_location_id", "to_location_id"]


class SopPlan(LandingModel):
    plan_version: Series[str] = pa.Field(metadata=STR)
    committed_at: Series[pa.DateTime] = pa.Field(metadata=TS)
    sku_id: Series[str] = pa.Field(metadata=STR)
    location_id: Series[str] = pa.Field(metadata=STR)
    week_start: Series[pa.DateTime] = pa.Field(metadata=DATE)
    demand_qty: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)
    supply_qty: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)
    safety_stock_qty: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)

    class Config:
        unique = ["plan_version", "sku_id", "location_id", "week_start"]

    @pa.check("week_start", name=MONDAY)
    def _week_start_is_monday(cls, week_start: Series[pa.DateTime]) -> Series[bool]:
        return is_monday(week_start)


class SalesOrders(LandingModel):
    order_id: Series[str] = pa.Field(metadata=STR)
    line_no: Int = pa.Field(metadata=INT)
    customer_id: Series[str] = pa.Field(metadata=STR)
    sku_id: Series[str] = pa.Field(metadata=STR)
    location_id: Series[str] = pa.Field(metadata=STR)
    order_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    requested_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    promised_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    ordered_qty: Series[float] = pa.Field(gt=0, le=MAX_AMOUNT, metadata=NUM)
    shipped_qty: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)
    ship_date: Series[pa.DateTime] = pa.Field(nullable=True, metadata=DATE)
    status: Series[str] = pa.Field(isin=["open", "shipped", "cancelled"], metadata=STR)

    class Config:
        unique = ["order_id", "line_no"]


class InventorySnapshots(LandingModel):
    snapshot_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    sku_id: Series[str] = pa.Field(metadata=STR)
    location_id: Series[str] = pa.Field(metadata=STR)
    on_hand_qty: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)
    quality_hold_qty: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)

    class Config:
        unique = ["snapshot_date", "sku_id", "location_id"]


class PurchaseOrders(LandingModel):
    po_id: Series[str] = pa.Field(metadata=STR)
    line_no: Int = pa.Field(metadata=INT)
    supplier_id: Series[str] = pa.Field(metadata=STR)
    sku_id: Series[str] = pa.Field(metadata=STR)
    location_id: Series[str] = pa.Field(metadata=STR)
    order_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    promised_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    confirmed_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    ordered_qty: Series[float] = pa.Field(gt=0, le=MAX_AMOUNT, metadata=NUM)
    received_qty: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)
    received_date: Series[pa.DateTime] = pa.Field(nullable=True, metadata=DATE)
    status: Series[str] = pa.Field(isin=["open", "received", "cancelled"], metadata=STR)

    class Config:
        unique = ["po_id", "line_no"]


class ProductionOrders(LandingModel):
    production_order_id: Series[str] = pa.Field(metadata=STR)
    sku_id: Series[str] = pa.Field(metadata=STR)
    location_id: Series[str] = pa.Field(metadata=STR)
    resource_id: Series[str] = pa.Field(metadata=STR)
    planned_start_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    planned_finish_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    planned_qty: Series[float] = pa.Field(gt=0, le=MAX_AMOUNT, metadata=NUM)
    completed_qty: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)
    actual_finish_date: Series[pa.DateTime] = pa.Field(nullable=True, metadata=DATE)
    status: Series[str] = pa.Field(
        isin=["planned", "released", "in_progress", "completed", "cancelled"], metadata=STR
    )

    class Config:
        unique = ["production_order_id"]


class ResourceCapacity(LandingModel):
    location_id: Series[str] = pa.Field(metadata=STR)
    resource_id: Series[str] = pa.Field(metadata=STR)
    week_start: Series[pa.DateTime] = pa.Field(metadata=DATE)
    capacity_qty: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)

    class Config:
        unique = ["location_id", "resource_id", "week_start"]

    @pa.check("week_start", name=MONDAY)
    def _week_start_is_monday(cls, week_start: Series[pa.DateTime]) -> Series[bool]:
        return is_monday(week_start)


class Shipments(LandingModel):
    shipment_id: Series[str] = pa.Field(metadata=STR)
    sku_id: Series[str] = pa.Field(metadata=STR)
    from_location_id: Series[str] = pa.Field(metadata=STR)
    to_location_id: Series[str] = pa.Field(metadata=STR)
    ship_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    planned_arrival_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    eta_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    actual_arrival_date: Series[pa.DateTime] = pa.Field(nullable=True, metadata=DATE)
    qty: Series[float] = pa.Field(gt=0, le=MAX_AMOUNT, metadata=NUM)

    class Config:
        unique = ["shipment_id"]


class PosSales(LandingModel):
    sale_date: Series[pa.DateTime] = pa.Field(metadata=DATE)
    sku_id: Series[str] = pa.Field(metadata=STR)
    location_id: Series[str] = pa.Field(metadata=STR)
    qty: Series[float] = pa.Field(ge=0, le=MAX_AMOUNT, metadata=NUM)

    class Config:
        unique = ["sale_date", "sku_id", "location_id"]
