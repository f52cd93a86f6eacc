"""The last step of a run: publish the marts for BI readers."""


from collections.abc import Sequence

import dagster as dg

from orchestration.resources import QualitySettings, SoeSettings, WarehouseResource
from soe_assets.ingest.health import publish_gates, read_source_health
from soe_assets.publish import mart_tables, publish_marts
from soe_assets.warehouse import built_before_ingest, read_run_context


def build_publish_asset(upstream: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """``published_marts`` depends on every mart, so it runs only after all of them succeeded."""

    @dg.asset(group_name="publish", deps=list(upstream), kinds={"parquet"})
    def published_marts(
        context: dg.AssetExecutionContext, settings: SoeSettings, warehouse: WarehouseResource,
        quality: QualitySettings,
    ) -> dg.MaterializeResult:
        """Every `marts.*` table as `<publish_dir>/<table>.parquet`, switched atomically as one set.

        The publish gates are judged again on the warehouse's ingest: they block a run that includes them,
        but this asset can also be started on its own (the UI's Materialize), after a run they blocked. It also
        refuses marts a stage built from an earlier ingest than the warehouse's (left by a run that failed or
        stopped after ingesting, or by stages materialised alone): a set is one run's view."""
        with warehouse.connect() as conn:  # it logs the day it publishes
            blocked = [f.message for f in publish_gates(read_source_health(conn), quality.limits()).values()
                       if not f.passed]
            if blocked:
                raise dg.Failure(
                    description="not published, the previous set stays: the warehouse holds an ingest the publish "
                    "gates block: " + "; ".join(blocked),
                )
            run = read_run_context(conn)
            stale = built_before_ingest(conn, [f"marts.{table}" for table in mart_tables(conn)])
            if stale:
                raise dg.Failure(
                    description=f"not published, the previous set stays: {', '.join(stale)} "
                    f"{'was' if len(stale) == 1 else 'were'} built from an earlier ingest than the warehouse's latest "
                    f"(as_of {run.as_of}, run {run.run_id[:8]}); materialise them first, or run the whole job",
                )
            files = {path.name: path for path in sorted(warehouse.files_path.glob("*"))
                     if path.is_file() and not path.name.startswith(".")}
            published = publish_marts(
                conn, settings.publish_path, run_id=context.run.run_id, as_of=run.as_of.isoformat(),
                extra_files=files,
            )
        if published.is_current:
            context.log.info(f"published {len(published.row_counts)} tables to {settings.publish_path}")
        else:
            context.log.warning(
                f"published {len(published.row_counts)} tables for as_of {run.as_of} to {published.version_dir}; "
                f"{settings.publish_path / 'current'} stays on the later as_of {published.current_as_of}"
            )
        return dg.MaterializeResult(
            metadata={"version": str(published.version_dir), "current": published.is_current,
                      **{f"rows.{t}": n for t, n in published.row_counts.items()}}
        )

    return published_marts
