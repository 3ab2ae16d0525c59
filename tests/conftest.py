"""Shared fixtures: the demo portal, a browser pool for the whole session, a fresh CORRAL_HOME,
the store's backend, and the guard that keeps every test off the network.

Everything is real: Chromium (Debian's or Playwright's), the portal on 127.0.0.1, SQLite files,
and a PostgreSQL server the run starts itself. A module marked ``both_backends`` runs each of its
tests that use a store (``store_where``, ``settings``, ``rt``) once on SQLite and once on a fresh
PostgreSQL database. Helpers live in ``tests.support``; this file holds fixtures only.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from profiles import BrowserPool
from runtime import Runtime, Settings
from runtime.demo.portal import PortalServer
from runtime.demo.postgres import PgServer, pg_server
from tests.support.net import PROVIDER_KEYS, NetworkGuard
from tests.support.processes import chromium_pids
from tests.support.s3 import S3, fresh_bucket, s3_server


@pytest.fixture(scope="session", autouse=True)
def no_browser_left_behind() -> Iterator[None]:
    """After the whole suite, no Chromium process started by it may remain."""
    started = time.time()
    yield
    # Chromium's helpers are re-parented and reaped over a second or two after a browser closes.
    deadline = time.monotonic() + 5
    while (leftover := chromium_pids(started)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not leftover, f"Chromium processes left behind by the suite: {sorted(leftover)}"


@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo portal on a free port; yields its base URL."""
    server = PortalServer(port=0, db_path=tmp_path_factory.mktemp("portal") / "portal.db")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A local S3-compatible server (one per test module)."""
    with s3_server() as url:
        yield url


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A fresh bucket; the standard AWS variables set for the code under test."""
    return fresh_bucket(endpoint, monkeypatch)


@pytest.fixture(scope="session")
async def pool() -> AsyncIterator[BrowserPool]:
    """One browser pool (one Chromium) for every in-process test."""
    async with BrowserPool.start(os.environ.get("CORRAL_BROWSER")) as shared:
        yield shared


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_backends"
    ):
        metafunc.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole session (started on first use)."""
    with pg_server() as server:
        yield server


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` (the default) or ``postgresql`` in modules marked ``both_backends``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def store_where(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | str:
    """Where a test's store is: a SQLite file, or a fresh PostgreSQL database's URL."""
    if backend == "postgresql":
        server: PgServer = request.getfixturevalue("pg")
        return server.fresh_database()
    return tmp_path / "c.db"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh CORRAL_HOME, also exported for CLI subprocesses."""
    path = tmp_path / "home"
    monkeypatch.setenv("CORRAL_HOME", str(path))
    monkeypatch.delenv("CORRAL_MASTER_KEY", raising=False)
    return path


@pytest.fixture
def settings(
    home: Path, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings pointing at the fresh home (and, on PostgreSQL, a fresh database, also exported
    for CLI subprocesses)."""
    url = None
    if backend == "postgresql":
        url = str(request.getfixturevalue("store_where"))
        monkeypatch.setenv("CORRAL_DATABASE_URL", url)
    else:
        monkeypatch.delenv("CORRAL_DATABASE_URL", raising=False)
    return Settings(home=home, lease_timeout_s=5, database_url=url)


@pytest.fixture
async def rt(settings: Settings, pool: BrowserPool) -> AsyncIterator[Runtime]:
    """A runtime on the fresh home sharing the session's browser pool."""
    async with Runtime.open(settings, pool=pool) as runtime:
        yield runtime


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    """No test reaches a real model provider, or any host off this machine: such a connection is
    refused where it is made, and the test fails even if the code under test swallowed that.
    A corral process a test starts is not patched; it inherits no provider key to call one with."""
    for name in PROVIDER_KEYS:
        monkeypatch.delenv(name, raising=False)
    guard = NetworkGuard()
    guard.install(monkeypatch)
    yield guard
    if guard.refused:
        pytest.fail(f"the test tried to leave this machine: {', '.join(guard.refused)}")
