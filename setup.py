"""Build hook: a wheel carries the dbt project inside the ``orchestration`` package.

The project lives at the top of the checkout (``dbt_project/``), outside every
Python package; an editable install runs it from there. For a wheel (``pip
install .``) its models, macros, tests and profile are copied to
``orchestration/dbt_project`` (``orchestration/dbt.py`` finds either copy).
Everything else is declared in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DBT_PROJECT = Path(__file__).resolve().parent / "dbt_project"
DBT_PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests")


class BuildWithDbtProject(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        packaged = Path(self.build_lib) / "orchestration" / "dbt_project"
        shutil.rmtree(packaged, ignore_errors=True)
        packaged.mkdir(parents=True)
        for name in DBT_PROJECT_FILES:
            source = DBT_PROJECT / name
            if source.is_dir():
                shutil.copytree(source, packaged / name)
            else:
                shutil.copy2(source, packaged / name)


setup(cmdclass={"build_py": BuildWithDbtProject})
