"""Dagster asset checks on the ingest stage (logic in ``soe_assets.ingest.health``).

- on each ``raw/<source>``: ``contract_violations`` and ``freshness``, WARN
  severity, non-blocking: the run goes on and publishes, the alert goes out;
- on ``raw/ingest_log``: the publish gates ``required_sources_have_rows`` and
  ``quarantine_share_below_limit``, ERROR severity, blocking. Only
  ``published_marts`` is downstream of ``raw/ingest_log``, so a failed gate
  stops publishing (the previous set stays) but not the other stages.

A failed check is also sent to the alert sink (JSON-lines log, webhook).
"""


from collections.abc import Iterable, Iterator

import dagster as dg

from data_contracts.sources import SOURCES
from orchestration.resources import QualitySettings, WarehouseResource
from soe_assets.alerts import Alert, default_alert_log, deliver
from soe_assets.ingest import health as h

INGEST_LOG_KEY = dg.AssetKey(["raw", "ingest_log"])


def source_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", source])


def evaluate(
    context: dg.AssetCheckExecutionContext,
    results: Iterable[tuple[dg.AssetKey, str, h.Finding, dg.AssetCheckSeverity]],
    warehouse: WarehouseResource,
    as_of: str,
) -> Iterator[dg.AssetCheckResult]:
    """Findings -> check results; the failed ones also go to the alert sink."""
    alerts = []
    for key, name, finding, severity in results:
        if not finding.passed:
            context.log.warning(f"check {key.to_user_string()}:{name} failed: {finding.message}")
            alerts.append(
                Alert(kind="check_failed", severity=severity.value, subject=key.to_user_string(), name=name,
                      message=finding.message, run_id=context.run.run_id, as_of=as_of,
                      details={k: v for k, v in finding.metadata.items() if isinstance(v, (int, float, str))})
            )
        yield dg.AssetCheckResult(
            asset_key=key, check_name=name, passed=finding.passed, severity=severity,
            metadata={**finding.metadata, "message": finding.message}, description=finding.message,
        )
    if alerts:
        deliver(alerts, default_alert_log(warehouse.path), warn=context.log.warning)


@dg.multi_asset_check(
    specs=[
        spec
        for source in SOURCES
        for spec in (
            dg.AssetCheckSpec(
                "contract_violations", asset=source_key(source.name),
                description="Quarantined rows above the warning share, or files rejected whole (warns, never blocks).",
            ),
            dg.AssetCheckSpec(
                "freshness", asset=source_key(source.name),
                description=f"Newest usable extract within the freshness limit (default {source.default_freshness_days} days).",
            ),
        )
    ],
)
def source_health_checks(
    context: dg.AssetCheckExecutionContext, quality: QualitySettings, warehouse: WarehouseResource
) -> Iterator[dg.AssetCheckResult]:
    with warehouse.connect(read_only=True) as conn:
        healths = h.read_source_health(conn)
    limits = quality.limits()
    as_of = str(next(iter(healths.values())).as_of)
    findings = []
    for source, health in healths.items():
        findings.append((source_key(source), "contract_violations", h.contract_violations(health, limits),
                         dg.AssetCheckSeverity.WARN))
        findings.append((source_key(source), "freshness", h.freshness(health, limits), dg.AssetCheckSeverity.WARN))
    yield from evaluate(context, findings, warehouse, as_of)


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            "required_sources_have_rows", asset=INGEST_LOG_KEY, blocking=True,
            description="Blocks publishing when a required source has no valid row (an empty or lost export of "
            "master data, the plan, stock or orders).",
        ),
        dg.AssetCheckSpec(
            "quarantine_share_below_limit", asset=INGEST_LOG_KEY, blocking=True,
            description="Blocks publishing when a source's newest extract lost more than the blocking share of its "
            "rows to the quarantine.",
        ),
    ],
)
def publish_gate_checks(
    context: dg.AssetCheckExecutionContext, quality: QualitySettings, warehouse: WarehouseResource
) -> Iterator[dg.AssetCheckResult]:
    with warehouse.connect(read_only=True) as conn:
        healths = h.read_source_health(conn)
    as_of = str(next(iter(healths.values())).as_of)
    findings = [(INGEST_LOG_KEY, name, finding, dg.AssetCheckSeverity.ERROR)
                for name, finding in h.publish_gates(healths, quality.limits()).items()]
    yield from evaluate(context, findings, warehouse, as_of)


INGEST_CHECKS = [source_health_checks, publish_gate_checks]
