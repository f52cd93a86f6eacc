"""The dbt project as Dagster assets (group ``reconcile``)."""


import contextlib
from collections import Counter
import os
import shutil
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
# `soe` may be started as .venv/bin/soe without activating the venv: dbt lives beside Python.
if shutil.which("dbt") is None:
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

TERSE_ENV = "SOE_TERSE_OUTPUT"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _manifest_is_stale() -> bool:
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [DBT_PROJECT_DIR / "dbt_project.yml", *DBT_PROJECT_DIR.glob("models/**/*"), *DBT_PROJECT_DIR.glob("macros/**/*")]
    return any(path.stat().st_mtime > built for path in sources if path.is_file())


def prepare_manifest() -> None:
    """Parse the dbt project when its manifest is missing or older than its files (~5 s)."""
    if _manifest_is_stale():
        # The profile needs a warehouse path to parse; parsing never opens it.
        os.environ.setdefault("SOE_WAREHOUSE", str(DBT_PROJECT_DIR / "target" / "parse-only.duckdb"))
        dbt_project.preparer.prepare(dbt_project)


prepare_manifest()


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project)
def soe_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """Staging, reconciliation and the trusted SKU-location-week view."""
    # On the soe command line the progress logger shows dbt's verdicts; its raw echo is noise.
    echo = open(os.devnull, "w") if os.environ.get(TERSE_ENV) else contextlib.nullcontext(sys.stdout)
    with echo as sink, contextlib.redirect_stdout(sink):
        invocation = dbt.cli(["build"], context=context)
        yield from invocation.stream()
    statuses = Counter(result["status"] for result in invocation.get_artifact("run_results.json")["results"])
    context.log.info("dbt build: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())))


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project)
