"""Chromium processes started by the tests, found with psutil."""

from __future__ import annotations

import contextlib
import os
import time

import psutil

__all__ = ["chromium_pids", "running_chromium", "wait_gone"]


def chromium_pids(since: float = 0.0) -> set[int]:
    """Chromium processes that are ours: descendants of this process, or orphans (parent 1)
    started after ``since`` (a browser whose owner died is re-parented to init)."""
    mine = {p.pid for p in psutil.Process().children(recursive=True)}
    found = set()
    for proc in psutil.process_iter(["name", "ppid", "create_time", "status"]):
        info = proc.info
        if "chrom" not in (info["name"] or "").lower() or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if proc.pid in mine or (
            info["ppid"] == 1 and info["create_time"] >= since and _started_here(proc)
        ):
            found.add(proc.pid)
    return found


def _started_here(proc: psutil.Process) -> bool:
    """Whether an orphan was started from this folder, as our processes are (a concurrent test
    run elsewhere on the machine leaves orphans of its own)."""
    try:
        return proc.cwd() == os.getcwd()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def running_chromium(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The Chromium processes among ``procs`` that still run (zombies have ended)."""
    alive = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if "chrom" in proc.name() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def wait_gone(procs: list[psutil.Process], timeout_s: float = 15) -> list[psutil.Process]:
    """Wait until none of ``procs`` runs; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout_s
    while (alive := running_chromium(procs)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive
