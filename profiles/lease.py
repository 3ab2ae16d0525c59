"""Exclusive profile leases: one run per profile, and a crashed holder never blocks forever.

A lease row names its holder (run id, host, pid and the pid's start time). Another run may take the
lease over when the holder is provably gone: the same host and the pid is dead or reused, or the
holder's heartbeat is older than the TTL (a holder on another host, or a frozen process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import psutil

from .errors import ProfileLeasedError

__all__ = ["LEASE_TTL_S", "LeaseHolder", "LeaseStore", "hold_lease", "holder_is_gone"]

LEASE_TTL_S = 60.0
_POLL_S = 0.1


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a profile lease."""

    run_id: str
    host: str
    pid: int
    pid_started: float
    acquired_at: float
    heartbeat_at: float

    @classmethod
    def current(cls, run_id: str) -> LeaseHolder:
        """A holder describing this process, for ``run_id``."""
        now = time.time()
        pid = os.getpid()
        return cls(run_id, socket.gethostname(), pid, _pid_started(pid) or 0.0, now, now)


class LeaseStore(Protocol):
    """The storage primitives a lease needs; ``runtime.Store`` provides them atomically."""

    async def take_lease(
        self, profile: str, holder: LeaseHolder, ttl_s: float
    ) -> LeaseHolder | None:
        """Take the lease unless a live holder has it; return that holder if so."""
        ...

    async def renew_lease(self, profile: str, run_id: str, at: float) -> None:
        """Refresh the heartbeat of a lease this run holds."""
        ...

    async def release_lease(self, profile: str, run_id: str) -> None:
        """Drop the lease if this run still holds it."""
        ...


def _pid_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def process_identity() -> str:
    """This process as ``host:pid:started`` (see :func:`process_is_gone`)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_pid_started(pid) or 0.0:.3f}"


def process_is_gone(host: str, pid: int, pid_started: float) -> bool:
    """True when that process cannot be running: on this host, its pid is dead or reused.

    A process on another host cannot be checked from here: False (a heartbeat decides there).
    """
    if host != socket.gethostname():
        return False
    started = _pid_started(pid)
    # A reused pid has a different start time; tolerate float rounding through SQLite.
    return started is None or abs(started - pid_started) > 1.0


def identity_is_gone(identity: str) -> bool:
    """:func:`process_is_gone` for a :func:`process_identity` string; a malformed one is not
    ours to judge (False)."""
    parts = identity.rsplit(":", 2)
    if len(parts) != 3:
        return False
    try:
        return process_is_gone(parts[0], int(parts[1]), float(parts[2]))
    except ValueError:
        return False


def holder_is_gone(holder: LeaseHolder, ttl_s: float, now: float | None = None) -> bool:
    """True when the holder cannot be running: dead pid on this host, or a stale heartbeat."""
    now = time.time() if now is None else now
    if now - holder.heartbeat_at > ttl_s:
        return True
    return process_is_gone(holder.host, holder.pid, holder.pid_started)


@contextlib.asynccontextmanager
async def hold_lease(
    store: LeaseStore,
    profile: str,
    run_id: str,
    wait_s: float,
    ttl_s: float = LEASE_TTL_S,
) -> AsyncIterator[LeaseHolder]:
    """Hold ``profile`` exclusively for ``run_id``, waiting up to ``wait_s`` for another run."""
    holder = LeaseHolder.current(run_id)
    deadline = time.monotonic() + wait_s
    while True:
        other = await store.take_lease(profile, holder, ttl_s)
        if other is None:
            break
        if time.monotonic() >= deadline:
            since = time.strftime("%H:%M:%S", time.localtime(other.acquired_at))
            raise ProfileLeasedError(
                f"profile '{profile}' is in use by run {other.run_id} (pid {other.pid} on "
                f"{other.host}, since {since}); waited {wait_s:g}s. Wait for that run to finish, "
                "or raise the wait with --lease-timeout"
            )
        await asyncio.sleep(_POLL_S)
    heartbeat = asyncio.create_task(_heartbeat(store, profile, run_id, ttl_s))
    try:
        yield holder
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        # Shielded: a cancelled run (Ctrl-C) must still give the profile back.
        await asyncio.shield(store.release_lease(profile, run_id))


async def _heartbeat(store: LeaseStore, profile: str, run_id: str, ttl_s: float) -> None:
    while True:
        await asyncio.sleep(ttl_s / 4)
        await store.renew_lease(profile, run_id, time.time())
