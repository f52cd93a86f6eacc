"""Test support: hand-made landing zones and real pipeline runs on them.

``minimal_network()`` is a tiny, clean network (one plant, two DCs, two SKUs,
a committed plan, stock, orders, a PO, a transfer, a production order) that
tests copy and bend to plant exactly the situation they need.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from data_contracts.sources import SOURCES_BY_NAME
from orchestration.cli import RunOptions, Workspace, run_pipeline

AS_OF = date(2026, 11, 18)  # a Wednesday
WEEK0 = AS_OF - timedelta(days=AS_OF.weekday())  # Monday 2026-11-16


def monday(week_index: int) -> date:
    return WEEK0 + timedelta(weeks=week_index)


def write_source(landing: Path, source: str, rows: list[dict] | pd.DataFrame, *, extract: date = AS_OF,
                 suffix: str = "", fmt: str = "csv") -> Path:
    """Write one extract of a source; columns default to the contract order."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    contract = list(SOURCES_BY_NAME[source].columns) if source in SOURCES_BY_NAME else []
    ordered = [c for c in contract if c in frame.columns] + [c for c in frame.columns if c not in contract]
    frame = frame[ordered] if len(frame.columns) else pd.DataFrame(columns=contract)
    folder = landing / source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{extract.isoformat()}{suffix}.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False, date_format="%Y-%m-%d")
    else:
        frame.to_parquet(path, index=False)
    return path


