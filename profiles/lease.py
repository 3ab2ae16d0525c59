"""Exclusive profile leases: one run per profile, across processes and hosts sharing one store.

A lease row names its holder (run id, host, pid and the pid's start time), its TTL and a fencing
token, ``generation``, that grows on every take-over; the holder keeps the token it got.

Who owns what is decided by the store, never by a host's clock: ``acquired_at`` and
``heartbeat_at`` are the store's time (:meth:`Database.clock`), read inside the transaction that
decides. Another run may take the lease over when the holder is gone: its heartbeat is older than
the holder's TTL by the store's clock, or (a shortcut that only works on the same host) its pid is
dead or reused.

The holder renews every ``ttl / 4``; a renewal succeeds only while the row still names its run and
token. :func:`hold_lease` stops the run (cancels the task that holds the lease, which then ends
with :class:`LeaseLostError`) when

* a renewal says the lease is no longer ours (taken over), or
* no renewal has succeeded for ``ttl * LOST_AFTER`` (0.75) by the holder's monotonic clock: the
  store is unreachable, so the holder must assume it is partitioned away.

Why 0.75 is enough. Let ``t`` be the holder's monotonic time when it *sent* its last renewal that
succeeded; the store wrote ``heartbeat_at = S``, its clock at some instant after ``t``. A taker
may take over only once the store's clock passes ``S + ttl``, so at least ``ttl`` of store time
after ``t``. The holder stops itself at ``t + 0.75 ttl`` of its own time. The quarter of the TTL
left over (15 s at the default 60 s) covers the run's reaction to the cancellation and a drift
between the holder's monotonic clock and the store's clock of up to 25 %; and a holder frozen past
it (SIGSTOP, a VM pause) cannot act on a lease it lost either: its next renewal finds the row
rewritten, and the store refuses to claim an approved action for a run that does not hold a live
lease (:meth:`runtime.store.approvals.ApprovalRepository.move`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import psutil

from .errors import LeaseLostError, ProfileLeasedError

__all__ = [
    "LEASE_TTL_S",
    "LOST_AFTER",
    "LeaseHolder",
    "LeaseStore",
    "hold_lease",
    "holder_is_gone",
    "identity_is_gone",
    "process_identity",
]

LEASE_TTL_S = 60.0
LOST_AFTER = 0.75
"""A holder whose renewals have all failed for this fraction of its TTL stops (see the module)."""
_POLL_S = 0.1

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a profile lease (times are the store's, seconds since the epoch)."""

    run_id: str
    host: str
    pid: int
    pid_started: float
    acquired_at: float
    heartbeat_at: float
    generation: int = 0
    """The fencing token: grows on every take-over of the profile's lease."""
    ttl_s: float = LEASE_TTL_S
    """The holder's TTL: it counts as gone once its heartbeat is older than this."""

    @classmethod
    def current(cls, run_id: str, ttl_s: float = LEASE_TTL_S) -> LeaseHolder:
        """A holder describing this process, for ``run_id`` (the store sets times and token)."""
        pid = os.getpid()
        return cls(run_id, socket.gethostname(), pid, _pid_started(pid) or 0.0, 0.0, 0.0, 0, ttl_s)


class LeaseStore(Protocol):
    """The storage primitives a lease needs; ``runtime.Store`` provides them atomically."""

    async def acquire_lease(
        self, profile: str, holder: LeaseHolder, ttl_s: float
    ) -> tuple[bool, LeaseHolder]:
        """Take the lease unless a live holder has it: ``(True, our row with its token)``, or
        ``(False, the live holder)``."""
        ...

    async def renew_lease(self, profile: str, run_id: str, generation: int | None = None) -> bool:
        """Refresh the heartbeat; True only if the row still names this run (and token)."""
        ...

    async def release_lease(self, profile: str, run_id: str, generation: int | None = None) -> None:
        """Drop the lease if this run (and token) still holds it."""
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


