"""A wheel of soe (``pip install .``) runs without its checkout.

The dbt project travels inside the wheel (``setup.py``), and dbt's target
folder goes to a cache folder: nothing is written into the installation,
which may be read-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILT_FROM = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "orchestration", "soe_assets", "data_contracts",
              "dbt_project")
NOT_SOURCES = shutil.ignore_patterns("target", "logs", "dbt_packages", "__pycache__", "*.egg-info")


def _files(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` but Python's byte-code caches, with its size."""
    return {str(path.relative_to(folder)): path.stat().st_size for path in folder.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def test_installed_wheel_runs_the_demo_outside_its_checkout(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILT_FROM:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=NOT_SOURCES)
        else:
            shutil.copy2(origin, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(tmp_path / "dist")], check=True)
    (wheel,) = (tmp_path / "dist").glob("soe-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                   check=True)
    packaged_project = site / "orchestration" / "dbt_project"
    assert (packaged_project / "dbt_project.yml").is_file()
    assert {p.name for p in (packaged_project / "models" / "marts").glob("*.sql")} == {
        p.name for p in (REPO_ROOT / "dbt_project" / "models" / "marts").glob("*.sql")}
    installed = _files(site)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache = tmp_path / "cache"
    env = {key: value for key, value in os.environ.items() if key not in ("SOE_DBT_TARGET_DIR", "DBT_TARGET_PATH")}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(cache), DBT_SEND_ANONYMOUS_USAGE_STATS="false",
               GX_ANALYTICS_ENABLED="false")
    demo = subprocess.run([sys.executable, "-m", "orchestration.cli", "demo", "--dir", str(elsewhere / "demo")],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    # the first command parses the project; its fast exit left the dbt adapter's lock to be reported as leaked
    assert "leaked semaphore" not in demo.stderr, demo.stderr[-3000:]
    located = subprocess.run(
        [sys.executable, "-c", "import orchestration.dbt as d; print(d.__file__, d.DBT_PROJECT_DIR, d.DBT_TARGET_DIR)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert located[0].startswith(str(site)), located  # the wheel's copy, not the checkout's
    assert located[1] == str(packaged_project)
    assert Path(located[2]) == cache / "soe" / "dbt-target-0.1.0"
    assert (elsewhere / "demo" / "publish" / "current").exists()
    assert any((elsewhere / "demo" / "publish").rglob("sku_location_week.parquet"))
    assert (cache / "soe" / "dbt-target-0.1.0" / "manifest.json").is_file()
    assert any((cache / "soe" / "dbt-target-0.1.0").glob("soe_dbt_models-*/run_results.json"))
    assert _files(site) == installed  # dbt wrote nothing into the installation
