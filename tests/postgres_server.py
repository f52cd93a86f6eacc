"""A throwaway Postgres cluster for the portability test: the dbt project built on a second engine.

Uses the server binaries of Debian's `postgresql` package (`make test` installs it). The cluster lives in
a fresh folder under the system's temporary folder, listens on 127.0.0.1 on a free port, trusts local
connections, and is removed afterwards. Postgres refuses to run as root, so under root the cluster belongs
to the package's `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from psycopg2.extensions import connection

SERVER_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name))
USER = "soe"

# DuckDB's types of the raw tables and what Postgres calls them.
_POSTGRES_TYPES = {"VARCHAR": "text", "DOUBLE": "double precision", "BIGINT": "bigint", "INTEGER": "integer",
                   "DATE": "date", "TIMESTAMP": "timestamp", "BOOLEAN": "boolean"}


@dataclass(frozen=True)
class Server:
    host: str
    port: int

    def connect(self) -> closing[connection]:
        import psycopg2

        opened = psycopg2.connect(host=self.host, port=self.port, user=USER, dbname="postgres")
        opened.autocommit = True
        return closing(opened)


def unavailable_reason() -> str | None:
    """Why the portability test cannot run here, or None."""
    if not SERVER_BINARIES:
        return "Postgres server binaries not found (/usr/lib/postgresql/*/bin; `make test` installs them)"
    if os.geteuid() == 0 and not _has_user("postgres"):
        return "running as root and there is no `postgres` user to own the cluster"
    try:
        import dbt.adapters.postgres  # noqa: F401
    except ImportError:
        return "dbt-postgres is not installed (pip install -e '.[dev]')"
    return None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def throwaway_postgres() -> Iterator[Server]:
    binaries = SERVER_BINARIES[-1]
    folder = Path(tempfile.mkdtemp(prefix="soe-postgres-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    cluster, port = folder / "cluster", _free_port()

    def run(*command: str) -> None:
        completed = subprocess.run([*as_owner, *command], capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            log = folder / "server.log"
            raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stdout}{completed.stderr}"
                               + (log.read_text() if log.exists() else ""))

    try:
        run(str(binaries / "initdb"), "-D", str(cluster), "-U", USER, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync")
        run(str(binaries / "pg_ctl"), "-D", str(cluster), "-l", str(folder / "server.log"), "-w", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        try:
            yield Server("127.0.0.1", port)
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(cluster), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def copy_raw_schema(warehouse: Path, server: Server, scratch: Path) -> list[str]:
    """Copy every table of the warehouse's `raw` schema into schema `raw` of the server; the table names."""
    copied = []
    with duckdb.connect(str(warehouse), read_only=True) as source, server.connect() as target:
        cursor = target.cursor()
        cursor.execute("create schema raw")
        tables = [row[0] for row in source.execute(
            "select table_name from information_schema.tables where table_schema = 'raw' order by 1").fetchall()]
        for table in tables:
            columns = source.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'raw' and table_name = ? order by ordinal_position", [table]).fetchall()
            cursor.execute(f'create table raw."{table}" ('
                           + ", ".join(f'"{name}" {_POSTGRES_TYPES[kind]}' for name, kind in columns) + ")")
            csv = scratch / f"raw.{table}.csv"
            source.execute(f"copy raw.\"{table}\" to '{csv}' (header, null '\\N')")
            with csv.open() as rows:
                cursor.copy_expert(f"copy raw.\"{table}\" from stdin with (format csv, header, null '\\N')", rows)
            copied.append(table)
    return copied


def dump_table(server: Server, table: str, csv: Path) -> None:
    """Write a server table (`schema.name`) to a CSV file with a header."""
    with server.connect() as database, csv.open("w") as rows:
        database.cursor().copy_expert(f"copy {table} to stdout with (format csv, header)", rows)
