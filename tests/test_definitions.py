"""The one Definitions: stages as groups, lineage from the landing-zone sources to the published marts."""

from pathlib import Path

import dagster as dg
import pytest
from dagster_dbt import get_asset_key_for_model


@pytest.fixture(scope="module")
def graph():
    import os

    for name in ("SOE_WAREHOUSE", "SOE_LANDING_DIR", "SOE_PUBLISH_DIR"):
        os.environ.setdefault(name, f"/tmp/soe-definitions-test/{name}")
    from orchestration.definitions import defs

    dg.Definitions.validate_loadable(defs)
    return defs.resolve_asset_graph()


def _key(model: str) -> dg.AssetKey:
    from orchestration.dbt import soe_dbt_models

    return get_asset_key_for_model([soe_dbt_models], model)


def test_every_stage_is_a_group(graph):
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert {"ingest", "reconcile", "detect", "respond", "kpis", "feedback", "publish"} <= groups
    assert graph.get(dg.AssetKey(["raw", "sales_orders"])).group_name == "ingest"
    assert graph.get(_key("sku_location_week")).group_name == "reconcile"
    assert graph.get(dg.AssetKey("exceptions")).group_name == "detect"
    assert graph.get(dg.AssetKey("recommendations")).group_name == "respond"


def test_lineage_runs_from_landing_zone_source_to_published_marts(graph):
    def upstream(key: dg.AssetKey) -> set[dg.AssetKey]:
        return set(graph.get(key).parent_keys)

    assert dg.AssetKey(["raw", "sales_orders"]) in upstream(_key("stg_sales_orders"))
    assert dg.AssetKey(["raw", "quarantine"]) in upstream(_key("stg_quarantine"))
    assert _key("sku_location_week") in upstream(dg.AssetKey("exceptions"))
    # data_quality exceptions read the quarantine's rows (the ingest log too, kept out of the graph: its blocking
    # checks gate the publish only, see test_operations_units)
    assert dg.AssetKey(["raw", "quarantine"]) in upstream(dg.AssetKey("exceptions"))
    assert dg.AssetKey("exceptions") in upstream(dg.AssetKey("recommendations"))
    # the feedback counts repeated responses in recommendation_history, an asset of its own written with the day's
    # recommendations: it runs after them
    assert dg.AssetKey("recommendation_history") in upstream(dg.AssetKey("sop_feedback"))
    assert graph.get(dg.AssetKey("recommendation_history")).group_name == "respond"
    assert _key("int_committed_plan") in upstream(dg.AssetKey("plan_vs_actual_weekly"))
    for reader in ("kpi_weekly", "sop_feedback"):
        assert dg.AssetKey("plan_vs_actual_weekly") in upstream(dg.AssetKey(reader))
    published = upstream(dg.AssetKey("published_marts"))
    for mart in ("exceptions", "exception_history", "recommendations", "recommendation_history", "kpi_weekly",
                 "sop_feedback"):
        assert dg.AssetKey(mart) in published
    assert {_key("sku_location_week"), _key("data_quality_issues")} <= published


def test_jobs_and_schedules_are_defined():
    from orchestration.definitions import defs

    assert {"soe_full_run", "soe_daily"} <= {job.name for job in defs.jobs}
    assert {s.job_name for s in defs.schedules} >= {"soe_daily"}


def test_the_daily_schedule_runs_every_stage_at_six_utc():
    """docs/operations.md: `soe_daily_0600`, the job `soe_daily`, every stage, at 06:00 UTC."""
    from orchestration.definitions import defs

    schedule = next(s for s in defs.schedules if s.name == "soe_daily_0600")
    assert (schedule.job_name, schedule.cron_schedule, schedule.execution_timezone) == ("soe_daily", "0 6 * * *", "UTC")


def test_every_job_that_publishes_rebuilds_every_mart_and_runs_the_publish_gates():
    """Publishing writes every mart as one set: a job selecting the publish step without rebuilding a mart
    would publish marts of two runs side by side, and one without raw/ingest_log (whose checks gate
    publishing) would publish unchecked."""
    from orchestration.definitions import defs

    published = dg.AssetKey("published_marts")
    needed = defs.resolve_asset_graph().get(published).parent_keys | {dg.AssetKey(["raw", "ingest_log"])}
    publishing = [job.name for job in defs.jobs
                  if published in defs.resolve_job_def(job.name).asset_layer.selected_asset_keys]
    assert "soe_daily" in publishing
    for name in publishing:
        assert needed <= defs.resolve_job_def(name).asset_layer.selected_asset_keys, name


