"""Shared fixtures: the demo portal, a browser pool for the whole session, a fresh CORRAL_HOME.

Everything is real: Chromium (Debian's or Playwright's), the portal on 127.0.0.1, SQLite files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from examples.portal import PortalServer
from profiles import BrowserPool, ProfileSettings
from runtime import Runtime, Settings

REPO = Path(__file__).resolve().parent.parent
CORRAL = [str(Path(sys.executable).parent / "corral")]


def chromium_pids() -> set[int]:
    """Every Chromium process on the machine (tests compare before/after sets)."""
    found = set()
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            name = proc.info["name"] or ""
            cmd = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "chrom" in name.lower() or "chromium" in cmd.split(" ")[0]:
            found.add(proc.pid)
    return found


@pytest.fixture(scope="session", autouse=True)
def no_browser_left_behind() -> Iterator[None]:
    """After the whole suite, no Chromium process started by it may remain."""
    before = chromium_pids()
    yield
    leftover = chromium_pids() - before
    alive = [p for p in leftover if psutil.pid_exists(p)]
    assert not alive, f"Chromium processes left behind by the suite: {alive}"


@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo portal on a free port; yields its base URL."""
    server = PortalServer(port=0, db_path=tmp_path_factory.mktemp("portal") / "portal.db")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def pool() -> AsyncIterator[BrowserPool]:
    """One browser pool (one Chromium) for every in-process test."""
    async with BrowserPool.start(os.environ.get("CORRAL_BROWSER")) as shared:
        yield shared


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh CORRAL_HOME, also exported for CLI subprocesses."""
    path = tmp_path / "home"
    monkeypatch.setenv("CORRAL_HOME", str(path))
    monkeypatch.delenv("CORRAL_MASTER_KEY", raising=False)
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    """Settings pointing at the fresh home."""
    return Settings(home=home, lease_timeout_s=5)


@pytest.fixture
async def rt(settings: Settings, pool: BrowserPool) -> AsyncIterator[Runtime]:
    """A runtime on the fresh home sharing the session's browser pool."""
    async with Runtime.open(settings, pool=pool) as runtime:
        yield runtime


async def make_demo_profiles(rt: Runtime, *names: str) -> None:
    """Profiles for demo users, with their portal credentials as profile vars."""
    from examples.portal import USERS

    for name in names:
        user = USERS[name]
        await rt.profiles.create(
            name, ProfileSettings(vars={"user": user.username, "password": user.password})
        )
