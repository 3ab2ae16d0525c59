"""A throwaway PostgreSQL server on this machine: for the tests, ``scripts/cluster`` and the
scale benchmark (never for production, see docs/scale.md).

The server's binaries come from ``CORRAL_PG_BIN`` (``scripts/test`` and ``scripts/cluster`` find
Debian's, installing the ``postgresql`` package when none is there), else ``pg_ctl`` on PATH or
under /usr/lib/postgresql. PostgreSQL refuses to run as root: as root the cluster belongs to the
``postgres`` user (created by Debian's package) and its files live in a folder of its own under
/tmp. Durability is switched off (``fsync=off``): it is for trying things out.

:func:`pg_server` runs one for a block; :meth:`PgServer.fresh_database` gives each user (a test)
a database of its own.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PgServer", "find_pg_bin", "pg_server"]


_SETTINGS = {
    # A throwaway cluster: durability is not the point, speed is welcome.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "64MB",
}


def find_pg_bin() -> Path | None:
    """The folder holding ``pg_ctl`` and ``initdb``, or None."""
    configured = os.environ.get("CORRAL_PG_BIN")
    if configured:
        return Path(configured)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return versions[0].parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running cluster on 127.0.0.1:``port``; superuser ``corral``, no password (trust)."""

    bin: Path
    data: Path
    port: int
    user: str | None  # the OS user it runs as when we are root
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://corral@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; returns its output (raises on error)."""
        done = subprocess.run(
            [
                str(self.bin / "psql") if (self.bin / "psql").exists() else "psql",
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.url(database),
                "-c",
                statement,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def fresh_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.sql(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.data.parent, ignore_errors=True)


def _owner() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "nobody"
    return "postgres"


def start_server(bin_dir: Path) -> PgServer:
    """initdb and start a cluster on a free loopback port; waits until it accepts connections."""
    user = _owner()
    root = Path(tempfile.mkdtemp(prefix="corral-pg-"))
    data = root / "data"
    if user is not None:
        info = pwd.getpwnam(user)
        os.chown(root, info.pw_uid, info.pw_gid)
    server = PgServer(bin_dir, data, _free_port(), user)
    init = server._run(
        str(bin_dir / "initdb"),
        "-D",
        str(data),
        "-U",
        "corral",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
    options = " ".join(f"-c {k}={v}" for k, v in _SETTINGS.items())
    start = server._run(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-w",
        "-t",
        "60",
        "-l",
        str(root / "log"),
        "-o",
        f"-h 127.0.0.1 -p {server.port} -k {root} {options}",
        "start",
    )
    if start.returncode != 0:
        log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {start.stderr.strip()}\n{log[-2000:]}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), 1):
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("PostgreSQL did not accept connections within 30 s")


@contextlib.contextmanager
def pg_server() -> Iterator[PgServer]:
    """A server for the duration of the block."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise RuntimeError(
            "no PostgreSQL server binaries (pg_ctl, initdb) found: install Debian's postgresql "
            "package (scripts/test does it) or set CORRAL_PG_BIN"
        )
    server = start_server(bin_dir)
    try:
        yield server
    finally:
        server.stop()