def test_the_dbt_resource_knows_the_version_of_the_dbt_it_runs():
    """The resource skips `dbt --version`; the version it assumes is the one the executable reports."""
    import re
    import subprocess

    from orchestration.dbt import dbt_resource

    resource = dbt_resource()
    reported = subprocess.check_output([resource.dbt_executable, "--version"], text=True)
    installed = re.search(r"installed:\s*(\d+\.\d+\.\d+)", reported).group(1)
    assert str(resource._cli_version) == installed


def test_the_dbt_soe_runs_is_its_own_not_another_first_on_the_path(tmp_path):
    """A dbt installed elsewhere (pipx, Homebrew) and first on the PATH is neither built nor parsed with, and
    loading the dbt assets sets no warehouse for the process."""
    import os
    import subprocess
    import sys

    foreign = tmp_path / "dbt"
    foreign.write_text("#!/bin/sh\necho foreign dbt >&2\nexit 2\n")
    foreign.chmod(0o755)
    environment = {name: value for name, value in os.environ.items() if name != "SOE_WAREHOUSE"}
    environment["PATH"] = f"{tmp_path}{os.pathsep}{environment['PATH']}"
    shown = subprocess.run(
        [sys.executable, "-c", "import os, shutil; from orchestration.dbt import dbt_resource; "
         "print(dbt_resource().dbt_executable, shutil.which('dbt'), os.environ.get('SOE_WAREHOUSE'), sep='|')"],
        capture_output=True, text=True, check=True, env=environment,
    ).stdout.strip()
    own = str(Path(sys.executable).parent / "dbt")
    assert shown == f"{own}|{own}|None"


def test_a_python_without_dbt_beside_it_runs_the_dbt_on_the_path(tmp_path):
    """soe installed for a Python whose scripts live elsewhere (a --user or a system install): the dbt on the PATH
    is the one it runs, not a path beside that Python where none is."""
    import os
    import shutil
    import subprocess
    import sys

    other_python = Path(shutil.which("python3", path="/usr/bin:/bin") or "/nonexistent")
    if not other_python.is_file() or (other_python.parent / "dbt").exists():
        pytest.skip("needs a system python3 without dbt beside it")
    version = subprocess.run([str(other_python), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip(f"the system python3 is {version}, soe's environment {sys.version_info[:2]}")
    own = Path(sys.executable).parent
    site = next(path for path in sys.path if path.endswith("site-packages"))
    environment = {**os.environ, "PATH": f"{own}{os.pathsep}/usr/bin{os.pathsep}/bin",
                   "PYTHONPATH": f"{Path(__file__).resolve().parents[1]}{os.pathsep}{site}"}
    shown = subprocess.run([str(other_python), "-c", "from orchestration.dbt import dbt_resource; "
                            "print(dbt_resource().dbt_executable)"],
                           capture_output=True, text=True, env=environment, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.strip() == str(own / "dbt")


def test_start_up_leaves_the_later_stages_heavy_libraries_to_the_background():
    """Loading the definitions imports neither Great Expectations nor scipy (seconds before the first step);
    the dbt step imports them on a thread while dbt runs."""
    import subprocess
    import sys

    from soe_assets.background_import import LATER_STAGE_MODULES

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, orchestration.definitions; "
         "print(sorted({m.split('.')[0] for m in sys.modules} & {'great_expectations', 'scipy'}))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert loaded == "[]"
    assert {"great_expectations.expectations", "scipy.optimize"} <= set(LATER_STAGE_MODULES)


def test_every_asset_and_asset_check_says_what_it_is(graph):
    """The UI lists them with their descriptions; a dbt test's comes from its ``meta.description``."""
    assert not [key for key in graph.get_all_asset_keys() if not (graph.get(key).description or "").strip()]
    unexplained = [key for key in graph.asset_check_keys if not (graph.get_check_spec(key).description or "").strip()]
    assert not unexplained and len(graph.asset_check_keys) >= 30


def test_the_detect_stage_depends_on_every_dbt_table_its_rules_read(graph):
    """The lineage the UI draws, and what a partial run rebuilds first, come from the declared dependencies."""
    import re

    source = "\n".join(path.read_text() for path in (Path(__file__).parents[1] / "soe_assets" / "detect").glob("*.py"))
    read = {name for name in re.findall(r"\b(?:staging|intermediate|marts)\.(\w+)", source)
            if name not in {"exceptions", "exception_history"}}
    parents = {key.path[-1] for key in graph.get(dg.AssetKey("exceptions")).parent_keys}
    assert "int_available_stock" in read and read <= parents, read - parents
