"""The last step of a run: publish the marts for BI readers."""


from collections.abc import Sequence

import dagster as dg

from orchestration.resources import SoeSettings, WarehouseResource
from soe_assets.publish import publish_marts
from soe_assets.warehouse import read_run_context


def build_publish_asset(upstream: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """``published_marts`` depends on every mart, so it runs only after all of them succeeded."""

    @dg.asset(group_name="publish", deps=list(upstream), kinds={"parquet"})
    def published_marts(
        context: dg.AssetExecutionContext, settings: SoeSettings, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        """Every `marts.*` table as `<publish_dir>/<table>.parquet`, switched atomically as one set."""
        with warehouse.connect(read_only=True) as conn:
            run = read_run_context(conn)
            files = {path.name: path for path in sorted(warehouse.files_path.glob("*"))
                     if path.is_file() and not path.name.startswith(".")}
            published = publish_marts(
                conn, settings.publish_path, run_id=context.run.run_id, as_of=run.as_of.isoformat(),
                extra_files=files,
            )
        context.log.info(f"published {len(published.row_counts)} tables to {settings.publish_path}")
        return dg.MaterializeResult(
            metadata={"version": str(published.version_dir), **{f"rows.{t}": n for t, n in published.row_counts.items()}}
        )

    return published_marts
