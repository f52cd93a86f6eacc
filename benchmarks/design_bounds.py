"""Measure what a first run could reach if ingest kept no typed copy of the extracts.

    python benchmarks/design_bounds.py /tmp/soe-bench/skus200000_dcs4 [--workdir DIR]

The folder is one of ``run_benchmark.py``'s networks after a run: its ``landing``
zone and the ``warehouse`` that run built. Three figures, each the least that
design could cost, against the read floor:

- **checks alone**: one scan of every execution extract, typed, with the row
  rules that need no message (keys present, quantities not negative, ids in
  master data), without and with the grouping that finds a key repeated within
  one extract; nothing written, nothing quarantined: less than any ingest does;
- **dbt on stored tables**: the run's dbt build on a copy of the warehouse, as
  every run builds today;
- **dbt on the extracts**: the same build on a copy whose ``raw.<source>`` of
  each execution source is a view over its extracts, the rows later extracts
  supersede left out by an anti-join on a stored list of them (what an ingest
  without a typed copy would keep); and on a copy where only the sources with
  no superseded row (the plan, the inventory snapshots) are such views. This is
  what today's models cost reading the extracts, each view read as often as
  the models read it, not the least such a design could cost; the list of
  superseded rows is made untimed.

The copies are made in ``--workdir`` and deleted after; the network is only read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from data_contracts.sources import SOURCES, SOURCES_BY_NAME, SourceContract
from run_benchmark import DBT_PROJECT, SOE, read_floor
from soe_assets.duckdb_settings import MEMORY_LIMIT_ENV, resolve_memory_limit
from soe_assets.ingest.landing import list_extracts

EXECUTION_SOURCES = [source for source in SOURCES if not source.master_data]


def _typed_extracts(source: SourceContract, landing: Path) -> str:
    """SQL: the union of the source's extracts, typed as the contract says, with each row's file and its order."""
    types = "{" + ", ".join(f"'{column}': '{kind}'" for column, kind in source.sql_columns.items()) + "}"
    columns = ", ".join(source.sql_columns)
    reads = []
    for order, extract in enumerate(list_extracts(landing, source.name)):
        scan = (f"read_parquet('{extract.path}')" if extract.path.suffix == ".parquet"
                else f"read_csv('{extract.path}', header = true, types = {types})")
        reads.append(f"SELECT {columns}, '{extract.file}' AS _file, DATE '{extract.extract_date}' AS _extract_date, "
                     f"{order} AS _file_order FROM {scan}")
    return " UNION ALL ".join(reads)


def checks_alone(landing: Path, group_keys: bool) -> float:
    """Seconds for one scan of every execution source: the typed read and the row rules, with the grouping that
    finds a key repeated within one extract where ``group_keys``."""
    started = time.perf_counter()
    with duckdb.connect() as conn:
        conn.execute("SET preserve_insertion_order = false")
        for master, column in (("skus", "sku_id"), ("locations", "location_id")):
            extracts = _typed_extracts(SOURCES_BY_NAME[master], landing)
            conn.execute(f"CREATE TABLE {master} AS SELECT DISTINCT {column} AS id FROM ({extracts})")
        for source in EXECUTION_SOURCES:
            union = _typed_extracts(source, landing)
            if not union:
                continue
            failing = [f"{key} IS NULL" for key in source.primary_key]
            failing += [f"{column} < 0" for column, kind in source.sql_columns.items() if kind == "DOUBLE"]
            failing += [f"{column} NOT IN (SELECT id FROM skus)" for column in source.sku_columns]
            failing += [f"{column} NOT IN (SELECT id FROM locations)" for column in source.location_columns]
            fails = f"count(*) FILTER (WHERE {' OR '.join(failing)})"
            if not group_keys:
                conn.execute(f"SELECT {fails} FROM ({union})").fetchall()
                continue
            # grouped by one hash of the file and key, as ingest sorts one hash: cheaper than the key's columns
            key = ", ".join(source.primary_key)
            conn.execute(f"SELECT count(*) FILTER (WHERE copies > 1), sum(failed) FROM (SELECT count(*) AS copies, "
                         f"{fails} AS failed FROM ({union}) GROUP BY hash(_file_order, {key}))").fetchall()
    return time.perf_counter() - started


def read_through_views(warehouse: Path, landing: Path, every_source: bool) -> None:
    """Turn execution sources' ``raw`` tables of ``warehouse`` into views over their extracts: every source's
    (``every_source``), or only those whose extracts supersede no row of each other (no anti-join needed)."""
    with duckdb.connect(str(warehouse)) as conn:
        for source in EXECUTION_SOURCES:
            union = _typed_extracts(source, landing)
            if not union:
                continue
            key = ", ".join(source.primary_key)
            superseded = f"raw._superseded_{source.name}"
            conn.execute(f"CREATE TABLE {superseded} AS SELECT {key}, _file_order FROM "
                         f"(SELECT {key}, _file_order, max(_file_order) OVER (PARTITION BY {key}) AS latest "
                         f"FROM ({union})) WHERE _file_order < latest")
            if conn.execute(f"SELECT count(*) FROM {superseded}").fetchone()[0] == 0:
                view = f"SELECT * EXCLUDE (_file_order) FROM ({union})"
            elif every_source:
                same = " AND ".join(f"e.{column} = s.{column}" for column in [*source.primary_key, "_file_order"])
                view = f"SELECT e.* EXCLUDE (_file_order) FROM ({union}) AS e ANTI JOIN {superseded} AS s ON {same}"
            else:
                continue
            conn.execute(f"DROP TABLE raw.{source.name}")
            conn.execute(f"CREATE VIEW raw.{source.name} AS {view}")


def dbt_build(warehouse: Path, landing: Path, target: Path) -> float:
    """Seconds for the run's dbt build (the CI-only tests left out, as ``soe run`` does) on ``warehouse``."""
    env = {**os.environ, "SOE_WAREHOUSE": str(warehouse), MEMORY_LIMIT_ENV: resolve_memory_limit("auto", landing),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = [str(SOE.with_name("dbt")), "--quiet"]
    options = ["--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT), "--target-path", str(target)]
    subprocess.run([*dbt, "parse", *options], env=env, check=True)
    started = time.perf_counter()
    subprocess.run([*dbt, "build", *options, "--exclude", "tag:landing_contract", "test_type:unit"], env=env,
                   check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network", type=Path, help="a benchmark network after a run: holds landing/ and warehouse/")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/soe-bench/bounds"),
                        help="where the warehouse copies are made (deleted after)")
    args = parser.parse_args()
    landing, warehouse = args.network / "landing", args.network / "warehouse" / "soe.duckdb"
    if not landing.is_dir() or not warehouse.is_file():
        parser.error(f"{args.network} holds no landing/ folder and warehouse/soe.duckdb: run run_benchmark.py first")
    args.workdir.mkdir(parents=True, exist_ok=True)
    floor, rows = read_floor(landing)
    print(f"read floor: {floor:.1f} s ({rows:,} rows)", flush=True)
    for group_keys, what in ((False, "row rules"), (True, "row rules and repeated keys")):
        checks = checks_alone(landing, group_keys)
        print(f"checks alone, {what} (one scan, no write, no quarantine): {checks:.1f} s, {checks / floor:.1f} x floor",
              flush=True)
    designs = {"stored tables": None, "the extracts of every source": True,
               "the extracts of the sources with no superseded row, stored tables for the others": False}
    for design, every_source in designs.items():
        copy = args.workdir / "bound.duckdb"
        shutil.copyfile(warehouse, copy)
        try:
            if every_source is not None:
                read_through_views(copy, landing, every_source)
            seconds = dbt_build(copy, landing, args.workdir / "target")
        finally:
            copy.unlink(missing_ok=True)
        print(f"dbt on {design}: {seconds:.1f} s, {seconds / floor:.1f} x floor", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
