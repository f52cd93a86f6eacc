"""Dagster wrapper of the ingest stage: one asset per landing-zone source."""


from datetime import datetime

import dagster as dg

from data_contracts.sources import SOURCES
from orchestration.resources import SoeSettings, WarehouseResource
from soe_assets.ingest.pipeline import ingest_landing_zone, write_run_metadata
from soe_assets.warehouse import RunContext

RAW_TABLE_DESCRIPTIONS = {
    "quarantine": "Every rejected row or file with source, file, row number, column, reason and raw record.",
    "run_context": "The run parameters (as_of, horizon, time fence) every later stage reads.",
    "ingest_log": "Per source: files read and skipped, files unchanged since the last run (not read again), "
    "latest extract date, rows read, kept and quarantined; "
    "its newest extract (date, rows read and quarantined) and the latest usable one (the publish gates' input).",
}


@dg.multi_asset(
    specs=[
        *[
            dg.AssetSpec(
                ["raw", source.name],
                group_name="ingest",
                kinds={"python", "duckdb"},
                description=f"Validated `{source.name}` rows, latest valid version of each key "
                f"({source.model.__name__} contract).",
            )
            for source in SOURCES
        ],
        *[
            dg.AssetSpec(["raw", name], group_name="ingest", kinds={"python", "duckdb"}, description=text)
            for name, text in RAW_TABLE_DESCRIPTIONS.items()
        ],
    ],
    can_subset=False,
)
def landing_zone(context: dg.AssetExecutionContext, settings: SoeSettings, warehouse: WarehouseResource):
    """Read the new extracts, validate against their contract, upsert, quarantine the rest.

    The extracts the last run ingested, unchanged since, are not read again
    (``soe_assets.ingest.state``); settings can ask for every extract. One step for all sources: the execution sources are checked against the
    master data of the same run, and the default as_of is the latest extract
    date across the whole landing zone.
    """
    started_at = datetime.now().replace(microsecond=0)
    with warehouse.connect() as conn:
        result = ingest_landing_zone(
            settings.landing_path, settings.requested_as_of, progress=context.log.info, conn=conn,
            detected_at=started_at, reread=settings.reread_landing_zone,
        )
        run = RunContext(
            as_of=result.as_of,
            horizon_weeks=settings.horizon_weeks,
            time_fence_weeks=settings.time_fence_weeks,
            run_id=context.run.run_id,
            started_at=started_at,
        )
        write_run_metadata(conn, result, run)
        quarantined_rows = conn.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0]
    for source in SOURCES:
        report = result.reports[source.name]
        yield dg.MaterializeResult(
            asset_key=["raw", source.name],
            metadata={
                "files_read": report.files_read,
                "files_unchanged_not_read_again": report.files_kept,
                "rows_read": report.rows_read,
                "rows_valid": report.rows_valid,
                "rows_quarantined": report.rows_quarantined,
                "latest_extract_date": str(report.latest_extract_date or ""),
            },
        )
    yield dg.MaterializeResult(
        asset_key=["raw", "quarantine"], metadata={"rows": quarantined_rows}
    )
    yield dg.MaterializeResult(asset_key=["raw", "run_context"], metadata={"as_of": str(result.as_of)})
    yield dg.MaterializeResult(asset_key=["raw", "ingest_log"])
