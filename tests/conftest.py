"""Shared fixtures: the demo portal, a browser pool for the whole session, a fresh CORRAL_HOME.

Everything is real: Chromium (Debian's or Playwright's), the portal on 127.0.0.1, SQLite files.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from profiles import BrowserPool, ProfileSettings
from runtime import Runtime, Settings
from runtime.approvals import ApprovalRequest
from runtime.demo.portal import PortalServer

REPO = Path(__file__).resolve().parent.parent
CORRAL = [str(Path(sys.executable).parent / "corral")]


def chromium_pids(since: float = 0.0) -> set[int]:
    """Chromium processes that are ours: descendants of this process, or orphans (parent 1)
    started after ``since`` (a browser whose owner died is re-parented to init)."""
    mine = {p.pid for p in psutil.Process().children(recursive=True)}
    found = set()
    for proc in psutil.process_iter(["name", "ppid", "create_time", "status"]):
        info = proc.info
        if "chrom" not in (info["name"] or "").lower() or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if proc.pid in mine or (info["ppid"] == 1 and info["create_time"] >= since):
            found.add(proc.pid)
    return found


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


async def make_demo_profiles(rt: Runtime, portal: str, *names: str) -> None:
    """Profiles for demo users: the username as a var, the password in the vault (scoped)."""
    from runtime.demo.portal import USERS

    for name in names:
        user = USERS[name]
        await rt.profiles.create(name, ProfileSettings(vars={"user": user.username}))
        await rt.vault.set(f"{name}.password", user.password, [portal], [name])


async def next_request(
    rt: Runtime, timeout_s: float = 60.0, besides: ApprovalRequest | None = None
) -> ApprovalRequest:
    """The oldest pending approval request (other than ``besides``), once a run has asked
    (polls the store, as another process would)."""
    async with asyncio.timeout(timeout_s):
        while True:
            pending = [
                r
                for r in await rt.approvals.list_requests()
                if besides is None or r.id != besides.id
            ]
            if pending:
                return pending[-1]
            await asyncio.sleep(0.05)
