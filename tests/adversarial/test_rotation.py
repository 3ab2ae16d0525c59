"""Key rotation under contention: one at a time, never under a live run, and durable key files.

A run holds its profile's state in memory and seals it again under the key it started with when
it ends; a rotation meanwhile would leave that state under a key that is about to be dropped.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from profiles import LEASE_TTL_S, KeyRing, LeaseHolder, ProfileSettings
from runtime import Runtime, Settings
from runtime.rotate import LOCK_NAME, RotationBlockedError, rotate_key
from tests.support.cli import CORRAL


async def test_two_rotations_at_once_one_is_refused(rt: Runtime) -> None:
    await rt.vault.set("s.password", "hunter2-long", ["https://portal.example"], [])
    before = (rt.settings.home / "master.key").read_text()
    results = await asyncio.gather(rotate_key(rt), rotate_key(rt), return_exceptions=True)
    refused = [r for r in results if isinstance(r, RotationBlockedError)]
    assert len(refused) == 1, results
    assert "another key rotation is running" in str(refused[0])
    assert (rt.settings.home / "master.key").read_text() != before
    record = await rt.store.vault.get_secret("s.password")
    assert record is not None and await rt.vault.reveal(record) == "hunter2-long"


@pytest.mark.slow
def test_rotate_key_command_fails_while_another_holds_the_lock(home: Path) -> None:
    subprocess.run([*CORRAL, "profiles", "list"], check=True, capture_output=True)
    before = (home / "master.key").read_text()
    fd = os.open(home / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242\n")
        proc = subprocess.run(
            [*CORRAL, "vault", "rotate-key"], capture_output=True, text=True, timeout=60
        )
    finally:
        os.close(fd)
    assert proc.returncode == 2, proc.stderr
    assert "another key rotation is running (pid 4242)" in proc.stderr
    assert (home / "master.key").read_text() == before
    # Once the lock is free the same command works.
    again = subprocess.run([*CORRAL, "vault", "rotate-key"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert (home / "master.key").read_text() != before


async def test_rotation_is_refused_while_a_run_holds_a_lease(rt: Runtime) -> None:
    await rt.profiles.create("alice", ProfileSettings())
    await rt.profiles.create("bob", ProfileSettings())
    # Another run of this (live) process holds bob.
    assert (
        await rt.store.profiles.take_lease("bob", LeaseHolder.current("run-7"), LEASE_TTL_S) is None
    )
    before = (rt.settings.home / "master.key").read_text()
    with pytest.raises(RotationBlockedError) as info:
        await rotate_key(rt)
    assert "profile 'bob' is in use by run run-7" in str(info.value)
    assert (rt.settings.home / "master.key").read_text() == before
    assert not (rt.settings.home / "master.key.next").exists()
    # The refused rotation gave back the leases it had taken on the way.
    alice = await rt.store.profiles.get_lease("alice")
    assert alice is None
    holder = await rt.store.profiles.get_lease("bob")
    assert holder is not None and holder.run_id == "run-7"
    await rt.store.profiles.release_lease("bob", "run-7")
    await rotate_key(rt)
    assert (rt.settings.home / "master.key").read_text() != before


async def test_a_stale_lease_of_a_dead_process_does_not_block(rt: Runtime) -> None:
    await rt.profiles.create("alice", ProfileSettings())
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    gone = LeaseHolder.current("crashed-run")
    gone = LeaseHolder("crashed-run", gone.host, dead.pid, 1.0, gone.acquired_at, gone.heartbeat_at)
    assert await rt.store.profiles.take_lease("alice", gone, LEASE_TTL_S) is None
    report = await rotate_key(rt)
    assert report.key_file is not None
    assert await rt.store.profiles.get_lease("alice") is None


def _fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    paths: list[str] = []
    real = os.fsync

    def counting(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return paths


async def test_rotation_fsyncs_the_new_key_file_and_its_folder(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = str(rt.settings.home)
    paths = _fsynced(monkeypatch)
    await rotate_key(rt)
    # The next key's content before it is renamed, then the folder after each rename.
    assert f"{home}/master.key.next.tmp" in paths
    assert paths.count(home) >= 2, paths
    assert paths.index(f"{home}/master.key.next.tmp") < paths.index(home)


def test_the_first_key_file_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    paths = _fsynced(monkeypatch)
    ring = KeyRing.load(home, {})
    assert (home / "master.key").is_file() and ring.fingerprint
    assert any(p.startswith(f"{home}/.master.key.") for p in paths), paths
    assert str(home) in paths
    assert [p.name for p in home.iterdir()] == ["master.key"]  # no temporary left
    assert KeyRing.load(home, {}).fingerprint == ring.fingerprint


@pytest.mark.slow
async def test_first_key_is_created_once_by_racing_processes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = (
        "import sys, pathlib; from profiles import KeyRing; "
        "print(KeyRing.load(pathlib.Path(sys.argv[1]), {}).fingerprint)"
    )
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, str(home), stdout=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    outs = {(await p.communicate())[0].decode().strip() for p in procs}
    assert len(outs) == 1 and outs != {""}
    async with Runtime.open(Settings(home=home)) as rt:
        assert rt.key.fingerprint in outs
