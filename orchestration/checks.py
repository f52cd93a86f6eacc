"""Asset checks on the dbt marts: reconciliation findings and the GX suite on the trusted view.

- ``reconciliation_findings:no_open_findings`` warns (never blocks): findings
  are valid rows that disagree across sources; they are kept and reported.
- ``sku_location_week:sku_location_week_expectations`` (Great Expectations)
  blocks: if the trusted view breaks its own invariants (null keys, weeks
  outside the horizon, negative ATP), nothing computed from it can be trusted,
  so the stages after it and the publish do not run; the previous set stays.
"""


from collections.abc import Iterator

import dagster as dg

from data_contracts.gx_suites import read_sku_location_week, validate_sku_location_week
from orchestration.dbt import soe_dbt_models
from orchestration.resources import WarehouseResource
from soe_assets.ingest.checks import evaluate
from soe_assets.ingest.health import Finding
from soe_assets.warehouse import read_run_context


def _dbt_key(model: str) -> dg.AssetKey:
    """The asset key dagster-dbt gives a dbt model (e.g. ``marts/sku_location_week``)."""
    return next(key for key in soe_dbt_models.keys if key.path[-1] == model)


RECONCILIATION_KEY = _dbt_key("reconciliation_findings")
TRUSTED_VIEW_KEY = _dbt_key("sku_location_week")


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            "no_open_findings", asset=RECONCILIATION_KEY,
            description="Warns when valid rows disagree across sources (e.g. a shipment on a pair with no lane).",
        )
    ],
)
def reconciliation_findings_check(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.AssetCheckResult]:
    with warehouse.connect(read_only=True) as conn:
        run = read_run_context(conn)
        counts = dict(
            conn.execute(
                "SELECT finding_type, count(*) FROM marts.reconciliation_findings GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
    total = sum(counts.values())
    metadata = {"findings": total, **{f"findings.{kind}": n for kind, n in counts.items()}}
    if total:
        listed = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        finding = Finding(False, f"{total} reconciliation finding(s): {listed} (see marts.reconciliation_findings)", metadata)
    else:
        finding = Finding(True, "sources agree", metadata)
    yield from evaluate(
        context, [(RECONCILIATION_KEY, "no_open_findings", finding, dg.AssetCheckSeverity.WARN)],
        warehouse, run.as_of.isoformat(),
    )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            "sku_location_week_expectations", asset=TRUSTED_VIEW_KEY, blocking=True,
            description="Great Expectations suite: keys not null and unique, week_index in the horizon, "
            "time-fence flag boolean, ATP / safety stock / plan / orders / receipts >= 0.",
        )
    ],
)
def trusted_view_expectations(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.AssetCheckResult]:
    with warehouse.connect(read_only=True) as conn:
        run = read_run_context(conn)
        frame = read_sku_location_week(conn)  # only the columns the suite reads, keys as categoricals
    outcome = validate_sku_location_week(frame, run.horizon_weeks)
    metadata = {"rows": len(frame), "expectations": outcome.evaluated, "failed": len(outcome.failed)}
    if outcome.success:
        finding = Finding(True, f"{outcome.evaluated} expectations met on {len(frame):,} rows", metadata)
    else:
        finding = Finding(False, "sku_location_week breaks its expectations: " + "; ".join(outcome.failed), metadata)
    yield from evaluate(
        context, [(TRUSTED_VIEW_KEY, "sku_location_week_expectations", finding, dg.AssetCheckSeverity.ERROR)],
        warehouse, run.as_of.isoformat(),
    )


MART_CHECKS = [reconciliation_findings_check, trusted_view_expectations]