def minimal_network() -> dict[str, list[dict]]:
    """A clean two-SKU network around AS_OF: nothing in it should raise an exception."""
    skus = [
        {"sku_id": "SKU-A", "product_family": "bikes", "unit_cost": 50.0, "unit_price": 100.0},
        {"sku_id": "SKU-B", "product_family": "parts", "unit_cost": 5.0, "unit_price": 12.0},
    ]
    locations = [
        {"location_id": "PLANT-1", "location_type": "plant", "region": "north"},
        {"location_id": "DC-1", "location_type": "dc", "region": "north"},
        {"location_id": "DC-2", "location_type": "dc", "region": "south"},
    ]
    lanes = [
        {"from_location_id": "PLANT-1", "to_location_id": "DC-1", "transit_days": 2, "cost_per_unit": 1.0},
        {"from_location_id": "PLANT-1", "to_location_id": "DC-2", "transit_days": 3, "cost_per_unit": 1.5},
        {"from_location_id": "DC-1", "to_location_id": "DC-2", "transit_days": 1, "cost_per_unit": 0.5},
        {"from_location_id": "DC-2", "to_location_id": "DC-1", "transit_days": 1, "cost_per_unit": 0.5},
    ]
    plan = [
        {"plan_version": "2026-11", "committed_at": "2026-11-02T09:00:00", "sku_id": sku, "location_id": loc,
         "week_start": monday(w).isoformat(), "demand_qty": demand, "supply_qty": demand,
         "safety_stock_qty": safety}
        for sku, loc, demand, safety in [("SKU-A", "DC-1", 70.0, 30.0), ("SKU-A", "DC-2", 70.0, 30.0),
                                         ("SKU-B", "DC-1", 140.0, 60.0), ("SKU-A", "PLANT-1", 140.0, 0.0)]
        for w in range(-8, 13)
    ]
    snapshot = [
        {"snapshot_date": AS_OF.isoformat(), "sku_id": sku, "location_id": loc, "on_hand_qty": qty,
         "quality_hold_qty": 0.0}
        for sku, loc, qty in [("SKU-A", "DC-1", 200.0), ("SKU-A", "DC-2", 200.0), ("SKU-B", "DC-1", 400.0),
                              ("SKU-A", "PLANT-1", 100.0)]
    ]
    orders = [
        {"order_id": f"SO-{sku}-{loc}-{w}", "line_no": 1, "customer_id": "CUST-1", "sku_id": sku,
         "location_id": loc, "order_date": (monday(w) - timedelta(days=10)).isoformat(),
         "requested_date": (monday(w) + timedelta(days=2)).isoformat(),
         "promised_date": (monday(w) + timedelta(days=2)).isoformat(), "ordered_qty": qty,
         "shipped_qty": qty if w < 0 else 0.0,
         "ship_date": (monday(w) + timedelta(days=2)).isoformat() if w < 0 else "",
         "status": "shipped" if w < 0 else "open"}
        for sku, loc, qty in [("SKU-A", "DC-1", 70.0), ("SKU-A", "DC-2", 70.0), ("SKU-B", "DC-1", 140.0)]
        for w in range(-8, 2)
    ]
    # Weekly replenishment that matches the plan, so the projection stays level.
    purchase_orders = [
        {"po_id": f"PO-{sku}-{loc}-{w}", "line_no": 1, "supplier_id": "SUP-1", "sku_id": sku, "location_id": loc,
         "order_date": (AS_OF - timedelta(days=20)).isoformat(), "promised_date": monday(w).isoformat(),
         "confirmed_date": monday(w).isoformat(), "ordered_qty": qty, "received_qty": 0.0,
         "received_date": "", "status": "open"}
        for sku, loc, qty in [("SKU-A", "DC-2", 70.0), ("SKU-B", "DC-1", 140.0)]
        for w in range(1, 13)
    ]
    production_orders = [
        {"production_order_id": f"MO-{w}", "sku_id": "SKU-A", "location_id": "PLANT-1", "resource_id": "LINE-1",
         "planned_start_date": monday(w).isoformat(), "planned_finish_date": (monday(w) + timedelta(days=4)).isoformat(),
         "planned_qty": 140.0, "completed_qty": 0.0, "actual_finish_date": "", "status": "released"}
        for w in range(1, 13)
    ]
    # The plant replenishes DC-1 weekly: SH-0 is in transit, the later ones are planned.
    shipments = [
        {"shipment_id": f"SH-{w}", "sku_id": "SKU-A", "from_location_id": "PLANT-1", "to_location_id": "DC-1",
         "ship_date": (monday(w) + timedelta(days=1)).isoformat(),
         "planned_arrival_date": (monday(w) + timedelta(days=3)).isoformat(),
         "eta_date": (monday(w) + timedelta(days=3)).isoformat(), "actual_arrival_date": "", "qty": 70.0}
        for w in range(0, 13)
    ]
    capacity = [
        {"location_id": "PLANT-1", "resource_id": "LINE-1", "week_start": monday(w).isoformat(), "capacity_qty": 400.0}
        for w in range(-8, 13)
    ]
    return {
        "skus": skus, "locations": locations, "lanes": lanes, "sop_plan": plan, "sales_orders": orders,
        "inventory_snapshots": snapshot, "purchase_orders": purchase_orders, "production_orders": production_orders,
        "resource_capacity": capacity, "shipments": shipments,
    }


def write_landing_zone(landing: Path, network: dict[str, list[dict]], extract: date = AS_OF) -> Path:
    for source, rows in network.items():
        write_source(landing, source, rows, extract=extract)
    return landing


@dataclass
class SoeRun:
    workspace: Workspace
    ok: bool

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with duckdb.connect(str(self.workspace.warehouse), read_only=True) as conn:
            return conn.execute(sql, params or []).df()


def run_soe(root: Path, landing: Path, *, as_of: date | None = AS_OF, echo: Callable[[str], None] = lambda _line: None,
            **options) -> SoeRun:
    """Run the real pipeline (ingest, dbt, every Python stage, publish) in this process."""
    workspace = Workspace(landing=landing, warehouse=root / "warehouse" / "soe.duckdb", publish=root / "publish")
    ok = run_pipeline(workspace, RunOptions(as_of=as_of, **options), echo=echo)
    return SoeRun(workspace=workspace, ok=ok)


@contextmanager
def another_process_holding(path: Path, seconds: float, *, read_only: bool = False) -> Iterator[subprocess.Popen]:
    """Another process with the DuckDB file open for ``seconds`` (a second run; read-only: a notebook); yields
    once it holds it, and ends it on leaving."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "
         "'ro'); print('held', flush=True); time.sleep(float(sys.argv[3]))", str(path), "ro" if read_only else "rw",
         str(seconds)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()

