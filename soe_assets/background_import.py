"""Import the later stages' heavy libraries on a daemon thread while the process only waits."""

from __future__ import annotations

import importlib
import threading

# Great Expectations (2-3 s) for the trusted view's check, scipy (~0.3 s) for the respond stage's LP.
LATER_STAGE_MODULES = ("great_expectations.expectations", "scipy.optimize", "scipy.sparse.csgraph")


def _import_all(modules: tuple[str, ...]) -> None:
    for module in modules:
        importlib.import_module(module)


def import_in_background(modules: tuple[str, ...] = LATER_STAGE_MODULES) -> threading.Thread:
    """Start importing ``modules`` on a daemon thread.

    The dbt step calls this: while dbt builds in its subprocess, this process
    only waits, so the imports cost the stages that use them nothing, and
    nothing at start-up either.
    """
    thread = threading.Thread(target=_import_all, args=(modules,), name="import-later-stages", daemon=True)
    thread.start()
    return thread