def holder_is_gone(holder: LeaseHolder, now: float) -> bool:
    """True when the holder cannot be running: its heartbeat is older than its TTL at ``now``
    (the store's clock), or its pid is dead on this host."""
    if now - holder.heartbeat_at > holder.ttl_s:
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
    """Hold ``profile`` exclusively for ``run_id``, waiting up to ``wait_s`` for another run.

    Yields the lease as stored (with its token). If the lease is lost while held (see the
    module), the task that entered this block is cancelled and the block ends with
    :class:`LeaseLostError` ("lease on profile X lost: ..."), whatever the body was doing.
    """
    holder = LeaseHolder.current(run_id, ttl_s)
    deadline = time.monotonic() + wait_s
    while True:
        won, lease = await store.acquire_lease(profile, holder, ttl_s)
        if won:
            break
        if time.monotonic() >= deadline:
            since = time.strftime("%H:%M:%S", time.localtime(lease.acquired_at))
            raise ProfileLeasedError(
                f"profile '{profile}' is in use by run {lease.run_id} (pid {lease.pid} on "
                f"{lease.host}, since {since}); waited {wait_s:g}s. Wait for that run to finish, "
                "or raise the wait with --lease-timeout"
            )
        await asyncio.sleep(_POLL_S)

    task = asyncio.current_task()
    assert task is not None
    cancelling = task.cancelling()
    lost: list[str] = []
    active = True  # the body runs: a loss still has to stop it

    def stop(why: str) -> None:
        if active and not lost:
            lost.append(f"lease on profile '{profile}' lost: {why}")
            log.warning("run %s: %s; stopping it", run_id, lost[0])
            task.cancel(lost[0])

    heartbeat = asyncio.create_task(_heartbeat(store, profile, lease, stop))
    error: BaseException | None = None
    try:
        yield lease
    except BaseException as exc:
        error = exc
    active = False
    others = False
    if lost:
        # Take back our own cancellation, delivered or still pending; leave anyone else's.
        task.uncancel()
        if not isinstance(error, asyncio.CancelledError):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
        others = task.cancelling() > cancelling
    heartbeat.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await heartbeat
    try:
        # Shielded: a cancelled run (Ctrl-C) must still give the profile back.
        await asyncio.shield(store.release_lease(profile, run_id, lease.generation))
    except Exception:
        if not lost:
            raise
        # The store may be what we lost: the row expires by its heartbeat all the same.
        log.warning("run %s: could not release the lease on %s", run_id, profile, exc_info=True)
    if lost:
        if others:
            raise error if isinstance(error, asyncio.CancelledError) else asyncio.CancelledError()
        raise LeaseLostError(lost[0]) from error
    if error is not None:
        raise error


async def _heartbeat(
    store: LeaseStore, profile: str, lease: LeaseHolder, stop: Callable[[str], None]
) -> None:
    """Renew every ``ttl / 4``; ``stop(why)`` when the lease is lost (see the module)."""
    interval, margin = lease.ttl_s / 4, lease.ttl_s * LOST_AFTER
    last_ok = sent = time.monotonic()
    failure = "no answer"
    # A renewal is never cut short while the lease is held (a store call cancelled halfway
    # could leave its connection mid-transaction); only the wait for it is.
    renewal: asyncio.Task[bool] | None = None
    try:
        while True:
            left = last_ok + margin - time.monotonic()
            if left <= 0:
                stop(
                    f"no renewal reached the store for {margin:g}s ({failure}); it may be "
                    f"taken over {lease.ttl_s:g}s after the last one"
                )
                return
            if renewal is None:
                await asyncio.sleep(min(interval, left))
                sent = time.monotonic()
                renewal = asyncio.create_task(
                    store.renew_lease(profile, lease.run_id, lease.generation)
                )
            left = max(0.0, last_ok + margin - time.monotonic())
            done, _ = await asyncio.wait({renewal}, timeout=left)
            if not done:
                failure = "the store did not answer"
                continue
            finished, renewal = renewal, None
            try:
                ours = finished.result()
            except Exception as exc:
                failure = f"{type(exc).__name__}: {exc}"
                continue
            if not ours:
                stop(f"run {lease.run_id} (token {lease.generation}) no longer holds it")
                return
            # The store wrote its heartbeat after this renewal was sent: count from the send.
            last_ok = sent
    finally:
        if renewal is not None:
            # Ending: give a renewal in flight a while to finish (the store's own timeouts
            # bound it), then give up on it.
            await asyncio.wait({renewal}, timeout=lease.ttl_s)
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewal
