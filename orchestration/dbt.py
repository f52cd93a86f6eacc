"""The dbt project as Dagster assets (group ``reconcile``)."""


import contextlib
import functools
import importlib.metadata
from collections import Counter
from collections.abc import Iterator, Sequence
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtProjectPreparer, DbtCliResource, DbtProject, dbt_assets
from packaging.version import Version

from orchestration.resources import WarehouseResource
from soe_assets import run_lock
from soe_assets.background_import import import_in_background
from soe_assets.duckdb_settings import MEMORY_LIMIT_ENV, memory_limit

# A checkout (or an editable install) runs its own dbt_project/ and writes dbt's target folder there; an
# installed wheel carries a copy inside this package (setup.py) and writes its target to a cache folder,
# never into the installation.
CHECKOUT_DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
PACKAGED_DBT_PROJECT_DIR = Path(__file__).resolve().parent / "dbt_project"
DBT_TARGET_DIR_ENV = "SOE_DBT_TARGET_DIR"


def _installed_target_dir() -> Path:
    """Where an installed soe keeps dbt's target folder: $SOE_DBT_TARGET_DIR, else a per-user cache folder
    per version (a new version parses its own project afresh)."""
    if os.environ.get(DBT_TARGET_DIR_ENV):
        return Path(os.environ[DBT_TARGET_DIR_ENV]).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return (cache / "soe" / f"dbt-target-{importlib.metadata.version('soe')}").resolve()


if (CHECKOUT_DBT_PROJECT_DIR / "dbt_project.yml").is_file() or not PACKAGED_DBT_PROJECT_DIR.is_dir():
    DBT_PROJECT_DIR, DBT_TARGET_DIR = CHECKOUT_DBT_PROJECT_DIR, CHECKOUT_DBT_PROJECT_DIR / "target"
else:
    DBT_PROJECT_DIR, DBT_TARGET_DIR = PACKAGED_DBT_PROJECT_DIR, _installed_target_dir()
    DBT_TARGET_DIR.mkdir(parents=True, exist_ok=True)
    # dagster-dbt puts each build's own target folder (and its logs) under this path
    os.environ["DBT_TARGET_PATH"] = str(DBT_TARGET_DIR)

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


def _installed_dbt() -> Path | None:
    """The dbt installed with soe's Python: beside it (a venv), or in its scripts folders (a plain or a --user
    install, whose scripts may live elsewhere, e.g. /usr/local/bin or ~/.local/bin)."""
    folders = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts")),
               Path(sysconfig.get_path("scripts", f"{os.name}_user"))]
    return next((folder / "dbt" for folder in folders if (folder / "dbt").is_file()), None)


# That dbt comes first on the PATH (for dagster-dbt's parse) and is named outright for builds, so neither an
# unactivated venv nor another dbt first on the PATH (pipx, Homebrew) is run; without one, the PATH's dbt.
_OWN_DBT = _installed_dbt()
DBT_EXECUTABLE = str(_OWN_DBT) if _OWN_DBT else shutil.which("dbt") or "dbt"
if _OWN_DBT and os.environ.get("PATH", "").split(os.pathsep)[0] != str(_OWN_DBT.parent):
    os.environ["PATH"] = f"{_OWN_DBT.parent}{os.pathsep}{os.environ.get('PATH', '')}"

TERSE_ENV = "SOE_TERSE_OUTPUT"


class SoeDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two start-up costs soe has no use for (~3-4 s per build).

    Before every build, dagster-dbt 0.29 runs ``dbt --version`` in a
    subprocess (the cost of starting dbt once more) only to learn the version
    of dbt-core, which soe installs into its own environment and runs by its
    path (above): the installed package's version is that answer. It also
    loads the project's macros into an in-process dbt adapter, used only to
    fetch row counts and column metadata, which soe does not ask for.
    """

    @functools.cached_property
    def _cli_version(self) -> Version:
        return Version(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


def dbt_resource() -> DbtCliResource:
    return SoeDbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)


class SoeDbtProjectPreparer(DagsterDbtProjectPreparer):
    """dagster-dbt's preparer (a lock against two processes parsing at once), parsing with soe's resource:
    its own loads the dbt adapter into this process, whose multiprocessing lock the command's fast exit
    (``orchestration.cli.command``) left for Python's resource tracker to report as leaked."""

    def _prepare_manifest(self, project: DbtProject) -> None:
        dbt_resource().cli(self._prepare_project_cli_args, target_path=project.target_path).wait()


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target_path=DBT_TARGET_DIR)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables set for the duration of the block only (dbt reads its profile's values there)."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# The folders dbt reads a project's nodes from (dbt's default *-paths, which dbt_project.yml keeps).
PROJECT_NODE_FOLDERS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")


def manifest_is_stale(project_dir: Path, manifest: Path) -> bool:
    """Whether ``manifest`` misses, or is older than, a file of the project or a change to its folders (a
    folder's time changes when a file in it is added, removed or renamed): a node dbt builds that the loaded
    manifest lacks fails the dbt step."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    folders = [project_dir / name for name in PROJECT_NODE_FOLDERS if (project_dir / name).is_dir()]
    paths = [project_dir / "dbt_project.yml", project_dir / "profiles.yml", *folders,
             *(path for folder in folders for path in folder.glob("**/*"))]
    return any(path.stat().st_mtime > built for path in paths if path.exists())


def prepare_manifest() -> None:
    """Parse the dbt project when its manifest is missing or older than its files (~5 s)."""
    if manifest_is_stale(DBT_PROJECT_DIR, dbt_project.manifest_path):
        # The profile needs a warehouse path to parse (parsing never opens it); only the parse is given one.
        with _environment(SOE_WAREHOUSE=os.environ.get("SOE_WAREHOUSE") or str(DBT_TARGET_DIR / "parse-only.duckdb")):
            SoeDbtProjectPreparer().prepare(dbt_project)


prepare_manifest()


# Left out of a run, run by CI instead (see dbt_project.yml): the staging tests, which restate the
# landing contract ingest has just enforced, and the unit tests, which run on fixed rows.
CI_ONLY_DBT_TESTS = "tag:landing_contract test_type:unit"


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, exclude=CI_ONLY_DBT_TESTS)
def soe_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """Staging, reconciliation and the trusted SKU-location-week view (dbt opens the warehouse itself; the
    ``warehouse`` resource holds its run lock, also when the models run alone)."""
    # On the soe command line the progress logger shows dbt's verdicts; its raw echo is noise.
    echo = open(os.devnull, "w") if os.environ.get(TERSE_ENV) else contextlib.nullcontext(sys.stdout)
    # dbt's profile gets the budget the Python stages use (``auto`` is resolved here, not by dbt)
    # A reader holding the file (a notebook) is waited for here, up to a minute and saying so, as every step
    # waits; dbt's own retries (profiles.yml) cover only the seconds between this and its connecting.
    with warehouse.connect():
        pass
    with echo as sink, contextlib.redirect_stdout(sink), _environment(**{MEMORY_LIMIT_ENV: memory_limit()}):
        invocation = dbt.cli(["build"], context=context)
        run_lock.record_child(warehouse.path, invocation.process.pid)  # it writes the warehouse until it exits
        import_in_background()  # only now: before dbt starts, the import would hold up its launch
        try:
            for event in invocation.stream():
                yield event
                line = slow_node_line(event, SLOW_NODE_SECONDS)
                if line:
                    context.log.info(line)
        finally:
            stop_unfinished(invocation.process)
    statuses = Counter(result["status"] for result in invocation.get_artifact("run_results.json")["results"])
    context.log.info("dbt build: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())))
    keep_partial_parse(invocation.target_path)
    prune_run_targets(keep=RUN_TARGETS_KEPT)


# How long dbt may take to stop once asked, before it is killed.
DBT_STOP_SECONDS = 30.0


def stop_unfinished(process: subprocess.Popen) -> None:
    """Stop a dbt build the step no longer follows (it failed while dbt ran): left running, dbt would hold the
    warehouse, and the next step would wait for it, then fail."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # as dagster-dbt interrupts it: dbt cancels its queries and exits
    try:
        process.wait(DBT_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# A dbt node that takes this long gets its own progress line: on a large network the build runs for a
# minute, and its total alone does not say where.
SLOW_NODE_SECONDS = 1.0


def slow_node_line(event: object, threshold: float) -> str | None:
    """'<model|test> <name> done in X s' for an event of a dbt node that took ``threshold`` seconds or more."""
    metadata = getattr(event, "metadata", None) or {}
    duration, unique_id = metadata.get("Execution Duration"), metadata.get("unique_id")
    if duration is None or unique_id is None:
        return None
    seconds = float(getattr(duration, "value", duration))
    if seconds < threshold:
        return None
    kind, _, name = str(getattr(unique_id, "value", unique_id)).split(".")[:3]
    return f"{kind} {name} done in {seconds:.1f} s"


# dagster-dbt gives every invocation its own target folder; the newest few are kept for debugging.
RUN_TARGETS_KEPT = 5


def keep_partial_parse(run_target: Path) -> None:
    """Offer this build's parse state to the next one.

    dbt's partial parse is only valid for the profile it was made with, and the
    profile names the warehouse; dagster-dbt seeds each build from the project's
    target folder. Handing back the state of a build on this warehouse lets the
    next build on it skip the full parse (about 2 s).
    """
    state = run_target / "partial_parse.msgpack"
    if state.exists():
        staged = dbt_project.manifest_path.with_name(f".partial_parse.{os.getpid()}")
        shutil.copyfile(state, staged)
        os.replace(staged, dbt_project.manifest_path.with_name("partial_parse.msgpack"))


def prune_run_targets(keep: int) -> None:
    """Delete all but the ``keep`` newest per-build target folders (each holds a manifest and compiled SQL)."""
    folders = sorted(dbt_project.manifest_path.parent.glob("soe_dbt_models-*"), key=lambda p: p.stat().st_mtime)
    for folder in folders[:-keep] if keep else folders:
        shutil.rmtree(folder, ignore_errors=True)
