"""The landing-zone sources: which contract applies, keys, references, freshness.

Order matters: master data first, so the execution sources can be checked
against the valid master data of the same run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandera.pandas as pa

from data_contracts import schemas

SQL_TYPES = {"str": "VARCHAR", "date": "DATE", "ts": "TIMESTAMP", "int": "BIGINT", "num": "DOUBLE"}


@dataclass(frozen=True)
class SourceContract:
    name: str
    model: type[schemas.LandingModel]
    sku_columns: tuple[str, ...] = ()
    location_columns: tuple[str, ...] = ()
    # Location columns that must name a plant (``location_type`` plant in the master data): production happens there.
    plant_columns: tuple[str, ...] = ()
    # Event dates that cannot lie after the extract that reports them.
    not_after_extract: tuple[str, ...] = ()
    required: bool = True
    # A network can hold none of it (no plants: no production orders or capacity; one location: no lanes or
    # transfers; everything made in-house: no purchase orders): an extract without rows is then the truth,
    # and only rows read and lost stop publishing. An empty export of the others is a broken export.
    may_be_empty: bool = False
    # The source whose rows carry the same facts where this one has none: a network of stores selling through
    # point of sale books no sales orders, so sales orders may be empty where POS has valid rows.
    may_be_empty_beside: str | None = None
    master_data: bool = False

    @property
    def schema(self) -> pa.DataFrameSchema:
        return self.model.to_schema()

    @property
    def primary_key(self) -> list[str]:
        return list(self.schema.unique or [])

    @property
    def columns(self) -> dict[str, str]:
        """Contract column name -> logical kind (str, date, ts, int, num)."""
        return {name: col.metadata["kind"] for name, col in self.schema.columns.items()}

    @property
    def sql_columns(self) -> dict[str, str]:
        return {name: SQL_TYPES[kind] for name, kind in self.columns.items()}

    @property
    def default_freshness_days(self) -> int:
        return 35 if self.master_data or self.name == "sop_plan" else 2


SOURCES: tuple[SourceContract, ...] = (
    SourceContract("skus", schemas.Skus, master_data=True),
    SourceContract("locations", schemas.Locations, master_data=True),
    SourceContract(
        "lanes", schemas.Lanes, location_columns=("from_location_id", "to_location_id"), master_data=True,
        may_be_empty=True,
    ),
    SourceContract(
        "sop_plan",
        schemas.SopPlan,
        sku_columns=("sku_id",),
        location_columns=("location_id",),
    ),
    SourceContract(
        "sales_orders",
        schemas.SalesOrders,
        sku_columns=("sku_id",),
        location_columns=("location_id",),
        not_after_extract=("order_date", "ship_date"),
        may_be_empty_beside="pos_sales",
    ),
    SourceContract(
        "inventory_snapshots",
        schemas.InventorySnapshots,
        sku_columns=("sku_id",),
        location_columns=("location_id",),
        not_after_extract=("snapshot_date",),
    ),
    SourceContract(
        "purchase_orders",
        schemas.PurchaseOrders,
        sku_columns=("sku_id",),
        location_columns=("location_id",),
        not_after_extract=("order_date", "received_date"),
        may_be_empty=True,
    ),
    SourceContract(
        "production_orders",
        schemas.ProductionOrders,
        sku_columns=("sku_id",),
        location_columns=("location_id",),
        plant_columns=("location_id",),
        not_after_extract=("actual_finish_date",),
        may_be_empty=True,
    ),
    SourceContract("resource_capacity", schemas.ResourceCapacity, location_columns=("location_id",),
                   may_be_empty=True),
    SourceContract(
        "shipments",
        schemas.Shipments,
        sku_columns=("sku_id",),
        location_columns=("from_location_id", "to_location_id"),
        not_after_extract=("actual_arrival_date",),
        may_be_empty=True,
    ),
    SourceContract(
        "pos_sales",
        schemas.PosSales,
        sku_columns=("sku_id",),
        location_columns=("location_id",),
        not_after_extract=("sale_date",),
        required=False,
    ),
)

SOURCES_BY_NAME = {source.name: source for source in SOURCES}
